"""The Vertica backend without a Vertica server: configuration, failures, COPY data, order.

What runs for real here: URL/environment parsing, the SQLAlchemy engine of
``sqlalchemy-vertica-python``, vertica-python failing to connect to a closed local port
(the error text a run would show), and the COPY data encoder. The load transaction's order
(COPY ... NO COMMIT, dedup insert, ledger row, one COMMIT; ROLLBACK and nothing committed
on any error) is checked against a recording stand-in for the vertica-python connection
that raises the driver's own error classes built from Vertica's wire error fields. That
proves our side of the protocol only; the opt-in suite (``make test-vertica``) proves the
server's side.
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd
import pytest
import sqlalchemy
from vertica_python import errors as verrors
from vertica_python.vertica.cursor import Cursor as DriverCursor
from vertica_python.vertica.messages import ErrorResponse

from pipeline.errors import ConfigError, OffsetConflict, TopicRecreatedError, WarehouseError
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.settings import Settings
from pipeline.warehouse import open_warehouse
from pipeline.warehouse import vertica_backend as vb
from pipeline.warehouse.topic_identity import TopicIncarnation
from tests.vertica.test_sql import parse_problems
from tests.warehouse.factories import (
    as_records,
    repaired_gap,
    sample_bars,
    sample_quotes,
    sample_trades,
)

ENV = {
    "VERTICA_HOST": "vertica.example",
    "VERTICA_DB": "micro",
    "VERTICA_USER": "loader",
    "VERTICA_PASSWORD": "s3cret",
}


def test_a_bare_vertica_url_takes_every_part_from_the_environment() -> None:
    c = vb.VerticaConfig.from_url("vertica://", ENV)
    assert (c.host, c.port, c.database, c.user, c.tlsmode) == (
        "vertica.example",
        5433,
        "micro",
        "loader",
        "prefer",
    )
    assert c.password.get() == "s3cret"
    assert "s3cret" not in repr(c)
    assert c.url == "vertica://loader@vertica.example:5433/micro"
    kwargs = c.connect_kwargs()
    assert kwargs["autocommit"] is False
    assert kwargs["password"] == "s3cret"


def test_url_parts_win_over_the_environment_and_options_come_from_the_query() -> None:
    c = vb.VerticaConfig.from_url(
        "vertica://mcp@db1:5444/prod?tlsmode=verify-full&search_path=micro", ENV
    )
    assert (c.host, c.port, c.database, c.user, c.tlsmode, c.search_path) == (
        "db1",
        5444,
        "prod",
        "mcp",
        "verify-full",
        "micro",
    )


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("vertica://", {}, "lacks host"),
        ("vertica://h/db", {}, "lacks user"),
        ("vertica://u@h/db?tlsmode=maybe", {}, "TLSMODE"),
        ("vertica://u@h/db?search_path=x;drop", {}, "search_path"),
    ],
)
def test_incomplete_or_malformed_vertica_settings_are_config_errors(url, env, message) -> None:
    with pytest.raises(ConfigError, match=message):
        vb.VerticaConfig.from_url(url, env)


def test_vertica_host_alone_selects_the_vertica_warehouse() -> None:
    s = Settings.from_env(ENV)
    assert s.warehouse_url == "vertica://"
    assert s.vertica_password.get() == "s3cret"
    assert "s3cret" not in repr(s)
    assert Settings.from_env({}).warehouse_url.startswith("duckdb:///")


def test_the_sqlalchemy_engine_uses_sqlalchemy_vertica_python() -> None:
    engine = vb.sqlalchemy_engine(vb.VerticaConfig.from_url("vertica://", ENV))
    assert (engine.dialect.name, engine.dialect.driver) == ("vertica", "vertica_python")
    assert engine.url.render_as_string(hide_password=True) == (
        "vertica+vertica_python://loader:***@vertica.example:5433/micro"
    )
    assert isinstance(sqlalchemy.text("SELECT 1"), sqlalchemy.TextClause)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_connection_failure_surfaces_with_the_driver_text_and_nothing_loaded(monkeypatch) -> None:
    port = _closed_port()
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    wh = open_warehouse(f"vertica://loader@127.0.0.1:{port}/micro?connection_timeout=2")
    assert isinstance(wh, vb.VerticaWarehouse)
    with pytest.raises(WarehouseError) as info:
        wh.next_offset("polygon-market-data", 0)
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "Failed to establish a connection" in str(info.value)
    assert isinstance(info.value.__cause__, verrors.ConnectionError)


# --- COPY data ---------------------------------------------------------------------------------


def decode_copy_line(line: str) -> list[str | None]:
    """Split one record by the documented rules of COPY_OPTIONS (the test's own reader)."""
    fields: list[str | None] = []
    i, n = 0, len(line)
    while True:
        if i < n and line[i] == '"':
            i += 1
            out = []
            while line[i] != '"':
                if line[i] == "\\":
                    i += 1
                out.append(line[i])
                i += 1
            i += 1
            fields.append("".join(out))
        else:
            j = line.find(",", i)
            j = n if j < 0 else j
            raw = line[i:j]
            fields.append(None if raw == "" else raw)
            i = j
        if i >= n:
            return fields
        assert line[i] == ","
        i += 1


def split_records(data: str) -> list[str]:
    """Split on record terminators that are not escaped or enclosed."""
    records, cur, quoted, escaped = [], [], False, False
    for ch in data:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            cur.append(ch)
            escaped = True
        elif ch == '"':
            cur.append(ch)
            quoted = not quoted
        elif ch == "\n" and not quoted:
            records.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    assert not cur
    return records


def test_copy_data_round_trips_nulls_empty_strings_quotes_backslashes_and_newlines() -> None:
    tricky = ["a,b", 'say "hi"', "back\\slash", "two\nlines\r\n", "", "ünïcødé", "\\"]
    frame = pd.DataFrame(
        {
            "text": [*tricky, None],
            "n": pd.array([1, -(2**62), None, 0, 5, 6, 7, 8], dtype="Int64"),
            "x": [1.5, float("nan"), float("inf"), -0.0, 1e-300, 2.0, 3.0, 0.1],
            "flag": [True, False, True, False, True, False, True, False],
            "day": [date(2018, 1, 2)] * 8,
        }
    )
    data = vb.encode_rows(frame, ["text", "n", "x", "flag", "day"])
    rows = [decode_copy_line(r) for r in split_records(data)]
    assert [r[0] for r in rows] == [*tricky, None]
    assert rows[4][0] == ""  # an empty string stays a string: it is enclosed, NULL is not
    assert [r[1] for r in rows[:3]] == ["1", str(-(2**62)), None]
    assert [r[2] for r in rows[:4]] == ["1.5", None, "Infinity", "-0.0"]
    assert float(rows[7][2]) == 0.1
    assert [r[3] for r in rows[:2]] == ["t", "f"]
    assert {r[4] for r in rows} == {"2018-01-02"}


def test_a_real_microbatch_encodes_one_record_per_trade() -> None:
    batch = shape_batch(as_records(sample_trades(50)), OffsetRange("polygon-market-data", 0, 0, 50))
    data = vb.encode_rows(batch.trades, vb._trade_columns())
    records = split_records(data)
    assert len(records) == batch.n_trades == 50
    first = decode_copy_line(records[0])
    assert len(first) == len(vb._trade_columns())
    assert first[vb._trade_columns().index("trade_date")] == "2018-01-02"


# --- the load transaction, against a recording stand-in for the driver ---------------------------


def vertica_error(sqlstate: str, message: str, sql: str) -> verrors.QueryError:
    """The exception vertica-python raises for an ErrorResponse with these fields."""
    payload = b"SERROR\x00C" + sqlstate.encode() + b"\x00M" + message.encode() + b"\x00\x00"
    return verrors.QueryError.from_error_response(ErrorResponse(payload), sql)


class RecordingConnection:
    """Records what the backend sends; fails the first statement matching ``fail_on``."""

    def __init__(self, log: list[tuple[str, str]], fail_on: str | None, error: Exception | None):
        self.log = log
        self.fail_on = fail_on
        self.error = error

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def commit(self) -> None:
        self.log.append(("commit", ""))

    def rollback(self) -> None:
        self.log.append(("rollback", ""))

    def close(self) -> None:
        self.log.append(("close", ""))


class RecordingCursor:
    def __init__(self, conn: RecordingConnection) -> None:
        self.conn = conn
        self.description: Any = None
        self._rows: list[list[Any]] = []

    def _maybe_fail(self, sql: str) -> None:
        if self.conn.fail_on and self.conn.fail_on in sql and self.conn.error is not None:
            error, self.conn.error = self.conn.error, None
            raise error

    def execute(self, sql: str, params: Any = None, use_prepared_statements: bool = False) -> None:
        self.conn.log.append(("execute", sql))
        self._maybe_fail(sql)
        # An empty ledger, answered as Vertica would: aggregates give one row, a filtered
        # ORDER BY ... LIMIT none.
        if sql.startswith("SELECT MAX("):
            self.description, self._rows = [("next_offset",)], [[None]]
        elif sql.startswith("SELECT COUNT(*) AS n_rows"):
            self.description, self._rows = [("n_rows",), ("kafka_topic_id",)], [[0, None]]
        elif sql.startswith("SELECT topic_epoch"):
            self.description, self._rows = [("topic_epoch",), ("kafka_topic_id",)], []
        elif sql.startswith("INSERT"):
            self.description, self._rows = [("OUTPUT",)], [[3]]
        else:
            self.description, self._rows = None, []

    def fetchall(self) -> list[list[Any]]:
        return self._rows

    def copy(self, sql: str, data: str) -> None:
        self.conn.log.append(("copy", sql))
        self._maybe_fail(sql)
        _enforce_lengths(sql, data)


def _ddl_sizes() -> dict[str, dict[str, int]]:
    """Sized text columns per table, read from the DDL Vertica runs (stages and migrations)."""
    from pathlib import Path

    texts = [*vb.CREATE_STAGES]
    texts += [p.read_text() for p in sorted(Path("sql/migrations").glob("*.vertica.sql"))]
    sizes: dict[str, dict[str, int]] = {}
    for text in texts:
        for table, body in re.findall(
            r"CREATE (?:LOCAL TEMPORARY )?TABLE IF NOT EXISTS (\w+) \((.*?)\)"
            r"\s*(?:ON|;|ORDER|SEGMENTED|$)",
            text,
            re.S,
        ):
            for col, n in re.findall(r"(\w+)\s+(?:LONG\s+)?VARCHAR\((\d+)\)", body):
                sizes.setdefault(table, {})[col] = int(n)
        for table, col, n in re.findall(
            r"ALTER TABLE (\w+) ADD COLUMN IF NOT EXISTS (\w+) (?:LONG\s+)?VARCHAR\((\d+)\)", text
        ):
            sizes.setdefault(table, {})[col] = int(n)
    return sizes


def _enforce_lengths(sql: str, data: str) -> None:
    """Refuse, as COPY ... ENFORCELENGTH ABORT ON ERROR does, a value longer than its column
    (in UTF-8 bytes, as Vertica sizes VARCHAR)."""
    m = re.match(r"COPY (\w+) \(([^)]*)\)", sql)
    assert m is not None, sql
    table, columns = m.group(1), [c.strip() for c in m.group(2).split(",")]
    sizes = _ddl_sizes()[table]
    for record in split_records(data):
        for col, value in zip(columns, decode_copy_line(record), strict=True):
            if value is not None and col in sizes and len(value.encode()) > sizes[col]:
                raise vertica_error(
                    "22001",
                    f"COPY: Input record 1 has been rejected (Value too long for column "
                    f"{col} of type varchar({sizes[col]}))",
                    sql,
                )


def _warehouse(log, fail_on=None, error=None) -> vb.VerticaWarehouse:
    config = vb.VerticaConfig.from_url("vertica://", ENV)
    return vb.VerticaWarehouse(config, connect=lambda **_: RecordingConnection(log, fail_on, error))


def _three_trade_batch():
    return shape_batch(as_records(sample_trades(3)), OffsetRange("polygon-market-data", 0, 0, 3))


def test_a_load_is_copy_no_commit_then_the_load_lock_dedup_ledger_and_one_commit() -> None:
    log: list[tuple[str, str]] = []
    result = _warehouse(log).load_batch(_three_trade_batch(), expected_start=0, run_id="r1")
    assert result.n_trades == 3
    kinds = [(k, s.split(" (")[0][:40]) for k, s in log]
    assert kinds == [
        *(("execute", ddl[:40]) for ddl in vb.CREATE_STAGES),
        ("commit", ""),
        ("execute", "SELECT topic_epoch, kafka_topic_id FROM "),
        ("execute", "SELECT COUNT(*) AS n_rows, MAX(kafka_top"),
        ("execute", "SELECT MAX(e.stop_offset) AS next_offset"),
        ("copy", "COPY market_data_stage"),
        ("execute", vb.LOCK_LOADS[:40]),
        ("execute", "INSERT INTO market_data"),
        ("execute", "INSERT INTO kafka_offsets"),
        ("commit", ""),
        ("close", ""),
    ]
    assert log[len(vb.CREATE_STAGES) + 4][1].endswith("NO COMMIT")


def test_quotes_bars_and_gap_repairs_load_in_the_same_transaction_as_the_trades() -> None:
    trades = sample_trades(3)
    pending, done = repaired_gap(trades[0], trades[1], backfilled=4)
    events = [*trades, *sample_quotes(3), *sample_bars(3), pending, done]
    batch = shape_batch(as_records(events), OffsetRange("polygon-market-data", 0, 0, len(events)))
    log: list[tuple[str, str]] = []
    result = _warehouse(log).load_batch(batch, expected_start=0, run_id="r1")
    # The stand-in answers 3 rows to every INSERT.
    assert (result.n_trades, result.n_quotes, result.n_aggregates, result.n_gaps) == (3, 3, 3, 2)
    assert (result.n_quote_duplicates, result.n_aggregate_duplicates) == (0, 0)
    # After the stage DDL, its commit and the three ledger reads.
    work = [(k, s.split(" (")[0]) for k, s in log[len(vb.CREATE_STAGES) + 4 : -2]]
    assert work == [
        ("copy", "COPY market_data_stage"),
        ("copy", "COPY market_quotes_stage"),
        ("copy", "COPY market_aggregates_stage"),
        ("execute", vb.LOCK_LOADS),
        ("execute", "INSERT INTO market_data"),
        ("execute", "INSERT INTO market_quotes"),
        ("execute", "INSERT INTO market_aggregates"),
        ("copy", "COPY feed_gaps"),
        ("execute", "INSERT INTO kafka_offsets"),
    ]
    assert [k for k, _ in log].count("commit") == 2  # the stage DDL, then the load
    # Every column of a stage is a column the COPY names and the encoder writes.
    copies = {s.split(" (")[0]: s for k, s in log if k == "copy"}
    for stage, columns in (
        ("COPY market_quotes_stage", vb._quote_columns()),
        ("COPY market_aggregates_stage", vb._aggregate_columns()),
    ):
        assert f"({', '.join(columns)})" in copies[stage]
    quote = decode_copy_line(split_records(vb.encode_rows(batch.quotes, vb._quote_columns()))[0])
    assert quote[vb._quote_columns().index("trade_date")] == "2018-01-02"
    assert quote[vb._quote_columns().index("sequence_number")] == "0"


def test_a_rejected_copy_row_rolls_back_with_the_vertica_text_and_commits_nothing() -> None:
    log: list[tuple[str, str]] = []
    error = vertica_error(
        "22V04", "COPY: Input record 2 has been rejected (Too few columns)", "COPY"
    )
    wh = _warehouse(log, fail_on="COPY market_data_stage", error=error)
    with pytest.raises(WarehouseError, match="Input record 2 has been rejected") as info:
        wh.load_batch(_three_trade_batch(), expected_start=0, run_id="r1")
    assert isinstance(info.value.__cause__, verrors.CopyRejected)
    after_copy = log[[k for k, _ in log].index("copy") :]
    assert ("rollback", "") in after_copy
    assert ("commit", "") not in after_copy
    assert not any("kafka_offsets" in s for k, s in after_copy if k == "execute")


def test_a_second_loader_of_the_same_range_gets_offset_conflict_from_the_enabled_key() -> None:
    log: list[tuple[str, str]] = []
    error = vertica_error(
        "23505",
        "Duplicate key values: 'kafka_topic=polygon-market-data,kafka_partition=0,start_offset=0'"
        " -- violates constraint 'public.kafka_offsets.pk_kafka_offsets'",
        "INSERT",
    )
    wh = _warehouse(log, fail_on="INSERT INTO kafka_offsets", error=error)
    with pytest.raises(OffsetConflict, match="another loader committed"):
        wh.load_batch(_three_trade_batch(), expected_start=0, run_id="r2")
    assert log[-2:] == [("rollback", ""), ("close", "")]
    assert [k for k, _ in log].count("commit") == 1  # only the stage DDL before the load


def test_a_read_only_warehouse_refuses_writes_before_connecting() -> None:
    log: list[tuple[str, str]] = []
    config = vb.VerticaConfig.from_url("vertica://", ENV)
    wh = vb.VerticaWarehouse(
        config, read_only=True, connect=lambda **_: RecordingConnection(log, None, None)
    )
    with pytest.raises(WarehouseError, match="read-only"):
        wh.load_batch(_three_trade_batch(), expected_start=0, run_id="r")
    assert log == []
    wh.next_offset("polygon-market-data", 0)
    assert ("execute", "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY") in log


# --- reads, as the driver sends them --------------------------------------------------------------


def bound(sql: str, params: Mapping[str, Any]) -> str:
    """The text vertica-python's client-side binding sends (``use_prepared_statements=False``)."""
    cursor = DriverCursor(None, logging.getLogger(__name__))  # pyright: ignore[reportArgumentType]
    return cursor.format_operation_with_parameters(sql, dict(params))


class BindingCursor(RecordingCursor):
    """Records each statement with its values bound by the driver; answers from ``replies``."""

    replies: Mapping[str, tuple[list[str], list[list[Any]]]] = {}

    def execute(self, sql: str, params: Any = None, use_prepared_statements: bool = False) -> None:
        assert not use_prepared_statements
        text = bound(sql, params) if params else sql
        self.conn.log.append(("execute", text))
        self._maybe_fail(text)
        for prefix, (columns, rows) in self.replies.items():
            if text.startswith(prefix):
                self.description, self._rows = [(c,) for c in columns], rows
                return
        self.description, self._rows = [("x",)], []


def _reading_warehouse(
    log: list[tuple[str, str]],
    replies: Mapping[str, tuple[list[str], list[list[Any]]]],
    fail_on: str | None = None,
    error: Exception | None = None,
) -> vb.VerticaWarehouse:
    class Conn(RecordingConnection):
        def cursor(self) -> BindingCursor:
            cur = BindingCursor(self)
            cur.replies = replies
            return cur

    config = vb.VerticaConfig.from_url("vertica://", ENV)
    return vb.VerticaWarehouse(config, connect=lambda **_: Conn(log, fail_on, error))


DAY = date(2018, 1, 2)
# Values for each named read, in the order of the DuckDB statement's placeholders.
READ_ARGS: dict[str, tuple[Any, ...]] = {
    "ledger": (None, None, 10),
    "signal_runs_latest": (DAY, date(2018, 1, 3)),
    "trades_per_day": (DAY, date(2018, 1, 3)),
    "duplicate_trade_keys": (),
    "jumps_of_day": (DAY, 5),
    "signal_counts_of_day": (DAY,),
    "rejects_by_reason": (10,),
    "append_to_commit_latency": (0.5, 0.99),
    "day_completeness": (DAY,),
    "feed_gap_states": (0,),
    "quality_results": ("ingest", "ingest", 20),
    "trade_batches_after": ("polygon-market-data", 0, 100),
    "symbol_day_priors": (date(2018, 1, 3), date(2017, 12, 20)),
    "trading_signals_of_day": (DAY,),
}


def test_every_named_read_sends_one_statement_with_every_value_bound_that_parses() -> None:
    assert sorted(READ_ARGS) == sorted(vb.READS)
    for name, args in READ_ARGS.items():
        log: list[tuple[str, str]] = []
        _reading_warehouse(log, {}).query_frame(name, args)
        statements = [s for k, s in log if k == "execute"]
        assert len(statements) == 1, name
        assert not re.search(r"(?<!:):[a-z_]", statements[0]), (name, statements[0])
        assert parse_problems(statements[0]) == [], name
        assert log[-2:] == [("commit", ""), ("close", "")], name


def test_a_named_read_with_the_wrong_number_of_values_fails_before_connecting() -> None:
    log: list[tuple[str, str]] = []
    with pytest.raises(WarehouseError, match="takes 1 values, got 2"):
        _reading_warehouse(log, {}).query_frame("day_completeness", (DAY, DAY))
    with pytest.raises(WarehouseError, match="no named read"):
        _reading_warehouse(log, {}).query_frame("no_such_read")
    assert log == []


def test_latency_quantiles_are_exact_percentiles_with_the_fractions_written_in() -> None:
    log: list[tuple[str, str]] = []
    replies = {"SELECT MAX(q1)": (["q1", "q2", "n"], [[0.25, 1.5, 40]])}
    frame = _reading_warehouse(log, replies).query_frame("append_to_commit_latency", (0.5, 0.99))
    assert frame.to_dict("records") == [{"q1": 0.25, "q2": 1.5, "n": 40}]
    sent = log[0][1]
    # PERCENTILE_CONT takes only a constant fraction: client-side binding makes it one.
    assert "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_s) OVER ()" in sent
    assert "PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY latency_s) OVER ()" in sent
    assert "WHERE kafka_ts_ns > 0" in sent


def test_day_completeness_reads_the_view_for_one_day_with_the_duckdb_columns() -> None:
    from pipeline.warehouse import queries as q

    select_list = q.READS["day_completeness"].split(" FROM ")[0]
    assert vb.READS["day_completeness"][0].split(" FROM ")[0] == select_list
    columns = select_list.removeprefix("SELECT ").split(", ")
    log: list[tuple[str, str]] = []
    replies = {"SELECT symbol, trade_date": (columns, [["XXX", DAY, 9, 8, 7, 390, 1, 300.0, 2]])}
    [row] = (
        _reading_warehouse(log, replies).query_frame("day_completeness", (DAY,)).to_dict("records")
    )
    assert row["n_gaps"] == 1
    assert row["gap_seconds"] == 300.0
    assert row["n_gaps_repaired"] == 2
    assert "FROM day_completeness WHERE trade_date = '2018-01-02' ORDER BY symbol" in log[0][1]


def test_failed_batches_bind_the_window_and_name_each_batch_like_duckdb() -> None:
    log: list[tuple[str, str]] = []
    replies = {
        "SELECT kafka_topic, kafka_partition, start_offset, stop_offset": (
            ["kafka_topic", "kafka_partition", "start_offset", "stop_offset"],
            [["polygon-market-data", 0, 0, 100], ["polygon-market-data", 1, 200, 300]],
        )
    }
    start, end = 1514869200000000000, 1514955600000000000
    got = _reading_warehouse(log, replies).failed_batches(start, end)
    assert got == ["polygon-market-data:0:[0,100)", "polygon-market-data:1:[200,300)"]
    sent = log[0][1]
    assert f"max_timestamp_ns >= {start} AND min_timestamp_ns < {end}" in sent
    assert "quality_passed = false" in sent
    assert parse_problems(sent) == []
    assert log[-2:] == [("commit", ""), ("close", "")]


def test_a_failed_read_rolls_back_and_surfaces_the_driver_error() -> None:
    log: list[tuple[str, str]] = []
    error = vertica_error("42V01", 'Table "kafka_offsets" does not exist', "SELECT")
    wh = _reading_warehouse(log, {}, fail_on="FROM kafka_offsets", error=error)
    with pytest.raises(verrors.MissingRelation, match="does not exist"):
        wh.failed_batches(0, 1)
    assert log[-2:] == [("rollback", ""), ("close", "")]
    assert ("commit", "") not in log


def test_over_length_values_are_rejects_that_fit_and_the_load_commits() -> None:
    """Issue 14.4: a 17-byte key, a 65-byte trade id, a 300-item conditions list or a
    reject whose symbol and reason are longer than their columns aborted the COPY on every
    retry (ENFORCELENGTH), stalling the partition. The fake COPY above refuses what Vertica
    would; the batch must load, its over-length trades as rejects whose fields fit."""
    from dataclasses import replace

    good = sample_trades(3)
    long_symbol = replace(good[0], symbol="ABCDEFGHIJKLMNOPQ", trade_id="t-sym")
    long_id = replace(good[0], trade_id="x" * 65)
    many = replace(good[0], trade_id="t-cond", conditions=tuple(range(300)))
    undecodable = (b"K" * 40, b"{" + b"y" * 5000, [("schema", b"trade.v1")])
    events = [*good, long_symbol, long_id, many, undecodable]
    batch = shape_batch(as_records(events), OffsetRange("polygon-market-data", 0, 0, len(events)))
    log: list[tuple[str, str]] = []
    result = _warehouse(log).load_batch(batch, expected_start=0, run_id="r1")
    assert (result.n_trades, batch.n_rejects) == (3, 4)
    reasons = batch.rejects.set_index("kafka_offset")["reason"]
    assert "symbol is 17 bytes" in reasons[3]
    assert "trade_id is 65 bytes" in reasons[4]
    assert "conditions is 1089 bytes" in reasons[5]
    assert all(len(r.encode()) <= 1024 for r in reasons)
    assert batch.rejects["symbol"].isna().tolist() == [True, False, False, True]
    assert ("commit", "") in log


def test_the_shaping_sizes_are_the_sizes_of_the_vertica_ddl() -> None:
    """One source of truth: shaping checks pipeline.warehouse.schema.VARCHAR_BYTES, and
    every size there is the size the Vertica DDL declares."""
    from pipeline.warehouse.schema import VARCHAR_BYTES

    ddl = _ddl_sizes()
    assert {t: {c: ddl[t][c] for c in cols} for t, cols in VARCHAR_BYTES.items()} == VARCHAR_BYTES
    assert ddl["market_data_stage"]["symbol"] == VARCHAR_BYTES["market_data"]["symbol"]


# --- topic identity (issue 14.5), against the binding stand-in ---------------------------------

OLD_ID, NEW_ID = "Xc1vKz9eQmWJ3bq2Y7t0Aw", "pT4n0rS8R2eC6vLm1kQ9bA"


def _ledger_replies(
    n_rows: int, ledger_id: str | None, epoch: tuple[int, str] | None = None
) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """What Vertica answers to the identity reads for a ledger in this state."""
    return {
        "SELECT topic_epoch, kafka_topic_id FROM kafka_topic_epochs": (
            ["topic_epoch", "kafka_topic_id"],
            [] if epoch is None else [list(epoch)],
        ),
        "SELECT COUNT(*) AS n_rows": (["n_rows", "kafka_topic_id"], [[n_rows, ledger_id]]),
        "SELECT MAX(e.stop_offset)": (["next_offset"], [[3 if n_rows else None]]),
    }


def _three_trades_from(start: int):
    return shape_batch(
        as_records(sample_trades(3), start=start),
        OffsetRange("polygon-market-data", 0, start, start + 3),
    )


def test_a_batch_of_a_recreated_topic_is_refused_inside_the_transaction_and_nothing_written():
    log: list[tuple[str, str]] = []
    wh = _reading_warehouse(log, _ledger_replies(1, OLD_ID))
    with pytest.raises(TopicRecreatedError) as info:
        wh.load_batch(_three_trades_from(3), expected_start=3, run_id="r", topic_id=NEW_ID)
    assert OLD_ID in str(info.value)
    assert NEW_ID in str(info.value)
    assert "microstructure kafka acknowledge-topic --topic polygon-market-data" in str(info.value)
    after_stages = log[[k for k, _ in log].index("commit") + 1 :]
    assert [k for k, _ in after_stages] == ["execute", "execute", "rollback", "close"]
    assert not any(k == "copy" or s.startswith("INSERT") for k, s in log)


def test_rows_without_a_topic_id_are_adopted_and_the_new_row_records_it():
    """Rows written before migration 0012 (NULL id) belong to whatever topic loads next."""
    log: list[tuple[str, str]] = []
    wh = _reading_warehouse(log, _ledger_replies(1, None))
    wh.load_batch(_three_trades_from(3), expected_start=3, run_id="r", topic_id=NEW_ID)
    [ledger] = [s for k, s in log if k == "execute" and s.startswith("INSERT INTO kafka_offsets")]
    assert ledger.endswith(f"'{NEW_ID}', 0, 0, 0)")  # then n_signals, duplicates, rejects
    statements = [s for k, s in log if k == "execute" and s.startswith("SELECT")]
    # The next offset is read from the ledger and the current epoch (0: never acknowledged).
    assert "WHERE kafka_topic = 'polygon-market-data' AND topic_epoch = 0" in statements[-1]
    assert all(parse_problems(s) == [] for s in statements)
    assert log[-2:] == [("commit", ""), ("close", "")]


def test_acknowledging_a_topic_moves_its_ledger_to_history_and_starts_the_next_epoch():
    log: list[tuple[str, str]] = []
    wh = _reading_warehouse(log, _ledger_replies(4, OLD_ID))
    new = wh.acknowledge_topic("polygon-market-data", NEW_ID, {0: 0, 1: 0})
    assert (new.epoch, new.topic_id) == (1, NEW_ID)
    writes = [s for k, s in log if k == "execute" and not s.startswith("SELECT")]
    assert [w.split(" (")[0].split(" WHERE")[0] for w in writes] == [
        "INSERT INTO kafka_offsets_history",
        "DELETE FROM kafka_offsets",
        "INSERT INTO kafka_topic_epochs",
        "INSERT INTO kafka_topic_epochs",
    ]
    move, delete = writes[0], writes[1]
    assert "FROM kafka_offsets WHERE kafka_topic = 'polygon-market-data'" in move
    assert delete == "DELETE FROM kafka_offsets WHERE kafka_topic = 'polygon-market-data'"
    assert f"'polygon-market-data', 1, 1, '{NEW_ID}', 0, '{OLD_ID}', " in writes[3]
    for statement in writes:
        assert not re.search(r"(?<!:):[a-z_]", statement), statement
        assert parse_problems(statement) == [], statement
    assert log[-2:] == [("commit", ""), ("close", "")]


def test_a_second_acknowledgement_of_the_same_epoch_gets_offset_conflict_and_rolls_back():
    log: list[tuple[str, str]] = []
    error = vertica_error(
        "23505",
        "Duplicate key values: 'kafka_topic=polygon-market-data,topic_epoch=1,kafka_partition=0'"
        " -- violates constraint 'public.kafka_topic_epochs.pk_kafka_topic_epochs'",
        "INSERT",
    )
    wh = _reading_warehouse(
        log, _ledger_replies(4, OLD_ID), fail_on="INSERT INTO kafka_topic_epochs", error=error
    )
    with pytest.raises(OffsetConflict, match="another acknowledgement"):
        wh.acknowledge_topic("polygon-market-data", NEW_ID, {0: 0})
    assert log[-2:] == [("rollback", ""), ("close", "")]
    assert ("commit", "") not in log


def test_an_acknowledged_epoch_starts_where_the_acknowledgement_says():
    log: list[tuple[str, str]] = []
    replies = _ledger_replies(0, None, epoch=(2, NEW_ID))
    replies["SELECT e.kafka_partition"] = (["kafka_partition", "next_offset"], [[0, 0], [1, 7]])
    wh = _reading_warehouse(log, replies)
    assert wh.topic_incarnation("polygon-market-data") == TopicIncarnation(
        "polygon-market-data", 2, NEW_ID
    )
    assert wh.next_offsets("polygon-market-data") == {0: 0, 1: 7}
    sent = [s for k, s in log if k == "execute" and s.startswith("SELECT e.kafka_partition")]
    assert "AND topic_epoch = 2" in sent[0]
    assert parse_problems(sent[0]) == []
