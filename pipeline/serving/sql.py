"""The statements both read sides run to follow a warehouse, written once.

Portable SQL (they run on Vertica and on DuckDB); every value is a bound ``?``. The DuckDB
materializer reads the warehouse it ``ATTACH``-es as ``src``, the Vertica side reads its
search path: :func:`statements` qualifies the table names for either.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.serving.store import RAW_PREFIX_CHARS
from pipeline.warehouse.schema import EVALUATION_COLUMNS

LEDGER_COLUMNS = (
    "kafka_topic, kafka_partition, start_offset, stop_offset, n_trades, n_duplicates, "
    "n_rejects, quality_passed, quality_summary, committed_ns, n_signals"
)
"""``kafka_offsets`` columns in the order :func:`pipeline.serving.catalog.ledger_batch` reads."""


LIVE_COLUMNS = (
    "timestamp_ns, seq, price, size, log_return, lee_mykland_stat, lm_xi, jump_detected, "
    "garch_sigma2, standardized_return, bns_stat, conditional_duration, acd_surprise, "
    "trade_intensity_zscore, trading_signal, input_partition AS kafka_partition, "
    "input_offset AS kafka_offset, lm_n, lm_n_rule, garch_params, acd_params, kernel_version, "
    "emitted_ns"
)
"""``live_signals`` columns served: the signal row's (its input position named as the batch
names a trade's) and the live path's provenance."""


@dataclass(frozen=True)
class Statements:
    """The follow-the-warehouse statements for one way of naming its tables."""

    ledger_since: str
    """Ledger rows stamped at or after a time (the refresh's slack included by the caller)."""
    ledger_after: str
    """One partition's ledger rows from an offset on (the exact re-read)."""
    ledger_row: str
    """Whether a ledger row ``(topic, partition, start, stop, committed_ns)`` exists.

    The newest batch the store followed, with its commit stamp: if it is gone, the file
    was restored or replaced under the same name and the store is rebuilt.
    """
    runs: str
    """Every ``signal_runs`` row (a few a day)."""
    failed: str
    """The newest failed expectations of one ``quality_results`` target."""
    newest_evaluation: str
    """The newest stored evaluation's id."""
    evaluation: str
    """The rows of one evaluation, pooled first."""
    first_day: str
    """The first trading day ``market_data`` holds (retention drops days before it)."""
    gaps: str
    """Feed gap rows of an offset range."""
    rejects: str
    """Rejected records of an offset range, raw text shortened."""
    live: str
    """The live path's signals of an offset range of its topic, as the store keeps them."""
    live_facts: str
    """Per symbol-day of an offset range of the live topic: rows, BUY, SELL, newest time."""


def statements(prefix: str = "") -> Statements:
    """Return the statements with ``prefix`` before each table name (``"src."`` or ``""``)."""
    p = prefix
    return Statements(
        ledger_since=(
            f"SELECT {LEDGER_COLUMNS} FROM {p}kafka_offsets WHERE committed_ns >= ? "  # noqa: S608 - constants
            "ORDER BY committed_ns, kafka_topic, kafka_partition, start_offset"
        ),
        ledger_after=(
            f"SELECT {LEDGER_COLUMNS} FROM {p}kafka_offsets WHERE kafka_topic = ? "  # noqa: S608
            "AND kafka_partition = ? AND start_offset >= ? ORDER BY start_offset"
        ),
        ledger_row=(
            f"SELECT COUNT(*) FROM {p}kafka_offsets WHERE kafka_topic = ? "  # noqa: S608
            "AND kafka_partition = ? AND start_offset = ? AND stop_offset = ? "
            "AND committed_ns = ?"
        ),
        runs=(
            "SELECT run_id, date, kernel_version, params, final, quality_passed, "  # noqa: S608
            f"quality_summary, computed_ns, content_hash, ledger_ends FROM {p}signal_runs"
        ),
        failed=(
            f"SELECT suite, expectation, observed FROM {p}quality_results WHERE target = ? "  # noqa: S608
            "AND NOT passed ORDER BY checked_ns DESC LIMIT 20"
        ),
        newest_evaluation=(
            f"SELECT evaluation_id FROM {p}signal_evaluation "  # noqa: S608
            "ORDER BY computed_ns DESC, evaluation_id LIMIT 1"
        ),
        evaluation=(
            f"SELECT {', '.join(EVALUATION_COLUMNS)} FROM {p}signal_evaluation "  # noqa: S608
            "WHERE evaluation_id = ? ORDER BY CASE WHEN symbol = '*' THEN 0 ELSE 1 END, "
            "symbol, horizon_s"
        ),
        first_day=f"SELECT MIN(trade_date) FROM {p}market_data",  # noqa: S608
        gaps=(
            "SELECT subscription, last_before_ns, first_after_ns, reason, detected_ns, "  # noqa: S608
            f"gap_id, repair FROM {p}feed_gaps WHERE kafka_topic = ? AND kafka_partition = ? "
            "AND kafka_offset >= ? AND kafka_offset < ?"
        ),
        rejects=(
            f"SELECT stage, reason, LEFT(raw, {RAW_PREFIX_CHARS}) AS raw, symbol, receipt_ns, "  # noqa: S608
            f"loaded_ns, kafka_partition, kafka_offset FROM {p}market_data_rejects "
            "WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ? "
            "AND kafka_offset < ?"
        ),
        live=(
            f"SELECT symbol, date, {LIVE_COLUMNS} FROM {p}live_signals "  # noqa: S608
            "WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ? "
            "AND kafka_offset < ?"
        ),
        live_facts=(
            "SELECT symbol, date, COUNT(*) AS n, "  # noqa: S608
            "SUM(CASE WHEN trading_signal = 'BUY' THEN 1 ELSE 0 END) AS n_buy, "
            "SUM(CASE WHEN trading_signal = 'SELL' THEN 1 ELSE 0 END) AS n_sell, "
            f"MAX(timestamp_ns) AS last_ns FROM {p}live_signals "
            "WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ? "
            "AND kafka_offset < ? GROUP BY symbol, date"
        ),
    )


__all__ = ["EVALUATION_COLUMNS", "LEDGER_COLUMNS", "LIVE_COLUMNS", "Statements", "statements"]
