"""The serving port: what every reader of served data may ask, and the shapes of its answers.

Two implementations (the DuckDB serving store, Vertica directly) answer the same calls
with the same values. A caller takes a :class:`ServingView` (one consistent state of the
warehouse, stated by ``as_of_ns``) and asks it for catalog facts and pages of rows; every
row is already in its answer shape (:mod:`pipeline.serving.format`).

Pages are keyset pages: rows of a symbol in a half-open window ``[start_ns, end_ns)``,
newest first, older than an optional key. Trade keys are ``(timestamp_ns,
kafka_partition, kafka_offset)`` and signal keys ``(timestamp_ns, seq)``: both unique per
symbol and stable across refreshes, so a cursor means the same rows on any server
process and either backend.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pipeline.errors import WarehouseError

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.serving.catalog import Catalog

SignalKind = Literal["ALL", "BUY", "SELL", "HOLD", "JUMP"]
"""Which signal rows a page holds: every row, one label, or the Lee-Mykland jumps."""

TradeKey = tuple[int, int, int]
"""``(timestamp_ns, kafka_partition, kafka_offset)`` of a trade."""

SignalKey = tuple[int, int]
"""``(timestamp_ns, seq)`` of a signal row."""

SIGNAL_CODES: dict[str, int] = {"HOLD": 0, "BUY": 1, "SELL": 2}
"""The label of a signal as a small integer (stored beside the label for fast filters)."""


class ServingError(WarehouseError):
    """The read side cannot answer now.

    ``client_message`` is what a client may see: it never names a file, a host or an
    internal error; the full text (``str(e)``) goes to the server log only.
    """

    code = "unavailable"

    def __init__(self, message: str, client_message: str | None = None) -> None:
        super().__init__(message)
        self.client_message = client_message or message


class ServingUnavailable(ServingError):
    """Nothing to serve: no warehouse yet, no tables (migrations not applied), or closed."""

    code = "no_data"


class ServingBusy(ServingError):
    """The first consistent state is still being built (progress in the message); retry."""

    code = "indexing"


class ServingTimeout(ServingError):
    """A query ran past its time limit and was abandoned."""

    code = "timeout"


class NeedsWorker(Exception):
    """The call would scan more rows than work on an event loop may: run it in a thread.

    Raised before any scanning starts; the caller repeats the (read-only, idempotent)
    call in a worker thread with no budget.
    """


SCAN_BUDGET: ContextVar[list[int] | None] = ContextVar("serving_scan_budget", default=None)
"""Rows a call may still scan where it runs (None: unbounded, a worker thread)."""


def check_scan(rows: int) -> None:
    """Charge ``rows`` to the call's scan budget.

    Raises
    ------
    NeedsWorker
        When the budget is exhausted.
    """
    budget = SCAN_BUDGET.get()
    if budget is None:
        return
    budget[0] -= rows
    if budget[0] < 0:
        raise NeedsWorker(rows)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows, newest first, in their answer shape.

    ``total`` counts the window's rows; ``older`` the window's rows older than the page's
    last row (what a cursor from that row would still find).
    """

    rows: list[dict[str, Any]]
    keys: list[tuple[int, ...]]
    total: int
    older: int
    query_s: float


@dataclass(frozen=True, slots=True)
class Newest:
    """A symbol's newest trade, newest signal row and newest BUY or SELL (answer shapes)."""

    trade: dict[str, Any] | None
    signal: dict[str, Any] | None
    action: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ServingHealth:
    """What ``/health`` may show: states, ages and counts, never a path or an error text."""

    status: Literal["ok", "starting", "indexing", "no_data", "error"]
    backend: Literal["duckdb", "vertica"]
    as_of_ns: int | None
    stale: bool
    error_code: str | None
    refreshes: int
    failures: int
    progress: str | None = None


class ServingView(Protocol):
    """One consistent state of the served warehouse, as of ``as_of_ns``.

    Everything a view returns was in the warehouse at ``as_of_ns`` (DuckDB: the time of
    the materializer's reading transaction; Vertica: the epoch every statement is pinned
    to), and nothing committed later.
    """

    @property
    def as_of_ns(self) -> int:
        """When the state was read (epoch ns)."""
        ...

    @property
    def catalog(self) -> Catalog:
        """Symbol-days, runs, gaps, quality facts and the ledger position of the state."""
        ...

    @property
    def stale_reason(self) -> str | None:
        """Why the warehouse may hold newer data than this view (None when current)."""
        ...

    @property
    def memo(self) -> dict[Any, Any]:
        """A cache of answers' derived facts, valid for this state (shared by its views)."""
        ...

    def trades_page(
        self, symbol: str, start_ns: int, end_ns: int, before: TradeKey | None, limit: int
    ) -> Page:
        """Return trades (with their signals: ``TradeRow``) of a window, newest first."""
        ...

    def signals_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return signal rows (``SignalRow``) of one kind in a window, newest first."""
        ...

    def signal_counts(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Return how many BUY, SELL and HOLD rows the window holds (live tails included)."""
        ...

    def live_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return the live path's rows that no batch row covers (:func:`live_cut`), newest first.

        ``signals_page`` merges them with the batch rows (:func:`merge_pages`); rows carry
        ``source: "live"``.
        """
        ...

    def newest_live(self, symbol: str) -> dict[str, Any] | None:
        """Return the symbol's newest live signal with its provenance (None: none loaded).

        A ``SignalRow`` shape plus ``lm_n``, ``lm_n_rule``, ``garch_params``, ``acd_params``,
        ``kernel_version`` and ``emitted_ns`` (when the live path produced it).
        """
        ...

    def batch_signal_of(
        self, symbol: str, day: date, timestamp_ns: int, kafka_partition: int, kafka_offset: int
    ) -> dict[str, Any] | None:
        """Return the current run's row of one trade (None: the run has none yet)."""
        ...

    def metrics(self, symbol: str, first: date, last: date) -> list[dict[str, Any]]:
        """Return daily statistics (``DayMetrics``) of ``first..last``, newest day first."""
        ...

    def newest(self, symbol: str) -> Newest:
        """Return the symbol's newest trade, signal and BUY/SELL (answer shapes)."""
        ...

    def reject_counts(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Count rejects of ``symbol`` ("" = unattributed) received in a window, by reason."""
        ...

    def reject_samples(self, symbol: str, day: date, limit: int) -> list[dict[str, Any]]:
        """Return up to ``limit`` rejects of a symbol-day and unattributed ones that day."""
        ...

    def evaluation(self, symbol: str | None) -> list[dict[str, Any]]:
        """Return the newest stored signal evaluation (one symbol and the pool, or all)."""
        ...

    def day_signal_rows(self, symbol: str, day: date) -> list[dict[str, Any]]:
        """Return every signal row of a symbol-day in time order (a chart's data)."""
        ...

    def signal_frame(self, first: date, last: date) -> pd.DataFrame:
        """Return ``symbol, date, timestamp_ns, price, trading_signal`` of the days' signals."""
        ...


class ServingPort(Protocol):
    """The read side of one warehouse: start it, take views, close it."""

    backend: Literal["duckdb", "vertica"]

    def start(self) -> None:
        """Begin serving (returns at once; the first state may still be building)."""
        ...

    def close(self) -> None:
        """Stop background work and release files and connections."""
        ...

    def view(self) -> ServingView:
        """Return the newest consistent state.

        Raises
        ------
        ServingUnavailable, ServingBusy
            When there is nothing to serve yet.
        """
        ...

    def wait_ready(self, timeout_s: float) -> ServingView:
        """Block until a view exists (a worker thread, never the event loop)."""
        ...

    def ready(self) -> bool:
        """Return True when :meth:`view` answers without waiting."""
        ...

    def health(self) -> ServingHealth:
        """Return the read side's health facts (never waits)."""
        ...


LIVE_HIDDEN: SignalKey = (2**63 - 1, 0)
"""A cut no live row passes: the run has rows of the symbol-day but their last key is unknown."""


def live_cut(catalog: Catalog, symbol: str, day: date) -> SignalKey | None:
    """Return the key after which the live rows of a symbol-day are served (None: all of them).

    The batch is the truth: where the day's current run has rows of the symbol, its rows
    are served up to its last key ``(timestamp_ns, seq)`` and the live rows after it (trades
    the run did not read yet) follow; without such rows every live row is served.
    """
    if catalog.run(day) is None:
        return None
    e = catalog.entry(symbol, day)
    if e is None or e.signals is None or not e.signals.n_rows:
        return None
    return e.signals.last_key or LIVE_HIDDEN


def merge_pages(a: Page, b: Page, limit: int) -> Page:
    """Return the newest ``limit`` rows of two pages over disjoint keys of one window.

    Each page holds the newest rows of its source older than the same cursor key, so the
    newest ``limit`` of both together are the newest of their union.
    """
    pairs = sorted(
        zip([*a.keys, *b.keys], [*a.rows, *b.rows], strict=True),
        key=lambda kr: kr[0],
        reverse=True,
    )[:limit]
    before = a.older + len(a.rows) + b.older + len(b.rows)
    return Page(
        [r for _, r in pairs],
        [k for k, _ in pairs],
        a.total + b.total,
        before - len(pairs),
        a.query_s + b.query_s,
    )


def gap_applies_to(subscription: str, symbol: str) -> bool:
    """Return True if a feed subscription (``T.SYM``, ``T.*``, ``*``) covers ``symbol``."""
    return subscription in ("*", "T.*") or subscription == f"T.{symbol}" or subscription == symbol


def overlap_ns(lo: int | None, hi: int | None, start_ns: int, end_ns: int) -> int:
    """Return how much of ``[start_ns, end_ns)`` an interval with open ends covers."""
    a = start_ns if lo is None else max(start_ns, lo)
    b = end_ns if hi is None else min(end_ns, hi)
    return max(0, b - a)


__all__ = [
    "LIVE_HIDDEN",
    "SCAN_BUDGET",
    "SIGNAL_CODES",
    "NeedsWorker",
    "Newest",
    "Page",
    "ServingBusy",
    "ServingError",
    "ServingHealth",
    "ServingPort",
    "ServingTimeout",
    "ServingUnavailable",
    "ServingView",
    "SignalKey",
    "SignalKind",
    "TradeKey",
    "check_scan",
    "gap_applies_to",
    "live_cut",
    "merge_pages",
    "overlap_ns",
]
