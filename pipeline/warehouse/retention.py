"""Retention: how many days of raw trades and of signals the warehouse keeps.

A policy keeps the last ``raw_days`` New York trading dates of ``market_data`` and the last
``signal_days`` dates of the signal tables (``trading_signals``, ``symbol_day_metrics``,
``trade_intensity``, ``signal_runs``, ``live_signals``), counted in calendar days back from
``today`` (today included); ``None`` keeps everything. The offset ledger (``kafka_offsets``),
rejects, gaps and quality results are never dropped: the ledger is what stops a dropped range from
being loaded again, and the others are small audit trails.

- DuckDB: ``DELETE ... WHERE day < cutoff`` per table, all tables in one transaction.
- Vertica: ``DROP_PARTITIONS(table, first, last, 'true')`` per table
  (``sql/vertica/retention.sql``): a metadata operation on whole day partitions, with the
  force-split that ``CALENDAR_HIERARCHY_DAY`` grouping needs. Each call commits on its own;
  re-running is harmless.

Settings: ``MICROSTRUCTURE_RETAIN_RAW_DAYS``, ``MICROSTRUCTURE_RETAIN_SIGNAL_DAYS``.
"""

# ruff: noqa: S608 - table and column names come from the constants below, values are bound.
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.warehouse import queries as q

if TYPE_CHECKING:
    from pipeline.settings import Settings
    from pipeline.warehouse.base import Warehouse

RAW_TABLES: dict[str, str] = {q.MARKET_DATA: "trade_date"}
SIGNAL_TABLES: dict[str, str] = {
    q.TRADING_SIGNALS: "date",
    q.SYMBOL_DAY_METRICS: "date",
    q.TRADE_INTENSITY: "date",
    q.SIGNAL_RUNS: "date",
    # The live path's provisional history (migration 0015) is kept as long as the signals.
    q.LIVE_SIGNALS: "date",
}
# Lower bound of a Vertica DROP_PARTITIONS range: no trade predates the Unix epoch.
EARLIEST_DAY = date(1970, 1, 1)
RETENTION_SQL = Path(__file__).resolve().parents[2] / "sql" / "vertica" / "retention.sql"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days kept per class of table; None keeps everything."""

    raw_days: int | None = None
    signal_days: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("raw_days", self.raw_days), ("signal_days", self.signal_days)):
            if value is not None and value < 1:
                raise ConfigError(f"retention {name} is {value} and must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """Build the policy from ``MICROSTRUCTURE_RETAIN_*`` (``Settings``)."""
        return cls(raw_days=settings.retain_raw_days, signal_days=settings.retain_signal_days)

    def cutoffs(self, today: date) -> dict[str, date]:
        """Return, per table, the first day kept (earlier days are dropped).

        Parameters
        ----------
        today
            The New York date counted as the first kept day.

        Returns
        -------
        dict[str, date]
            Only tables whose class has a limit.
        """
        out: dict[str, date] = {}
        for days, tables in ((self.raw_days, RAW_TABLES), (self.signal_days, SIGNAL_TABLES)):
            if days is not None:
                first_kept = today - timedelta(days=days - 1)
                out.update(dict.fromkeys(tables, first_kept))
        return out


@dataclass(frozen=True)
class RetentionResult:
    """What a retention run removed: rows per table, before the cutoff shown."""

    cutoffs: dict[str, date]
    rows_dropped: dict[str, int]


def _day_column(table: str) -> str:
    return {**RAW_TABLES, **SIGNAL_TABLES}[table]


def apply_retention(warehouse: Warehouse, policy: RetentionPolicy, today: date) -> RetentionResult:
    """Drop the days that ``policy`` no longer keeps.

    Parameters
    ----------
    warehouse
        An open warehouse (DuckDB or Vertica), not read-only.
    policy
        Days to keep.
    today
        The New York date counted as the first kept day (a clock, injected).

    Returns
    -------
    RetentionResult
        The cutoffs and the rows removed per table.
    """
    cutoffs = policy.cutoffs(today)
    if not cutoffs:
        return RetentionResult({}, {})
    if warehouse.dialect == "vertica":
        dropped = _drop_partitions(warehouse, cutoffs)
    else:
        dropped = _delete_days(warehouse, cutoffs)
    return RetentionResult(cutoffs, dropped)


def _delete_days(warehouse: Warehouse, cutoffs: dict[str, date]) -> dict[str, int]:
    out: dict[str, int] = {}
    with warehouse.transaction() as s:
        for table, cutoff in cutoffs.items():
            rows = s.execute(f"DELETE FROM {table} WHERE {_day_column(table)} < ?", (cutoff,))
            out[table] = int(rows[0][0]) if rows else 0
    return out


def _drop_partitions(warehouse: Any, cutoffs: dict[str, date]) -> dict[str, int]:
    from pipeline.warehouse.vertica_backend import read_named_sql

    statements = read_named_sql(RETENTION_SQL)
    out: dict[str, int] = {}
    for table, cutoff in cutoffs.items():
        last_dropped = cutoff - timedelta(days=1)
        with warehouse.transaction() as s:
            count = s.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {_day_column(table)} < :cutoff",
                {"cutoff": cutoff},
            )
        out[table] = int(count[0][0]) if count else 0
        if out[table]:
            with warehouse.transaction() as s:
                s.execute(statements[table], {"first_day": EARLIEST_DAY, "last_day": last_dropped})
    return out
