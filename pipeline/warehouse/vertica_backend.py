"""Vertica, the production warehouse: vertica-python, one transaction per microbatch.

Loading: ``COPY ... FROM STDIN`` of the consumer's batch, not ``KafkaSource``
---------------------------------------------------------------------------------
A microbatch reaches the warehouse as the rows that ``pipeline.microbatch.shape_batch``
made of one Kafka offset range ``[start, stop)``. This backend streams those rows into
Vertica with ``COPY ... FROM STDIN ... ABORT ON ERROR NO COMMIT`` and then, on the same
connection and in the same transaction, deduplicates the trades into ``market_data`` (and
the quotes and bars into ``market_quotes`` and ``market_aggregates``, each through its own
session-private stage), writes rejects, gaps and quality rows, inserts the ledger row and
COMMITs.

The alternative, ``COPY ... SOURCE KafkaSource(stream='topic|p|start|stop')``, lets Vertica
read Kafka itself. It was not chosen because (integrations.md 3.1, 3.2):

- the business logic lives in Python and must run inside the load transaction: derived
  columns (New York ``trade_date``, ``in_regular_hours``, ``ns_from_open``), the dedup key,
  reject reasons, gap records and the quality verdict stored on the ledger row. With
  KafkaSource the rows land first and all of that would be re-implemented in SQL;
- one code path for both backends: DuckDB loads the same ``Microbatch``, so the contract
  suite proves the same rows, rejects and ledger on both;
- KafkaOffsets() reports ranges with inverted semantics (start exclusive, end inclusive) and
  some of its column names are unconfirmed; our ledger keeps half-open ranges that the
  consumer read itself, so there is nothing to translate;
- the brokers need not be reachable from the database nodes.

The price is that the rows cross the network twice (Kafka -> Dagster worker -> Vertica);
at 200,000 records a batch that is seconds, and several partitions load in parallel.

Atomicity
---------
vertica-python runs with autocommit off, so every statement after connect belongs to one
transaction until ``commit()``/``rollback()``. A failed statement (a rejected COPY row under
ABORT ON ERROR, a too-long string under ENFORCELENGTH, a key violation) rolls back here
and surfaces as :class:`~pipeline.errors.WarehouseError` carrying Vertica's own message;
the ledger and the tables are unchanged. The ledger's ``PRIMARY KEY ... ENABLED``
(``sql/migrations/0002_create_kafka_offsets.vertica.sql``) makes a second loader of the
same range fail with SQLSTATE 23505, mapped to :class:`~pipeline.errors.OffsetConflict`.

Binding
-------
Our statements use vertica-python's client-side binding with named parameters
(``:name``, ``paramstyle='named'``); identifiers come from constants. Statements written for
the :class:`~pipeline.warehouse.base.SqlSession` protocol with ``?`` placeholders (the
migration runner) run as server-side prepared statements.
"""

# ruff: noqa: S608 - statements are built once, at import, from identifier constants
# (pipeline.warehouse.queries); every value is a bound parameter.
from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd
import vertica_python
from vertica_python import errors as verrors

from pipeline.errors import ConfigError, DataError, OffsetConflict, WarehouseError
from pipeline.settings import Secret
from pipeline.warehouse import queries as q
from pipeline.warehouse.base import (
    AppliedMigration,
    AuditJudge,
    DayInput,
    InDatabaseOutcome,
    InDatabaseRun,
    LoadResult,
    PartitionProgress,
    PublishResult,
    QualityResultRow,
    QualityVerdict,
    SignalAudit,
    SignalRun,
    SignalTables,
)
from pipeline.warehouse.finality import LedgerFrontier
from pipeline.warehouse.fit_states import with_fit_states
from pipeline.warehouse.migrate import apply_migrations, read_applied
from pipeline.warehouse.topic_identity import (
    TopicIncarnation,
    acknowledgement_rows,
    check_topic_identity,
    incarnation_of,
)

if TYPE_CHECKING:
    import sqlalchemy

    from pipeline.microbatch import Microbatch

logger = logging.getLogger(__name__)

DIALECT = "vertica"
DEFAULT_PORT = 5433
DEFAULT_TLSMODE = "prefer"
TLSMODES: tuple[str, ...] = ("disable", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_CONNECT_TIMEOUT_S = 10.0
FAULT_STEPS: tuple[str, ...] = ("after_insert", "before_commit", "after_commit")
UNIQUE_VIOLATION = "23505"  # SQLSTATE of an ENABLED primary-key/unique violation

ROOT = Path(__file__).resolve().parents[2]
SIGNALS_SQL = ROOT / "udx" / "vertica" / "signals.sql"

FaultHook = Callable[[str], None]
_SEARCH_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\s*,\s*[A-Za-z_][A-Za-z0-9_]*)*$")


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class VerticaConfig:
    """Where and how to connect; the password is a :class:`~pipeline.settings.Secret`.

    Build with :meth:`from_url`, which fills what the URL leaves out from ``VERTICA_*``.
    """

    host: str
    database: str
    user: str
    password: Secret = field(default_factory=lambda: Secret(""))
    port: int = DEFAULT_PORT
    tlsmode: str = DEFAULT_TLSMODE
    connection_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    session_label: str = "microstructure"
    # Schema(s) that unqualified names resolve to; tables are created in the first one.
    # Lets several deployments (or test runs) share a database.
    search_path: str | None = None

    def __post_init__(self) -> None:
        if self.search_path is not None and not _SEARCH_PATH.match(self.search_path):
            raise ConfigError(
                f"search_path is {self.search_path!r}; use schema names [A-Za-z_][A-Za-z0-9_]* "
                "separated by commas"
            )
        if self.tlsmode not in TLSMODES:
            raise ConfigError(f"VERTICA_TLSMODE is {self.tlsmode!r} and must be one of {TLSMODES}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"Vertica port is {self.port} and must be in 1..65535")

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str] | None = None) -> VerticaConfig:
        """Parse ``vertica://[user[:password]@]host[:port]/database[?tlsmode=...]``.

        Parameters
        ----------
        url
            The warehouse URL; ``vertica://`` alone takes every part from ``env``.
        env
            ``VERTICA_HOST``, ``VERTICA_PORT``, ``VERTICA_DB``, ``VERTICA_USER``,
            ``VERTICA_PASSWORD``, ``VERTICA_TLSMODE`` fill what the URL omits
            (default: the process environment).

        Returns
        -------
        VerticaConfig
            The connection settings.

        Raises
        ------
        ConfigError
            If host, database or user is missing, or a value is malformed.
        """
        e: Mapping[str, str] = os.environ if env is None else env
        parts = urlsplit(url)
        if parts.scheme.lower() != "vertica":
            raise ConfigError(f"warehouse URL {redact_url(url)!r} is not a vertica:// URL")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        host = parts.hostname or e.get("VERTICA_HOST", "")
        database = unquote(parts.path.lstrip("/")) or e.get("VERTICA_DB", "")
        user = unquote(parts.username or "") or e.get("VERTICA_USER", "")
        password = unquote(parts.password or "") or e.get("VERTICA_PASSWORD", "")
        try:
            port = parts.port or int(e.get("VERTICA_PORT", "") or DEFAULT_PORT)
        except ValueError:
            raise ConfigError(
                f"Vertica port in {redact_url(url)!r} / VERTICA_PORT is not an integer"
            ) from None
        missing = [
            name
            for name, value in (
                ("host (VERTICA_HOST)", host),
                ("database (VERTICA_DB)", database),
                ("user (VERTICA_USER)", user),
            )
            if not value
        ]
        if missing:
            raise ConfigError(f"warehouse URL {redact_url(url)!r} lacks {', '.join(missing)}")
        timeout = query.get("connection_timeout", "")
        return cls(
            host=host,
            database=database,
            user=user,
            password=Secret(password),
            port=port,
            tlsmode=query.get("tlsmode") or e.get("VERTICA_TLSMODE", "") or DEFAULT_TLSMODE,
            connection_timeout_s=float(timeout) if timeout else DEFAULT_CONNECT_TIMEOUT_S,
            search_path=query.get("search_path") or e.get("VERTICA_SEARCH_PATH") or None,
        )

    @property
    def url(self) -> str:
        """Return ``vertica://user@host:port/db`` (never the password)."""
        return f"vertica://{self.user}@{self.host}:{self.port}/{self.database}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of ``vertica_python.connect``.

        Returns
        -------
        dict[str, Any]
            Autocommit off (one transaction per load), named binding, the TLS mode.
        """
        return {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "user": self.user,
            "password": self.password.get(),
            "tlsmode": self.tlsmode,
            "autocommit": False,
            "connection_timeout": self.connection_timeout_s,
            "session_label": self.session_label,
            "use_prepared_statements": False,
        }

    def sqlalchemy_url(self) -> sqlalchemy.URL:
        """Return the SQLAlchemy URL for ``sqlalchemy-vertica-python``.

        Returns
        -------
        sqlalchemy.URL
            ``vertica+vertica_python://user:***@host:port/db``.
        """
        import sqlalchemy

        return sqlalchemy.URL.create(
            "vertica+vertica_python",
            username=self.user,
            password=self.password.get() or None,
            host=self.host,
            port=self.port,
            database=self.database,
        )


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def sqlalchemy_engine(config: VerticaConfig, **engine_kwargs: Any) -> sqlalchemy.Engine:
    """Create a SQLAlchemy engine on Vertica via ``sqlalchemy-vertica-python``.

    For SQL that a library wants to run through SQLAlchemy (Great Expectations' SQL
    datasource, the signal-quality SQL, ad-hoc reports). Wrap raw SQL in
    ``sqlalchemy.text()``: SQLAlchemy 2 refuses plain strings (``ObjectNotExecutableError``).

    Parameters
    ----------
    config
        Connection settings.
    **engine_kwargs
        Passed to ``sqlalchemy.create_engine`` (e.g. ``pool_pre_ping=True``).

    Returns
    -------
    sqlalchemy.Engine
        An engine; connections open lazily.
    """
    import sqlalchemy

    with warnings.catch_warnings():
        # sqlalchemy-vertica-python 0.6.3 has an invalid escape ('\\d') in a regex literal:
        # a compile-time DeprecationWarning, harmless, and an error under -W error. Import
        # the dialect once here, quietly; create_engine finds it already loaded.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        import sqla_vertica_python.vertica_python  # noqa: F401  # pyright: ignore[reportUnusedImport]

    connect_args = {
        "tlsmode": config.tlsmode,
        "connection_timeout": config.connection_timeout_s,
        "session_label": config.session_label,
    }
    return sqlalchemy.create_engine(
        config.sqlalchemy_url(), connect_args=connect_args, **engine_kwargs
    )


# ---------------------------------------------------------------------------------------------
# COPY ... FROM STDIN encoding


# Delimited parser options, stated in full rather than left to defaults. Values are written
# as: NULL = empty and unenclosed; strings always enclosed in '"', with '\' (Vertica's default
# ESCAPE AS) before '\', '"' and line breaks; booleans t/f; dates ISO; floats as repr()
# (shortest round-trip text); non-finite floats as Infinity/-Infinity, NaN as NULL.
# ENFORCELENGTH rejects (instead of truncating) a string too long for its column, and ABORT ON
# ERROR turns any rejected row into a failed statement: nothing is loaded silently wrong.
COPY_OPTIONS = "DELIMITER ',' ENCLOSED BY '\"' NULL '' ENFORCELENGTH ABORT ON ERROR"


def copy_statement(table: str, columns: Sequence[str]) -> str:
    """Return the ``COPY ... FROM STDIN ... NO COMMIT`` statement for ``columns`` of ``table``.

    Parameters
    ----------
    table
        A table name constant.
    columns
        Column names, in the order of the encoded fields.

    Returns
    -------
    str
        The statement (the data goes through ``cursor.copy``).
    """
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN {COPY_OPTIONS} NO COMMIT"


def _encode_str(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\\r").replace("\n", "\\\n")
    )
    return f'"{escaped}"'


def encode_value(value: object) -> str:
    """Encode one value as a field of :data:`COPY_OPTIONS`.

    Parameters
    ----------
    value
        None/NA/NaN (NULL), bool, int, float, str, ``datetime.date`` or a pandas/numpy
        timestamp (its date).

    Returns
    -------
    str
        The field text.

    Raises
    ------
    DataError
        For a type the tables do not hold.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, bool | np.bool_):
        return "t" if value else "f"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isnan(f):
            return ""
        if math.isinf(f):
            return "Infinity" if f > 0 else "-Infinity"
        return repr(f)
    if isinstance(value, str):
        return _encode_str(value)
    if isinstance(value, pd.Timestamp | datetime | np.datetime64):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise DataError(f"cannot load a {type(value).__name__} value ({value!r}) into Vertica")


def encode_rows(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """Encode ``frame[columns]`` as COPY data, one record per line.

    Parameters
    ----------
    frame
        The rows.
    columns
        Columns to write, in order.

    Returns
    -------
    str
        Newline-terminated records.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"rows to load lack columns {missing}")
    series = [frame[c].astype(object).tolist() for c in columns]
    return "".join(
        ",".join(encode_value(v) for v in row) + "\n" for row in zip(*series, strict=True)
    )


# ---------------------------------------------------------------------------------------------
# Statements (identifiers from pipeline.warehouse.queries, values bound by name)


def _cols(names: Sequence[str]) -> str:
    return ", ".join(names)


STAGE_TRADES = "market_data_stage"
# Session-private staging table for the dedup anti-join. Created right after connect, before
# the load transaction starts, because Vertica DDL commits; ON COMMIT DELETE ROWS empties it.
CREATE_STAGE_TRADES = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {STAGE_TRADES} ("
    "symbol VARCHAR(16), timestamp_ns INT, price FLOAT, size INT, exchange INT, "
    "trade_id VARCHAR(64), trf_id INT, tape INT, conditions VARCHAR(256), sequence_number INT, "
    "trf_timestamp_ns INT, trade_date DATE, in_regular_hours BOOLEAN, ns_from_open INT, "
    "source VARCHAR(16), receipt_ns INT, kafka_ts_ns INT, kafka_topic VARCHAR(249), "
    "kafka_partition INT, kafka_offset INT"
    ") ON COMMIT DELETE ROWS"
)


STAGE_QUOTES = "market_quotes_stage"
CREATE_STAGE_QUOTES = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {STAGE_QUOTES} ("
    "symbol VARCHAR(16), sip_timestamp_ns INT, bid_exchange INT, bid_price FLOAT, bid_size INT, "
    "ask_exchange INT, ask_price FLOAT, ask_size INT, condition INT, indicators VARCHAR(256), "
    "sequence_number INT, tape INT, trade_date DATE, source VARCHAR(16), receipt_ns INT, "
    "kafka_ts_ns INT, kafka_topic VARCHAR(249), kafka_partition INT, kafka_offset INT"
    ") ON COMMIT DELETE ROWS"
)
STAGE_AGGREGATES = "market_aggregates_stage"
CREATE_STAGE_AGGREGATES = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {STAGE_AGGREGATES} ("
    "kind VARCHAR(2), symbol VARCHAR(16), start_ns INT, end_ns INT, open FLOAT, high FLOAT, "
    "low FLOAT, close FLOAT, volume INT, vwap FLOAT, accumulated_volume INT, day_open FLOAT, "
    "day_vwap FLOAT, average_size INT, otc BOOLEAN, trade_date DATE, receipt_ns INT, "
    "kafka_ts_ns INT, kafka_topic VARCHAR(249), kafka_partition INT, kafka_offset INT"
    ") ON COMMIT DELETE ROWS"
)
# The live path's records (trading-signals topic, migration 0015), deduplicated on their input
# key by the anti-joins below, as trades are on theirs.
STAGE_LIVE = "live_signals_stage"
CREATE_STAGE_LIVE = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {STAGE_LIVE} ("
    "symbol VARCHAR(16), date DATE, seq INT, timestamp_ns INT, price FLOAT, size INT, "
    "log_return FLOAT, lee_mykland_stat FLOAT, lm_xi FLOAT, lm_n INT, lm_n_rule VARCHAR(16), "
    "jump_detected BOOLEAN, garch_sigma2 FLOAT, standardized_return FLOAT, bns_stat FLOAT, "
    "conditional_duration FLOAT, acd_surprise FLOAT, trade_intensity_zscore FLOAT, "
    "trading_signal VARCHAR(4), in_order BOOLEAN, garch_params VARCHAR(256), "
    "acd_params VARCHAR(256), kernel_version VARCHAR(64), params VARCHAR(65000), "
    "input_topic VARCHAR(249), input_partition INT, input_offset INT, emitted_ns INT, "
    "kafka_topic VARCHAR(249), kafka_partition INT, kafka_offset INT"
    ") ON COMMIT DELETE ROWS"
)
STAGE_LIVE_REJECTS = "live_signal_rejects_stage"
CREATE_STAGE_LIVE_REJECTS = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {STAGE_LIVE_REJECTS} ("
    "stage VARCHAR(16), reason VARCHAR(1024), raw LONG VARCHAR(16000000), "
    "input_topic VARCHAR(249), input_partition INT, input_offset INT, "
    "kernel_version VARCHAR(64), emitted_ns INT, kafka_topic VARCHAR(249), "
    "kafka_partition INT, kafka_offset INT"
    ") ON COMMIT DELETE ROWS"
)
# Every stage of a load, created (DDL commits) before its transaction begins.
CREATE_STAGES: tuple[str, ...] = (
    CREATE_STAGE_TRADES,
    CREATE_STAGE_QUOTES,
    CREATE_STAGE_AGGREGATES,
    CREATE_STAGE_LIVE,
    CREATE_STAGE_LIVE_REJECTS,
)


# The day's regular-hours trades, staged once per signal computation (issue 14.3): one
# INSERT ... SELECT reads market_data, a single statement and so one committed state, and
# input_offsets, the three UDx inserts and the audit all read this session-private copy.
# Each of them used to re-read market_data under READ COMMITTED while loads kept
# committing, so the three tables could come from different trades and intraday audits
# failed. ON COMMIT PRESERVE ROWS: nothing inside the transaction, not even a statement that
# commits implicitly, can empty the day under the UDx (an emptied stage would compute, audit
# and publish an empty day); the connection is the computation's own and closes after it.
# Segmented and ordered like market_data, so the UDx's PARTITION BY symbol stays node-local.
SIGNAL_DAY_TRADES = "signal_day_trades"
SIGNAL_DAY_TRADES_PROJECTION = (
    "ORDER BY symbol, timestamp_ns, kafka_partition, kafka_offset "
    "SEGMENTED BY HASH(symbol) ALL NODES"
)
CREATE_SIGNAL_DAY_TRADES = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {SIGNAL_DAY_TRADES} ("
    "symbol VARCHAR(16), trade_date DATE, timestamp_ns INT, price FLOAT, size INT, "
    "exchange INT, kafka_partition INT, kafka_offset INT"
    f") ON COMMIT PRESERVE ROWS {SIGNAL_DAY_TRADES_PROJECTION}"
)
SIGNAL_INPUT_OFFSETS = "signal_input_offsets"
CREATE_SIGNAL_INPUT_OFFSETS = (
    f"CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS {SIGNAL_INPUT_OFFSETS} "
    "(symbol VARCHAR(16), input_offsets VARCHAR(65000)) ON COMMIT DELETE ROWS"
)


def _input_offsets(rows: Sequence[tuple[Any, ...]]) -> tuple[dict[str, str], str]:
    """Return per-symbol and overall ``{kafka_partition: [first, last]}`` JSON."""
    import json

    per: dict[str, dict[str, list[int]]] = {}
    overall: dict[str, list[int]] = {}
    for symbol, partition, lo, hi in rows:
        key = str(int(partition))
        per.setdefault(str(symbol), {})[key] = [int(lo), int(hi)]
        cur = overall.get(key)
        overall[key] = (
            [int(lo), int(hi)] if cur is None else [min(cur[0], int(lo)), max(cur[1], int(hi))]
        )
    return (
        {s: json.dumps(v, sort_keys=True) for s, v in per.items()},
        json.dumps(overall, sort_keys=True),
    )


def _trade_columns() -> tuple[str, ...]:
    from pipeline.microbatch import TRADE_COLUMNS

    return TRADE_COLUMNS


def _reject_columns() -> tuple[str, ...]:
    from pipeline.microbatch import REJECT_COLUMNS

    return REJECT_COLUMNS


def _gap_columns() -> tuple[str, ...]:
    from pipeline.microbatch import GAP_COLUMNS

    return GAP_COLUMNS


def _quote_columns() -> tuple[str, ...]:
    from pipeline.microbatch import QUOTE_COLUMNS

    return QUOTE_COLUMNS


def _aggregate_columns() -> tuple[str, ...]:
    from pipeline.microbatch import AGGREGATE_COLUMNS

    return AGGREGATE_COLUMNS


def _live_columns() -> tuple[str, ...]:
    from pipeline.microbatch import LIVE_SIGNAL_COLUMNS

    return LIVE_SIGNAL_COLUMNS


def _live_reject_columns() -> tuple[str, ...]:
    from pipeline.microbatch import LIVE_REJECT_COLUMNS

    return LIVE_REJECT_COLUMNS


def insert_live_signals_sql() -> str:
    """Return the keyed insert from the live stage into ``live_signals`` (``:loaded_ns``).

    Key: the input ``(topic, partition, offset)``; the date (a repeat is the same trade, so
    the same day) prunes day partitions.
    """
    cols = _live_columns()
    return (
        f"INSERT INTO {q.LIVE_SIGNALS} ({_cols((*cols, 'loaded_ns'))}) "
        f"SELECT {_cols([f's.{c}' for c in cols])}, :loaded_ns FROM {STAGE_LIVE} AS s "
        "WHERE NOT EXISTS ("
        f"SELECT 1 FROM {q.LIVE_SIGNALS} AS m WHERE m.date = s.date "
        "AND m.input_topic = s.input_topic AND m.input_partition = s.input_partition "
        "AND m.input_offset = s.input_offset)"
    )


def insert_live_rejects_sql() -> str:
    """Return the keyed insert from the live reject stage into ``live_signal_rejects``."""
    cols = _live_reject_columns()
    return (
        f"INSERT INTO {q.LIVE_SIGNAL_REJECTS} ({_cols((*cols, 'loaded_ns'))}) "
        f"SELECT {_cols([f's.{c}' for c in cols])}, :loaded_ns FROM {STAGE_LIVE_REJECTS} AS s "
        "WHERE NOT EXISTS ("
        f"SELECT 1 FROM {q.LIVE_SIGNAL_REJECTS} AS m "
        "WHERE m.input_topic = s.input_topic AND m.input_partition = s.input_partition "
        "AND m.input_offset = s.input_offset)"
    )


def insert_quotes_sql() -> str:
    """Return the keyed insert from the quote stage into ``market_quotes`` (``:loaded_ns``).

    Key ``(symbol, sip_timestamp_ns, sequence_number)``; trade_date (which the SIP time
    decides) prunes day partitions. A NULL sequence number equals nothing: such a quote has
    no key and is always inserted.
    """
    cols = _quote_columns()
    return (
        f"INSERT INTO {q.MARKET_QUOTES} ({_cols((*cols, 'loaded_ns'))}) "
        f"SELECT {_cols([f's.{c}' for c in cols])}, :loaded_ns FROM {STAGE_QUOTES} AS s "
        "WHERE NOT EXISTS ("
        f"SELECT 1 FROM {q.MARKET_QUOTES} AS m "
        "WHERE m.trade_date = s.trade_date AND m.symbol = s.symbol "
        "AND m.sip_timestamp_ns = s.sip_timestamp_ns AND m.sequence_number = s.sequence_number)"
    )


def insert_aggregates_sql() -> str:
    """Return the keyed insert from the bar stage into ``market_aggregates`` (``:loaded_ns``)."""
    cols = _aggregate_columns()
    return (
        f"INSERT INTO {q.MARKET_AGGREGATES} ({_cols((*cols, 'loaded_ns'))}) "
        f"SELECT {_cols([f's.{c}' for c in cols])}, :loaded_ns FROM {STAGE_AGGREGATES} AS s "
        "WHERE NOT EXISTS ("
        f"SELECT 1 FROM {q.MARKET_AGGREGATES} AS m "
        "WHERE m.trade_date = s.trade_date AND m.symbol = s.symbol "
        "AND m.kind = s.kind AND m.start_ns = s.start_ns)"
    )


def insert_trades_sql() -> str:
    """Return the dedup insert from the stage into ``market_data`` (``:loaded_ns``)."""
    cols = _trade_columns()
    return (
        f"INSERT INTO {q.MARKET_DATA} ({_cols((*cols, 'loaded_ns'))}) "
        f"SELECT {_cols([f's.{c}' for c in cols])}, :loaded_ns FROM {STAGE_TRADES} AS s "
        "WHERE NOT EXISTS ("
        f"SELECT 1 FROM {q.MARKET_DATA} AS m "
        "WHERE m.trade_date = s.trade_date AND m.symbol = s.symbol "
        "AND m.exchange = s.exchange AND m.trf_id = s.trf_id AND m.trade_id = s.trade_id)"
    )


LATEST_EPOCH = (
    f"SELECT topic_epoch, kafka_topic_id FROM {q.KAFKA_TOPIC_EPOCHS} WHERE kafka_topic = :topic "
    "ORDER BY topic_epoch DESC LIMIT 1"
)
LEDGER_TOPIC_ID = (
    "SELECT COUNT(*) AS n_rows, MAX(kafka_topic_id) AS kafka_topic_id "
    f"FROM {q.KAFKA_OFFSETS} WHERE kafka_topic = :topic"
)
_ENDS = (
    f"SELECT kafka_partition, stop_offset FROM {q.KAFKA_OFFSETS} WHERE kafka_topic = :topic "
    f"UNION ALL SELECT kafka_partition, start_offset FROM {q.KAFKA_TOPIC_EPOCHS} "
    "WHERE kafka_topic = :topic AND topic_epoch = :epoch"
)
# Loads take turns between their dedup anti-joins and COMMIT (issue 14.6). Vertica enforces
# no key on market_data, and under READ COMMITTED an anti-join does not see the rows another
# load has inserted but not committed, so the same trade arriving on two partitions at once
# (after partitions were added, or from a second producer) was stored twice. The INSERT
# VALIDATE (IV) lock is held by one session at a time until its COMMIT or ROLLBACK and is
# compatible with the I locks of COPY and INSERT; every load takes it on the ledger (the same
# lock the ledger's ENABLED key takes at its INSERT anyway, only earlier), so a second load
# waits here and its anti-joins, statements that start after the first load committed, see
# the first load's rows. Readers take no lock under READ COMMITTED and are not blocked.
# Costs and the alternatives weighed (an ENABLED key on market_data, dedup at signal time):
# docs/vertica.md section 2.
LOCK_LOADS = f"LOCK TABLE {q.KAFKA_OFFSETS} IN INSERT VALIDATE MODE"
NEXT_OFFSET = (
    f"SELECT MAX(e.stop_offset) AS next_offset FROM ({_ENDS}) AS e "
    "WHERE e.kafka_partition = :kafka_partition"
)
NEXT_OFFSETS = (
    f"SELECT e.kafka_partition, MAX(e.stop_offset) AS next_offset FROM ({_ENDS}) AS e "
    "GROUP BY e.kafka_partition ORDER BY e.kafka_partition"
)
MOVE_LEDGER_TO_HISTORY = (
    f"INSERT INTO {q.KAFKA_OFFSETS_HISTORY} "
    f"({_cols((*q.LEDGER_COLUMNS, 'topic_epoch', 'superseded_ns'))}) "
    f"SELECT {_cols(q.LEDGER_COLUMNS)}, :epoch, :superseded_ns FROM {q.KAFKA_OFFSETS} "
    "WHERE kafka_topic = :topic"
)
DELETE_LEDGER_OF_TOPIC = f"DELETE FROM {q.KAFKA_OFFSETS} WHERE kafka_topic = :topic"
_ALL_LEDGER = (
    f"(SELECT {_cols(q.LEDGER_COLUMNS)} FROM {q.KAFKA_OFFSETS} UNION ALL "
    f"SELECT {_cols(q.LEDGER_COLUMNS)} FROM {q.KAFKA_OFFSETS_HISTORY})"
)
INSERT_TOPIC_EPOCH = (
    f"INSERT INTO {q.KAFKA_TOPIC_EPOCHS} ({_cols(q.TOPIC_EPOCH_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in q.TOPIC_EPOCH_COLUMNS)})"
)
INSERT_LEDGER = (
    f"INSERT INTO {q.KAFKA_OFFSETS} ({_cols(q.LEDGER_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in q.LEDGER_COLUMNS)})"
)
PARTITION_PROGRESS = (
    "SELECT kafka_topic, kafka_partition, MAX(stop_offset), COUNT(*), SUM(n_messages), "
    "SUM(n_trades), SUM(n_duplicates), SUM(n_rejects), SUM(n_gaps), MAX(committed_ns) "
    f"FROM {q.KAFKA_OFFSETS} WHERE (:topic IS NULL OR kafka_topic = :topic) "
    "GROUP BY kafka_topic, kafka_partition ORDER BY kafka_topic, kafka_partition"
)
# Batches whose ingest gate failed and whose trades overlap [start_ns, end_ns).
FAILED_BATCHES = (
    "SELECT kafka_topic, kafka_partition, start_offset, stop_offset "
    f"FROM {_ALL_LEDGER} AS l WHERE quality_passed = false "
    "AND max_timestamp_ns >= :start_ns AND min_timestamp_ns < :end_ns "
    "ORDER BY kafka_topic, kafka_partition, start_offset"
)
INSERT_QUALITY = (
    f"INSERT INTO {q.QUALITY_RESULTS} ({_cols(q.QUALITY_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in q.QUALITY_COLUMNS)})"
)
READ_DAY_TRADES = (
    f"SELECT {_cols(q.DAY_TRADE_COLUMNS)} FROM {q.MARKET_DATA} "
    "WHERE trade_date = :day AND (in_regular_hours OR NOT :rth_only) "
    "ORDER BY symbol, timestamp_ns, kafka_partition, kafka_offset"
)
DELETE_DAY: dict[str, str] = {
    t: f"DELETE FROM {t} WHERE date = :day"
    for t in (q.TRADING_SIGNALS, q.SYMBOL_DAY_METRICS, q.TRADE_INTENSITY)
}
INSERT_SIGNAL_RUN = (
    f"INSERT INTO {q.SIGNAL_RUNS} ({_cols(q.SIGNAL_RUN_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in q.SIGNAL_RUN_COLUMNS)})"
)
APPLIED_EXISTS = (
    "SELECT COUNT(*) FROM v_catalog.tables WHERE table_schema = CURRENT_SCHEMA() "
    "AND table_name = :name"
)
SELECT_APPLIED = (
    f"SELECT version, name, checksum, applied_ns FROM {q.SCHEMA_MIGRATIONS} ORDER BY version"
)
COUNT: dict[str, str] = {t: f"SELECT COUNT(*) FROM {t}" for t in q.TABLES}

# The named reads of queries.READS in Vertica's dialect, with the same names and the same
# positional parameters (bound here by name in that order).
READS: dict[str, tuple[str, tuple[str, ...]]] = {
    "trade_batches_after": (
        "SELECT kafka_topic, kafka_partition, stop_offset, min_timestamp_ns, max_timestamp_ns "
        f"FROM {q.KAFKA_OFFSETS} WHERE kafka_topic = :topic AND kafka_partition = :part "
        "AND start_offset >= :start AND n_trades > 0 ORDER BY start_offset",
        ("topic", "part", "start"),
    ),
    "ledger": (
        f"SELECT {_cols(q.LEDGER_COLUMNS)} FROM {q.KAFKA_OFFSETS} "
        "WHERE (:topic IS NULL OR kafka_topic = :topic2) ORDER BY committed_ns DESC LIMIT :lim",
        ("topic", "topic2", "lim"),
    ),
    "signal_runs_latest": (
        f"SELECT {_cols(q.SIGNAL_RUN_COLUMNS)} FROM ("
        f"SELECT {_cols(q.SIGNAL_RUN_COLUMNS)}, ROW_NUMBER() OVER "
        "(PARTITION BY date ORDER BY computed_ns DESC) AS rn "
        f"FROM {q.SIGNAL_RUNS} WHERE date BETWEEN :first_day AND :last_day) AS r "
        "WHERE rn = 1 ORDER BY date",
        ("first_day", "last_day"),
    ),
    "trades_per_day": (
        "SELECT trade_date, COUNT(*) AS n_trades, "
        "SUM(CASE WHEN in_regular_hours THEN 1 ELSE 0 END) AS n_rth, "
        f"COUNT(DISTINCT symbol) AS n_symbols FROM {q.MARKET_DATA} "
        "WHERE trade_date BETWEEN :first_day AND :last_day GROUP BY trade_date ORDER BY trade_date",
        ("first_day", "last_day"),
    ),
    "duplicate_trade_keys": (
        "SELECT symbol, trade_date, exchange, trf_id, trade_id, COUNT(*) AS n "
        f"FROM {q.MARKET_DATA} GROUP BY symbol, trade_date, exchange, trf_id, trade_id "
        "HAVING COUNT(*) > 1",
        (),
    ),
    "jumps_of_day": (
        "SELECT symbol, timestamp_ns, price, log_return, lee_mykland_stat, trading_signal "
        f"FROM {q.TRADING_SIGNALS} WHERE date = :day AND jump_detected "
        "ORDER BY ABS(lee_mykland_stat) DESC LIMIT :lim",
        ("day", "lim"),
    ),
    "signal_counts_of_day": (
        f"SELECT trading_signal, COUNT(*) AS n FROM {q.TRADING_SIGNALS} WHERE date = :day "
        "GROUP BY trading_signal ORDER BY trading_signal",
        ("day",),
    ),
    "rejects_by_reason": (
        f"SELECT stage, reason, COUNT(*) AS n FROM {q.REJECTS} GROUP BY stage, reason "
        "ORDER BY n DESC LIMIT :lim",
        ("lim",),
    ),
    # Vertica's only quantile aggregate is approximate (APPROXIMATE_PERCENTILE, fraction in
    # USING PARAMETERS, so not bindable). The exact PERCENTILE_CONT (the same linear
    # interpolation as DuckDB's quantile_cont) is analytic only: it runs over the whole
    # filtered set (OVER ()) and MAX folds its constant column into DuckDB's one row (NULLs and
    # n = 0 when empty). Its fraction must be a constant, which client-side binding provides:
    # the driver writes the bound value into the statement text.
    "append_to_commit_latency": (
        "SELECT MAX(q1) AS q1, MAX(q2) AS q2, COUNT(*) AS n FROM ("
        "SELECT PERCENTILE_CONT(:q1) WITHIN GROUP (ORDER BY latency_s) OVER () AS q1, "
        "PERCENTILE_CONT(:q2) WITHIN GROUP (ORDER BY latency_s) OVER () AS q2 FROM ("
        "SELECT (loaded_ns - kafka_ts_ns) / 1e9 AS latency_s "
        f"FROM {q.MARKET_DATA} WHERE kafka_ts_ns > 0) AS l) AS p",
        ("q1", "q2"),
    ),
    "day_completeness": (
        "SELECT symbol, trade_date, n_trades, n_rth_trades, rth_minutes_with_trades, rth_minutes, "
        f"n_gaps, gap_seconds, n_gaps_repaired FROM {q.DAY_COMPLETENESS} "
        "WHERE trade_date = :day ORDER BY symbol",
        ("day",),
    ),
    "feed_gap_states": (
        f"SELECT {_cols(q.GAP_STATE_COLUMNS)} FROM {q.FEED_GAP_STATE} "
        "WHERE detected_ns >= :since_ns ORDER BY detected_ns, subscription",
        ("since_ns",),
    ),
    "symbol_day_priors": (
        f"SELECT {_cols(q.PRIOR_COLUMNS)} FROM ("
        f"SELECT {_cols(q.PRIOR_COLUMNS)}, ROW_NUMBER() OVER "
        "(PARTITION BY symbol ORDER BY date DESC) AS rn "
        f"FROM {q.SYMBOL_DAY_METRICS} WHERE date < :day AND date >= :earliest "
        "AND n_returns > 0) AS p WHERE rn = 1 ORDER BY symbol",
        ("day", "earliest"),
    ),
    "trading_signals_of_day": (
        f"SELECT {_cols(q.RECONCILE_COLUMNS)} FROM {q.TRADING_SIGNALS} WHERE date = :day "
        "ORDER BY symbol, seq",
        ("day",),
    ),
    "quality_results": (
        f"SELECT {_cols(q.QUALITY_COLUMNS)} FROM {q.QUALITY_RESULTS} "
        "WHERE (:suite IS NULL OR suite = :suite2) ORDER BY checked_ns DESC LIMIT :lim",
        ("suite", "suite2", "lim"),
    ),
}

_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z0-9_]+)\s*$")


def read_named_sql(path: Path) -> dict[str, str]:
    """Read a file of named statements: each follows a ``-- name: <name>`` line.

    Parameters
    ----------
    path
        The ``.sql`` file.

    Returns
    -------
    dict[str, str]
        Name -> statement without its trailing semicolon or comments, in file order.
    """
    out: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for raw in [*path.read_text().splitlines(), "-- name: _end"]:
        m = _NAME_LINE.match(raw.strip())
        if m:
            if name is not None:
                text = "\n".join(lines).strip().rstrip(";").strip()
                if text:
                    out[name] = text
            name, lines = m.group(1), []
        elif name is not None and not raw.strip().startswith("--"):
            lines.append(raw)
    return out


# ---------------------------------------------------------------------------------------------
# Session and warehouse


def is_unique_violation(e: BaseException) -> bool:
    """Return True for Vertica's ENABLED-key violation (SQLSTATE 23505)."""
    return getattr(e, "sqlstate", None) == UNIQUE_VIOLATION or "Duplicate key values" in str(e)


class VerticaSession:
    """One open transaction on a vertica-python connection (the ``SqlSession`` here)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cursor = conn.cursor()

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run one statement with bound values and return its rows.

        Parameters
        ----------
        sql
            One statement: ``:name`` placeholders with a mapping, ``?`` with a sequence.
        params
            A mapping binds by name on the client; a non-empty sequence runs ``sql`` as a
            server-side prepared statement.

        Returns
        -------
        list[tuple[Any, ...]]
            The rows (for DML, Vertica's one-row count).
        """
        cur = self.cursor
        if isinstance(params, Mapping):
            cur.execute(sql, dict(params) if params else None)
        elif params:
            cur.execute(sql, list(params), use_prepared_statements=True)
        else:
            cur.execute(sql)
        # Draining the result is what surfaces a failed statement's error in vertica-python.
        rows = cur.fetchall() if cur.description is not None else []
        return [tuple(r) for r in rows]

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run a statement and return the first column of its first row (None if none)."""
        rows = self.execute(sql, params or {})
        return rows[0][0] if rows else None

    def copy(self, table: str, columns: Sequence[str], frame: pd.DataFrame) -> None:
        """Stream ``frame[columns]`` into ``table`` with ``COPY ... NO COMMIT``."""
        if len(frame):
            self.cursor.copy(copy_statement(table, columns), encode_rows(frame, columns))

    def frame(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a statement and return its rows as a pandas frame."""
        cur = self.cursor
        cur.execute(sql, dict(params) if params else None)
        rows = cur.fetchall()
        names = [d[0] for d in cur.description or ()]
        return pd.DataFrame([list(r) for r in rows], columns=names)


class VerticaWarehouse:
    """The :class:`~pipeline.warehouse.base.Warehouse` on Vertica.

    Parameters
    ----------
    config
        Connection settings.
    read_only
        Refuse writes here, and open every session ``READ ONLY`` (the MCP server; its user
        should be the SELECT-only ``micro_mcp`` of ``sql/vertica``).
    fault_hook
        Called with a step of :data:`FAULT_STEPS` inside :meth:`load_batch` (tests).
    connect
        The driver's connect function (default ``vertica_python.connect``).
    """

    dialect = DIALECT
    # batch_microstructure (udx/vertica) computes the signal tables next to the data.
    computes_signals_in_database = True

    def __init__(
        self,
        config: VerticaConfig,
        *,
        read_only: bool = False,
        fault_hook: FaultHook | None = None,
        connect: Callable[..., Any] | None = None,
    ) -> None:
        self.config = config
        self.read_only = read_only
        self.fault_hook = fault_hook
        self.url = config.url
        self._connect = connect or vertica_python.connect

    def __repr__(self) -> str:
        return f"VerticaWarehouse({self.url!r}, read_only={self.read_only})"

    # --- connections -------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """Open a connection (autocommit off) and close it on exit.

        Yields
        ------
        vertica_python.Connection
            The connection.

        Raises
        ------
        WarehouseError
            If Vertica cannot be reached or refuses the login (with the driver's text).
        """
        try:
            conn = self._connect(**self.config.connect_kwargs())
        except (verrors.Error, OSError) as e:
            raise WarehouseError(f"cannot connect to Vertica at {self.url}: {e}") from e
        try:
            cur = conn.cursor()
            setup = bool(self.config.search_path) or self.read_only
            if self.config.search_path:
                # Validated identifiers (VerticaConfig): SET cannot take bound values.
                cur.execute(f"SET SEARCH_PATH TO {self.config.search_path}")
            if self.read_only:
                # Defence in depth: the MCP user has SELECT only; this also refuses writes
                # from a session that got more privileges than intended.
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            if setup:
                conn.commit()
            yield conn
        finally:
            with contextlib.suppress(verrors.Error, OSError):
                conn.close()

    @contextmanager
    def transaction(self) -> Iterator[VerticaSession]:
        """Run a block in one transaction.

        Yields
        ------
        VerticaSession
            The open transaction. Normal exit commits; any exception rolls back and is
            re-raised unchanged.
        """
        with self.connect() as conn:
            session = VerticaSession(conn)
            try:
                yield session
            except BaseException:
                _rollback(conn)
                raise
            conn.commit()

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise WarehouseError(f"{what}: the warehouse {self.url} was opened read-only")

    def _fault(self, step: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(step)

    # --- schema --------------------------------------------------------------------------

    def migrate(self) -> list[AppliedMigration]:
        """Apply pending migrations (``.vertica.sql`` siblings where they exist).

        Returns
        -------
        list[AppliedMigration]
            The migrations applied now.
        """
        self._writable("migrate")
        return apply_migrations(self.transaction, DIALECT)

    def applied_migrations(self) -> list[AppliedMigration]:
        """Return the rows of ``schema_migrations`` (empty before the first migration).

        Returns
        -------
        list[AppliedMigration]
            In version order.
        """
        with self.transaction() as s:
            if self.read_only:
                if not s.scalar(APPLIED_EXISTS, {"name": q.SCHEMA_MIGRATIONS}):
                    return []
                rows = s.execute(SELECT_APPLIED)
                return [AppliedMigration(str(v), str(n), str(c), int(a)) for v, n, c, a in rows]
            return read_applied(s)

    # --- offsets and microbatches --------------------------------------------------------

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Return ``max(stop_offset)`` of a topic-partition, None when nothing was loaded.

        Parameters
        ----------
        topic, partition
            The topic-partition.

        Returns
        -------
        int | None
            The first offset not yet loaded.
        """
        with self.transaction() as s:
            inc = _incarnation(s, topic)
            value = s.scalar(
                NEXT_OFFSET,
                {
                    "topic": topic,
                    "kafka_partition": partition,
                    "epoch": 0 if inc is None else inc.epoch,
                },
            )
        return None if value is None else int(value)

    def next_offsets(self, topic: str) -> dict[int, int]:
        """Return the next offset of every partition of ``topic`` the ledger knows.

        Parameters
        ----------
        topic
            The topic.

        Returns
        -------
        dict[int, int]
            Partition -> first offset not yet loaded.
        """
        with self.transaction() as s:
            inc = _incarnation(s, topic)
            rows = s.execute(
                NEXT_OFFSETS, {"topic": topic, "epoch": 0 if inc is None else inc.epoch}
            )
        return {int(p): int(o) for p, o in rows}

    def topic_incarnation(self, topic: str) -> TopicIncarnation | None:
        """Return the ledger's current epoch of ``topic`` and the Kafka id recorded for it.

        Parameters
        ----------
        topic
            The topic.

        Returns
        -------
        TopicIncarnation | None
            None when the ledger has no row of the topic.
        """
        with self.transaction() as s:
            return _incarnation(s, topic)

    def acknowledge_topic(
        self, topic: str, topic_id: str, start_offsets: Mapping[int, int]
    ) -> TopicIncarnation:
        """Start a new epoch of ``topic``: ``topic_id`` loads from ``start_offsets`` on.

        Parameters
        ----------
        topic
            The topic name.
        topic_id
            Kafka's id of the topic now under that name.
        start_offsets
            ``{partition: first offset to load}`` of the new epoch.

        Returns
        -------
        TopicIncarnation
            The new epoch; the current one unchanged when it already has ``topic_id``.

        Raises
        ------
        WarehouseError
            If the ledger never loaded ``topic`` (nothing to acknowledge).
        OffsetConflict
            If another acknowledgement started the same epoch first (ENABLED key).
        """
        self._writable("acknowledge_topic")
        try:
            with self.transaction() as s:
                current = _incarnation(s, topic)
                if current is None:
                    raise WarehouseError(
                        f"the ledger has no row of topic {topic!r}: nothing to acknowledge "
                        "(a topic never loaded starts at its low watermark)"
                    )
                if current.topic_id == topic_id:
                    return current
                new = TopicIncarnation(topic, current.epoch + 1, topic_id)
                now = time.time_ns()
                # The old topic's rows become history, whole, in this transaction.
                s.execute(
                    MOVE_LEDGER_TO_HISTORY,
                    {"epoch": current.epoch, "superseded_ns": now, "topic": topic},
                )
                s.execute(DELETE_LEDGER_OF_TOPIC, {"topic": topic})
                for row in acknowledgement_rows(current, topic_id, start_offsets, now):
                    s.execute(INSERT_TOPIC_EPOCH, row)
        except verrors.Error as e:
            if is_unique_violation(e):
                raise OffsetConflict(
                    f"another acknowledgement of {topic!r} started the next epoch first: {e}"
                ) from e
            raise
        return new

    def load_batch(
        self,
        batch: Microbatch,
        *,
        expected_start: int,
        run_id: str,
        quality: QualityVerdict | None = None,
        topic_id: str | None = None,
    ) -> LoadResult:
        """Write trades, quotes, aggregates, rejects, gaps, quality rows and the ledger row.

        ``COPY ... NO COMMIT`` streams the batch, anti-joins insert the trades, quotes and
        bars whose key is new, the ledger row goes in, then one COMMIT.

        Parameters
        ----------
        batch
            The shaped microbatch; ``batch.range.start`` must equal ``expected_start``.
        expected_start
            Where the run found the ledger ending (or the low watermark).
        run_id
            The Dagster run (or command) id, stored on the ledger row.
        quality
            The ingest suite's verdict, stored on the ledger row.
        topic_id
            Kafka's id of the topic the batch was read from, stored on the ledger row and
            compared with the current epoch's (None: not known, nothing compared).

        Returns
        -------
        LoadResult
            Counts as committed.

        Raises
        ------
        OffsetConflict
            If the ledger moved since ``expected_start`` was read, or another loader
            committed the same range first (ENABLED key). Nothing is written.
        TopicRecreatedError
            If ``topic_id`` is not the id of the topic's current epoch. Nothing is written.
        WarehouseError
            If Vertica rejects a row or a statement fails; rolled back, with Vertica's text.
        """
        self._writable("load_batch")
        rng = batch.range
        if rng.start != expected_start:
            raise OffsetConflict(
                f"batch {rng} does not start at the expected offset {expected_start}"
            )
        with self.connect() as conn:
            session = VerticaSession(conn)
            try:
                # DDL commits in Vertica: create the stages before the load transaction begins.
                for ddl in CREATE_STAGES:
                    session.execute(ddl)
                conn.commit()
                result = self._load_in_transaction(
                    session, batch, expected_start, run_id, quality, topic_id
                )
                self._fault("before_commit")
                conn.commit()
            except OffsetConflict:
                _rollback(conn)
                raise
            except verrors.Error as e:
                _rollback(conn)
                if is_unique_violation(e):
                    raise OffsetConflict(f"another loader committed {rng} first: {e}") from e
                raise WarehouseError(f"loading {rng} failed and was rolled back: {e}") from e
            except BaseException:
                _rollback(conn)
                raise
        self._fault("after_commit")
        return result

    def _load_in_transaction(
        self,
        s: VerticaSession,
        batch: Microbatch,
        expected_start: int,
        run_id: str,
        quality: QualityVerdict | None,
        topic_id: str | None,
    ) -> LoadResult:
        rng = batch.range
        inc = _incarnation(s, rng.topic)
        if topic_id is not None:
            check_topic_identity(inc, topic_id)
        epoch = 0 if inc is None else inc.epoch
        current = s.scalar(
            NEXT_OFFSET, {"topic": rng.topic, "kafka_partition": rng.partition, "epoch": epoch}
        )
        if current is not None and int(current) != expected_start:
            raise OffsetConflict(
                f"ledger of {rng.topic}:{rng.partition} ends at {current}, not at "
                f"{expected_start}: another loader moved it; {rng} was not loaded"
            )
        # The batch streams into the session's own stages first: loads of all partitions
        # do that part, the bulk of the work, at the same time.
        staged = [
            (stage, columns(), frame, insert)
            for stage, columns, frame, insert in (
                (STAGE_TRADES, _trade_columns, batch.trades, insert_trades_sql),
                (STAGE_QUOTES, _quote_columns, batch.quotes, insert_quotes_sql),
                (STAGE_AGGREGATES, _aggregate_columns, batch.aggregates, insert_aggregates_sql),
                (STAGE_LIVE, _live_columns, batch.live_signals, insert_live_signals_sql),
                (
                    STAGE_LIVE_REJECTS,
                    _live_reject_columns,
                    batch.live_rejects,
                    insert_live_rejects_sql,
                ),
            )
            if len(frame)
        ]
        for stage, cols, frame, _ in staged:
            s.copy(stage, cols, frame)
        # Then one load at a time from here to COMMIT, so that each anti-join sees every
        # row another load inserted (see LOCK_LOADS).
        s.execute(LOCK_LOADS)
        loaded_ns = time.time_ns()
        inserted = {
            stage: _count(s.execute(insert(), {"loaded_ns": loaded_ns}))
            for stage, _, _, insert in staged
        }
        n_inserted = inserted.get(STAGE_TRADES, 0)
        n_quotes = inserted.get(STAGE_QUOTES, 0)
        n_aggregates = inserted.get(STAGE_AGGREGATES, 0)
        n_signals = inserted.get(STAGE_LIVE, 0)
        n_signal_rejects = inserted.get(STAGE_LIVE_REJECTS, 0)
        if len(batch.rejects):
            s.copy(
                q.REJECTS,
                (*_reject_columns(), "loaded_ns"),
                batch.rejects.assign(loaded_ns=loaded_ns),
            )
        if len(batch.gaps):
            s.copy(
                q.FEED_GAPS, (*_gap_columns(), "loaded_ns"), batch.gaps.assign(loaded_ns=loaded_ns)
            )
        self._fault("after_insert")
        n_duplicates = batch.n_duplicates + (batch.n_trades - n_inserted)
        n_quote_duplicates = batch.n_quote_duplicates + (batch.n_quotes - n_quotes)
        n_aggregate_duplicates = batch.n_aggregate_duplicates + (batch.n_aggregates - n_aggregates)
        n_signal_duplicates = batch.n_live_duplicates + (
            batch.n_live_signals - n_signals + batch.n_live_rejects - n_signal_rejects
        )
        meta = batch.metadata()
        if quality is not None:
            for r in quality.results:
                s.execute(INSERT_QUALITY, _quality_params(run_id, r, loaded_ns))
        s.execute(
            INSERT_LEDGER,
            {
                "kafka_topic": rng.topic,
                "kafka_partition": rng.partition,
                "start_offset": rng.start,
                "stop_offset": rng.stop,
                "n_messages": batch.n_messages,
                "n_trades": n_inserted,
                "n_duplicates": n_duplicates,
                "n_rejects": batch.n_rejects,
                "n_gaps": batch.n_gaps,
                "min_timestamp_ns": meta["min_timestamp_ns"],
                "max_timestamp_ns": meta["max_timestamp_ns"],
                "quality_passed": None if quality is None else quality.passed,
                "quality_summary": None if quality is None else quality.summary_json,
                "run_id": run_id,
                "committed_ns": loaded_ns,
                "n_quotes": n_quotes,
                "n_quote_duplicates": n_quote_duplicates,
                "n_aggregates": n_aggregates,
                "n_aggregate_duplicates": n_aggregate_duplicates,
                "kafka_topic_id": topic_id,
                "n_signals": n_signals,
                "n_signal_duplicates": n_signal_duplicates,
                "n_signal_rejects": n_signal_rejects,
            },
        )
        return LoadResult(
            topic=rng.topic,
            partition=rng.partition,
            start_offset=rng.start,
            stop_offset=rng.stop,
            n_messages=batch.n_messages,
            n_trades=n_inserted,
            n_duplicates=n_duplicates,
            n_rejects=batch.n_rejects,
            n_gaps=batch.n_gaps,
            committed_ns=loaded_ns,
            n_quotes=n_quotes,
            n_quote_duplicates=n_quote_duplicates,
            n_aggregates=n_aggregates,
            n_aggregate_duplicates=n_aggregate_duplicates,
            n_signals=n_signals,
            n_signal_duplicates=n_signal_duplicates,
            n_signal_rejects=n_signal_rejects,
        )

    def partition_progress(self, topic: str | None = None) -> list[PartitionProgress]:
        """Summarise the ledger per topic-partition.

        Parameters
        ----------
        topic
            Only this topic; all when None.

        Returns
        -------
        list[PartitionProgress]
            One entry per topic-partition, ordered.
        """
        with self.transaction() as s:
            rows = s.execute(PARTITION_PROGRESS, {"topic": topic})
        return [PartitionProgress(str(t), *(int(x) for x in rest)) for t, *rest in rows]

    def ledger_frontier(self) -> LedgerFrontier:
        """Return every partition's ledger end and latest SIP time, in one statement.

        Returns
        -------
        LedgerFrontier
            Judged by :func:`pipeline.warehouse.finality.ingested_through`.
        """
        with self.transaction() as s:
            return LedgerFrontier.from_rows(s.execute(q.LEDGER_FRONTIER))

    def failed_batches(self, start_ns: int, end_ns: int) -> list[str]:
        """Return the batches whose ingest gate failed and whose trades overlap a window.

        Parameters
        ----------
        start_ns, end_ns
            The window ``[start_ns, end_ns)`` (e.g. a New York day), UTC epoch ns.

        Returns
        -------
        list[str]
            ``topic:partition:[start,stop)`` of each such batch, in ledger order.
        """
        with self.transaction() as s:
            rows = s.execute(FAILED_BATCHES, {"start_ns": start_ns, "end_ns": end_ns})
        return [f"{t}:{p}:[{a},{b})" for t, p, a, b in rows]

    # --- signals -------------------------------------------------------------------------

    def read_day_trades(self, day: date, *, regular_hours_only: bool = True) -> pd.DataFrame:
        """Return one New York day's trades in stable order.

        Parameters
        ----------
        day
            The ``trade_date``.
        regular_hours_only
            Keep only ``in_regular_hours`` prints.

        Returns
        -------
        pandas.DataFrame
            Columns :data:`~pipeline.warehouse.queries.DAY_TRADE_COLUMNS`, ordered by
            symbol, timestamp and arrival.
        """
        with self.transaction() as s:
            frame = s.frame(READ_DAY_TRADES, {"day": day, "rth_only": regular_hours_only})
        if frame.empty:
            frame = pd.DataFrame({c: [] for c in q.DAY_TRADE_COLUMNS})
        return _day_trade_dtypes(frame)

    def read_day(self, day: date) -> DayInput:
        """Return the day's regular-hours trades and a ledger frontier read before them.

        Under READ COMMITTED each statement sees what had committed when it began; the
        ledger row of a batch commits with its trades, so trades read after the frontier
        include every batch it counts (a batch committing in between is read but not
        counted, which can only make the day look less final, never more).

        Parameters
        ----------
        day
            The ``trade_date``.

        Returns
        -------
        DayInput
            Trades as :meth:`read_day_trades` returns them, and the ledger frontier.
        """
        frontier = self.ledger_frontier()
        return DayInput(self.read_day_trades(day), frontier)

    def publish_signals(self, day: date, frames: SignalTables, run: SignalRun) -> PublishResult:
        """Replace ``day`` in the three signal tables and add its run row, atomically.

        The frames come from Python (``compute_frames``); for the in-database path see
        :meth:`publish_signals_in_database`.

        Parameters
        ----------
        day
            The trading day; every frame row must carry this ``date``.
        frames
            The audited frames.
        run
            Provenance of the run.

        Returns
        -------
        PublishResult
            Rows published and rows replaced.
        """
        self._writable("publish_signals")
        ts = _contract(frames.trade_signals, q.TRADING_SIGNALS_COLUMNS, "trade_signals", day)
        sdm = _contract(
            frames.symbol_day_metrics, q.SYMBOL_DAY_METRICS_COLUMNS, "symbol_day_metrics", day
        )
        ib = _contract(
            frames.intensity_buckets, q.TRADE_INTENSITY_COLUMNS, "intensity_buckets", day
        )
        ts = ts.assign(kernel_version=run.kernel_version, run_id=run.run_id)
        sdm = with_fit_states(sdm, getattr(frames, "fit_states", None)).assign(
            kernel_version=run.kernel_version,
            params=run.params_json,
            input_offsets=[run.symbol_input_offsets.get(str(x), "{}") for x in sdm["symbol"]],
            run_id=run.run_id,
        )
        ib = ib.assign(kernel_version=run.kernel_version, run_id=run.run_id)
        try:
            with self.transaction() as s:
                n_replaced = sum(
                    _count(s.execute(stmt, {"day": day})) for stmt in DELETE_DAY.values()
                )
                s.copy(q.TRADING_SIGNALS, list(ts.columns), ts)
                s.copy(q.SYMBOL_DAY_METRICS, list(sdm.columns), sdm)
                s.copy(q.TRADE_INTENSITY, list(ib.columns), ib)
                s.execute(INSERT_SIGNAL_RUN, _signal_run_params(run, day))
        except verrors.Error as e:
            raise WarehouseError(f"publishing {day} failed and was rolled back: {e}") from e
        return PublishResult(day, run.run_id, len(ts), len(sdm), len(ib), n_replaced)

    def publish_signals_in_database(
        self, day: date, run: InDatabaseRun, accept: AuditJudge
    ) -> InDatabaseOutcome:
        """Compute ``day`` inside Vertica with the UDx and publish it, audited, atomically.

        The Vertica path of the signal assets (DuckDB computes the frames in Python and
        calls :meth:`publish_signals`). One transaction is the stage: copy the day's
        regular-hours trades once into the session's ``signal_day_trades`` (one statement,
        so one committed state of ``market_data`` while loads keep committing), delete the
        day, ``INSERT ... SELECT batch_microstructure*(...) OVER (PARTITION BY symbol,
        trade_date ...)`` from that copy into the three tables (``udx/vertica/signals.sql``),
        count the audit on the uncommitted rows and the same copy, and only if ``accept``
        passes it add the ``signal_runs`` row and COMMIT. Readers keep the last good day
        until then.

        Parameters
        ----------
        day
            The New York trading day.
        run
            Run id, parameters JSON, finality and timing of this computation.
        accept
            Judge of the audit, called inside the open transaction: the signal assets pass
            one that builds the signal suite's report (:func:`pipeline.quality.audit_report`).

        Returns
        -------
        InDatabaseOutcome
            The audit, and the rows published and replaced (``published`` is None when the
            judge refused: everything was rolled back).

        Raises
        ------
        WarehouseError
            If Vertica fails a statement (e.g. the UDx is not installed); rolled back.
        """
        self._writable("publish_signals_in_database")
        sql = read_named_sql(SIGNALS_SQL)
        bind = {"day": day, "run_id": run.run_id, "params": run.params_json}
        try:
            with self.connect() as conn:
                s = VerticaSession(conn)
                s.execute(CREATE_SIGNAL_DAY_TRADES)
                s.execute(CREATE_SIGNAL_INPUT_OFFSETS)
                conn.commit()
                try:
                    # The one read of market_data; every statement below reads the stage.
                    s.execute(sql["stage_day_trades"], {"day": day})
                    offsets = s.execute(sql["input_offsets"])
                    per_symbol, overall = _input_offsets(offsets)
                    s.copy(
                        SIGNAL_INPUT_OFFSETS,
                        ("symbol", "input_offsets"),
                        pd.DataFrame(list(per_symbol.items()), columns=["symbol", "input_offsets"]),
                    )
                    n_replaced = sum(
                        _count(s.execute(sql[name], {"day": day}))
                        for name in (
                            "delete_trading_signals",
                            "delete_symbol_day_metrics",
                            "delete_trade_intensity",
                        )
                    )
                    n_ts = _count(s.execute(sql["insert_trading_signals"], bind))
                    n_sdm = _count(s.execute(sql["insert_symbol_day_metrics"], bind))
                    n_ib = _count(s.execute(sql["insert_trade_intensity"], bind))
                    counts = s.execute(sql["audit"], {"day": day, "run_id": run.run_id})[0]
                    audit = SignalAudit(*(int(v or 0) for v in counts))
                    passed, summary_json = accept(audit)
                    if not passed:
                        _rollback(conn)
                        return InDatabaseOutcome(audit, None)
                    row = SignalRun(
                        run_id=run.run_id,
                        day=day,
                        n_symbols=audit.n_rth_symbols,
                        n_trades=audit.n_rth_trades,
                        n_buckets=audit.n_bucket_rows,
                        kernel_version=run.kernel_version,
                        params_json=run.params_json,
                        input_offsets_json=overall,
                        content_hash=f"vertica-sum-v1:{audit.content_sum}",
                        final=run.final,
                        computed_ns=run.computed_ns,
                        ingested_through_ns=run.ingested_through_ns,
                        ledger_ends_json=run.ledger_ends_json,
                        quality_passed=True,
                        quality_summary_json=summary_json,
                    )
                    s.execute(INSERT_SIGNAL_RUN, _signal_run_params(row, day))
                    conn.commit()
                except BaseException:
                    _rollback(conn)
                    raise
        except verrors.Error as e:
            raise WarehouseError(f"computing signals of {day} in Vertica failed: {e}") from e
        return InDatabaseOutcome(
            audit, PublishResult(day, run.run_id, n_ts, n_sdm, n_ib, n_replaced)
        )

    def record_quality(self, run_id: str, rows: Sequence[QualityResultRow]) -> None:
        """Store quality verdicts outside a load.

        Parameters
        ----------
        run_id
            The run that evaluated them.
        rows
            One row per expectation.
        """
        self._writable("record_quality")
        if not rows:
            return
        now = time.time_ns()
        with self.transaction() as s:
            for r in rows:
                s.execute(INSERT_QUALITY, _quality_params(run_id, r, now))

    # --- reads ---------------------------------------------------------------------------

    def table_counts(self) -> dict[str, int]:
        """Return the row count of every platform table.

        Returns
        -------
        dict[str, int]
            Table -> rows.
        """
        with self.transaction() as s:
            return {t: int(s.scalar(sql)) for t, sql in COUNT.items()}

    def query_frame(self, name: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a named read (the names of :data:`pipeline.warehouse.queries.READS`).

        Parameters
        ----------
        name
            Statement name.
        params
            Bound values, in the order of the DuckDB statement's placeholders.

        Returns
        -------
        pandas.DataFrame
            The rows.
        """
        try:
            sql, names = READS[name]
        except KeyError:
            raise WarehouseError(f"no named read {name!r}; known: {sorted(READS)}") from None
        if len(params) != len(names):
            raise WarehouseError(f"read {name!r} takes {len(names)} values, got {len(params)}")
        with self.transaction() as s:
            return s.frame(sql, dict(zip(names, params, strict=True)))


# ---------------------------------------------------------------------------------------------
# Helpers


def _incarnation(s: VerticaSession, topic: str) -> TopicIncarnation | None:
    """Return the topic's current epoch and its recorded Kafka id (None: never loaded)."""
    latest = s.execute(LATEST_EPOCH, {"topic": topic})
    ledger = s.execute(LEDGER_TOPIC_ID, {"topic": topic})
    n_rows, ledger_id = ledger[0] if ledger else (0, None)
    return incarnation_of(
        topic,
        (int(latest[0][0]), str(latest[0][1])) if latest else None,
        int(n_rows),
        None if ledger_id is None else str(ledger_id),
    )


def _rollback(conn: Any) -> None:
    try:
        conn.rollback()
    except (verrors.Error, OSError):
        logger.debug("rollback failed: the connection is already gone, nothing was committed")


def _count(rows: list[tuple[Any, ...]]) -> int:
    return int(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else 0


def _quality_params(run_id: str, r: QualityResultRow, now_ns: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "suite": r.suite,
        "target": r.target,
        "expectation": r.expectation,
        "passed": r.passed,
        "observed": r.observed_json,
        "checked_ns": now_ns,
    }


def _signal_run_params(run: SignalRun, day: date) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "date": day,
        "n_symbols": run.n_symbols,
        "n_trades": run.n_trades,
        "n_buckets": run.n_buckets,
        "kernel_version": run.kernel_version,
        "params": run.params_json,
        "input_offsets": run.input_offsets_json,
        "content_hash": run.content_hash,
        "quality_passed": run.quality_passed,
        "quality_summary": run.quality_summary_json,
        "ingested_through_ns": run.ingested_through_ns,
        "final": run.final,
        "computed_ns": run.computed_ns,
        "ledger_ends": run.ledger_ends_json,
    }


_DAY_TRADE_DTYPES: dict[str, str] = {
    "timestamp_ns": "int64",
    "price": "float64",
    "size": "int64",
    "exchange": "int32",
    "ns_from_open": "int64",
    "kafka_partition": "int32",
    "kafka_offset": "int64",
}


def _day_trade_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype(_DAY_TRADE_DTYPES)
    out["trade_date"] = pd.to_datetime(out["trade_date"])
    return out


def _contract(frame: pd.DataFrame, columns: Sequence[str], name: str, day: date) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"frame {name} lacks contract columns {missing}")
    out = frame.loc[:, list(columns)]
    if len(out):
        dates = pd.to_datetime(out["date"]).dt.date
        other = dates[dates != day]
        if len(other):
            raise DataError(
                f"frame {name} row {other.index[0]} has date {other.iloc[0]}, not {day}"
            )
    return out
