"""The DuckDB implementation of the serving port: answers from the serving store's files.

A server process never opens the warehouse. It reads the state the materializer
published (:mod:`pipeline.serving.materialize`, run as a child process, a thread, or
inline for tests): the manifest names each day's immutable Arrow files, which are
memory-mapped and sliced. Every segment holds one sorted record batch per symbol, so a
window is two binary searches on a timestamp column, a page is a slice of at most
``limit`` rows per segment, and a count is a difference of positions: the cost of a
call is what it returns (plus ``log n``), not what the store holds.

Views are immutable: a call pins one published state (``as_of_ns``) for its whole
duration; files a newer state drops are kept by the materializer for a grace period
longer than any call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.ipc as ipc

from pipeline.nytime import ny_date
from pipeline.serving import format as fmt
from pipeline.serving.catalog import Catalog, with_days
from pipeline.serving.port import (
    SIGNAL_CODES,
    Newest,
    Page,
    ServingBusy,
    ServingHealth,
    ServingUnavailable,
    SignalKey,
    SignalKind,
    TradeKey,
    check_scan,
    live_cut,
    merge_pages,
)
from pipeline.serving.store import DayFiles, Manifest, Segment, StoreLayout, source_version

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.serving.materialize import Materializer

logger = logging.getLogger(__name__)

Materialize = Literal["process", "thread", "inline", "off"]


class FileCache:
    """Open, memory-mapped Arrow files, least recently used closed first.

    Parameters
    ----------
    root
        The store directory.
    max_open
        Most files kept open (each costs a descriptor and a mapping, no resident memory
        beyond the pages read).
    """

    def __init__(self, root: Path, max_open: int = 512, max_derived: int = 20_000) -> None:
        self.root = root
        self.max_open = max_open
        self.max_derived = max_derived
        self._open: OrderedDict[str, ipc.RecordBatchFileReader] = OrderedDict()
        self._derived: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def derived(self, seg: Segment, symbol: str, kind: str, make: Any) -> Any:
        """Return a fact derived from one symbol's batch of a segment, computed once.

        Segments never change, so what is derived from them (positions of the sparse
        signal kinds, a formatted daily-statistics row, reject times and reasons) stays
        true; the cache keeps the ``max_derived`` most recently used (small arrays and
        rows: a few MB).
        """
        key = (seg.file, symbol, kind)
        with self._lock:
            if key in self._derived:
                self._derived.move_to_end(key)
                return self._derived[key]
        b = self.batch(seg, symbol)
        value = make(b)
        with self._lock:
            self._derived[key] = value
            while len(self._derived) > self.max_derived:
                self._derived.popitem(last=False)
        return value

    def batch(self, seg: Segment, symbol: str) -> pa.RecordBatch | None:
        """Return the record batch of ``symbol`` in ``seg`` (None if it has none).

        The batch object is kept (zero-copy views of the mapped file; reading its
        metadata again costs more than a page of rows).
        """
        where = seg.symbols.get(symbol)
        if where is None:
            return None
        key = (seg.file, symbol, "batch")
        with self._lock:
            hit = self._derived.get(key)
            if hit is not None:
                self._derived.move_to_end(key)
                return cast("pa.RecordBatch", hit)
        b = self.reader(seg.file).get_batch(where[0])
        with self._lock:
            self._derived[key] = b
            while len(self._derived) > self.max_derived:
                self._derived.popitem(last=False)
        return b

    def reader(self, name: str) -> ipc.RecordBatchFileReader:
        """Return the reader of a store file (opened once)."""
        with self._lock:
            r = self._open.get(name)
            if r is not None:
                self._open.move_to_end(name)
                return r
        r = ipc.open_file(pa.memory_map(str(self.root / name)))
        with self._lock:
            self._open[name] = r
            while len(self._open) > self.max_open:
                self._open.popitem(last=False)
        return r

    def clear(self) -> None:
        """Close every file and forget what was derived."""
        with self._lock:
            self._open.clear()
            self._derived.clear()


@dataclass(frozen=True)
class StoreState:
    """One published state, loaded: its manifest, its days' files and its catalog."""

    generation: int
    manifest: Manifest
    days: Mapping[date, DayFiles]
    catalog: Catalog
    memo: dict[Any, Any] = field(default_factory=dict[Any, Any])
    """Answers' derived facts valid for this state (completeness, newest rows)."""


def load_state(layout: StoreLayout, name: str, previous: StoreState | None) -> StoreState:
    """Load the state a manifest describes, re-reading only the days that changed.

    Parameters
    ----------
    layout
        The store.
    name
        The manifest's name (``CURRENT``'s content).
    previous
        The state loaded before (its unchanged days are reused).

    Returns
    -------
    StoreState
        The state.
    """
    manifest = Manifest.from_json(layout.read_json(name))
    old_names = previous.manifest.days if previous is not None else {}
    days: dict[date, DayFiles] = {}
    changed: dict[date, Any] = {}
    for day, day_name in manifest.days.items():
        if previous is not None and old_names.get(day) == day_name:
            days[day] = previous.days[day]
        else:
            days[day] = DayFiles.from_json(layout.read_json(day_name))
            changed[day] = days[day].catalog
    if previous is not None:
        for day in set(previous.days) - set(days):
            changed[day] = None
        base = previous.catalog
    else:
        base = Catalog()
    mbase = manifest.base_catalog()
    catalog = with_days(
        Catalog(
            days=base.days,
            symbols=base.symbols,
            symbol_days=base.symbol_days,
            ledger=mbase.ledger,
            gaps=mbase.gaps,
            failed_expectations=mbase.failed_expectations,
            evaluation_id=mbase.evaluation_id,
        ),
        changed,
    )
    return StoreState(manifest.generation, manifest, days, catalog)


def _reject_columns(b: pa.RecordBatch | None) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Receipt times and reasons of one symbol's rejects in a segment (sorted by time)."""
    if b is None:
        return np.zeros(0, dtype=np.int64), []
    return b.column(0).to_numpy(), [str(r) for r in b.column("reason").to_pylist()]


def _cut_trades(ts: np.ndarray, p: np.ndarray, o: np.ndarray, key: TradeKey) -> int:
    """Return the position of the first row whose key is not below ``key``."""
    t, kp, ko = key
    lo = int(np.searchsorted(ts, t, side="left"))
    hi = int(np.searchsorted(ts, t, side="right"))
    while lo < hi and (int(p[lo]), int(o[lo])) < (kp, ko):
        lo += 1
    return lo


def _cut_signals(ts: np.ndarray, seq: np.ndarray, key: SignalKey) -> int:
    t, ks = key
    lo = int(np.searchsorted(ts, t, side="left"))
    hi = int(np.searchsorted(ts, t, side="right"))
    return lo + int(np.searchsorted(seq[lo:hi], ks, side="left"))


def _days_of(catalog: Catalog, symbol: str, start_ns: int, end_ns: int) -> list[date]:
    """Return the symbol's days with data that ``[start_ns, end_ns)`` touches, newest first."""
    if end_ns <= start_ns:
        return []
    first, last = ny_date(start_ns), ny_date(end_ns - 1)
    have = catalog.symbol_days.get(symbol, ())
    return [d for d in reversed(have) if first <= d <= last]


class StoreView:
    """One published state of the serving store (a :class:`~pipeline.serving.port.ServingView`).

    Parameters
    ----------
    state
        The loaded state.
    files
        The process's open files.
    as_of_ns
        The state's as-of (moved forward by the heartbeat while the warehouse is unchanged).
    stale_reason
        Why the warehouse may hold newer data (None when current).
    """

    def __init__(
        self, state: StoreState, files: FileCache, as_of_ns: int, stale_reason: str | None
    ) -> None:
        self._state = state
        self._files = files
        self._as_of_ns = as_of_ns
        self._stale_reason = stale_reason

    @property
    def as_of_ns(self) -> int:
        """When the state was read from the warehouse."""
        return self._as_of_ns

    @property
    def catalog(self) -> Catalog:
        """The state's catalog."""
        return self._state.catalog

    @property
    def stale_reason(self) -> str | None:
        """Why newer data may exist."""
        return self._stale_reason

    @property
    def generation(self) -> int:
        """The published state's number."""
        return self._state.generation

    @property
    def memo(self) -> dict[Any, Any]:
        """A cache of derived answers valid for this state (bounded by the caller)."""
        memo = self._state.memo
        if len(memo) > 4096:
            memo.clear()  # keys are per symbol and window: rare
        return memo

    # --- trades ------------------------------------------------------------------------

    def _trade_parts(
        self, symbol: str, day: date, *, live: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Yield the symbol's rows of the day's trade segments (its live segments if ``live``)."""
        files = self._state.days.get(day)
        if files is None:
            return
        for seg in files.live if live else files.trades:
            b = self._files.batch(seg, symbol)
            if b is not None:
                yield b

    def trades_page(
        self, symbol: str, start_ns: int, end_ns: int, before: TradeKey | None, limit: int
    ) -> Page:
        """Return trades with their signals in ``[start_ns, end_ns)``, newest first."""
        t0 = time.perf_counter()
        total = older = 0
        pieces: list[pa.Table] = []
        have = 0
        for day in _days_of(self.catalog, symbol, start_ns, end_ns):
            day_pieces: list[pa.Table] = []
            for b in self._trade_parts(symbol, day):
                ts = b.column(0).to_numpy()
                a = int(np.searchsorted(ts, start_ns, side="left"))
                z = int(np.searchsorted(ts, end_ns, side="left"))
                if z <= a:
                    continue
                total += z - a
                cut = z
                if before is not None:
                    cut = max(
                        a,
                        min(
                            z,
                            _cut_trades(ts, b.column(1).to_numpy(), b.column(2).to_numpy(), before),
                        ),
                    )
                older += cut - a
                if have < limit and cut > a:
                    lo = max(a, cut - limit)
                    day_pieces.append(pa.Table.from_batches([b.slice(lo, cut - lo)]))
            if day_pieces:
                merged = (
                    pa.concat_tables(day_pieces)
                    .sort_by(
                        [
                            ("timestamp_ns", "descending"),
                            ("kafka_partition", "descending"),
                            ("kafka_offset", "descending"),
                        ]
                    )
                    .slice(0, limit - have)
                )
                have += merged.num_rows
                pieces.append(self._with_signals(symbol, day, merged))
        if not pieces:
            return Page([], [], total, older, time.perf_counter() - t0)
        cols: dict[str, list[Any]] = {}
        for piece in pieces:
            for k, v in piece.items():
                cols.setdefault(k, []).extend(v)
        rows = fmt.trade_rows(cols)
        keys: list[tuple[int, ...]] = [
            (r["timestamp_ns"], r["kafka_partition"], r["kafka_offset"]) for r in rows
        ]
        return Page(rows, keys, total, older - len(rows), time.perf_counter() - t0)

    def _with_signals(self, symbol: str, day: date, trades: pa.Table) -> dict[str, list[Any]]:
        """Return the trades' columns with their signal columns (None where none)."""
        out: dict[str, list[Any]] = {c: trades.column(c).to_pylist() for c in fmt.TRADE_COLUMNS}
        n = trades.num_rows
        for c in fmt.JOINED_SIGNAL_COLUMNS:
            out[c] = [None] * n
        files = self._state.days.get(day)
        sig = (
            None
            if files is None or files.signals is None
            else self._files.batch(files.signals, symbol)
        )
        if sig is None or n == 0:
            return out
        ts = out["timestamp_ns"]
        sts = sig.column(0).to_numpy()
        lo = int(np.searchsorted(sts, min(ts), side="left"))
        hi = int(np.searchsorted(sts, max(ts), side="right"))
        if hi <= lo:
            return out
        part = sig.slice(lo, hi - lo)
        names = part.schema.names
        cols = {
            c: part.column(names.index(c)).to_pylist()
            for c in (*fmt.JOINED_SIGNAL_COLUMNS, "kafka_partition", "kafka_offset")
        }
        where = {
            (p, o): i
            for i, (p, o) in enumerate(
                zip(cols["kafka_partition"], cols["kafka_offset"], strict=True)
            )
        }
        for j, key in enumerate(zip(out["kafka_partition"], out["kafka_offset"], strict=True)):
            i = where.get(key)
            if i is not None:
                for c in fmt.JOINED_SIGNAL_COLUMNS:
                    out[c][j] = cols[c][i]
        return out

    # --- signals -----------------------------------------------------------------------

    def _signal_batch(self, symbol: str, day: date) -> pa.RecordBatch | None:
        files = self._state.days.get(day)
        if files is None or files.signals is None:
            return None
        return self._files.batch(files.signals, symbol)

    def _sparse(self, symbol: str, day: date, kind: str) -> npt.NDArray[np.int64]:
        """Positions of a sparse kind (BUY, SELL, JUMP) in a symbol-day's signal batch."""
        files = self._state.days[day]
        assert files.signals is not None

        def make(b: pa.RecordBatch | None) -> npt.NDArray[np.int64]:
            if b is None:
                return np.zeros(0, dtype=np.int64)
            if kind == "JUMP":
                flags = b.column("jump_detected").fill_null(False).to_numpy(zero_copy_only=False)
                return np.flatnonzero(np.asarray(flags, dtype=bool)).astype(np.int64)
            return np.flatnonzero(b.column("code").to_numpy() == SIGNAL_CODES[kind]).astype(
                np.int64
            )

        return cast("npt.NDArray[np.int64]", self._files.derived(files.signals, symbol, kind, make))

    def _signal_days(self, symbol: str, start_ns: int, end_ns: int) -> list[date]:
        out = []
        for d in _days_of(self.catalog, symbol, start_ns, end_ns):
            e = self.catalog.entry(symbol, d)
            if e is not None and e.signals is not None and e.signals.n_rows:
                out.append(d)
        return out

    def signals_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return signal rows of one kind in ``[start_ns, end_ns)``, newest first.

        The current runs' rows, and after each symbol-day's last run row the live path's
        rows (``live_page``): one keyset order over both.
        """
        batch = self._batch_page(symbol, kind, start_ns, end_ns, before, limit)
        if not self._live_days(symbol, start_ns, end_ns):
            return batch
        return merge_pages(
            batch, self.live_page(symbol, kind, start_ns, end_ns, before, limit), limit
        )

    def _batch_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return the current runs' rows of one kind in ``[start_ns, end_ns)``, newest first.

        Every kind costs ``log n`` plus the page: ALL is a slice; BUY, SELL and jumps are
        sparse, and their positions per symbol-day are derived once; HOLD (nearly every
        row) is counted as the rest and found by stepping back from the page's end.
        """
        t0 = time.perf_counter()
        total = older = 0
        rows: list[dict[str, Any]] = []
        for day in self._signal_days(symbol, start_ns, end_ns):
            b = self._signal_batch(symbol, day)
            if b is None:
                continue
            ts = b.column(0).to_numpy()
            a = int(np.searchsorted(ts, start_ns, side="left"))
            z = int(np.searchsorted(ts, end_ns, side="left"))
            if z <= a:
                continue
            cut = (
                z
                if before is None
                else max(a, min(z, _cut_signals(ts, b.column(1).to_numpy(), before)))
            )
            need = limit - len(rows)
            n_window, n_older, pos = self._kind_positions(symbol, day, b, kind, a, z, cut, need)
            total += n_window
            older += n_older
            if need > 0 and len(pos):
                lo, hi = int(pos[0]), int(pos[-1]) + 1
                # A contiguous run (every ALL page, most HOLD pages) is a zero-copy slice.
                part = b.slice(lo, hi - lo) if hi - lo == len(pos) else b.take(pa.array(pos))
                cols = {c: part.column(c).to_pylist()[::-1] for c in fmt.SIGNAL_COLUMNS}
                rows.extend(fmt.signal_rows(cols, day))
        keys: list[tuple[int, ...]] = [(r["timestamp_ns"], r["seq"]) for r in rows]
        return Page(rows, keys, total, older - len(rows), time.perf_counter() - t0)

    def _kind_positions(
        self,
        symbol: str,
        day: date,
        b: pa.RecordBatch,
        kind: SignalKind,
        a: int,
        z: int,
        cut: int,
        need: int,
    ) -> tuple[int, int, npt.NDArray[np.int64]]:
        """Return (rows of ``kind`` in [a, z), in [a, cut), the last ``need`` before cut)."""
        if kind == "ALL":
            return z - a, cut - a, np.arange(max(a, cut - max(need, 0)), cut, dtype=np.int64)
        if kind in ("BUY", "SELL", "JUMP"):
            p = self._sparse(symbol, day, kind)
            i0, i1, ic = np.searchsorted(p, [a, z, cut], side="left").tolist()
            return i1 - i0, ic - i0, p[max(i0, ic - max(need, 0)) : ic]
        # HOLD: everything that is neither BUY nor SELL.
        sparse = [self._sparse(symbol, day, k) for k in ("BUY", "SELL")]

        def n_hold(lo: int, hi: int) -> int:
            taken = sum(int(np.searchsorted(p, hi) - np.searchsorted(p, lo)) for p in sparse)
            return hi - lo - taken

        found: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if need > 0:
            codes = b.column("code").to_numpy()
            span = need + 64
            while True:
                lo = max(a, cut - span)
                found = lo + np.flatnonzero(codes[lo:cut] == SIGNAL_CODES["HOLD"])
                if len(found) >= need or lo == a:
                    break
                span *= 4
            found = found[-need:]
        return n_hold(a, z), n_hold(a, cut), found.astype(np.int64)

    def signal_counts(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Return BUY, SELL and HOLD counts of ``[start_ns, end_ns)`` (live tails included)."""
        c = {"BUY": 0, "SELL": 0, "HOLD": 0}
        if self._live_days(symbol, start_ns, end_ns):
            for k in ("BUY", "SELL", "HOLD"):
                c[k] += self.live_page(symbol, k, start_ns, end_ns, None, 0).total  # type: ignore[arg-type]
        for day in self._signal_days(symbol, start_ns, end_ns):
            b = self._signal_batch(symbol, day)
            if b is None:
                continue
            ts = b.column(0).to_numpy()
            a = int(np.searchsorted(ts, start_ns, side="left"))
            z = int(np.searchsorted(ts, end_ns, side="left"))
            if z <= a:
                continue
            n = z - a
            for k in ("BUY", "SELL"):
                p = self._sparse(symbol, day, k)
                m = int(np.searchsorted(p, z) - np.searchsorted(p, a))
                c[k] += m
                n -= m
            c["HOLD"] += n
        return c

    # --- the live path's rows ------------------------------------------------------------

    def _live_days(self, symbol: str, start_ns: int, end_ns: int) -> list[date]:
        """Return the symbol's days with live rows that the window touches, newest first."""
        info = self.catalog.symbols.get(symbol)
        if info is None or not info.live_days or end_ns <= start_ns:
            return []
        first, last = ny_date(start_ns), ny_date(end_ns - 1)
        return [d for d in reversed(info.live_days) if first <= d <= last]

    def live_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return live rows no run row covers, of one kind in ``[start_ns, end_ns)``.

        Per live segment of a symbol-day: two binary searches for the window, one for the
        run's last key (``live_cut``) and one for the cursor; a kind other than ALL scans
        the window's codes (charged to the call's scan budget).
        """
        t0 = time.perf_counter()
        total = older = 0
        found: list[tuple[tuple[int, int], pa.RecordBatch, int, date]] = []
        for day in self._live_days(symbol, start_ns, end_ns):
            cut = live_cut(self.catalog, symbol, day)
            for b in self._trade_parts(symbol, day, live=True):
                ts, seq = b.column(0).to_numpy(), b.column(1).to_numpy()
                a = int(np.searchsorted(ts, start_ns, side="left"))
                z = int(np.searchsorted(ts, end_ns, side="left"))
                if cut is not None:
                    a = max(a, _cut_signals(ts, seq, (cut[0], cut[1] + 1)))
                if z <= a:
                    continue
                c = z if before is None else max(a, min(z, _cut_signals(ts, seq, before)))
                if kind == "ALL":
                    pos = np.arange(a, z, dtype=np.int64)
                else:
                    check_scan(z - a)
                    if kind == "JUMP":
                        flags = b.column("jump_detected").fill_null(False)
                        hit = np.asarray(flags.to_numpy(zero_copy_only=False)[a:z], dtype=bool)
                    else:
                        hit = b.column("code").to_numpy()[a:z] == SIGNAL_CODES[kind]
                    pos = a + np.flatnonzero(hit).astype(np.int64)
                n_before = int(np.searchsorted(pos, c, side="left"))
                total += len(pos)
                older += n_before
                found.extend(
                    ((int(ts[i]), int(seq[i])), b, i, day)
                    for i in pos[max(0, n_before - limit) : n_before].tolist()
                )
        found.sort(key=lambda f: f[0], reverse=True)
        rows: list[dict[str, Any]] = []
        for _key, b, i, day in found[:limit]:
            one = b.slice(i, 1)
            rows.append(
                fmt.signal_rows(
                    {c: one.column(c).to_pylist() for c in fmt.SIGNAL_COLUMNS}, day, source="live"
                )[0]
            )
        keys: list[tuple[int, ...]] = [(r["timestamp_ns"], r["seq"]) for r in rows]
        return Page(rows, keys, total, older - len(rows), time.perf_counter() - t0)

    def newest_live(self, symbol: str) -> dict[str, Any] | None:
        """Return the symbol's newest live signal and its provenance (once per state)."""
        key = ("newest_live", symbol)
        if key not in self.memo:
            self.memo[key] = self._newest_live(symbol)
        return cast("dict[str, Any] | None", self.memo[key])

    def _newest_live(self, symbol: str) -> dict[str, Any] | None:
        info = self.catalog.symbols.get(symbol)
        if info is None or not info.live_days:
            return None
        day = info.live_days[-1]
        best: tuple[tuple[int, int], pa.RecordBatch, int] | None = None
        for b in self._trade_parts(symbol, day, live=True):
            i = b.num_rows - 1
            k = (int(b.column(0)[i].as_py()), int(b.column(1)[i].as_py()))
            if best is None or k > best[0]:
                best = (k, b, i)
        if best is None:
            return None
        one = best[1].slice(best[2], 1)
        return fmt.live_row(
            {c: one.column(c).to_pylist() for c in (*fmt.SIGNAL_COLUMNS, *fmt.LIVE_PROVENANCE)},
            day,
        )

    def batch_signal_of(
        self, symbol: str, day: date, timestamp_ns: int, kafka_partition: int, kafka_offset: int
    ) -> dict[str, Any] | None:
        """Return the current run's row of one trade (found by time, then its offsets)."""
        b = self._signal_batch(symbol, day)
        if b is None:
            return None
        ts = b.column(0).to_numpy()
        lo = int(np.searchsorted(ts, timestamp_ns, side="left"))
        hi = int(np.searchsorted(ts, timestamp_ns, side="right"))
        parts = b.column("kafka_partition").to_numpy()
        offs = b.column("kafka_offset").to_numpy()
        for i in range(lo, hi):
            if int(parts[i]) == kafka_partition and int(offs[i]) == kafka_offset:
                return self._signal_row(b, day, i)
        return None

    def day_signal_rows(self, symbol: str, day: date) -> list[dict[str, Any]]:
        """Return every signal row of a symbol-day in time order."""
        b = self._signal_batch(symbol, day)
        if b is None:
            return []
        check_scan(b.num_rows)
        return fmt.signal_rows(
            {c: b.column(c).to_numpy(zero_copy_only=False) for c in fmt.SIGNAL_COLUMNS}, day
        )

    def signal_frame(self, first: date, last: date) -> pd.DataFrame:
        """Return ``symbol, date, timestamp_ns, price, trading_signal`` of the days' signals."""
        import pandas as pd

        frames: list[pd.DataFrame] = []
        for day in sorted(d for d in self._state.days if first <= d <= last):
            files = self._state.days[day]
            if files.signals is None:
                continue
            reader = self._files.reader(files.signals.file)
            for symbol, (i, _n) in sorted(files.signals.symbols.items()):
                b = reader.get_batch(i)
                frames.append(
                    pd.DataFrame(
                        {
                            "symbol": symbol,
                            "date": day.isoformat(),
                            "timestamp_ns": b.column("timestamp_ns").to_numpy(),
                            "price": b.column("price").to_numpy(),
                            "trading_signal": b.column("trading_signal").to_numpy(
                                zero_copy_only=False
                            ),
                        }
                    )
                )
        if not frames:
            return pd.DataFrame(
                columns=["symbol", "date", "timestamp_ns", "price", "trading_signal"]
            )
        return pd.concat(frames, ignore_index=True)

    # --- daily statistics, newest rows ---------------------------------------------------

    def metrics(self, symbol: str, first: date, last: date) -> list[dict[str, Any]]:
        """Return ``DayMetrics`` rows of ``first..last``, newest day first."""
        out: list[dict[str, Any]] = []
        for day in reversed(self.catalog.symbol_days.get(symbol, ())):
            if not first <= day <= last:
                continue
            files = self._state.days[day]
            if files.metrics is None or symbol not in files.metrics.symbols:
                continue
            row = self._files.derived(
                files.metrics,
                symbol,
                "metrics",
                lambda b: None if b is None else fmt.metrics_row(b.to_pylist()[0]),
            )
            if row is not None:
                out.append(row)
        return out

    def newest(self, symbol: str) -> Newest:
        """Return the newest trade, signal and BUY/SELL of ``symbol`` (once per state)."""
        key = ("newest", symbol)
        hit = self.memo.get(key)
        if hit is None:
            hit = self.memo[key] = self._newest(symbol)
        return cast("Newest", hit)

    def _newest(self, symbol: str) -> Newest:
        cat = self.catalog
        info = cat.symbols.get(symbol)
        trade = None
        if info is not None and info.days:
            day = info.days[-1]
            best: tuple[tuple[int, int, int], pa.RecordBatch, int] | None = None
            for b in self._trade_parts(symbol, day):
                i = b.num_rows - 1
                key = (
                    int(b.column(0)[i].as_py()),
                    int(b.column(1)[i].as_py()),
                    int(b.column(2)[i].as_py()),
                )
                if best is None or key > best[0]:
                    best = (key, b, i)
            if best is not None:
                one = pa.Table.from_batches([best[1].slice(best[2], 1)])
                trade = fmt.trade_rows(self._with_signals(symbol, day, one))[0]
        signal = action = None
        for day in reversed(info.signal_days if info is not None else ()):
            b = self._signal_batch(symbol, day)
            if b is None or not b.num_rows:
                continue
            if signal is None:
                signal = self._signal_row(b, day, b.num_rows - 1)
            last = [int(p[-1]) for k in ("BUY", "SELL") if len(p := self._sparse(symbol, day, k))]
            if last:
                action = self._signal_row(b, day, max(last))
                break
        return Newest(trade, signal, action)

    @staticmethod
    def _signal_row(b: pa.RecordBatch, day: date, i: int) -> dict[str, Any]:
        one = b.slice(i, 1)
        return fmt.signal_rows({c: one.column(c).to_pylist() for c in fmt.SIGNAL_COLUMNS}, day)[0]

    # --- rejects, evaluation -------------------------------------------------------------

    def reject_counts(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Count rejects of ``symbol`` ("" = unattributed) received in the window, by reason."""
        out: dict[str, int] = {}
        if end_ns <= start_ns:
            return out
        first, last = ny_date(start_ns), ny_date(end_ns - 1)
        for day, files in self._state.days.items():
            if not first <= day <= last or not files.rejects:
                continue
            for seg in files.rejects:
                if symbol not in seg.symbols:
                    continue
                ts, reasons = self._files.derived(seg, symbol, "rejects", _reject_columns)
                a = int(np.searchsorted(ts, start_ns, side="left"))
                z = int(np.searchsorted(ts, end_ns, side="left"))
                check_scan(z - a)
                for reason in reasons[a:z]:
                    out[reason] = out.get(reason, 0) + 1
        return out

    def reject_samples(self, symbol: str, day: date, limit: int) -> list[dict[str, Any]]:
        """Return up to ``limit`` rejects of a symbol-day and unattributed ones that day."""
        files = self._state.days.get(day)
        rows: list[dict[str, Any]] = []
        if files is None:
            return rows
        for seg in files.rejects:
            for who in (symbol, ""):
                b = self._files.batch(seg, who)
                if b is not None:
                    rows.extend(b.to_pylist())
        rows.sort(key=lambda r: (r["kafka_partition"], r["kafka_offset"]))
        return [
            {
                "stage": str(r["stage"]),
                "reason": str(r["reason"])[:200],
                "raw_untrusted": r["raw"],
                "kafka_partition": int(r["kafka_partition"]),
                "kafka_offset": int(r["kafka_offset"]),
            }
            for r in rows[:limit]
        ]

    def evaluation(self, symbol: str | None) -> list[dict[str, Any]]:
        """Return the newest evaluation's rows (pooled first), one symbol and the pool or all."""
        rows = [dict(r) for r in self._state.manifest.evaluation]
        if symbol is not None:
            rows = [r for r in rows if r["symbol"] in (symbol, "*")]
        return rows


class StorePort:
    """The DuckDB read side: a serving store kept by a materializer, read by this process.

    Parameters
    ----------
    warehouse
        The DuckDB warehouse file (never opened here except by an inline materializer).
    store
        The serving store directory (default: beside the state directory, one per
        warehouse, see :func:`default_store`).
    materialize
        ``process`` (a child process keeps the store; default), ``thread``, ``inline``
        (each :meth:`view` refreshes first: tests) or ``off`` (another process keeps it).
    max_rows
        Rows per warehouse reading of the materializer.
    poll_s
        The materializer's pause between looks at the warehouse when nothing changed.
    check_s
        How long a view is reused before the store is looked at again (not inline).
    """

    backend: Literal["duckdb", "vertica"] = "duckdb"

    def __init__(
        self,
        warehouse: Path,
        *,
        store: Path | None = None,
        materialize: Materialize = "process",
        max_rows: int = 100_000,
        poll_s: float = 0.1,
        check_s: float = 0.02,
    ) -> None:
        self.warehouse = Path(warehouse)
        self.layout = StoreLayout(store if store is not None else default_store(self.warehouse))
        self.mode = materialize
        self.max_rows = max_rows
        self.poll_s = poll_s
        self.files = FileCache(self.layout.root)
        self._state: StoreState | None = None
        self._current_name: str | None = None
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._materializer: Materializer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._refreshes = 0
        self._failures = 0
        self._closed = False
        self.check_s = check_s
        self._recent: tuple[float, StoreView] | None = None
        # How long a commit may wait for the materializer before a view calls itself
        # stale: its poll interval and one reading (an inline refresh has none).
        self.stale_grace_ns = 0 if materialize == "inline" else int(2e9)

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start keeping the store (per ``materialize``); returns at once."""
        self.layout.ensure()
        if self.mode == "process":
            self._thread = threading.Thread(
                target=self._supervise, name="serving-materializer-supervisor", daemon=True
            )
            self._thread.start()
        elif self.mode == "thread":
            from pipeline.serving.materialize import Materializer

            self._materializer = Materializer(
                self.warehouse, self.layout.root, max_rows=self.max_rows
            )
            self._thread = threading.Thread(
                target=self._materializer.run,
                args=(self._stop,),
                kwargs={"poll_s": self.poll_s},
                name="serving-materializer",
                daemon=True,
            )
            self._thread.start()
        elif self.mode == "inline":
            from pipeline.serving.materialize import Materializer

            self._materializer = Materializer(
                self.warehouse, self.layout.root, max_rows=self.max_rows
            )

    def _supervise(self) -> None:
        """Keep one materializer process per store alive (any server's counts).

        The lock on the store is taken here and handed to the child (an inherited file
        descriptor), so of several server processes exactly one starts a child, and the
        lock lives exactly as long as that child. A server whose store is published
        starts its child a moment later, so the child's imports do not compete with the
        server's own start.
        """
        delay = 0.0 if self.layout.current_name() is None else 1.0
        while not self._stop.wait(delay):
            delay = 2.0
            if self._child is not None and self._child.poll() is None:
                continue
            if self._child is not None:
                logger.warning(
                    "the serving materializer exited (%s); restarting it", self._child.returncode
                )
                self._child = None
            fd = self._take_lock()
            if fd is None:
                continue  # another process's materializer keeps the store
            try:
                self._spawn(fd)
            finally:
                os.close(fd)  # the child holds the lock now

    def _take_lock(self) -> int | None:
        import fcntl

        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _spawn(self, lock_fd: int) -> None:
        self._child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.serving.materialize",
                "--warehouse",
                str(self.warehouse),
                "--store",
                str(self.layout.root),
                "--parent-pid",
                str(os.getpid()),
                "--lock-fd",
                str(lock_fd),
                "--poll-s",
                str(self.poll_s),
                "--max-rows",
                str(self.max_rows),
                "--log-level",
                logging.getLevelName(logging.getLogger().getEffectiveLevel()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(lock_fd,),
        )

    def close(self) -> None:
        """Stop the materializer and close files."""
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
            try:
                self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        if self._materializer is not None:
            self._materializer.close()
        self.files.clear()

    # --- views ----------------------------------------------------------------------------

    def _refresh_inline(self) -> None:
        m = self._materializer
        assert m is not None
        # One refresh at a time (calls on the loop and in worker threads); a caller that
        # finds one running waits for it and then sees its state.
        with self._refresh_lock:
            if m.try_lock():
                self._step_until_caught_up(m)

    def _step_until_caught_up(self, m: Materializer) -> None:
        import duckdb

        from pipeline.serving.materialize import WarehouseMissing

        for _ in range(10_000):
            try:
                r = m.step()
            except WarehouseMissing:
                m.stats.last_error = "no_tables"
                return
            except duckdb.Error:
                m.stats.failures += 1
                m.stats.last_error = "refresh_failed"
                logger.exception("serving refresh failed")
                return
            m.stats.last_error = None
            m.note(r)
            if r.outcome != "progress":
                break

    def _load(self) -> StoreState | None:
        name = self.layout.current_name()
        if name is None:
            return None
        with self._lock:
            if name == self._current_name and self._state is not None:
                return self._state
            previous = self._state
        try:
            state = load_state(self.layout, name, previous)
        except (OSError, ValueError, KeyError) as e:
            self._failures += 1
            logger.warning("serving store state %s unreadable: %s", name, e)
            return previous
        with self._lock:
            self._state, self._current_name = state, name
            self._refreshes += 1
        return state

    def view(self) -> StoreView:
        """Return the newest published state.

        Raises
        ------
        ServingUnavailable
            No warehouse, or no tables to serve.
        ServingBusy
            The first state is still being built.
        """
        if self._closed:
            raise ServingUnavailable("the serving port is closed")
        if self.mode == "inline":
            self._refresh_inline()
        else:
            recent = self._recent
            # At hundreds of calls a second, one look at the store per check_s serves
            # them all (the materializer publishes every 0.5 s at most).
            if recent is not None and time.monotonic() - recent[0] < self.check_s:
                return recent[1]
        state = self._load()
        if state is None:
            raise self._not_ready()
        as_of = state.manifest.as_of_ns
        verified = self.layout.read_verified()
        if verified is not None and verified[0] == state.generation:
            as_of = max(as_of, verified[1])
        view = StoreView(state, self.files, as_of, self._stale_reason(as_of))
        self._recent = (time.monotonic(), view)
        return view

    def _status(self) -> dict[str, Any]:
        try:
            return json.loads((self.layout.root / "STATUS").read_text())
        except (OSError, ValueError):
            m = self._materializer
            if m is None:
                return {}
            return {"error": m.stats.last_error, "progress": m.stats.progress}

    def _not_ready(self) -> Exception:
        if source_version(self.warehouse) is None:
            return ServingUnavailable(
                f"no warehouse file at {self.warehouse}",
                "the warehouse holds no data yet (nothing ingested); load trades, then ask again",
            )
        status = self._status()
        if status.get("error") == "no_tables":
            return ServingUnavailable(
                "the warehouse has no tables (migrations not applied?)",
                "the warehouse has no tables yet (migrations not applied?); run "
                "`microstructure warehouse migrate`, then ask again",
            )
        progress = status.get("progress") or "starting"
        return ServingBusy(
            f"the serving store is being built: {progress}",
            f"the server is indexing the warehouse for serving ({progress}); "
            "retry in a few seconds",
        )

    def _stale_reason(self, as_of_ns: int) -> str | None:
        v = source_version(self.warehouse)
        if v is None:
            return None
        changed = max(v.mtime_ns, v.wal_mtime_ns)
        # A commit after the served state, older than the materializer's poll interval.
        if changed <= as_of_ns or time.time_ns() - changed < self.stale_grace_ns:
            return None
        status = self._status()
        if status.get("error") == "refresh_failed":
            return "refreshing from the warehouse failed; retrying"
        held = float(status.get("held_s") or 0.0)
        if held > 0:
            return f"a writer has held the warehouse for {held:.0f} s; refresh pending"
        return "newer data is being indexed"

    def wait_ready(self, timeout_s: float) -> StoreView:
        """Block until a state exists or ``timeout_s`` passes (then raise as :meth:`view`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.view()
            except ServingBusy:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.05)

    def ready(self) -> bool:
        """Return True when a published state exists."""
        return self._state is not None or self.layout.current_name() is not None

    def health(self) -> ServingHealth:
        """Return the read side's health (never waits, never names a path)."""
        status = self._status()
        state = self._state
        if state is None and self.layout.current_name() is not None:
            state = self._load()
        if state is None:
            exc = self._not_ready()
            code = getattr(exc, "code", "unavailable")
            return ServingHealth(
                status="no_data" if code == "no_data" else "indexing",
                backend="duckdb",
                as_of_ns=None,
                stale=False,
                error_code=status.get("error"),
                refreshes=self._refreshes,
                failures=self._failures,
                progress=status.get("progress"),
            )
        view = self.view()
        return ServingHealth(
            status="ok",
            backend="duckdb",
            as_of_ns=view.as_of_ns,
            stale=view.stale_reason is not None,
            error_code=status.get("error"),
            refreshes=self._refreshes,
            failures=self._failures,
            progress=status.get("progress"),
        )


def default_store(warehouse: Path) -> Path:
    """Return the default store directory of a warehouse: ``<file>.serving`` beside it.

    Beside the file, so that copying or moving a warehouse's directory keeps its store,
    and one store per warehouse file.
    """
    w = Path(warehouse)
    return w.with_name(w.name + ".serving")


@contextlib.contextmanager
def opened(port: StorePort) -> Iterator[StorePort]:
    """Start a port and close it on exit."""
    port.start()
    try:
        yield port
    finally:
        port.close()


def day_range(first: date, last: date) -> list[date]:
    """Return the calendar days ``first..last``."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


__all__ = ["FileCache", "StorePort", "StoreState", "StoreView", "default_store", "load_state"]
