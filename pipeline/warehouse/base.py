"""The warehouse port: what the pipeline, Dagster and the commands need from a warehouse.

Two backends implement :class:`Warehouse`: the embedded DuckDB file
(:mod:`pipeline.warehouse.duckdb_backend`, the default) and Vertica (issue 6,
``vertica_backend.py``). Only :func:`pipeline.warehouse.open_warehouse` chooses one.

The contract every backend keeps (architecture.md section 4):

- offsets are data: :meth:`Warehouse.load_batch` writes a microbatch's trades, quotes,
  aggregates, rejects, gaps and its ledger row in ONE transaction; a second loader of the
  same range raises :class:`~pipeline.errors.OffsetConflict` and leaves nothing behind;
- offsets belong to one topic: each ledger row records Kafka's topic id and the epoch of
  the topic name (:mod:`pipeline.warehouse.topic_identity`); a batch of another topic id
  than the current epoch's raises :class:`~pipeline.errors.TopicRecreatedError`, and only
  :meth:`Warehouse.acknowledge_topic` starts a new epoch;
- a trade is stored once per dedup key ``(symbol, trade_date, exchange, trf_id,
  trade_id)``, whether it is repeated inside a batch or across batches; likewise a quote
  per ``(symbol, sip_timestamp_ns, sequence_number)`` (one without a sequence number has
  no key and is stored as sent) and a bar per ``(symbol, kind, start_ns)``; a live signal
  or live reject (the trading-signals topic) per input key ``(input_topic, input_partition,
  input_offset)``;
- :meth:`Warehouse.publish_signals` replaces one day of the three signal tables and
  adds its ``signal_runs`` row in one transaction (publish of stage-audit-publish).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pipeline.warehouse.topic_identity import TopicIncarnation

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.microbatch import Microbatch
    from pipeline.warehouse.finality import LedgerFrontier


class SqlSession(Protocol):
    """One open transaction: statements with bound values, nothing else."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with bound values and return its rows (empty for DDL/DML)."""
        ...


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of ``schema_migrations``."""

    version: str
    name: str
    checksum: str
    applied_ns: int


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    """The ingest suite's verdict on a batch, stored on its ledger row.

    ``passed`` is None when no suite ran. ``results`` are the per-expectation rows
    written to ``quality_results`` in the same transaction.
    """

    passed: bool | None
    summary_json: str | None = None
    results: Sequence[QualityResultRow] = ()


@dataclass(frozen=True, slots=True)
class QualityResultRow:
    """One evaluated expectation (a row of ``quality_results``)."""

    suite: str
    target: str
    expectation: str
    passed: bool
    observed_json: str | None


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one committed microbatch changed."""

    topic: str
    partition: int
    start_offset: int
    stop_offset: int
    n_messages: int
    n_trades: int
    n_duplicates: int
    n_rejects: int
    n_gaps: int
    committed_ns: int
    n_quotes: int = 0
    n_quote_duplicates: int = 0
    n_aggregates: int = 0
    n_aggregate_duplicates: int = 0
    n_signals: int = 0
    n_signal_duplicates: int = 0
    n_signal_rejects: int = 0


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """The ledger's view of one topic-partition."""

    topic: str
    partition: int
    next_offset: int
    n_batches: int
    n_messages: int
    n_trades: int
    n_duplicates: int
    n_rejects: int
    n_gaps: int
    last_committed_ns: int


@dataclass(frozen=True, slots=True)
class SignalRun:
    """One ``signal_runs`` row: what a published day was computed from and by what."""

    run_id: str
    day: date
    n_symbols: int
    n_trades: int
    n_buckets: int
    kernel_version: str
    params_json: str
    input_offsets_json: str
    content_hash: str
    final: bool
    computed_ns: int
    ingested_through_ns: int | None = None
    quality_passed: bool | None = None
    quality_summary_json: str | None = None
    # The ledger end of every partition in the snapshot read (finality.LedgerFrontier.ends_json).
    ledger_ends_json: str | None = None
    # Per-symbol input offsets (JSON) for symbol_day_metrics.input_offsets.
    symbol_input_offsets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Rows of one published day."""

    day: date
    run_id: str
    n_trade_signals: int
    n_symbol_days: int
    n_intensity_buckets: int
    n_replaced: int


@dataclass(frozen=True, slots=True)
class InDatabaseRun:
    """What a warehouse that computes signals itself records for one run of a day."""

    run_id: str
    kernel_version: str
    params_json: str
    final: bool
    computed_ns: int
    ingested_through_ns: int | None = None
    ledger_ends_json: str | None = None


@dataclass(frozen=True, slots=True)
class DayInput:
    """One New York day's trades and the ledger they were read with (one snapshot)."""

    trades: pd.DataFrame
    frontier: LedgerFrontier


@dataclass(frozen=True, slots=True)
class SignalAudit:
    """Counts taken on a day's signals computed in the warehouse, before they are committed.

    The signal suite's checks (``pipeline.quality.SIGNAL_CHECKS``) in numbers a database can
    count without shipping the rows out: :func:`pipeline.quality.audit_report` judges them.

    Attributes
    ----------
    n_rth_trades, n_rth_symbols
        Regular-hours trades and symbols of the day in ``market_data``.
    n_signal_rows
        ``trading_signals`` rows written by this run.
    n_bad_labels
        Of those, rows whose label is not BUY/SELL/HOLD (or NULL).
    n_null_flags
        Of those, rows whose ``jump_detected`` is NULL.
    n_nonfinite
        Of those, rows with an infinite statistic (NaN and NULL mean "not defined").
    n_metric_rows, n_metric_symbols
        ``symbol_day_metrics`` rows written, and distinct symbols among them.
    n_bucket_rows, n_bucket_keys
        ``trade_intensity`` rows written, and distinct ``(symbol, bucket)`` among them.
    content_sum
        An order-free checksum of the signal rows (``signal_runs.content_hash``).
    """

    n_rth_trades: int
    n_rth_symbols: int
    n_signal_rows: int
    n_bad_labels: int
    n_null_flags: int
    n_nonfinite: int
    n_metric_rows: int
    n_metric_symbols: int
    n_bucket_rows: int
    n_bucket_keys: int
    content_sum: int


@dataclass(frozen=True, slots=True)
class InDatabaseOutcome:
    """The audit of an in-database signals run, and what it published (None if refused)."""

    audit: SignalAudit
    published: PublishResult | None


# Decides, inside the still-open transaction, whether audited signals may be committed:
# (passed, the verdict's JSON summary for signal_runs.quality_summary).
AuditJudge = Callable[[SignalAudit], tuple[bool, str | None]]


@runtime_checkable
class SignalTables(Protocol):
    """The three frames of a signals computation (``pipeline.signals.assemble.SignalFrames``)."""

    @property
    def trade_signals(self) -> pd.DataFrame:
        """Per-trade rows (table ``trading_signals``)."""
        ...

    @property
    def symbol_day_metrics(self) -> pd.DataFrame:
        """Per symbol-day rows (table ``symbol_day_metrics``)."""
        ...

    @property
    def intensity_buckets(self) -> pd.DataFrame:
        """Per one-minute bucket rows (table ``trade_intensity``)."""
        ...


class Warehouse(Protocol):
    """The warehouse port. Every method opens and closes what it needs (short connections)."""

    url: str
    dialect: str
    read_only: bool

    def migrate(self) -> list[AppliedMigration]:
        """Apply pending migrations; return the ones applied now (empty when current)."""
        ...

    def applied_migrations(self) -> list[AppliedMigration]:
        """Return the rows of ``schema_migrations`` in version order."""
        ...

    def transaction(self) -> AbstractContextManager[SqlSession]:
        """Open a transaction: COMMIT on normal exit, ROLLBACK and re-raise on any error."""
        ...

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Return the first offset not yet loaded in the topic's current epoch, None if none.

        ``max(stop_offset)`` of the epoch's rows (:meth:`topic_incarnation`).
        """
        ...

    def next_offsets(self, topic: str) -> dict[int, int]:
        """Return :meth:`next_offset` of every partition of the current epoch the ledger knows."""
        ...

    def topic_incarnation(self, topic: str) -> TopicIncarnation | None:
        """Return the ledger's current epoch of ``topic`` and its Kafka id, None if never loaded."""
        ...

    def load_batch(
        self,
        batch: Microbatch,
        *,
        expected_start: int,
        run_id: str,
        quality: QualityVerdict | None = None,
        topic_id: str | None = None,
    ) -> LoadResult:
        """Write a microbatch and its ledger row in one transaction.

        Raises :class:`~pipeline.errors.OffsetConflict` (and changes nothing) when the
        ledger no longer ends at ``expected_start`` or another loader wrote the range, and
        :class:`~pipeline.errors.TopicRecreatedError` (changing nothing) when ``topic_id``
        (Kafka's id of the topic read) is not the current epoch's. None: the caller does not
        know the id; the row records none and nothing is compared.
        """
        ...

    def acknowledge_topic(
        self, topic: str, topic_id: str, start_offsets: Mapping[int, int]
    ) -> TopicIncarnation:
        """Start a new epoch of ``topic``: ``topic_id`` loads from ``start_offsets`` on.

        One zero-span ledger row per partition, in one transaction; earlier rows stay as
        history. Returns the current incarnation unchanged when it already has ``topic_id``.
        Raises :class:`~pipeline.errors.WarehouseError` when the topic was never loaded.
        """
        ...

    def partition_progress(self, topic: str | None = None) -> list[PartitionProgress]:
        """Summarise the ledger per topic-partition."""
        ...

    def ledger_frontier(self) -> LedgerFrontier:
        """Return every partition's ledger end and latest SIP time, in one snapshot."""
        ...

    def failed_batches(self, start_ns: int, end_ns: int) -> list[str]:
        """Return ``topic:partition:[start,stop)`` of failed-gate batches overlapping a window."""
        ...

    def read_day_trades(self, day: date, *, regular_hours_only: bool = True) -> pd.DataFrame:
        """Return one New York day's trades in stable order (symbol, timestamp_ns, arrival)."""
        ...

    def read_day(self, day: date) -> DayInput:
        """Return the day's regular-hours trades with a ledger frontier they all fall within.

        The frontier is read in the trades' snapshot, or before them where the warehouse
        has no snapshot across statements: the trades then hold at least what it counts.
        """
        ...

    def publish_signals(self, day: date, frames: SignalTables, run: SignalRun) -> PublishResult:
        """Replace ``day`` in the signal tables and add its ``signal_runs`` row, atomically."""
        ...

    # True when the warehouse computes the signal tables itself (Vertica, with the UDx):
    # the signal assets call publish_signals_in_database instead of computing frames.
    computes_signals_in_database: bool

    def publish_signals_in_database(
        self, day: date, run: InDatabaseRun, accept: AuditJudge
    ) -> InDatabaseOutcome:
        """Compute ``day`` in the warehouse, audit it, and commit it only if ``accept`` says so.

        Raises :class:`~pipeline.errors.WarehouseError` on a backend that cannot
        (``computes_signals_in_database`` is False).
        """
        ...

    def record_quality(self, run_id: str, rows: Sequence[QualityResultRow]) -> None:
        """Store quality verdicts that are not part of a load (e.g. a blocked signals day)."""
        ...

    def table_counts(self) -> dict[str, int]:
        """Return the row count of every platform table."""
        ...

    def query_frame(self, name: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run one named read statement of :mod:`pipeline.warehouse.queries`."""
        ...
