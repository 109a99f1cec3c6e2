"""The read side of the embedded warehouse: a sorted, indexed snapshot for serving.

The MCP server must never hold the DuckDB file: a read-only connection takes a shared
file lock, and DuckDB lets a writer in only when nobody holds the file, so a server
that kept a connection open would starve ingest (and a connection per request costs
about 10 ms just to open). So the server reads through a :class:`WarehouseReader`:

1. it notices a new version of the file (``stat`` of the file and its WAL, at most
   every ``check_interval_s``) and, in a background thread, ``ATTACH``-es it
   ``READ_ONLY``, copies the tables it serves into a private in-memory DuckDB and
   ``DETACH``-es at once; the lock is held only for the copy (about 0.2 s for 300,000
   trades), with bounded retries while a writer holds it, and refreshes are spaced so
   that a writer keeps most of the time (``lock_share``) and rebuilding takes a bounded
   share of a core (``cpu_share``);
2. after the source is released it sorts the copy by ``(symbol, timestamp_ns)``, numbers
   the rows (``rid``) and keeps in-process arrays of timestamps per symbol, per signal
   type and for jumps, so that any time window maps to an exact ``rid`` range by binary
   search. Every page is then one range scan of at most ``limit`` rows (about 1 ms),
   never a top-N over a window (8-10 ms for 75,000 rows);
3. small tables (signal runs, gaps, rejects, ledger quality per symbol-day) are loaded
   into Python structures so that provenance and completeness cost no query.

Queries are module constants with every value bound, one statement each; identifiers
never come from input. The snapshot connection disables external access once built, so
even a subverted statement could neither reach the warehouse file nor any other file.
Answers are as fresh as the last refresh (``Snapshot.taken_ns``), which callers report.

Only DuckDB is served this way; a Vertica read side (a SELECT-only user in a capped
resource pool, queried directly) is a separate piece of work.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import numpy as np

from pipeline._typing import Int64Array
from pipeline.errors import ConfigError, WarehouseError

logger = logging.getLogger(__name__)

SIGNAL_TYPES: tuple[str, ...] = ("BUY", "SELL", "HOLD")
_SIGNAL_CODES: dict[str, int] = {"HOLD": 0, "BUY": 1, "SELL": 2}
# One New York regular session: 09:30-16:00 = 390 one-minute buckets.
SESSION_MINUTES = 390
_MINUTE_NS = 60_000_000_000


class WarehouseUnavailable(WarehouseError):
    """The warehouse file is missing or has no tables to serve yet."""


class WarehouseBusy(WarehouseError):
    """A writer held the warehouse file through every retry and no snapshot exists yet."""


# --- source tables ------------------------------------------------------------------------
# Columns copied from each source table. Required columns must exist; optional ones are
# NULL when the file predates them (the schema is still growing), so an older warehouse
# can still be served.

_REQUIRED: dict[str, tuple[str, ...]] = {
    "market_data": (
        "symbol",
        "timestamp_ns",
        "price",
        "size",
        "exchange",
        "conditions",
        "trade_date",
        "in_regular_hours",
        "ns_from_open",
        "kafka_partition",
        "kafka_offset",
        "loaded_ns",
    ),
    "trading_signals": (
        "symbol",
        "date",
        "seq",
        "timestamp_ns",
        "price",
        "size",
        "log_return",
        "lee_mykland_stat",
        "lm_xi",
        "jump_detected",
        "garch_sigma2",
        "standardized_return",
        "bns_stat",
        "conditional_duration",
        "acd_surprise",
        "trade_intensity_zscore",
        "trading_signal",
        "kafka_partition",
        "kafka_offset",
        "kernel_version",
        "run_id",
    ),
    "symbol_day_metrics": ("symbol", "date", "n_trades", "kernel_version", "params", "run_id"),
    "signal_runs": ("run_id", "date", "kernel_version", "params", "final", "computed_ns"),
    "kafka_offsets": (
        "kafka_topic",
        "kafka_partition",
        "start_offset",
        "stop_offset",
        "n_messages",
        "n_trades",
        "committed_ns",
    ),
    "market_data_rejects": ("stage", "reason", "kafka_partition", "kafka_offset", "loaded_ns"),
    "feed_gaps": ("subscription", "last_before_ns", "first_after_ns", "reason", "detected_ns"),
}
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "market_data": (),
    "trading_signals": (),
    "symbol_day_metrics": (
        "n_returns",
        "first_timestamp_ns",
        "last_timestamp_ns",
        "vwap",
        "bns_m",
        "bns_rv",
        "bns_bv",
        "bns_tq",
        "bns_qq",
        "bns_rj",
        "bns_z",
        "bns_p_value",
        "bns_jump",
        "garch_omega",
        "garch_alpha",
        "garch_beta",
        "garch_loglik",
        "garch_scale",
        "garch_converged",
        "acd_exp_omega",
        "acd_exp_alpha",
        "acd_exp_beta",
        "acd_exp_loglik",
        "acd_weibull_omega",
        "acd_weibull_alpha",
        "acd_weibull_beta",
        "acd_weibull_gamma",
        "acd_weibull_loglik",
        "acd_exp_at_boundary",
        "acd_weibull_at_boundary",
        "lm_jump_count",
        "notes",
    ),
    "signal_runs": (
        "n_symbols",
        "n_trades",
        "quality_passed",
        "quality_summary",
        "content_hash",
        "ingested_through_ns",
    ),
    "kafka_offsets": (
        "n_duplicates",
        "n_rejects",
        "n_gaps",
        "quality_passed",
        "quality_summary",
        "run_id",
    ),
    "market_data_rejects": ("symbol", "receipt_ns", "raw"),
    "feed_gaps": (),
}
# Rejected raw text is untrusted and can be large: keep a short prefix only.
_RAW_PREFIX_CHARS = 160

# --- snapshot tables and the queries the tools run ------------------------------------------

TRADES_PAGE_SQL = "SELECT rid, row_json FROM trades WHERE rid >= ? AND rid < ?"
"""Trades with their signals (``TradeRow`` JSON) for one contiguous ``rid`` range."""

SIGNALS_PAGE_SQL = "SELECT rid, row_json FROM signals WHERE rid >= ? AND rid < ?"
"""Signal rows (``SignalRow`` JSON) of one contiguous ``rid`` range, every type."""

SIGNALS_OF_TYPE_PAGE_SQL = (
    "SELECT rid, row_json FROM signals WHERE rid >= ? AND rid <= ? AND signal_code = ?"
)
"""Signal rows of one type between two ``rid`` bounds (exactly the page)."""

JUMPS_PAGE_SQL = "SELECT rid, row_json FROM signals WHERE rid >= ? AND rid <= ? AND jump_detected"
"""Lee-Mykland jump rows between two ``rid`` bounds (exactly the page)."""

METRICS_SQL = "SELECT date, row_json FROM metrics WHERE symbol = ? AND date >= ? AND date <= ?"
"""Daily statistics (``DayMetrics`` JSON) of one symbol over an inclusive day range."""

CHART_SIGNALS_SQL = "SELECT row_json FROM signals WHERE symbol = ? AND date = ? ORDER BY rid"
"""Every signal row (``SignalRow`` JSON) of one symbol-day, in time order (a chart's data)."""

EVALUATION_COLUMNS: tuple[str, ...] = (
    "evaluation_id",
    "computed_ns",
    "start_date",
    "end_date",
    "symbol",
    "horizon_s",
    "n_signals",
    "n_buy",
    "n_sell",
    "n_effective",
    "n_days",
    "hit_rate",
    "mean_bp",
    "sd_bp",
    "t_stat",
    "random_n",
    "random_hit_rate",
    "random_mean_bp",
    "random_sd_bp",
    "random_t_stat",
    "edge_bp",
    "edge_t_stat",
    "edge_p_value",
    "edge_p_adjusted",
    "verdict",
    "min_signals",
    "random_per_signal",
    "seed",
    "kernel_version",
    "signal_runs",
)
"""Columns of ``signal_evaluation`` (``microstructure evaluate``) the server copies and serves."""

EVALUATION_SQL = (
    f"SELECT {', '.join(EVALUATION_COLUMNS)} FROM evaluation "  # noqa: S608 - constants
    "WHERE evaluation_id = (SELECT evaluation_id FROM evaluation "
    "ORDER BY computed_ns DESC, evaluation_id LIMIT 1) AND (? IS NULL OR symbol IN (?, '*')) "
    "ORDER BY symbol <> '*', symbol, horizon_s"
)
"""The newest evaluation's rows (pooled ``*`` first), optionally one symbol and the pool."""

LATEST_TRADES_SQL = "SELECT rid, row_json FROM trades WHERE rid = ANY(?)"
"""The rows at the given ``rid`` values (the newest trade of each asked symbol)."""

LATEST_SIGNALS_SQL = "SELECT rid, row_json FROM signals WHERE rid = ANY(?)"
"""Signal rows at the given ``rid`` values (newest signal, newest BUY/SELL per symbol)."""

REJECT_SAMPLES_SQL = (
    "SELECT stage, reason, raw, receipt_ns, kafka_partition, kafka_offset FROM rejects "
    "WHERE (symbol = ? OR symbol IS NULL) AND reject_date = ? LIMIT ?"
)
"""A few rejects of one symbol-day (and unattributed ones); the caller orders them.

No ORDER BY: the table is kept in receipt order, and a top-N costs more than the rows.
"""


# --- in-process structures ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceVersion:
    """What identifies one committed state of the warehouse file (file and WAL stats)."""

    mtime_ns: int
    size: int
    wal_mtime_ns: int
    wal_size: int


def source_version(path: Path) -> SourceVersion | None:
    """Return the version of the file at ``path`` (None if it does not exist).

    Parameters
    ----------
    path
        The DuckDB file. Its ``.wal`` sibling is part of the version: commits land
        there until a checkpoint.

    Returns
    -------
    SourceVersion | None
        Stats of the file and its WAL.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    wal = path.with_name(path.name + ".wal")
    try:
        ws = wal.stat()
        wal_mtime, wal_size = ws.st_mtime_ns, ws.st_size
    except FileNotFoundError:
        wal_mtime, wal_size = 0, 0
    return SourceVersion(st.st_mtime_ns, st.st_size, wal_mtime, wal_size)


@dataclass(frozen=True, slots=True)
class OrderedIndex:
    """Timestamps of a sorted row set and where each row lives in its snapshot table.

    ``ts`` is ascending. Row ``i`` is at ``rid = lo + i`` when ``rids`` is None (a
    contiguous block), else at ``rids[i]`` (a subset, e.g. the BUY rows of a symbol).
    """

    ts: Int64Array
    lo: int = 0
    rids: Int64Array | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def window(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """Return positions ``[a, b)`` of the rows with ``start_ns <= ts < end_ns``."""
        a = int(np.searchsorted(self.ts, start_ns, side="left"))
        b = int(np.searchsorted(self.ts, end_ns, side="left"))
        return a, max(a, b)

    def rid(self, position: int) -> int:
        """Return the snapshot ``rid`` of the row at ``position``."""
        return self.lo + position if self.rids is None else int(self.rids[position])

    def key(self, position: int) -> tuple[int, int]:
        """Return a stable key of a row: its timestamp and its rank among equal timestamps.

        Keys survive a refresh (``rid`` values do not) as long as no row with that very
        timestamp arrives later, which holds for history.
        """
        ts = int(self.ts[position])
        first = int(np.searchsorted(self.ts, ts, side="left"))
        return ts, position - first

    def position(self, key: tuple[int, int]) -> int:
        """Return the position of the row with ``key`` (clamped to the rows present)."""
        ts, rank = key
        first = int(np.searchsorted(self.ts, ts, side="left"))
        last = int(np.searchsorted(self.ts, ts, side="right"))
        return min(first + max(rank, 0), last)


_EMPTY_I64: Int64Array = np.zeros(0, dtype=np.int64)
_EMPTY_INDEX = OrderedIndex(_EMPTY_I64)


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """What the snapshot knows about one symbol without a query."""

    symbol: str
    n_trades: int
    first_ns: int | None
    last_ns: int | None
    days: tuple[date, ...]
    signal_days: tuple[date, ...]
    trades: OrderedIndex
    signals: OrderedIndex
    by_type: Mapping[str, OrderedIndex]
    jumps: OrderedIndex


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The current (latest) signals run of one day."""

    run_id: str
    date: date
    kernel_version: str
    params: Mapping[str, Any]
    final: bool
    quality_passed: bool | None
    quality_summary: str | None
    computed_ns: int
    content_hash: str | None


@dataclass(frozen=True, slots=True)
class GapInfo:
    """A window in which the feed may have missed trades."""

    subscription: str
    last_before_ns: int | None
    first_after_ns: int | None
    reason: str
    detected_ns: int

    def applies_to(self, symbol: str) -> bool:
        """Return True if the gap's subscription covers ``symbol`` (``T.SYM``, ``T.*``, ``*``)."""
        sub = self.subscription
        return sub in ("*", "T.*") or sub == f"T.{symbol}" or sub == symbol

    def overlap_ns(self, start_ns: int, end_ns: int) -> int:
        """Return how much of ``[start_ns, end_ns)`` the gap covers (open ends: the window)."""
        lo = start_ns if self.last_before_ns is None else max(start_ns, self.last_before_ns)
        hi = end_ns if self.first_after_ns is None else min(end_ns, self.first_after_ns)
        return max(0, hi - lo)


@dataclass(frozen=True, slots=True)
class DayQuality:
    """Ledger facts about the batches that loaded one symbol-day."""

    n_batches: int
    n_failed: int
    n_unchecked: int
    failed_summaries: tuple[str, ...]
    failed_targets: tuple[str, ...]
    n_duplicates: int
    n_rejects: int
    last_commit_ns: int | None
    minutes_with_trades: int
    n_trades: int
    first_ns: int | None
    last_ns: int | None


@dataclass(frozen=True, slots=True)
class RejectIndex:
    """Receipt times and reasons of rejects, by symbol ("" = not attributable to one)."""

    ts: Mapping[str, Int64Array]
    reasons: Mapping[str, tuple[str, ...]]

    def count(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Count rejects of ``symbol`` received in ``[start_ns, end_ns)``, by reason."""
        out: dict[str, int] = {}
        ts = self.ts.get(symbol)
        if ts is None:
            return out
        a = int(np.searchsorted(ts, start_ns, side="left"))
        b = int(np.searchsorted(ts, end_ns, side="left"))
        for reason in self.reasons[symbol][a:b]:
            out[reason] = out.get(reason, 0) + 1
        return out


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows read from the snapshot, newest first, each as its answer JSON."""

    rows: list[str]
    total: int
    """Rows in the whole window."""
    first_position: int
    """Position (in the window's index) of the oldest row of the page."""
    remaining: int
    """Rows of the window older than this page."""
    query_s: float


@dataclass
class Snapshot:
    """A private, sorted copy of the warehouse and its in-process indexes.

    Use :meth:`cursor` for queries (one per call: DuckDB connections are not shared
    between threads). The snapshot is immutable once published.
    """

    conn: duckdb.DuckDBPyConnection
    version: SourceVersion
    taken_ns: int
    copy_s: float
    build_s: float
    symbols: Mapping[str, SymbolInfo]
    runs: Mapping[date, RunInfo]
    gaps: tuple[GapInfo, ...]
    rejects: RejectIndex
    day_quality: Mapping[tuple[str, date], DayQuality]
    last_commit_ns: int | None
    n_batches: int
    n_trades: int
    n_signals: int
    has_quality_results: bool
    latest: Mapping[str, Mapping[str, str]] = field(default_factory=dict[str, Mapping[str, str]])
    """Per symbol, the newest trade, signal and BUY/SELL rows (see :func:`read_latest`)."""
    daily_bns: Mapping[str, tuple[tuple[Any, ...], ...]] = field(
        default_factory=dict[str, tuple[tuple[Any, ...], ...]]
    )
    failed_expectations: Mapping[str, tuple[tuple[str, str, str | None], ...]] = field(
        default_factory=dict[str, tuple[tuple[str, str, str | None], ...]]
    )
    """Failed ``quality_results`` rows by target (a date or a ledger batch), newest first."""
    """Per symbol, ``(date, bns_z, bns_p_value, bns_jump, lm_jump_count)`` by day."""
    has_evaluation: bool = False
    """The warehouse has a ``signal_evaluation`` table (copied as ``evaluation``)."""
    _in_flight: int = 0
    _retired: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    _cursors: list[duckdb.DuckDBPyConnection] = field(
        default_factory=list[duckdb.DuckDBPyConnection]
    )
    memo: dict[Any, Any] = field(default_factory=dict[Any, Any])
    """Answers' derived metadata (provenance, completeness) by key, valid for this snapshot."""

    @property
    def newest_trade_ns(self) -> int | None:
        """Return the newest trade time over all symbols (None when empty)."""
        last = [s.last_ns for s in self.symbols.values() if s.last_ns is not None]
        return max(last) if last else None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """Return this thread's cursor on the snapshot (created once; do not close it).

        DuckDB connections must not be shared between threads; one per thread, kept for
        the snapshot's life, saves creating one per query.
        """
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self.conn.cursor()
            self._local.cursor = cur
            with self._lock:
                self._cursors.append(cur)
        return cur

    def remember(self, key: Any, value: Any) -> Any:
        """Store ``value`` under ``key`` in :attr:`memo` (bounded) and return it."""
        if len(self.memo) >= 4096:
            self.memo.clear()  # rare: keys are per symbol and window
        self.memo[key] = value
        return value

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _exit(self) -> None:
        with self._lock:
            self._in_flight -= 1
            close = self._retired and self._in_flight == 0
        if close:
            self._close()

    def retire(self) -> None:
        """Close the snapshot once the calls still using it are done."""
        with self._lock:
            self._retired = True
            close = self._in_flight == 0
        if close:
            self._close()

    def _close(self) -> None:
        with self._lock:
            cursors, self._cursors = self._cursors, []
        for conn in (*cursors, self.conn):
            try:
                conn.close()
            except duckdb.Error:
                logger.debug("snapshot connection was already closed")


def _fetch(snap: Snapshot, sql: str, params: Sequence[Any]) -> tuple[list[tuple[Any, ...]], float]:
    t0 = time.perf_counter()
    rows = snap.cursor().execute(sql, list(params)).fetchall()
    return rows, time.perf_counter() - t0


# --- reading pages ----------------------------------------------------------------------------


def _page(
    snap: Snapshot,
    sql: str,
    index: OrderedIndex,
    window: tuple[int, int],
    limit: int,
    extra: Sequence[Any] = (),
    contiguous: bool = True,
) -> Page:
    a, b = window
    first = max(a, b - limit)
    if first >= b:
        return Page([], b - a, b, 0, 0.0)
    lo_rid, hi_rid = index.rid(first), index.rid(b - 1)
    params: list[Any] = [lo_rid, hi_rid + 1] if contiguous else [lo_rid, hi_rid, *extra]
    rows, elapsed = _fetch(snap, sql, params)
    # Newest first. Sorting a page here is cheaper than an ORDER BY, whose sort operator
    # costs about 0.4 ms even for 50 rows; rid is column 0.
    rows.sort(key=_rid_key, reverse=True)
    return Page([str(r[1]) for r in rows], b - a, first, first - a, elapsed)


def _rid_key(row: tuple[Any, ...]) -> int:
    return int(row[0])


def read_trades(snap: Snapshot, info: SymbolInfo, window: tuple[int, int], limit: int) -> Page:
    """Read the newest ``limit`` trades (with their signals) of a window of positions.

    Parameters
    ----------
    snap
        The snapshot.
    info
        The symbol.
    window
        Positions ``[a, b)`` in ``info.trades`` (from :meth:`OrderedIndex.window`, or
        shortened by a cursor).
    limit
        Most rows to return.

    Returns
    -------
    Page
        ``TradeRow`` JSON texts, newest first.
    """
    return _page(snap, TRADES_PAGE_SQL, info.trades, window, limit)


def read_signals(
    snap: Snapshot,
    info: SymbolInfo,
    signal_type: str | None,
    window: tuple[int, int],
    limit: int,
) -> Page:
    """Read the newest ``limit`` signal rows of one type (None: every type) in a window.

    Parameters
    ----------
    snap
        The snapshot.
    info
        The symbol.
    signal_type
        ``BUY``, ``SELL``, ``HOLD`` or None for all.
    window
        Positions in ``info.signals`` (None type) or ``info.by_type[signal_type]``.
    limit
        Most rows to return.

    Returns
    -------
    Page
        ``SignalRow`` JSON texts, newest first.
    """
    if signal_type is None:
        return _page(snap, SIGNALS_PAGE_SQL, info.signals, window, limit)
    return _page(
        snap,
        SIGNALS_OF_TYPE_PAGE_SQL,
        info.by_type[signal_type],
        window,
        limit,
        extra=(_SIGNAL_CODES[signal_type],),
        contiguous=False,
    )


def read_jumps(snap: Snapshot, info: SymbolInfo, window: tuple[int, int], limit: int) -> Page:
    """Read the newest ``limit`` Lee-Mykland jump rows in a window of ``info.jumps``.

    Parameters
    ----------
    snap
        The snapshot.
    info
        The symbol.
    window
        Positions in ``info.jumps``.
    limit
        Most rows to return.

    Returns
    -------
    Page
        ``SignalRow`` JSON texts, newest first.
    """
    return _page(snap, JUMPS_PAGE_SQL, info.jumps, window, limit, contiguous=False)


def read_metrics(
    snap: Snapshot, symbol: str, first_day: date, last_day: date
) -> tuple[list[tuple[date, str]], float]:
    """Read daily statistics of ``symbol`` for ``first_day..last_day`` (inclusive).

    Parameters
    ----------
    snap
        The snapshot.
    symbol
        A symbol the snapshot knows.
    first_day, last_day
        Inclusive New York trading days.

    Returns
    -------
    tuple[list[tuple[date, str]], float]
        ``(day, DayMetrics JSON)`` newest day first, and the query seconds.
    """
    rows, elapsed = _fetch(snap, METRICS_SQL, (symbol, first_day, last_day))
    rows.sort(key=_first_key, reverse=True)  # newest day first (date is column 0)
    return [(r[0], str(r[1])) for r in rows], elapsed


def _first_key(row: tuple[Any, ...]) -> Any:
    return row[0]


def read_chart(snap: Snapshot, symbol: str, day: date) -> tuple[list[str], str | None, float]:
    """Read what a chart of one symbol-day draws: its signal rows and its daily statistics.

    Parameters
    ----------
    snap
        The snapshot.
    symbol
        A symbol the snapshot knows.
    day
        A New York trading day.

    Returns
    -------
    tuple[list[str], str | None, float]
        ``SignalRow`` JSON texts in time order, the ``DayMetrics`` JSON (None if the day has
        none) and the query seconds.
    """
    rows, t1 = _fetch(snap, CHART_SIGNALS_SQL, (symbol, day))
    metrics, t2 = _fetch(snap, METRICS_SQL, (symbol, day, day))
    return [str(r[0]) for r in rows], (str(metrics[0][1]) if metrics else None), t1 + t2


def read_evaluation(snap: Snapshot, symbol: str | None) -> tuple[list[dict[str, Any]], float]:
    """Read the newest signal evaluation (``microstructure evaluate``).

    Parameters
    ----------
    snap
        The snapshot.
    symbol
        Only this symbol's rows and the pooled ``*`` rows; every row when None.

    Returns
    -------
    tuple[list[dict[str, Any]], float]
        Rows keyed by :data:`EVALUATION_COLUMNS` (empty when no evaluation is stored, or
        the warehouse predates the table), and the query seconds.
    """
    if not snap.has_evaluation:
        return [], 0.0
    rows, elapsed = _fetch(snap, EVALUATION_SQL, (symbol, symbol))
    return [dict(zip(EVALUATION_COLUMNS, r, strict=True)) for r in rows], elapsed


def read_latest(
    snap: Snapshot, infos: Sequence[SymbolInfo]
) -> tuple[dict[str, dict[str, str]], float]:
    """Read the newest trade, newest signal and newest BUY/SELL of each symbol.

    Parameters
    ----------
    snap
        The snapshot.
    infos
        Symbols the snapshot knows.

    Returns
    -------
    tuple[dict, float]
        ``{symbol: {"trade": json, "signal": json, "action": json}}`` (a key is present
        when such a row exists; ``TradeRow`` / ``SignalRow`` JSON texts) and the query
        seconds.
    """
    trade_rids: dict[int, str] = {}
    sig_rids: dict[int, list[tuple[str, str]]] = {}
    for i in infos:
        if len(i.trades):
            trade_rids[i.trades.rid(len(i.trades) - 1)] = i.symbol
        if len(i.signals):
            sig_rids.setdefault(i.signals.rid(len(i.signals) - 1), []).append((i.symbol, "signal"))
        actions = [
            (int(x.ts[-1]), x.rid(len(x) - 1)) for t in ("BUY", "SELL") if len(x := i.by_type[t])
        ]
        if actions:
            sig_rids.setdefault(max(actions)[1], []).append((i.symbol, "action"))
    out: dict[str, dict[str, str]] = {i.symbol: {} for i in infos}
    elapsed = 0.0
    if trade_rids:
        rows, dt = _fetch(snap, LATEST_TRADES_SQL, (list(trade_rids),))
        elapsed += dt
        for row in rows:
            out[trade_rids[int(row[0])]]["trade"] = str(row[1])
    if sig_rids:
        rows, dt = _fetch(snap, LATEST_SIGNALS_SQL, (list(sig_rids),))
        elapsed += dt
        for row in rows:
            for symbol, kind in sig_rids[int(row[0])]:
                out[symbol][kind] = str(row[1])
    return out, elapsed


def read_reject_samples(
    snap: Snapshot, symbol: str, day: date, limit: int
) -> tuple[list[tuple[Any, ...]], float]:
    """Read up to ``limit`` rejects of one symbol-day (and unattributed ones that day).

    Parameters
    ----------
    snap
        The snapshot.
    symbol
        The symbol.
    day
        New York day of the reject's receipt time.
    limit
        Most rows.

    Returns
    -------
    tuple[list[tuple], float]
        ``(stage, reason, raw prefix, receipt_ns, kafka_partition, kafka_offset)`` rows
        and the query seconds.
    """
    rows, elapsed = _fetch(snap, REJECT_SAMPLES_SQL, (symbol, day, limit))
    rows.sort(key=lambda r: (r[4], r[5]))  # Kafka partition, offset
    return rows, elapsed


def read_failed_expectations(
    snap: Snapshot, day: date, targets: Sequence[str], limit: int
) -> tuple[list[tuple[Any, ...]], float]:
    """Read failed quality expectations recorded for ``day`` or for ledger ``targets``.

    Parameters
    ----------
    snap
        The snapshot.
    day
        The signals day (its ``quality_results.target`` is the ISO date).
    targets
        Ledger batch targets ``topic:partition:[start,stop)``.
    limit
        Most rows.

    Returns
    -------
    tuple[list[tuple], float]
        ``(suite, target, expectation, passed, observed)`` rows and the query seconds (0:
        they are kept in memory); empty when the warehouse has no ``quality_results``.
    """
    rows: list[tuple[Any, ...]] = []
    for target in (day.isoformat(), *targets):
        rows.extend(
            (suite, target, expectation, False, observed)
            for suite, expectation, observed in snap.failed_expectations.get(target, ())
        )
    # Read when the snapshot was built (quality_results is small): no query per call.
    return rows[:limit], 0.0


# --- building a snapshot ----------------------------------------------------------------------


def _is_lock_error(e: duckdb.Error) -> bool:
    return isinstance(e, duckdb.IOException) and "lock" in str(e).lower()


def _source_columns(conn: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_catalog = 'src'"
    ).fetchall()
    out: dict[str, set[str]] = {}
    for table, column in rows:
        out.setdefault(str(table), set()).add(str(column))
    return out


def _copy_select(table: str, present: set[str]) -> str:
    missing = [c for c in _REQUIRED[table] if c not in present]
    if missing:
        raise WarehouseUnavailable(
            f"warehouse table {table} lacks column(s) {', '.join(missing)} "
            "(migrations not applied?)"
        )
    cols = list(_REQUIRED[table])
    cols.extend(c if c in present else f"NULL AS {c}" for c in _OPTIONAL[table])
    if table == "market_data_rejects" and "raw" in present:
        cols[cols.index("raw")] = f"left(raw, {_RAW_PREFIX_CHARS}) AS raw"
    # Identifiers are the constants above, filtered by the catalog; no input reaches here.
    return f"SELECT {', '.join(cols)} FROM src.{table}"  # noqa: S608


# Statements run on the private copy after the source is detached. Identifiers are
# constants; nothing here takes input.
# How an answer shows a number and a time, computed once per snapshot in SQL (vectorised)
# rather than per request in Python: 6 significant digits (statistics; every digit costs
# tokens), NaN and infinities as null (JSON has neither), times as ISO 8601 UTC with ms.
_MACROS: tuple[str, ...] = (
    "CREATE MACRO sig6(x) AS CASE WHEN x IS NULL OR NOT isfinite(x) THEN NULL "
    "WHEN x = 0 THEN 0.0 ELSE round(x, 5 - CAST(floor(log10(abs(x))) AS INTEGER)) END",
    "CREATE MACRO iso_utc(ns) AS strftime(make_timestamp(ns // 1000), '%Y-%m-%dT%H:%M:%S.%g') "
    "|| 'Z'",
)

# Statements run on the private copy after the source is detached. Identifiers are
# constants; nothing here takes input. Each serving table keeps the columns the indexes
# and summaries need plus ``row_json``: the row exactly as the tool answers it, so a page
# is two columns per row (a query costs about 25 us per column fetched) and no Python
# formatting per value.
_BUILD_SQL: tuple[str, ...] = (
    *_MACROS,
    # The current run of each day is its latest signal_runs row; rows of older runs (if
    # a writer keeps them) are not served.
    "CREATE TABLE runs AS SELECT * FROM raw_runs "
    "QUALIFY row_number() OVER (PARTITION BY date ORDER BY computed_ns DESC, run_id DESC) = 1",
    "CREATE TABLE cur_sig AS SELECT s.* FROM raw_sig AS s LEFT JOIN runs AS r ON s.date = r.date "
    "WHERE r.run_id IS NULL OR s.run_id = r.run_id",
    # Same join as the view enriched_market_data (a trade and its signal share the Kafka
    # record), sorted so that a symbol's trades are one contiguous, time-ordered block.
    "CREATE TABLE trades AS SELECT (row_number() OVER (ORDER BY m.symbol, m.timestamp_ns, "
    "m.kafka_partition, m.kafka_offset) - 1)::BIGINT AS rid, m.symbol, m.timestamp_ns, "
    "m.trade_date, m.in_regular_hours, m.ns_from_open, m.kafka_partition, m.kafka_offset, "
    "to_json(struct_pack(time := iso_utc(m.timestamp_ns), timestamp_ns := m.timestamp_ns, "
    "price := sig6(m.price), size := m.size, exchange := m.exchange, "
    "conditions := m.conditions, in_regular_hours := m.in_regular_hours, "
    "log_return := sig6(s.log_return), lee_mykland_stat := sig6(s.lee_mykland_stat), "
    "jump_detected := s.jump_detected, garch_sigma2 := sig6(s.garch_sigma2), "
    "standardized_return := sig6(s.standardized_return), "
    "conditional_duration := sig6(s.conditional_duration), "
    "acd_surprise := sig6(s.acd_surprise), "
    "trade_intensity_zscore := sig6(s.trade_intensity_zscore), "
    "trading_signal := s.trading_signal, kafka_partition := m.kafka_partition, "
    "kafka_offset := m.kafka_offset))::VARCHAR AS row_json "
    "FROM raw_md AS m LEFT JOIN cur_sig AS s "
    "ON m.kafka_partition = s.kafka_partition AND m.kafka_offset = s.kafka_offset "
    "AND m.symbol = s.symbol ORDER BY rid",
    "CREATE TABLE signals AS SELECT (row_number() OVER (ORDER BY symbol, timestamp_ns, date, "
    "seq) - 1)::BIGINT AS rid, symbol, date, timestamp_ns, jump_detected, "
    "CASE trading_signal WHEN 'BUY' THEN 1 WHEN 'SELL' THEN 2 ELSE 0 END::TINYINT "
    "AS signal_code, to_json(struct_pack(time := iso_utc(timestamp_ns), "
    "timestamp_ns := timestamp_ns, date := date, seq := seq, price := sig6(price), "
    "size := size, log_return := sig6(log_return), "
    "lee_mykland_stat := sig6(lee_mykland_stat), lm_xi := sig6(lm_xi), "
    "jump_detected := jump_detected, garch_sigma2 := sig6(garch_sigma2), "
    "standardized_return := sig6(standardized_return), bns_stat := sig6(bns_stat), "
    "conditional_duration := sig6(conditional_duration), acd_surprise := sig6(acd_surprise), "
    "trade_intensity_zscore := sig6(trade_intensity_zscore), "
    "trading_signal := trading_signal, kafka_partition := kafka_partition, "
    "kafka_offset := kafka_offset))::VARCHAR AS row_json FROM cur_sig ORDER BY rid",
    "CREATE TABLE metrics AS SELECT m.symbol, m.date, m.bns_z, m.bns_p_value, m.bns_jump, "
    "m.lm_jump_count, to_json(struct_pack(date := m.date, n_trades := m.n_trades, "
    "n_returns := m.n_returns, first_trade := iso_utc(m.first_timestamp_ns), "
    "last_trade := iso_utc(m.last_timestamp_ns), vwap := sig6(m.vwap), "
    "bns := struct_pack(m := m.bns_m, rv := sig6(m.bns_rv), bv := sig6(m.bns_bv), "
    "tq := sig6(m.bns_tq), qq := sig6(m.bns_qq), rj := sig6(m.bns_rj), z := sig6(m.bns_z), "
    "p_value := sig6(m.bns_p_value), jump := m.bns_jump), "
    "garch := struct_pack(omega := sig6(m.garch_omega), alpha := sig6(m.garch_alpha), "
    "beta := sig6(m.garch_beta), loglik := sig6(m.garch_loglik), "
    "scale := sig6(m.garch_scale), converged := m.garch_converged), "
    "acd_exponential := struct_pack(omega := sig6(m.acd_exp_omega), "
    "alpha := sig6(m.acd_exp_alpha), beta := sig6(m.acd_exp_beta), gamma := NULL::DOUBLE, "
    "loglik := sig6(m.acd_exp_loglik), at_boundary := m.acd_exp_at_boundary), "
    "acd_weibull := struct_pack(omega := sig6(m.acd_weibull_omega), "
    "alpha := sig6(m.acd_weibull_alpha), beta := sig6(m.acd_weibull_beta), "
    "gamma := sig6(m.acd_weibull_gamma), loglik := sig6(m.acd_weibull_loglik), "
    "at_boundary := m.acd_weibull_at_boundary), lm_jump_count := m.lm_jump_count, "
    "notes := m.notes, kernel_version := m.kernel_version, run_id := m.run_id))::VARCHAR "
    "AS row_json FROM raw_metrics AS m LEFT JOIN runs AS r "
    "ON m.date = r.date WHERE r.run_id IS NULL OR m.run_id = r.run_id",
    # Rejects carry their receipt day (New York) so quality answers can pick a day's rows.
    "CREATE TABLE rejects AS SELECT *, coalesce(receipt_ns, loaded_ns) AS at_ns, "
    "CAST(timezone('America/New_York', make_timestamp(coalesce(receipt_ns, loaded_ns) // 1000)) "
    "AS DATE) AS reject_date FROM raw_rejects ORDER BY at_ns",
    "DROP TABLE raw_md",
    "DROP TABLE raw_sig",
    "DROP TABLE cur_sig",
    "DROP TABLE raw_metrics",
    "DROP TABLE raw_rejects",
)

_DAY_QUALITY_SQL = (
    "WITH spans AS (SELECT symbol, trade_date, kafka_partition, min(kafka_offset) AS lo, "
    "max(kafka_offset) AS hi FROM trades GROUP BY ALL), "
    "per_day AS (SELECT symbol, trade_date, count(*) AS n_trades, min(timestamp_ns) AS first_ns, "
    "max(timestamp_ns) AS last_ns, count(DISTINCT ns_from_open // 60000000000) FILTER "
    "(WHERE in_regular_hours AND ns_from_open >= 0 AND ns_from_open < 23400000000000) "
    "AS minutes FROM trades GROUP BY ALL), "
    "batches AS (SELECT s.symbol, s.trade_date, l.kafka_topic, l.kafka_partition, l.start_offset, "
    "l.stop_offset, l.quality_passed, l.quality_summary, l.n_duplicates, l.n_rejects, "
    "l.committed_ns FROM spans AS s JOIN ledger AS l ON l.kafka_partition = s.kafka_partition "
    "AND l.start_offset <= s.hi AND l.stop_offset > s.lo) "
    "SELECT d.symbol, d.trade_date, d.n_trades, d.first_ns, d.last_ns, d.minutes, "
    "count(b.start_offset) AS n_batches, "
    "count(b.start_offset) FILTER (WHERE b.quality_passed = false) AS n_failed, "
    "count(b.start_offset) FILTER (WHERE b.quality_passed IS NULL) AS n_unchecked, "
    "list(b.quality_summary) FILTER (WHERE b.quality_passed = false) AS failed_summaries, "
    "list(b.kafka_topic || ':' || b.kafka_partition || ':[' || b.start_offset || ',' || "
    "b.stop_offset || ')') FILTER (WHERE b.quality_passed = false) AS failed_targets, "
    "coalesce(sum(b.n_duplicates), 0) AS n_duplicates, coalesce(sum(b.n_rejects), 0) AS n_rejects, "
    "max(b.committed_ns) AS last_commit FROM per_day AS d LEFT JOIN batches AS b "
    "ON b.symbol = d.symbol AND b.trade_date = d.trade_date GROUP BY ALL"
)


def _open_source(
    path: Path, attempts: int, first_delay_s: float
) -> tuple[duckdb.DuckDBPyConnection, float]:
    """Open a fresh private database with the warehouse attached read-only.

    Returns the connection and the seconds spent waiting for the writer's lock.
    """
    waited = 0.0
    delay = first_delay_s
    for attempt in range(attempts):
        conn = duckdb.connect(config={"threads": 2})
        try:
            conn.execute("ATTACH ? AS src (READ_ONLY)", [str(path)])
            return conn, waited
        except duckdb.Error as e:
            conn.close()
            if not _is_lock_error(e):
                raise WarehouseUnavailable(f"cannot read warehouse {path}: {e}") from e
            if attempt == attempts - 1:
                raise WarehouseBusy(
                    f"a writer held the warehouse file {path} through {attempts} attempts "
                    f"({waited:.1f} s)"
                ) from e
            # Jitter keeps several server workers from retrying in lock-step.
            pause = delay * (0.5 + random.random())  # noqa: S311 - not crypto
            time.sleep(pause)
            waited += pause
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")  # pragma: no cover


def build_snapshot(path: Path, *, lock_attempts: int = 8, first_retry_s: float = 0.02) -> Snapshot:
    """Copy the warehouse at ``path`` into a private, sorted, indexed snapshot.

    Parameters
    ----------
    path
        The DuckDB file; opened ``READ_ONLY`` and only for the copy.
    lock_attempts
        How many times to try while a writer holds the file.
    first_retry_s
        First pause between attempts (doubling, capped at 0.5 s, jittered).

    Returns
    -------
    Snapshot
        The published snapshot; external access is disabled on its connection.

    Raises
    ------
    WarehouseUnavailable
        If the file does not exist or lacks the tables and columns served.
    WarehouseBusy
        If a writer held the file through every attempt.
    """
    version = source_version(path)
    if version is None:
        raise WarehouseUnavailable(f"no warehouse file at {path} (nothing ingested yet?)")
    conn, _waited = _open_source(path, lock_attempts, first_retry_s)
    try:
        taken_ns = time.time_ns()
        t0 = time.perf_counter()
        present = _source_columns(conn)
        missing = [t for t in _REQUIRED if t not in present]
        if missing:
            raise WarehouseUnavailable(
                f"warehouse {path} has no table(s) {', '.join(missing)} (migrations not applied?)"
            )
        # One transaction: every table is read at the same commit.
        conn.execute("BEGIN TRANSACTION")
        for name, table in (
            ("raw_md", "market_data"),
            ("raw_sig", "trading_signals"),
            ("raw_metrics", "symbol_day_metrics"),
            ("raw_runs", "signal_runs"),
            ("ledger", "kafka_offsets"),
            ("raw_rejects", "market_data_rejects"),
            ("gaps", "feed_gaps"),
        ):
            conn.execute(f"CREATE TABLE memory.{name} AS {_copy_select(table, present[table])}")
        has_qr = (
            "quality_results" in present
            and {
                "suite",
                "target",
                "expectation",
                "passed",
                "observed",
                "checked_ns",
            }
            <= present["quality_results"]
        )
        if has_qr:
            conn.execute(
                "CREATE TABLE memory.quality_results AS SELECT suite, target, expectation, "
                "passed, observed, checked_ns FROM src.quality_results"
            )
        if set(EVALUATION_COLUMNS) <= present.get("signal_evaluation", set()):
            conn.execute(
                f"CREATE TABLE memory.evaluation AS SELECT {', '.join(EVALUATION_COLUMNS)} "  # noqa: S608 - constants
                "FROM src.signal_evaluation"
            )
        conn.execute("COMMIT")
        conn.execute("DETACH src")
    except BaseException:
        conn.close()
        raise
    copy_s = time.perf_counter() - t0
    try:
        return _finish(conn, version, taken_ns, copy_s, has_qr)
    except BaseException:
        conn.close()
        raise


def _finish(
    conn: duckdb.DuckDBPyConnection,
    version: SourceVersion,
    taken_ns: int,
    copy_s: float,
    has_qr: bool,
) -> Snapshot:
    t0 = time.perf_counter()
    for sql in _BUILD_SQL:
        conn.execute(sql)
    symbols = _symbol_infos(conn)
    runs = _runs(conn)
    gaps = tuple(
        GapInfo(str(s), _opt_int(a), _opt_int(b), str(r), int(d))
        for s, a, b, r, d in conn.execute(
            "SELECT subscription, last_before_ns, first_after_ns, reason, detected_ns FROM gaps "
            "ORDER BY detected_ns"
        ).fetchall()
    )
    rejects = _reject_index(conn)
    day_quality = _day_quality(conn)
    (last_commit, n_batches) = conn.execute(
        "SELECT max(committed_ns), count(*) FROM ledger"
    ).fetchall()[0]
    n_trades = sum(s.n_trades for s in symbols.values())
    (n_signals,) = conn.execute("SELECT count(*) FROM signals").fetchall()[0]
    daily: dict[str, list[tuple[Any, ...]]] = {}
    for row in conn.execute(
        "SELECT symbol, date, bns_z, bns_p_value, bns_jump, lm_jump_count FROM metrics "
        "ORDER BY symbol, date"
    ).fetchall():
        daily.setdefault(str(row[0]), []).append(tuple(row[1:]))
    failed: dict[str, list[tuple[str, str, str | None]]] = {}
    if has_qr:
        for target, suite, expectation, observed in conn.execute(
            "SELECT target, suite, expectation, observed FROM quality_results WHERE NOT passed "
            "QUALIFY row_number() OVER (PARTITION BY target ORDER BY checked_ns DESC) <= 20 "
            "ORDER BY target, checked_ns DESC"
        ).fetchall():
            failed.setdefault(str(target), []).append(
                (str(suite), str(expectation), None if observed is None else str(observed)[:300])
            )
    # Queries are tiny range scans: one thread each is fastest and leaves the other
    # core to the server. No query may touch a file from now on.
    (has_eval,) = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'memory' "
        "AND table_name = 'evaluation'"
    ).fetchall()[0]
    conn.execute("SET threads = 1")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    snap = Snapshot(
        conn=conn,
        version=version,
        taken_ns=taken_ns,
        copy_s=copy_s,
        build_s=0.0,
        symbols=symbols,
        runs=runs,
        gaps=gaps,
        rejects=rejects,
        day_quality=day_quality,
        last_commit_ns=_opt_int(last_commit),
        n_batches=int(n_batches),
        n_trades=n_trades,
        n_signals=int(n_signals),
        has_quality_results=has_qr,
        daily_bns={k: tuple(v) for k, v in daily.items()},
        failed_expectations={k: tuple(v) for k, v in failed.items()},
        has_evaluation=bool(has_eval),
    )
    # The newest rows change only with the snapshot: read them once, serve from memory.
    snap.latest, _ = read_latest(snap, list(symbols.values()))
    snap.build_s = time.perf_counter() - t0
    return snap


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _symbol_infos(conn: duckdb.DuckDBPyConnection) -> dict[str, SymbolInfo]:
    trade_ts = conn.execute("SELECT timestamp_ns FROM trades ORDER BY rid").fetchnumpy()[
        "timestamp_ns"
    ]
    trade_ts = np.ascontiguousarray(trade_ts, dtype=np.int64)
    sig = conn.execute(
        "SELECT timestamp_ns, signal_code, jump_detected FROM signals ORDER BY rid"
    ).fetchnumpy()
    sig_ts = np.ascontiguousarray(sig["timestamp_ns"], dtype=np.int64)
    sig_code = np.asarray(sig["signal_code"], dtype=np.int8)
    sig_jump = np.asarray(sig["jump_detected"], dtype=np.bool_)
    trade_blocks = {
        str(s): (int(lo), int(hi), [d for d in days if d is not None])
        for s, lo, hi, days in conn.execute(
            "SELECT symbol, min(rid), max(rid) + 1, list(DISTINCT trade_date ORDER BY trade_date) "
            "FROM trades GROUP BY symbol"
        ).fetchall()
    }
    sig_blocks = {
        str(s): (int(lo), int(hi), [d for d in days if d is not None])
        for s, lo, hi, days in conn.execute(
            "SELECT symbol, min(rid), max(rid) + 1, list(DISTINCT date ORDER BY date) "
            "FROM signals GROUP BY symbol"
        ).fetchall()
    }
    out: dict[str, SymbolInfo] = {}
    for symbol in sorted(set(trade_blocks) | set(sig_blocks)):
        t_lo, t_hi, days = trade_blocks.get(symbol, (0, 0, []))
        s_lo, s_hi, sdays = sig_blocks.get(symbol, (0, 0, []))
        trades = OrderedIndex(trade_ts[t_lo:t_hi], t_lo) if t_hi > t_lo else _EMPTY_INDEX
        signals = OrderedIndex(sig_ts[s_lo:s_hi], s_lo) if s_hi > s_lo else _EMPTY_INDEX
        by_type: dict[str, OrderedIndex] = {}
        for name, code in _SIGNAL_CODES.items():
            rids = (s_lo + np.flatnonzero(sig_code[s_lo:s_hi] == code)).astype(np.int64)
            by_type[name] = OrderedIndex(sig_ts[rids], 0, rids)
        jump_rids = (s_lo + np.flatnonzero(sig_jump[s_lo:s_hi])).astype(np.int64)
        first_ns = int(trades.ts[0]) if len(trades) else None
        last_ns = int(trades.ts[-1]) if len(trades) else None
        out[symbol] = SymbolInfo(
            symbol=symbol,
            n_trades=t_hi - t_lo,
            first_ns=first_ns,
            last_ns=last_ns,
            days=tuple(days),
            signal_days=tuple(sdays),
            trades=trades,
            signals=signals,
            by_type=by_type,
            jumps=OrderedIndex(sig_ts[jump_rids], 0, jump_rids),
        )
    return out


def _parse_params(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(str(raw))
    except ValueError:
        return {"unparsed": str(raw)[:500]}
    return value if isinstance(value, dict) else {"value": value}


def _runs(conn: duckdb.DuckDBPyConnection) -> dict[date, RunInfo]:
    rows = conn.execute(
        "SELECT run_id, date, kernel_version, params, final, quality_passed, quality_summary, "
        "computed_ns, content_hash FROM runs"
    ).fetchall()
    return {
        d: RunInfo(
            run_id=str(run_id),
            date=d,
            kernel_version=str(kv),
            params=_parse_params(params),
            final=bool(final),
            quality_passed=None if qp is None else bool(qp),
            quality_summary=None if qs is None else str(qs),
            computed_ns=int(computed),
            content_hash=None if ch is None else str(ch),
        )
        for run_id, d, kv, params, final, qp, qs, computed, ch in rows
    }


def _reject_index(conn: duckdb.DuckDBPyConnection) -> RejectIndex:
    rows = conn.execute(
        "SELECT coalesce(symbol, ''), list(at_ns ORDER BY at_ns), list(reason ORDER BY at_ns) "
        "FROM rejects GROUP BY ALL"
    ).fetchall()
    return RejectIndex(
        ts={str(s): np.asarray(t, dtype=np.int64) for s, t, _ in rows},
        reasons={str(s): tuple(str(x) for x in r) for s, _, r in rows},
    )


def _day_quality(conn: duckdb.DuckDBPyConnection) -> dict[tuple[str, date], DayQuality]:
    out: dict[tuple[str, date], DayQuality] = {}
    for row in conn.execute(_DAY_QUALITY_SQL).fetchall():
        (symbol, day, n_trades, first_ns, last_ns, minutes, n_batches, n_failed, n_unchecked) = row[
            :9
        ]
        failed_summaries, failed_targets, dups, rejects, last_commit = row[9:]
        out[(str(symbol), day)] = DayQuality(
            n_batches=int(n_batches),
            n_failed=int(n_failed),
            n_unchecked=int(n_unchecked),
            failed_summaries=tuple(str(s) for s in (failed_summaries or ()) if s is not None),
            failed_targets=tuple(str(s) for s in (failed_targets or ())),
            n_duplicates=int(dups),
            n_rejects=int(rejects),
            last_commit_ns=_opt_int(last_commit),
            minutes_with_trades=int(minutes),
            n_trades=int(n_trades),
            first_ns=_opt_int(first_ns),
            last_ns=_opt_int(last_ns),
        )
    return out


# --- the reader: refresh policy ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """What ``/health`` reports about the read side."""

    path: Path
    source_exists: bool
    has_snapshot: bool
    snapshot_taken_ns: int | None
    snapshot_stale: bool
    last_error: str | None
    refreshes: int
    failures: int
    last_copy_s: float | None
    last_build_s: float | None


class WarehouseReader:
    """Serves snapshots of one DuckDB warehouse file, refreshing them when it changes.

    Parameters
    ----------
    path
        The warehouse file (never created, never written).
    check_interval_s
        Least time between two ``stat`` calls on the file; 0 checks on every call.
    lock_share
        Largest share of wall time the reader may hold the file: after a copy that held
        it ``h`` seconds, the next copy waits at least ``h * (1 / lock_share - 1)``.
    cpu_share
        Largest share of one core that rebuilding may take: after a refresh that took
        ``t`` seconds in all, the next waits at least ``t * (1 / cpu_share - 1)`` (a
        300,000-trade warehouse that changes every second is re-read every ~10 s).
    min_refresh_interval_s
        Least time between two refreshes, whatever the copy took.
    wait_first_s
        How long a call waits for the first snapshot before giving up.
    lock_attempts
        Attempts per refresh while a writer holds the file.
    background
        Refresh in a background thread (serving the previous snapshot meanwhile); when
        False, a call that notices a change refreshes inline (tests).
    """

    def __init__(
        self,
        path: Path,
        *,
        check_interval_s: float = 0.5,
        lock_share: float = 0.2,
        cpu_share: float = 0.1,
        min_refresh_interval_s: float = 1.0,
        wait_first_s: float = 15.0,
        lock_attempts: int = 8,
        background: bool = True,
    ) -> None:
        for name, share in (("lock_share", lock_share), ("cpu_share", cpu_share)):
            if not 0 < share <= 1:
                raise ConfigError(f"{name} is {share} and must be in (0, 1]")
        self.path = Path(path)
        self.check_interval_s = check_interval_s
        self.lock_share = lock_share
        self.cpu_share = cpu_share
        self.min_refresh_interval_s = min_refresh_interval_s
        self.wait_first_s = wait_first_s
        self.lock_attempts = lock_attempts
        self.background = background
        self._snap: Snapshot | None = None
        self._lock = threading.Lock()
        self._building = False
        self._built = threading.Condition(self._lock)
        self._last_check = float("-inf")
        self._next_allowed = float("-inf")
        self._seen_version: SourceVersion | None = None
        self._last_error: str | None = None
        self._last_exc: WarehouseError | None = None
        self._refreshes = 0
        self._failures = 0
        self._closed = False

    # public -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin building the first snapshot in the background (returns at once)."""
        self._maybe_refresh(force=True)

    def close(self) -> None:
        """Retire the current snapshot; later calls fail."""
        with self._lock:
            self._closed = True
            snap, self._snap = self._snap, None
        if snap is not None:
            snap.retire()

    def snapshot(self) -> Snapshot:
        """Return the newest snapshot, starting a refresh if the file changed.

        Returns
        -------
        Snapshot
            Possibly a little behind the file (see ``Snapshot.taken_ns``).

        Raises
        ------
        WarehouseUnavailable
            If there is no file or no table to serve and never was a snapshot.
        WarehouseBusy
            If a writer held the file through every retry and there is no snapshot yet.
        """
        self._maybe_refresh()
        snap = self._snap
        if snap is not None:
            return snap
        deadline = time.monotonic() + self.wait_first_s
        with self._lock:
            while self._snap is None and not self._closed:
                if not self._building:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._built.wait(remaining)
            if self._snap is not None:
                return self._snap
            exc = self._last_exc
        if exc is not None:
            raise exc
        raise WarehouseBusy(
            f"the first snapshot of {self.path} is still being built; retry in a moment"
        )

    @contextmanager
    def use(self) -> Iterator[Snapshot]:
        """Hold the newest snapshot open for the duration of one call.

        Yields
        ------
        Snapshot
            The snapshot; a refresh published meanwhile closes it only after the block.

        Raises
        ------
        WarehouseUnavailable, WarehouseBusy
            As :meth:`snapshot`.
        """
        self.snapshot()
        with self._lock:
            snap = self._snap
            if snap is None:
                raise WarehouseUnavailable(f"the reader of {self.path} is closed")
            # Entered under the reader lock, which also guards the swap: a snapshot
            # retired after this point stays open until _exit.
            snap._enter()
        try:
            yield snap
        finally:
            snap._exit()

    def current(self) -> Snapshot | None:
        """Return the newest snapshot without waiting or refreshing (None before the first)."""
        return self._snap

    def wait_ready(self) -> Snapshot:
        """Block until the first snapshot exists (for a worker thread, never the event loop).

        Raises
        ------
        WarehouseUnavailable, WarehouseBusy
            As :meth:`snapshot`.
        """
        return self.snapshot()

    def refresh(self) -> Snapshot:
        """Build a snapshot now, in the calling thread, and publish it.

        Returns
        -------
        Snapshot
            The new snapshot.
        """
        with self._lock:
            self._building = True
        self._build()
        return self.snapshot()

    def status(self) -> ReaderStatus:
        """Return the read side's health facts."""
        snap = self._snap
        version = source_version(self.path)
        return ReaderStatus(
            path=self.path,
            source_exists=version is not None,
            has_snapshot=snap is not None,
            snapshot_taken_ns=None if snap is None else snap.taken_ns,
            snapshot_stale=snap is not None and version is not None and version != snap.version,
            last_error=self._last_error,
            refreshes=self._refreshes,
            failures=self._failures,
            last_copy_s=None if snap is None else snap.copy_s,
            last_build_s=None if snap is None else snap.build_s,
        )

    @property
    def last_error(self) -> str | None:
        """Return why the last refresh failed (None after a success)."""
        return self._last_error

    def is_stale(self, snap: Snapshot) -> bool:
        """Return True if the file has changed since ``snap`` was taken."""
        version = self._seen_version
        return version is not None and version != snap.version

    # internals --------------------------------------------------------------------------------

    def _maybe_refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_check < self.check_interval_s:
            return
        self._last_check = now
        version = source_version(self.path)
        self._seen_version = version
        snap = self._snap
        if not force and snap is not None and version == snap.version:
            return
        if not force and snap is not None and now < self._next_allowed:
            return
        if not force and snap is None and version is None and self._last_exc is not None:
            return
        with self._lock:
            if self._building or self._closed:
                return
            self._building = True
        if self.background:
            threading.Thread(target=self._build, name="warehouse-snapshot", daemon=True).start()
        else:
            self._build()

    def _build(self) -> None:
        started = time.monotonic()
        snap: Snapshot | None = None
        try:
            snap = build_snapshot(self.path, lock_attempts=self.lock_attempts)
        except WarehouseError as e:
            self._failures += 1
            self._last_error = str(e)
            self._last_exc = e
            logger.warning("warehouse snapshot failed: %s", e)
        except duckdb.Error as e:
            self._failures += 1
            self._last_error = f"snapshot failed: {type(e).__name__}"
            self._last_exc = WarehouseUnavailable(f"cannot read warehouse {self.path}: {e}")
            logger.exception("warehouse snapshot failed")
        finally:
            held = 0.0 if snap is None else snap.copy_s
            spent = time.monotonic() - started
            wait = max(
                self.min_refresh_interval_s,
                held * (1.0 / self.lock_share - 1.0),
                spent * (1.0 / self.cpu_share - 1.0),
            )
            old: Snapshot | None = None
            with self._lock:
                self._building = False
                self._next_allowed = time.monotonic() + (
                    wait if snap is not None else max(wait, 0.25)
                )
                if snap is not None and not self._closed:
                    old, self._snap = self._snap, snap
                    self._refreshes += 1
                    self._last_error = None
                    self._last_exc = None
                elif snap is not None:
                    old = snap
                self._built.notify_all()
            if old is not None:
                old.retire()
            if snap is not None:
                logger.info(
                    "warehouse snapshot: %d trades, %d signals, %d symbols; file held %.3f s, "
                    "indexed in %.3f s (%.3f s in all)",
                    snap.n_trades,
                    snap.n_signals,
                    len(snap.symbols),
                    snap.copy_s,
                    snap.build_s,
                    time.monotonic() - started,
                )


def open_reader(url: str, **kwargs: Any) -> WarehouseReader:
    """Return a :class:`WarehouseReader` for a ``duckdb:///path`` warehouse URL.

    Parameters
    ----------
    url
        The warehouse URL (``MICROSTRUCTURE_WAREHOUSE_URL``).
    **kwargs
        Passed to :class:`WarehouseReader`.

    Returns
    -------
    WarehouseReader
        The reader (nothing is opened until :meth:`WarehouseReader.start`).

    Raises
    ------
    ConfigError
        For a URL that is not ``duckdb://`` (the Vertica read side is not built).
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme != "duckdb":
        raise ConfigError(
            f"warehouse URL {url!r}: the MCP server reads duckdb:// warehouses only for now "
            "(a Vertica read side with a SELECT-only user is not built yet)"
        )
    rest = url[len("duckdb://") :]
    if not rest or rest in ("/", "/:memory:", ":memory:"):
        raise ConfigError(f"warehouse URL {url!r} must name a file: duckdb:///path/to/file")
    if rest.startswith("//"):
        rest = "/" + rest.lstrip("/")
    return WarehouseReader(Path(rest).expanduser(), **kwargs)


__all__ = [
    "SIGNAL_TYPES",
    "DayQuality",
    "GapInfo",
    "OrderedIndex",
    "Page",
    "ReaderStatus",
    "RejectIndex",
    "RunInfo",
    "Snapshot",
    "SourceVersion",
    "SymbolInfo",
    "WarehouseBusy",
    "WarehouseReader",
    "WarehouseUnavailable",
    "build_snapshot",
    "open_reader",
    "read_failed_expectations",
    "read_jumps",
    "read_latest",
    "read_metrics",
    "read_reject_samples",
    "read_signals",
    "read_trades",
    "source_version",
]
