"""The catalog of served data: symbol-days, signal runs, gaps, quality facts (pure).

Built incrementally from the facts of what changed, never by scanning history: each new
ledger batch contributes, per symbol-day it loaded, a count, a time range and the set of
regular-hours minutes it touched (:class:`TradeFacts`); each new signals run replaces its
day's signal facts (:class:`SignalFacts`). Both implementations of the serving port feed
it the same facts, so both derive the same completeness and provenance.

Memory grows with symbol-days (about 300 bytes each), not with trades. Values are
immutable; :class:`CatalogBuilder` makes a new :class:`Catalog` that shares every day it
did not touch with the previous one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import pairwise
from typing import Any

from pipeline.serving.port import gap_applies_to, overlap_ns
from pipeline.warehouse.finality import parse_ledger_ends, read_by_run

SESSION_MINUTES = 390
"""One New York regular session, 09:30-16:00, in one-minute buckets."""
MAX_FAILED_KEPT = 10
"""Failed batches named per symbol-day (the count is exact; the names are a sample)."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The current (latest computed) signals run of one day."""

    run_id: str
    date: date
    kernel_version: str
    params: Mapping[str, Any]
    final: bool
    quality_passed: bool | None
    quality_summary: str | None
    computed_ns: int
    content_hash: str | None
    ledger_ends: Mapping[tuple[str, int], int] | None = None
    """The ledger end per partition of the snapshot the run read (None: not recorded)."""

    def to_json(self) -> dict[str, Any]:
        """Return the run as JSON types."""
        return {
            "run_id": self.run_id,
            "date": self.date.isoformat(),
            "kernel_version": self.kernel_version,
            "params": dict(self.params),
            "final": self.final,
            "quality_passed": self.quality_passed,
            "quality_summary": self.quality_summary,
            "computed_ns": self.computed_ns,
            "content_hash": self.content_hash,
            "ledger_ends": None
            if self.ledger_ends is None
            else [[t, p, e] for (t, p), e in sorted(self.ledger_ends.items())],
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> RunInfo:
        """Rebuild a run from :meth:`to_json`."""
        return RunInfo(
            run_id=str(d["run_id"]),
            date=date.fromisoformat(str(d["date"])),
            kernel_version=str(d["kernel_version"]),
            params=dict(d["params"]),
            final=bool(d["final"]),
            quality_passed=d["quality_passed"],
            quality_summary=d["quality_summary"],
            computed_ns=int(d["computed_ns"]),
            content_hash=d["content_hash"],
            ledger_ends=None
            if d.get("ledger_ends") is None
            else {(str(t), int(p)): int(e) for t, p, e in d["ledger_ends"]},
        )


def parse_params(raw: Any) -> dict[str, Any]:
    """Return a run's ``params`` JSON text as a dict (unparseable text kept, shortened)."""
    if raw is None:
        return {}
    try:
        value = json.loads(str(raw))
    except ValueError:
        return {"unparsed": str(raw)[:500]}
    return value if isinstance(value, dict) else {"value": value}


def run_from_row(row: Sequence[Any]) -> RunInfo:
    """Build a run from a ``signal_runs`` row.

    The columns are ``run_id, date, kernel_version, params, final, quality_passed,
    quality_summary, computed_ns, content_hash, ledger_ends`` (the order of ``RUNS_SQL``).
    """
    run_id, d, kv, params, final, qp, qs, computed, ch, ends = row
    return RunInfo(
        run_id=str(run_id),
        date=d if isinstance(d, date) else date.fromisoformat(str(d)),
        kernel_version=str(kv),
        params=parse_params(params),
        final=bool(final),
        quality_passed=None if qp is None else bool(qp),
        quality_summary=None if qs is None else str(qs),
        computed_ns=int(computed),
        content_hash=None if ch is None else str(ch),
        ledger_ends=parse_ledger_ends(ends),
    )


def current_runs(rows: Iterable[Sequence[Any]]) -> dict[date, RunInfo]:
    """Return each day's current run: its latest ``computed_ns`` (ties: the larger run id)."""
    out: dict[date, RunInfo] = {}
    for row in rows:
        run = run_from_row(row)
        old = out.get(run.date)
        if old is None or (run.computed_ns, run.run_id) > (old.computed_ns, old.run_id):
            out[run.date] = run
    return out


@dataclass(frozen=True, slots=True)
class GapInfo:
    """A window in which the feed may have missed trades (its newest state)."""

    subscription: str
    last_before_ns: int | None
    first_after_ns: int | None
    reason: str
    detected_ns: int
    gap_id: str | None = None
    repair: str | None = None

    def applies_to(self, symbol: str) -> bool:
        """Return True if the gap's subscription covers ``symbol``."""
        return gap_applies_to(self.subscription, symbol)

    def overlap_ns(self, start_ns: int, end_ns: int) -> int:
        """Return how much of ``[start_ns, end_ns)`` the gap covers (open ends: the window)."""
        return overlap_ns(self.last_before_ns, self.first_after_ns, start_ns, end_ns)

    def to_json(self) -> list[Any]:
        """Return the gap as a JSON list."""
        return [
            self.subscription,
            self.last_before_ns,
            self.first_after_ns,
            self.reason,
            self.detected_ns,
            self.gap_id,
            self.repair,
        ]

    @staticmethod
    def from_json(v: Sequence[Any]) -> GapInfo:
        """Rebuild a gap from :meth:`to_json` (or a ``GAPS_SQL`` row)."""
        return GapInfo(
            str(v[0]),
            None if v[1] is None else int(v[1]),
            None if v[2] is None else int(v[2]),
            str(v[3]),
            int(v[4]),
            None if v[5] is None else str(v[5]),
            None if v[6] is None else str(v[6]),
        )


def merge_gaps(old: Sequence[GapInfo], new: Iterable[GapInfo]) -> tuple[GapInfo, ...]:
    """Add gap rows; a row with a ``gap_id`` replaces the earlier state of the same gap."""
    by_id: dict[str, int] = {g.gap_id: i for i, g in enumerate(old) if g.gap_id is not None}
    out = list(old)
    for g in new:
        i = by_id.get(g.gap_id) if g.gap_id is not None else None
        if i is None:
            if g.gap_id is not None:
                by_id[g.gap_id] = len(out)
            out.append(g)
        elif g.detected_ns >= out[i].detected_ns or g.repair is not None:
            # A gap's later rows (pending -> backfilled/failed) keep its window.
            out[i] = g
    out.sort(key=lambda g: g.detected_ns)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class LedgerBatch:
    """One ``kafka_offsets`` row: a committed microbatch."""

    topic: str
    partition: int
    start: int
    stop: int
    n_trades: int
    n_duplicates: int
    n_rejects: int
    quality_passed: bool | None
    quality_summary: str | None
    committed_ns: int
    n_signals: int = 0
    """Live signals the batch stored (a batch of the live path's topic)."""

    @property
    def target(self) -> str:
        """Return the batch as ``quality_results.target`` names it."""
        return f"{self.topic}:{self.partition}:[{self.start},{self.stop})"


def ledger_batch(row: Sequence[Any]) -> LedgerBatch:
    """Build a batch from ``LEDGER_SQL``'s column order."""
    topic, p, start, stop, n_trades, dups, rejects, qp, qs, committed, *more = row
    n_signals = more[0] if more else 0
    return LedgerBatch(
        str(topic),
        int(p),
        int(start),
        int(stop),
        int(n_trades),
        int(dups or 0),
        int(rejects or 0),
        None if qp is None else bool(qp),
        None if qs is None else str(qs),
        int(committed),
        int(n_signals or 0),
    )


def follow_ledger(
    base: Catalog,
    rows: Iterable[Sequence[Any]],
    reread: Callable[[str, int, int], Iterable[Sequence[Any]]],
) -> list[LedgerBatch]:
    """Return the ledger batches after the ones ``base`` followed, gap-free per partition.

    Parameters
    ----------
    base
        The catalog (its ledger position per partition).
    rows
        Ledger rows read by commit stamp (with slack; rows already followed are skipped).
    reread
        ``(topic, partition, from_offset) -> rows`` read by offset: used for a partition
        whose new rows do not continue exactly where the catalog stopped (a batch stamped
        long before its COMMIT), so no batch is ever skipped.

    Returns
    -------
    list[LedgerBatch]
        In commit order across partitions and offset order within each, so any prefix
        of the list is a prefix of every partition's ledger.
    """
    nxt = {k: v.next_offset for k, v in base.ledger.items()}
    found: dict[tuple[str, int], list[LedgerBatch]] = {}
    for r in rows:
        b = ledger_batch(r)
        if b.start >= nxt.get((b.topic, b.partition), -1):
            found.setdefault((b.topic, b.partition), []).append(b)
    for key, bs in found.items():
        bs.sort(key=lambda b: b.start)
        expect = nxt.get(key)
        contiguous = (expect is None or bs[0].start == expect) and all(
            a.stop == b.start for a, b in pairwise(bs)
        )
        if not contiguous:
            found[key] = [ledger_batch(r) for r in reread(key[0], key[1], expect or 0)]
    stamped = sorted(
        (b for bs in found.values() for b in bs),
        key=lambda b: (b.committed_ns, b.topic, b.partition, b.start),
    )
    taken = dict.fromkeys(found, 0)
    ordered: list[LedgerBatch] = []
    for b in stamped:
        k = (b.topic, b.partition)
        ordered.append(found[k][taken[k]])
        taken[k] += 1
    return ordered


@dataclass(frozen=True, slots=True)
class TradeFacts:
    """What one ledger batch loaded of one symbol-day."""

    symbol: str
    day: date
    n: int
    first_ns: int
    last_ns: int
    minutes: int
    """Bit ``m`` set: the batch had a regular-hours trade in minute ``m`` after 09:30."""


def trade_facts(rows: Iterable[Sequence[Any]]) -> dict[tuple[int, str, date], TradeFacts]:
    """Fold per-minute aggregates into facts per (batch start, symbol, day).

    Parameters
    ----------
    rows
        ``(batch_start, symbol, trade_date, minute, n, min_ts, max_ts)``: one row per
        group, ``minute`` in 0..389 for regular-hours trades and -1 for the others
        (``MINUTE_FACTS_SQL``).

    Returns
    -------
    dict
        Facts keyed by the batch's start offset, the symbol and the day.
    """
    out: dict[tuple[int, str, date], TradeFacts] = {}
    for start, symbol, d, minute, n, lo, hi in rows:
        day = d if isinstance(d, date) else date.fromisoformat(str(d)[:10])
        key = (int(start), str(symbol), day)
        bit = 1 << int(minute) if 0 <= int(minute) < SESSION_MINUTES else 0
        old = out.get(key)
        if old is None:
            out[key] = TradeFacts(str(symbol), day, int(n), int(lo), int(hi), bit)
        else:
            out[key] = TradeFacts(
                old.symbol,
                day,
                old.n + int(n),
                min(old.first_ns, int(lo)),
                max(old.last_ns, int(hi)),
                old.minutes | bit,
            )
    return out


@dataclass(frozen=True, slots=True)
class SignalFacts:
    """What the current run of a day holds for one symbol."""

    n_rows: int = 0
    n_buy: int = 0
    n_sell: int = 0
    n_hold: int = 0
    n_jumps: int = 0
    has_metrics: bool = False
    bns_z: float | None = None
    bns_p_value: float | None = None
    bns_jump: bool | None = None
    lm_jump_count: int | None = None
    last_ns: int | None = None
    last_seq: int | None = None
    """The key ``(timestamp_ns, seq)`` of the run's last row: live rows after it are served."""

    @property
    def last_key(self) -> tuple[int, int] | None:
        """Return the run's last signal key of the symbol-day (None when unknown)."""
        if self.last_ns is None or self.last_seq is None:
            return None
        return (self.last_ns, self.last_seq)


@dataclass(frozen=True, slots=True)
class LiveFacts:
    """What the live path's history holds of one symbol-day (``live_signals``)."""

    n_rows: int = 0
    n_buy: int = 0
    n_sell: int = 0
    last_ns: int | None = None

    def plus(self, other: LiveFacts) -> LiveFacts:
        """Return the facts of both (two batches of the same symbol-day)."""
        lasts = [t for t in (self.last_ns, other.last_ns) if t is not None]
        return LiveFacts(
            self.n_rows + other.n_rows,
            self.n_buy + other.n_buy,
            self.n_sell + other.n_sell,
            max(lasts) if lasts else None,
        )


def live_facts(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, date], LiveFacts]:
    """Fold grouped live rows into facts per (symbol, day).

    Parameters
    ----------
    rows
        ``(symbol, date, n, n_buy, n_sell, max_ts)`` per symbol-day of some loaded range.

    Returns
    -------
    dict
        Facts keyed by the symbol and the day.
    """
    out: dict[tuple[str, date], LiveFacts] = {}
    for symbol, d, n, buy, sell, hi in rows:
        day = d if isinstance(d, date) else date.fromisoformat(str(d)[:10])
        key = (str(symbol), day)
        f = LiveFacts(int(n), int(buy or 0), int(sell or 0), None if hi is None else int(hi))
        old = out.get(key)
        out[key] = f if old is None else old.plus(f)
    return out


@dataclass(frozen=True, slots=True)
class SymbolDay:
    """Everything the catalog knows about one symbol on one New York trading day."""

    symbol: str
    day: date
    n_trades: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    minutes: int = 0
    n_batches: int = 0
    n_failed: int = 0
    n_unchecked: int = 0
    failed_targets: tuple[str, ...] = ()
    failed_summaries: tuple[str, ...] = ()
    n_duplicates: int = 0
    n_rejects: int = 0
    last_commit_ns: int | None = None
    signals: SignalFacts | None = None
    live: LiveFacts | None = None
    """The live path's provisional signals of the symbol-day (None: none loaded)."""

    @property
    def minutes_with_trades(self) -> int:
        """Return how many regular-hours minutes have at least one trade."""
        return self.minutes.bit_count()

    def with_batch(self, f: TradeFacts, b: LedgerBatch) -> SymbolDay:
        """Return the entry after batch ``b`` loaded ``f`` of it."""
        failed = b.quality_passed is False
        return replace(
            self,
            n_trades=self.n_trades + f.n,
            first_ns=f.first_ns if self.first_ns is None else min(self.first_ns, f.first_ns),
            last_ns=f.last_ns if self.last_ns is None else max(self.last_ns, f.last_ns),
            minutes=self.minutes | f.minutes,
            n_batches=self.n_batches + 1,
            n_failed=self.n_failed + failed,
            n_unchecked=self.n_unchecked + (b.quality_passed is None),
            failed_targets=(*self.failed_targets, b.target)[:MAX_FAILED_KEPT]
            if failed
            else self.failed_targets,
            failed_summaries=(*self.failed_summaries, b.quality_summary or "")[:MAX_FAILED_KEPT]
            if failed
            else self.failed_summaries,
            n_duplicates=self.n_duplicates + b.n_duplicates,
            n_rejects=self.n_rejects + b.n_rejects,
            last_commit_ns=b.committed_ns
            if self.last_commit_ns is None
            else max(self.last_commit_ns, b.committed_ns),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the entry as JSON types (the minute set as hex: it has 390 bits)."""
        s = self.signals
        return {
            "n": self.n_trades,
            "first": self.first_ns,
            "last": self.last_ns,
            "minutes": format(self.minutes, "x"),
            "batches": [self.n_batches, self.n_failed, self.n_unchecked],
            "failed": [list(self.failed_targets), list(self.failed_summaries)],
            "dups": self.n_duplicates,
            "rejects": self.n_rejects,
            "commit": self.last_commit_ns,
            "signals": None
            if s is None
            else [
                s.n_rows,
                s.n_buy,
                s.n_sell,
                s.n_hold,
                s.n_jumps,
                s.has_metrics,
                s.bns_z,
                s.bns_p_value,
                s.bns_jump,
                s.lm_jump_count,
                s.last_ns,
                s.last_seq,
            ],
            "live": None
            if self.live is None
            else [self.live.n_rows, self.live.n_buy, self.live.n_sell, self.live.last_ns],
        }

    @staticmethod
    def from_json(symbol: str, day: date, d: Mapping[str, Any]) -> SymbolDay:
        """Rebuild an entry from :meth:`to_json`."""
        s = d["signals"]
        return SymbolDay(
            symbol=symbol,
            day=day,
            n_trades=int(d["n"]),
            first_ns=d["first"],
            last_ns=d["last"],
            minutes=int(d["minutes"], 16),
            n_batches=int(d["batches"][0]),
            n_failed=int(d["batches"][1]),
            n_unchecked=int(d["batches"][2]),
            failed_targets=tuple(d["failed"][0]),
            failed_summaries=tuple(d["failed"][1]),
            n_duplicates=int(d["dups"]),
            n_rejects=int(d["rejects"]),
            last_commit_ns=d["commit"],
            signals=None if s is None else SignalFacts(*s),
            live=None if d.get("live") is None else LiveFacts(*d["live"]),
        )


@dataclass(frozen=True, slots=True)
class DayCatalog:
    """One trading day: its symbols' entries and its current signals run."""

    day: date
    entries: Mapping[str, SymbolDay]
    run: RunInfo | None = None
    session_loads: Mapping[tuple[str, int], int] = field(default_factory=dict[tuple[str, int], int])
    """Per partition, the end of the last batch that loaded trades in the day's session."""

    @property
    def stale(self) -> bool:
        """Return True when trades of the session were loaded after the run's snapshot."""
        ends = None if self.run is None else self.run.ledger_ends
        if ends is None:
            return False
        return any(not read_by_run(ends, t, p, stop) for (t, p), stop in self.session_loads.items())

    @property
    def final(self) -> bool | None:
        """Return whether the day's signals are final now (None: no run).

        Final when computed, and no session trade loaded since (pipeline/warehouse/finality.py).
        """
        return None if self.run is None else self.run.final and not self.stale

    def to_json(self) -> dict[str, Any]:
        """Return the day as JSON types."""
        return {
            "day": self.day.isoformat(),
            "run": None if self.run is None else self.run.to_json(),
            "entries": {s: e.to_json() for s, e in sorted(self.entries.items())},
            "session_loads": [[t, p, e] for (t, p), e in sorted(self.session_loads.items())],
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> DayCatalog:
        """Rebuild a day from :meth:`to_json`."""
        day = date.fromisoformat(str(d["day"]))
        return DayCatalog(
            day=day,
            entries={s: SymbolDay.from_json(s, day, e) for s, e in d["entries"].items()},
            run=None if d["run"] is None else RunInfo.from_json(d["run"]),
            session_loads={(str(t), int(p)): int(e) for t, p, e in d.get("session_loads", ())},
        )


@dataclass(frozen=True, slots=True)
class SymbolSummary:
    """What the catalog holds for one symbol over every day."""

    symbol: str
    n_trades: int
    first_ns: int | None
    last_ns: int | None
    days: tuple[date, ...]
    """Days with trades, ascending."""
    signal_days: tuple[date, ...]
    """Days whose current run has signal rows of the symbol, ascending."""
    live_days: tuple[date, ...] = ()
    """Days with the live path's provisional signals of the symbol, ascending."""
    live_last_ns: int | None = None
    """The newest trade time of the live path's signals of the symbol."""

    @property
    def signals_last_ns(self) -> int | None:
        """Return the newest time with a signal, batch or live (signal windows end there)."""
        known = [t for t in (self.last_ns, self.live_last_ns) if t is not None]
        return max(known) if known else None


@dataclass(frozen=True, slots=True)
class LedgerPos:
    """How far the catalog has followed one topic-partition's ledger."""

    next_offset: int
    n_batches: int
    last_commit_ns: int


def _summary(symbol: str, days: Mapping[date, DayCatalog], of: Iterable[date]) -> SymbolSummary:
    entries = [days[d].entries[symbol] for d in sorted(of)]
    trade_days = tuple(e.day for e in entries if e.n_trades)
    firsts = [e.first_ns for e in entries if e.first_ns is not None]
    lasts = [e.last_ns for e in entries if e.last_ns is not None]
    live_lasts = [e.live.last_ns for e in entries if e.live is not None and e.live.last_ns]
    return SymbolSummary(
        symbol=symbol,
        n_trades=sum(e.n_trades for e in entries),
        first_ns=min(firsts) if firsts else None,
        last_ns=max(lasts) if lasts else None,
        days=trade_days,
        signal_days=tuple(e.day for e in entries if e.signals is not None and e.signals.n_rows > 0),
        live_days=tuple(e.day for e in entries if e.live is not None and e.live.n_rows > 0),
        live_last_ns=max(live_lasts) if live_lasts else None,
    )


@dataclass(frozen=True)
class Catalog:
    """The served state's facts; read by the tools for completeness and provenance."""

    days: Mapping[date, DayCatalog] = field(default_factory=dict[date, DayCatalog])
    symbols: Mapping[str, SymbolSummary] = field(default_factory=dict[str, SymbolSummary])
    symbol_days: Mapping[str, tuple[date, ...]] = field(default_factory=dict[str, tuple[date, ...]])
    ledger: Mapping[tuple[str, int], LedgerPos] = field(
        default_factory=dict[tuple[str, int], LedgerPos]
    )
    gaps: tuple[GapInfo, ...] = ()
    failed_expectations: Mapping[str, tuple[tuple[str, str, str | None], ...]] = field(
        default_factory=dict[str, tuple[tuple[str, str, str | None], ...]]
    )
    """Failed ``quality_results`` rows (suite, expectation, observed) by target, newest first."""
    evaluation_id: str | None = None

    @property
    def runs(self) -> dict[date, RunInfo]:
        """Return every day's current run."""
        return {d: c.run for d, c in self.days.items() if c.run is not None}

    def run(self, day: date) -> RunInfo | None:
        """Return the current run of ``day`` (None if none)."""
        c = self.days.get(day)
        return None if c is None else c.run

    def final(self, day: date) -> bool | None:
        """Return whether ``day``'s signals are final now (:attr:`DayCatalog.final`)."""
        c = self.days.get(day)
        return None if c is None else c.final

    def stale(self, day: date) -> bool:
        """Return True when ``day``'s run missed trades loaded after it (``DayCatalog.stale``)."""
        c = self.days.get(day)
        return c is not None and c.stale

    def entry(self, symbol: str, day: date) -> SymbolDay | None:
        """Return the entry of a symbol-day (None if the catalog has none)."""
        c = self.days.get(day)
        return None if c is None else c.entries.get(symbol)

    @property
    def last_commit_ns(self) -> int | None:
        """Return the newest ledger commit followed."""
        stamps = [p.last_commit_ns for p in self.ledger.values()]
        return max(stamps) if stamps else None

    @property
    def n_batches(self) -> int:
        """Return the ledger batches followed."""
        return sum(p.n_batches for p in self.ledger.values())

    @property
    def newest_trade_ns(self) -> int | None:
        """Return the newest trade over every symbol."""
        last = [s.last_ns for s in self.symbols.values() if s.last_ns is not None]
        return max(last) if last else None

    def ledger_through(self) -> dict[str, int]:
        """Return the next offset per ``topic:partition``: the ledger position served."""
        return {f"{t}:{p}": pos.next_offset for (t, p), pos in sorted(self.ledger.items())}

    def find_symbol(self, text: str) -> SymbolSummary | None:
        """Return the summary of ``text`` (exact, then upper case)."""
        return self.symbols.get(text) or self.symbols.get(text.upper())


class CatalogBuilder:
    """Apply facts to a catalog and freeze the result (copy-on-write per day).

    Parameters
    ----------
    base
        The catalog to start from (empty by default).
    """

    def __init__(self, base: Catalog | None = None) -> None:
        base = base or Catalog()
        self._base = base
        self._days: dict[date, DayCatalog] = dict(base.days)
        self._entries: dict[date, dict[str, SymbolDay]] = {}
        self._runs: dict[date, RunInfo | None] = {}
        self._loads: dict[date, dict[tuple[str, int], int]] = {}
        self._ledger = dict(base.ledger)
        self._gaps = base.gaps
        self._failed = dict(base.failed_expectations)
        self._evaluation_id = base.evaluation_id
        self._touched: set[str] = set()
        self._dropped: set[date] = set()
        self.changed_days: set[date] = set()

    def _day_entries(self, day: date) -> dict[str, SymbolDay]:
        entries = self._entries.get(day)
        if entries is None:
            old = self._days.get(day)
            entries = dict(old.entries) if old is not None else {}
            self._entries[day] = entries
        return entries

    def add_batch(self, batch: LedgerBatch, facts: Iterable[TradeFacts]) -> None:
        """Apply one committed ledger batch and what it loaded of each symbol-day."""
        key = (batch.topic, batch.partition)
        for f in facts:
            entries = self._day_entries(f.day)
            old = entries.get(f.symbol) or SymbolDay(f.symbol, f.day)
            entries[f.symbol] = old.with_batch(f, batch)
            self._touched.add(f.symbol)
            self.changed_days.add(f.day)
            if f.minutes:
                # A regular-hours trade: a run that did not read this batch is stale.
                loads = self._day_loads(f.day)
                loads[key] = max(batch.stop, loads.get(key, 0))
        pos = self._ledger.get(key)
        self._ledger[key] = LedgerPos(
            next_offset=max(batch.stop, pos.next_offset if pos else 0),
            n_batches=(pos.n_batches if pos else 0) + 1,
            last_commit_ns=max(batch.committed_ns, pos.last_commit_ns if pos else 0),
        )

    def add_live(self, facts: Iterable[tuple[str, date, LiveFacts]]) -> None:
        """Add what a batch of the live path's topic loaded of each symbol-day."""
        for symbol, day, f in facts:
            entries = self._day_entries(day)
            old = entries.get(symbol) or SymbolDay(symbol, day)
            entries[symbol] = replace(old, live=f if old.live is None else old.live.plus(f))
            self._touched.add(symbol)
            self.changed_days.add(day)

    def _day_loads(self, day: date) -> dict[tuple[str, int], int]:
        loads = self._loads.get(day)
        if loads is None:
            old = self._days.get(day)
            loads = self._loads[day] = dict(old.session_loads) if old is not None else {}
        return loads

    def set_run(self, day: date, run: RunInfo | None, signals: Mapping[str, SignalFacts]) -> None:
        """Make ``run`` the day's current run with its per-symbol facts (None: no run)."""
        entries = self._day_entries(day)
        for symbol in set(entries) | set(signals):
            old = entries.get(symbol) or SymbolDay(symbol, day)
            entries[symbol] = replace(old, signals=signals.get(symbol))
            self._touched.add(symbol)
        self._runs[day] = run
        self.changed_days.add(day)

    def drop_trades(self, day: date) -> None:
        """Forget a day's trades (retention dropped them); its signals stay served."""
        entries = self._day_entries(day)
        for symbol, e in list(entries.items()):
            self._touched.add(symbol)
            if e.signals is None and e.live is None:
                del entries[symbol]
            else:
                entries[symbol] = SymbolDay(symbol, day, signals=e.signals, live=e.live)
        self.changed_days.add(day)

    def drop_day(self, day: date) -> None:
        """Forget a day (retention dropped it from the warehouse)."""
        old = self._days.pop(day, None)
        self._entries.pop(day, None)
        self._loads.pop(day, None)
        self._runs.pop(day, None)
        if old is not None:
            self._touched.update(old.entries)
        self._dropped.add(day)
        self.changed_days.add(day)

    def add_gaps(self, gaps: Iterable[GapInfo]) -> None:
        """Add feed gap rows (newest state per gap id)."""
        self._gaps = merge_gaps(self._gaps, gaps)

    def set_failed(self, target: str, rows: Sequence[tuple[str, str, str | None]]) -> None:
        """Record the failed expectations of a quality target (a batch or a day)."""
        if rows:
            self._failed[target] = tuple(rows)
        else:
            self._failed.pop(target, None)

    def set_evaluation(self, evaluation_id: str | None) -> None:
        """Record which stored evaluation is the newest."""
        self._evaluation_id = evaluation_id

    def freeze(self) -> Catalog:
        """Return the new catalog; untouched days are the previous catalog's objects."""
        days = dict(self._days)
        for day, entries in self._entries.items():
            old = days.get(day)
            run = self._runs.get(day, old.run if old else None)
            loads = self._loads.get(day, old.session_loads if old else {})
            if entries or run is not None:
                days[day] = DayCatalog(day, dict(entries), run, dict(loads))
            else:
                days.pop(day, None)
        for day, run in self._runs.items():
            if day not in self._entries and day in days:
                days[day] = replace(days[day], run=run)
        for day in self._dropped:
            if day not in self._entries:
                days.pop(day, None)
        return _resummarize(
            replace(
                self._base,
                ledger=dict(self._ledger),
                gaps=self._gaps,
                failed_expectations=dict(self._failed),
                evaluation_id=self._evaluation_id,
            ),
            days,
            set(self._entries) | self._dropped,
            self._touched,
        )


def _resummarize(
    base: Catalog, days: dict[date, DayCatalog], changed: set[date], touched: set[str]
) -> Catalog:
    """Return ``base`` with ``days`` and the summaries of ``touched`` symbols rebuilt.

    A symbol's day list is updated from the changed days only, so the cost is the
    symbols and days that changed, not the catalog's size.
    """
    symbol_days = dict(base.symbol_days)
    symbols = dict(base.symbols)
    for symbol in touched:
        have = set(base.symbol_days.get(symbol, ()))
        for day in changed:
            c = days.get(day)
            if c is not None and symbol in c.entries:
                have.add(day)
            else:
                have.discard(day)
        if have:
            ordered = tuple(sorted(have))
            symbol_days[symbol] = ordered
            symbols[symbol] = _summary(symbol, days, ordered)
        else:
            symbol_days.pop(symbol, None)
            symbols.pop(symbol, None)
    return replace(base, days=days, symbols=dict(sorted(symbols.items())), symbol_days=symbol_days)


def with_days(base: Catalog, days: Mapping[date, DayCatalog | None]) -> Catalog:
    """Return ``base`` with whole days replaced (None drops one), summaries updated.

    Readers of the serving store use this to apply the days a new manifest changed.
    """
    out = dict(base.days)
    touched: set[str] = set()
    for day, c in days.items():
        old = out.pop(day, None)
        if old is not None:
            touched.update(old.entries)
        if c is not None:
            out[day] = c
            touched.update(c.entries)
    return _resummarize(base, out, set(days), touched)


__all__ = [
    "SESSION_MINUTES",
    "Catalog",
    "CatalogBuilder",
    "DayCatalog",
    "GapInfo",
    "LedgerBatch",
    "LedgerPos",
    "LiveFacts",
    "RunInfo",
    "SignalFacts",
    "SymbolDay",
    "SymbolSummary",
    "TradeFacts",
    "current_runs",
    "follow_ledger",
    "ledger_batch",
    "live_facts",
    "merge_gaps",
    "parse_params",
    "run_from_row",
    "trade_facts",
    "with_days",
]
