"""The tools' logic: validate input, read the snapshot, build the answer models.

Nothing here knows about transports. Every fixable input problem (unknown symbol, bad
window, bad cursor) raises :class:`~mcp.server.mcpserver.exceptions.ToolError` with a
message that says what to change; :mod:`mcp_server.server` registers the tools and wraps
them with auditing and metrics.

Time windows are half-open ``[start, end)`` and count back from the newest data of the
symbol unless ``start``/``end`` are given, so a replayed day answers as if it were live.
Times are ISO 8601; a time without an offset is New York exchange time, and a bare date
means that day's New York midnight (as ``end``: the following midnight, so the day is
included).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from mcp.server.mcpserver.exceptions import ToolError

from mcp_server import models as m
from pipeline.warehouse import reads
from pipeline.warehouse.reads import OrderedIndex, Snapshot, SymbolInfo

NEW_YORK = ZoneInfo("America/New_York")
NS = 1_000_000_000
HOUR_NS = 3600 * NS
MAX_WINDOW_HOURS = 24.0 * 31
MAX_METRIC_DAYS = 62
SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,11}$")
MAX_CURSOR_CHARS = 400
SignalType = Literal["BUY", "SELL", "HOLD", "ALL"]

MEASURED_FROM = (
    "feed_gaps (reconnect windows of the symbol's subscription), market_data_rejects "
    "(records refused by the streamer or the loader), kafka_offsets (the microbatch ledger "
    "and each batch's quality verdict) and signal_runs (published, final, suite verdict). "
    "Trade counts are not yet reconciled with the provider's own counts (REST or flat files)."
)


# --- formatting ---------------------------------------------------------------------------


def iso_utc(ns: int | None) -> str | None:
    """Return ``ns`` as ISO 8601 UTC with milliseconds (None stays None)."""
    if ns is None:
        return None
    dt = datetime.fromtimestamp(ns // NS, tz=UTC).replace(microsecond=(ns % NS) // 1000)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_new_york(ns: int) -> str:
    """Return ``ns`` as ISO 8601 in New York time with its offset."""
    dt = datetime.fromtimestamp(ns // NS, tz=UTC).replace(microsecond=(ns % NS) // 1000)
    return dt.astimezone(NEW_YORK).isoformat(timespec="milliseconds")


def ny_date(ns: int) -> date:
    """Return the New York calendar date of ``ns``."""
    return datetime.fromtimestamp(ns // NS, tz=UTC).astimezone(NEW_YORK).date()


def _r(x: Any) -> float | None:
    """Round to 6 significant digits; NaN and infinities become null (JSON has neither)."""
    if x is None:
        return None
    v = float(x)
    if not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


def _opt_int(x: Any) -> int | None:
    return None if x is None else int(x)


def _opt_bool(x: Any) -> bool | None:
    return None if x is None else bool(x)


# --- input ----------------------------------------------------------------------------------


def parse_time(text: str, role: Literal["start", "end"]) -> int:
    """Parse an ISO 8601 time or date into UTC epoch ns.

    Parameters
    ----------
    text
        ``2018-01-03T10:00:00-05:00``, ``2018-01-03T15:00:00Z``, ``2018-01-03T10:00``
        (New York time) or ``2018-01-03`` (New York midnight; as ``end``, the next one).
    role
        ``start`` or ``end`` (decides what a bare date means).

    Returns
    -------
    int
        Epoch nanoseconds.

    Raises
    ------
    ToolError
        If the text is not such a time.
    """
    raw = text.strip()
    if len(raw) > 40:
        raise ToolError(f"{role} is too long to be a time; use ISO 8601 like 2018-01-03T10:00:00")
    try:
        if len(raw) == 10:
            d = date.fromisoformat(raw)
            dt = datetime(d.year, d.month, d.day, tzinfo=NEW_YORK)
            if role == "end":
                dt = datetime.combine(d + timedelta(days=1), dt.timetz())
        else:
            dt = datetime.fromisoformat(raw.replace("z", "Z"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=NEW_YORK)
    except ValueError:
        raise ToolError(
            f"{role} {text!r} is not an ISO 8601 time: use e.g. 2018-01-03T10:00:00 (New York "
            "time), 2018-01-03T15:00:00Z (UTC) or 2018-01-03 (a whole day)"
        ) from None
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


def parse_day(text: str, name: str) -> date:
    """Parse ``YYYY-MM-DD`` or raise a :class:`ToolError` naming ``name``."""
    try:
        return (
            date.fromisoformat(text.strip()[:10])
            if len(text.strip()) == 10
            else _bad_day(name, text)
        )
    except ValueError:
        return _bad_day(name, text)


def _bad_day(name: str, text: str) -> date:
    raise ToolError(f"{name} {text[:40]!r} is not a day: use YYYY-MM-DD, e.g. 2018-01-03")


def check_symbol_text(text: str) -> str:
    """Return the stripped symbol or raise a :class:`ToolError` if it cannot be a ticker."""
    s = text.strip()
    if not SYMBOL_RE.match(s):
        shown = s[:24] + ("..." if len(s) > 24 else "")
        raise ToolError(
            f"symbol {shown!r} is not a ticker: 1-12 letters, digits, '.' or '-' (e.g. AAPL, BRK.B)"
        )
    return s


def find_symbol(snap: Snapshot, text: str) -> SymbolInfo:
    """Return the snapshot's symbol for ``text`` (exact, then upper case).

    Raises
    ------
    ToolError
        If the text is not a ticker or the warehouse has no such symbol.
    """
    s = check_symbol_text(text)
    info = snap.symbols.get(s) or snap.symbols.get(s.upper())
    if info is None:
        known = sorted(snap.symbols)
        if not known:
            raise ToolError("the warehouse holds no trades yet; nothing to answer from")
        shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        raise ToolError(f"unknown symbol {s!r}; the warehouse has {shown} (see list_symbols)")
    return info


@dataclass(frozen=True, slots=True)
class ResolvedWindow:
    """A window in epoch ns and how it was chosen."""

    start_ns: int
    end_ns: int
    anchor: Literal["newest_data", "explicit", "cursor"]

    def as_dict(self) -> dict[str, Any]:
        """Return the window as the JSON of :class:`~mcp_server.models.Window`."""
        return {
            "start": iso_utc(self.start_ns),
            "end": iso_utc(self.end_ns),
            "start_new_york": iso_new_york(self.start_ns),
            "end_new_york": iso_new_york(self.end_ns),
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "anchor": self.anchor,
        }


def resolve_window(
    info: SymbolInfo,
    hours_back: float | None,
    start: str | None,
    end: str | None,
    default_hours: float,
) -> ResolvedWindow:
    """Turn the window arguments into ``[start_ns, end_ns)``.

    Without ``start``/``end`` the window ends just after the symbol's newest trade and
    reaches ``hours_back`` (default ``default_hours``) back. With only ``start`` it runs
    to the newest trade; with only ``end`` it reaches ``hours_back`` back from ``end``.

    Raises
    ------
    ToolError
        For both ``hours_back`` and ``start``, an empty or reversed window, or one longer
        than 31 days.
    """
    if hours_back is not None and start is not None:
        raise ToolError("give either hours_back or start (with or without end), not both")
    hours = default_hours if hours_back is None else hours_back
    if not 0 < hours <= MAX_WINDOW_HOURS:
        raise ToolError(f"hours_back is {hours:g} and must be > 0 and at most {MAX_WINDOW_HOURS:g}")
    newest_end = (info.last_ns if info.last_ns is not None else time.time_ns()) + 1
    if start is None and end is None:
        end_ns = newest_end
        return ResolvedWindow(end_ns - int(hours * HOUR_NS), end_ns, "newest_data")
    end_ns = parse_time(end, "end") if end is not None else newest_end
    start_ns = parse_time(start, "start") if start is not None else end_ns - int(hours * HOUR_NS)
    if start_ns >= end_ns:
        raise ToolError(
            f"the window is empty: start {iso_utc(start_ns)} is not before end {iso_utc(end_ns)}"
        )
    if end_ns - start_ns > int(MAX_WINDOW_HOURS * HOUR_NS):
        raise ToolError(
            "the window is longer than 31 days; narrow it, or use get_symbol_metrics for daily "
            "aggregates"
        )
    return ResolvedWindow(start_ns, end_ns, "explicit")


# --- cursors --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the query it belongs to, its window, the last row's key."""

    query: str
    start_ns: int
    end_ns: int
    key: tuple[int, int]

    def encode(self) -> str:
        """Return the opaque text form."""
        raw = orjson.dumps(
            {"v": 1, "q": self.query, "w": [self.start_ns, self.end_ns], "k": list(self.key)}
        )
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(text: str, query: str) -> Cursor:
        """Parse a cursor made for ``query``.

        Raises
        ------
        ToolError
            If it is malformed or belongs to another query (tool, symbol or filter).
        """
        if len(text) > MAX_CURSOR_CHARS:
            raise ToolError("cursor is not one this server issued; drop it to start again")
        try:
            raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
            d = orjson.loads(raw)
            w, k = d["w"], d["k"]
            cur = Cursor(str(d["q"]), int(w[0]), int(w[1]), (int(k[0]), int(k[1])))
        except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
            raise ToolError(
                "cursor is not one this server issued; drop it to start again"
            ) from None
        if cur.query != query:
            raise ToolError(
                "cursor belongs to another query (tool, symbol or filter differ); repeat the "
                "first call's arguments with the cursor, or drop it"
            )
        return cur


def query_id(*parts: str) -> str:
    """Return a short, stable id of a query (tool and its filters)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


# --- the answer envelope --------------------------------------------------------------------


def days_between(start_ns: int, end_ns: int) -> list[date]:
    """Return the New York days that ``[start_ns, end_ns)`` touches."""
    first, last = ny_date(start_ns), ny_date(max(start_ns, end_ns - 1))
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def provenance(
    snap: Snapshot,
    stale_reason: str | None,
    days: Sequence[date],
    newest_ns: int | None,
) -> m.Provenance:
    """Build the provenance of an answer over ``days`` (newest trade ``newest_ns``)."""
    runs = [snap.runs[d] for d in sorted(days) if d in snap.runs]
    return m.Provenance(
        as_of=iso_utc(snap.taken_ns) or "",
        as_of_ns=snap.taken_ns,
        newest_trade=iso_utc(newest_ns),
        newest_trade_ns=newest_ns,
        data_lag_s=None if newest_ns is None else round((snap.taken_ns - newest_ns) / NS, 3),
        last_load=iso_utc(snap.last_commit_ns),
        snapshot_stale=stale_reason is not None,
        stale_reason=stale_reason,
        kernel_versions=sorted({r.kernel_version for r in runs}),
        params=dict(runs[-1].params) if runs else None,
        signal_runs=[
            m.SignalRunInfo(
                date=r.date.isoformat(),
                run_id=r.run_id,
                kernel_version=r.kernel_version,
                final=r.final,
                quality_passed=r.quality_passed,
                computed=iso_utc(r.computed_ns) or "",
            )
            for r in runs
        ],
    )


def completeness(
    snap: Snapshot,
    info: SymbolInfo | None,
    start_ns: int,
    end_ns: int,
    need_signals: bool,
) -> m.Completeness:
    """Judge how complete the data of ``info`` (None: every symbol) in a window is."""
    symbols = [info] if info is not None else list(snap.symbols.values())
    window_days = set(days_between(start_ns, end_ns))
    reasons: list[str] = []
    n_gaps, gap_ns = 0, 0
    for g in snap.gaps:
        if any(g.applies_to(s.symbol) for s in symbols):
            overlap = g.overlap_ns(start_ns, end_ns)
            if overlap > 0:
                n_gaps += 1
                gap_ns += overlap
    n_rejects = sum(snap.rejects.count("", start_ns, end_ns).values())
    for s in symbols:
        n_rejects += sum(snap.rejects.count(s.symbol, start_ns, end_ns).values())
    batches = failed = unchecked = 0
    days_with_data: set[date] = set()
    for s in symbols:
        for d in s.days:
            if d in window_days:
                days_with_data.add(d)
                q = snap.day_quality.get((s.symbol, d))
                if q is not None:
                    batches += q.n_batches
                    failed += q.n_failed
                    unchecked += q.n_unchecked
    missing = sorted(d for d in days_with_data if d not in snap.runs)
    runs = [snap.runs[d] for d in days_with_data if d in snap.runs]
    final = all(r.final for r in runs) if runs else None
    if n_gaps:
        reasons.append(f"{n_gaps} feed gap(s) cover {gap_ns / NS:.1f} s of the window")
    if failed:
        reasons.append(f"{failed} loading batch(es) failed an ingest quality check")
    if need_signals and missing:
        reasons.append("no published signals for " + ", ".join(d.isoformat() for d in missing))
    if need_signals and final is False:
        reasons.append("signals are provisional (computed before the close)")
    if runs and any(r.quality_passed is False for r in runs):
        reasons.append("a day's signals failed the signal quality suite")
    if n_rejects:
        reasons.append(f"{n_rejects} record(s) rejected in the window (see get_data_quality)")
    if reasons:
        status: Literal["complete", "incomplete", "unknown"] = "incomplete"
    elif days_with_data and batches == 0:
        status = "unknown"
        reasons.append("no ledger rows cover these days, so loading cannot be verified")
    elif not days_with_data:
        status = "unknown"
        reasons.append("the window holds no data to judge")
    else:
        status = "complete"
    if unchecked and status == "complete":
        reasons.append(f"{unchecked} batch(es) loaded without a quality verdict")
    return m.Completeness(
        status=status,
        reasons=reasons,
        feed_gaps=n_gaps,
        gap_seconds=round(gap_ns / NS, 3),
        rejects=n_rejects,
        batches=batches,
        batches_failed_quality=failed,
        batches_unchecked=unchecked,
        days_without_signals=[d.isoformat() for d in missing] if need_signals else [],
        signals_final=final,
        measured_from=MEASURED_FROM,
    )


# --- caps -----------------------------------------------------------------------------------


def fit_rows(rows: Sequence[dict[str, Any]], max_bytes: int) -> int:
    """Return how many leading rows fit in ``max_bytes`` of JSON (at least one)."""
    return fit_json([orjson.dumps(r).decode() for r in rows], max_bytes)


def fit_json(rows: Sequence[str], max_bytes: int) -> int:
    """Return how many leading JSON texts fit, as one array, in ``max_bytes`` (at least one)."""
    used = 2
    for i, text in enumerate(rows):
        used += len(text.encode()) + 1
        if used > max_bytes:
            return max(i, 1)
    return len(rows)


def parse_rows(rows: Sequence[str]) -> list[dict[str, Any]]:
    """Parse JSON row texts (as the snapshot stores them) into dicts, in one call."""
    return orjson.loads("[" + ",".join(rows) + "]") if rows else []


def paging(
    *,
    shown: int,
    fetched: int,
    total: int,
    remaining_after_fetch: int,
    limit_cut: bool,
    next_cursor: str | None,
    what: str,
) -> m.Paging:
    """Build the paging facts of a page of ``shown`` rows out of ``fetched`` read."""
    remaining = remaining_after_fetch + (fetched - shown)
    truncated = remaining > 0
    by: Literal["limit", "max_bytes"] | None = None
    if shown < fetched:
        by = "max_bytes"
    elif truncated and limit_cut:
        by = "limit"
    hint = None
    if truncated:
        hint = (
            f"{remaining} more {what} in this window (older). Narrow or aggregate: pass "
            "next_cursor to page back in time, shorten the window (hours_back or start/end), "
            "filter (signal_type), or use get_symbol_metrics for daily aggregates."
        )
    return m.Paging(
        returned=shown,
        total=total,
        remaining=remaining,
        truncated=truncated,
        truncated_by=by,
        next_cursor=next_cursor if truncated else None,
        hint=hint,
    )


# --- text block -----------------------------------------------------------------------------


def _flat(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        t = type(v)  # exact types: answers are plain JSON values (and ABC checks are slow)
        if t is dict:
            out.update(_flat(v, f"{prefix}{k}."))
        elif t is list:
            out[f"{prefix}{k}"] = " ".join(str(x) for x in v)
        else:
            out[f"{prefix}{k}"] = v
    return out


def render_text(summary: str, data: Mapping[str, Any], rows_key: str = "rows") -> str:
    """Render an answer compactly: a summary line, rows as CSV, the rest as one JSON line.

    Parameters
    ----------
    summary
        One line a reader sees first.
    data
        The structured answer (JSON types).
    rows_key
        The list rendered as CSV (nested objects become ``parent.child`` columns).

    Returns
    -------
    str
        The text block that repeats the structured content.
    """
    out = io.StringIO()
    out.write(summary)
    out.write("\n")
    rows = data.get(rows_key) or []
    if rows:
        nested = any(type(v) is dict or type(v) is list for v in rows[0].values())
        flat = [_flat(r) for r in rows] if nested else rows
        w = csv.writer(out, lineterminator="\n")
        w.writerow(flat[0].keys())
        w.writerows(r.values() for r in flat)  # None is written as an empty field
    meta = {k: v for k, v in data.items() if k != rows_key}
    out.write("meta ")
    out.write(orjson.dumps(meta).decode())
    return out.getvalue()


# --- the tools ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A tool's structured answer, its text block and what the audit log records."""

    data: dict[str, Any]
    text: str
    rows: int
    query_s: float


class ToolService:
    """The tools over a snapshot; stateless apart from the caps.

    Parameters
    ----------
    max_rows
        Most rows in one answer (a tool's ``limit`` may not exceed it).
    max_bytes
        Most bytes of JSON rows in one answer; longer pages are cut and get a cursor.
    """

    def __init__(self, max_rows: int = 1000, max_bytes: int = 24_000) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes

    @staticmethod
    def _envelope(
        snap: Snapshot,
        stale: str | None,
        info: SymbolInfo | None,
        start_ns: int,
        end_ns: int,
        days: Sequence[date] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (provenance, completeness) JSON for a symbol and window, memoized.

        Both depend only on the snapshot, the symbol and the window, so repeated windows
        (every call anchored at the newest data is the same window) cost nothing. The
        dicts are shared between answers and must not be modified.
        """
        key = ("envelope", None if info is None else info.symbol, start_ns, end_ns, stale)
        hit = snap.memo.get(key)
        if hit is None:
            newest = snap.newest_trade_ns if info is None else info.last_ns
            span = days_between(start_ns, end_ns) if days is None else days
            hit = snap.remember(
                key,
                (
                    provenance(snap, stale, span, newest).model_dump(mode="json"),
                    completeness(snap, info, start_ns, end_ns, need_signals=True).model_dump(
                        mode="json"
                    ),
                ),
            )
        return hit

    def _limit(self, limit: int) -> int:
        if not 1 <= limit <= self.max_rows:
            raise ToolError(f"limit is {limit} and must be between 1 and {self.max_rows}")
        return limit

    def _paged(
        self,
        snap: Snapshot,
        query: str,
        index: OrderedIndex,
        window: ResolvedWindow,
        cursor: str | None,
        limit: int,
        read: Callable[[tuple[int, int], int], reads.Page],
        what: str,
    ) -> tuple[list[dict[str, Any]], m.Paging, ResolvedWindow, float]:
        a, b = index.window(window.start_ns, window.end_ns)
        total = b - a
        if cursor is not None:
            c = Cursor.decode(cursor, query)
            window = ResolvedWindow(c.start_ns, c.end_ns, "cursor")
            a, b0 = index.window(c.start_ns, c.end_ns)
            total = b0 - a
            b = max(a, min(b0, index.position(c.key)))
        page = read((a, b), limit)
        shown = fit_json(page.rows, self.max_bytes)
        rows = parse_rows(page.rows[:shown])
        next_cursor = None
        if shown:
            oldest = b - shown  # positions of the page run b-1 down to b-shown
            if oldest > a:
                next_cursor = Cursor(
                    query, window.start_ns, window.end_ns, index.key(oldest)
                ).encode()
        pg = paging(
            shown=shown,
            fetched=len(page.rows),
            total=total,
            remaining_after_fetch=page.remaining,
            limit_cut=True,
            next_cursor=next_cursor,
            what=what,
        )
        return rows, pg, window, page.query_s

    # get_enriched_data --------------------------------------------------------------------------

    def enriched_data(
        self,
        snap: Snapshot,
        stale: str | None,
        symbol: str,
        limit: int,
        hours_back: float | None,
        start: str | None,
        end: str | None,
        cursor: str | None,
    ) -> Answer:
        """Answer ``get_enriched_data``."""
        info = find_symbol(snap, symbol)
        limit = self._limit(limit)
        win = resolve_window(info, hours_back, start, end, default_hours=1.0)
        q = query_id("get_enriched_data", info.symbol)
        rows, pg, win, qs = self._paged(
            snap,
            q,
            info.trades,
            win,
            cursor,
            limit,
            lambda w, n: reads.read_trades(snap, info, w, n),
            "trades",
        )
        prov, comp = self._envelope(snap, stale, info, win.start_ns, win.end_ns)
        # Plain dicts in the output model's shape (m.EnrichedData); the SDK validates the
        # structured content against that model before it leaves the server.
        data = {
            "symbol": info.symbol,
            "window": (w := win.as_dict()),
            "rows": rows,
            "paging": pg.model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        summary = (
            f"{info.symbol} trades with signals, newest first, {w['start_new_york']} "
            f"to {w['end_new_york']}: {pg.returned} of {pg.total}"
            + (f" (truncated by {pg.truncated_by}; next_cursor given)" if pg.truncated else "")
        )
        return Answer(data, render_text(summary, data), pg.returned, qs)

    # get_trading_signals ------------------------------------------------------------------------

    def trading_signals(
        self,
        snap: Snapshot,
        stale: str | None,
        symbol: str,
        signal_type: SignalType,
        limit: int,
        hours_back: float | None,
        start: str | None,
        end: str | None,
        cursor: str | None,
    ) -> Answer:
        """Answer ``get_trading_signals``."""
        info = find_symbol(snap, symbol)
        limit = self._limit(limit)
        win = resolve_window(info, hours_back, start, end, default_hours=24.0)
        kind = None if signal_type == "ALL" else signal_type
        index = info.signals if kind is None else info.by_type[kind]
        q = query_id("get_trading_signals", info.symbol, signal_type)
        rows, pg, win, qs = self._paged(
            snap,
            q,
            index,
            win,
            cursor,
            limit,
            lambda w, n: reads.read_signals(snap, info, kind, w, n),
            "signals" if kind is None else f"{kind} signals",
        )
        counts = {
            t: len(range(*info.by_type[t].window(win.start_ns, win.end_ns)))
            for t in reads.SIGNAL_TYPES
        }
        prov, comp = self._envelope(snap, stale, info, win.start_ns, win.end_ns)
        data = {
            "symbol": info.symbol,
            "signal_type": signal_type,
            "window": (w := win.as_dict()),
            "counts": counts,
            "rows": rows,
            "paging": pg.model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        summary = (
            f"{info.symbol} {signal_type} signals, newest first, "
            f"{w['start_new_york']} to {w['end_new_york']}: "
            f"{pg.returned} of {pg.total}; in the window "
            f"BUY {counts['BUY']}, SELL {counts['SELL']}, HOLD {counts['HOLD']}"
        )
        return Answer(data, render_text(summary, data), pg.returned, qs)

    # get_jump_events ----------------------------------------------------------------------------

    def jump_events(
        self,
        snap: Snapshot,
        stale: str | None,
        symbol: str,
        hours_back: float | None,
        start: str | None,
        end: str | None,
        limit: int,
        cursor: str | None,
    ) -> Answer:
        """Answer ``get_jump_events``."""
        info = find_symbol(snap, symbol)
        limit = self._limit(limit)
        win = resolve_window(info, hours_back, start, end, default_hours=24.0 * 7)
        q = query_id("get_jump_events", info.symbol)
        rows, pg, win, qs = self._paged(
            snap,
            q,
            info.jumps,
            win,
            cursor,
            limit,
            lambda w, n: reads.read_jumps(snap, info, w, n),
            "jumps",
        )
        days = days_between(win.start_ns, win.end_ns)
        day_set = set(days)
        daily = [
            {
                "date": d.isoformat(),
                "bns_z": _r(z),
                "bns_p_value": _r(p),
                "bns_jump": _opt_bool(jump),
                "lm_jump_count": _opt_int(n),
            }
            for d, z, p, jump, n in reversed(snap.daily_bns.get(info.symbol, ()))
            if d in day_set
        ]
        prov, comp = self._envelope(snap, stale, info, win.start_ns, win.end_ns, days)
        data = {
            "symbol": info.symbol,
            "window": (w := win.as_dict()),
            "daily_bns": daily,
            "rows": rows,
            "paging": pg.model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        bns_days = [str(d["date"]) for d in daily if d["bns_jump"]]
        summary = (
            f"{info.symbol} Lee-Mykland jumps, newest first, {w['start_new_york']} to "
            f"{w['end_new_york']}: {pg.returned} of {pg.total}; BNS day-level jumps: "
            + (", ".join(bns_days) if bns_days else "none")
        )
        return Answer(data, render_text(summary, data), pg.returned, qs)

    # get_symbol_metrics -------------------------------------------------------------------------

    def symbol_metrics(
        self,
        snap: Snapshot,
        stale: str | None,
        symbol: str,
        start_day: str | None,
        end_day: str | None,
        days: int,
    ) -> Answer:
        """Answer ``get_symbol_metrics``."""
        info = find_symbol(snap, symbol)
        if not 1 <= days <= MAX_METRIC_DAYS:
            raise ToolError(f"days is {days} and must be between 1 and {MAX_METRIC_DAYS}")
        known = info.signal_days or info.days
        last = (
            parse_day(end_day, "end_day") if end_day is not None else (known[-1] if known else None)
        )
        if last is None:
            raise ToolError(f"{info.symbol} has no days with data yet")
        if start_day is not None:
            first = parse_day(start_day, "start_day")
        else:
            # Count back `days` days that have data (not calendar days): weekends and
            # holidays hold none.
            upto = [d for d in known if d <= last]
            first = upto[-days] if len(upto) >= days else (upto[0] if upto else last)
        if first > last:
            raise ToolError(f"start_day {first} is after end_day {last}")
        if (last - first).days > MAX_METRIC_DAYS * 2:
            raise ToolError(
                f"the day range {first}..{last} is too long; ask for at most {MAX_METRIC_DAYS} "
                "trading days at a time"
            )
        rows_raw, qs = reads.read_metrics(snap, info.symbol, first, last)
        texts = [text for _, text in rows_raw[: self.max_rows]]
        shown = fit_json(texts, self.max_bytes)
        rows = parse_rows(texts[:shown])
        next_end = rows_raw[shown][0] if shown < len(rows_raw) else None
        pg = paging(
            shown=shown,
            fetched=shown,
            total=len(rows_raw),
            remaining_after_fetch=len(rows_raw) - shown,
            limit_cut=False,
            next_cursor=None,
            what="days",
        )
        if next_end is not None:
            pg = pg.model_copy(
                update={
                    "truncated_by": "max_bytes",
                    "hint": f"{pg.remaining} older day(s) not shown: ask again with "
                    f"end_day={next_end.isoformat()}",
                }
            )
        start_ns = parse_time(first.isoformat(), "start")
        end_ns = parse_time(last.isoformat(), "end")
        prov, comp = self._envelope(snap, stale, info, start_ns, end_ns)
        data = {
            "symbol": info.symbol,
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "rows": rows,
            "paging": pg.model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        summary = (
            f"{info.symbol} daily statistics {first}..{last} (newest first): "
            f"{pg.returned} day(s) of {pg.total}"
        )
        return Answer(data, render_text(summary, data), pg.returned, qs)

    # get_real_time_data -------------------------------------------------------------------------

    def real_time_data(self, snap: Snapshot, stale: str | None, symbols: Sequence[str]) -> Answer:
        """Answer ``get_real_time_data``."""
        if not symbols:
            raise ToolError('symbols is empty; name at least one, e.g. ["AAPL"]')
        seen: dict[str, SymbolInfo] = {}
        unknown: list[str] = []
        for text in symbols:
            s = check_symbol_text(text)
            info = snap.symbols.get(s) or snap.symbols.get(s.upper())
            if info is None:
                unknown.append(s)
            else:
                seen.setdefault(info.symbol, info)
        if not seen:
            known = ", ".join(sorted(snap.symbols)[:20]) or "none"
            raise ToolError(f"none of {', '.join(unknown)} is in the warehouse; known: {known}")
        infos = list(seen.values())
        now_ns = time.time_ns()
        rows = [_real_time_row(snap, info, now_ns) for info in infos]
        key = ("realtime", tuple(i.symbol for i in infos), stale)
        env = snap.memo.get(key)
        if env is None:
            days = sorted({d for i in infos for d in i.days[-1:]})
            start_ns = parse_time(days[0].isoformat(), "start") if days else 0
            end_ns = parse_time(days[-1].isoformat(), "end") if days else 1
            newest = [i.last_ns for i in infos if i.last_ns is not None]
            env = snap.remember(
                key,
                (
                    provenance(snap, stale, days, max(newest) if newest else None).model_dump(
                        mode="json"
                    ),
                    _merge_completeness(
                        [completeness(snap, i, start_ns, end_ns, need_signals=True) for i in infos]
                    ).model_dump(mode="json"),
                ),
            )
        data = {
            "rows": rows,
            "unknown_symbols": unknown,
            "paging": paging(
                shown=len(rows),
                fetched=len(rows),
                total=len(rows),
                remaining_after_fetch=0,
                limit_cut=False,
                next_cursor=None,
                what="symbols",
            ).model_dump(mode="json"),
            "provenance": env[0],
            "completeness": env[1],
        }
        parts = []
        for r in rows:
            lt = r["last_trade"]
            parts.append(
                f"{r['symbol']} {lt['price']} at {lt['time']} (age {lt['age_s']:.0f} s)"
                if lt
                else f"{r['symbol']} -"
            )
        summary = "newest per symbol: " + "; ".join(parts)
        if unknown:
            summary += "; unknown: " + ", ".join(unknown)
        # Served from the rows read when the snapshot was built: no query per call.
        return Answer(data, render_text(summary, data), len(rows), 0.0)

    # list_symbols ------------------------------------------------------------------------------

    def list_symbols(
        self, snap: Snapshot, stale: str | None, limit: int, cursor: str | None
    ) -> Answer:
        """Answer ``list_symbols``."""
        limit = self._limit(limit)
        names = sorted(snap.symbols)
        q = query_id("list_symbols")
        start = 0
        if cursor is not None:
            c = Cursor.decode(cursor, q)
            start = max(0, c.key[0])
        chunk = names[start : start + limit]
        rows = [
            {
                "symbol": s.symbol,
                "trades": s.n_trades,
                "first_trade": iso_utc(s.first_ns),
                "last_trade": iso_utc(s.last_ns),
                "days": [d.isoformat() for d in s.days],
                "signal_days": [d.isoformat() for d in s.signal_days],
            }
            for s in (snap.symbols[n] for n in chunk)
        ]
        shown = fit_rows(rows, self.max_bytes)
        rows = rows[:shown]
        after = len(names) - start - shown
        next_cursor = Cursor(q, 0, 0, (start + shown, 0)).encode() if after > 0 else None
        all_days = sorted({d for s in snap.symbols.values() for d in s.days})
        start_ns = parse_time(all_days[0].isoformat(), "start") if all_days else 0
        end_ns = parse_time(all_days[-1].isoformat(), "end") if all_days else 1
        prov, comp = self._envelope(snap, stale, None, start_ns, end_ns, all_days)
        data = {
            "rows": rows,
            "paging": paging(
                shown=shown,
                fetched=len(chunk),
                total=len(names),
                remaining_after_fetch=len(names) - start - len(chunk),
                limit_cut=True,
                next_cursor=next_cursor,
                what="symbols",
            ).model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        summary = f"{len(names)} symbol(s) in the warehouse; {shown} listed"
        return Answer(data, render_text(summary, data), shown, 0.0)

    # get_data_quality ---------------------------------------------------------------------------

    def data_quality(
        self, snap: Snapshot, stale: str | None, symbol: str, day: str | None
    ) -> Answer:
        """Answer ``get_data_quality``."""
        info = find_symbol(snap, symbol)
        if day is None:
            if not info.days:
                raise ToolError(f"{info.symbol} has no days with data yet")
            d = info.days[-1]
        else:
            d = parse_day(day, "day")
            if d not in info.days and d not in info.signal_days:
                shown = ", ".join(x.isoformat() for x in info.days[-10:]) or "none"
                raise ToolError(f"{info.symbol} has no data on {d}; days with data: {shown}")
        start_ns = parse_time(d.isoformat(), "start")
        end_ns = parse_time(d.isoformat(), "end")
        q = snap.day_quality.get((info.symbol, d))
        run = snap.runs.get(d)
        checks: list[m.QualityCheck] = []
        if q is None or q.n_batches == 0:
            checks.append(
                m.QualityCheck(
                    check="ingest batches passed their quality suite",
                    passed=None,
                    detail="no ledger rows cover this day's trades; loading cannot be verified",
                )
            )
        else:
            detail = f"{q.n_batches} batch(es); {q.n_failed} failed, {q.n_unchecked} unchecked"
            if q.failed_summaries:
                detail += "; failures: " + "; ".join(s[:300] for s in q.failed_summaries[:5])
            checks.append(
                m.QualityCheck(
                    check="ingest batches passed their quality suite",
                    passed=q.n_failed == 0 if q.n_unchecked < q.n_batches else None,
                    detail=detail,
                )
            )
        failed_exp, qs2 = reads.read_failed_expectations(
            snap, d, list(q.failed_targets) if q else [], limit=20
        )
        for suite, target, expectation, _passed, observed in failed_exp:
            checks.append(
                m.QualityCheck(
                    check=f"{suite}: {expectation}",
                    passed=False,
                    detail=f"{target}: {str(observed)[:300] if observed else 'failed'}",
                )
            )
        if run is None:
            checks.append(
                m.QualityCheck(
                    check="signals published for the day",
                    passed=False,
                    detail="no signals run has been published for this day",
                )
            )
        else:
            checks.append(
                m.QualityCheck(
                    check="signals published for the day",
                    passed=True,
                    detail=f"run {run.run_id} by kernel {run.kernel_version} at "
                    f"{iso_utc(run.computed_ns)}",
                )
            )
            checks.append(
                m.QualityCheck(
                    check="signal quality suite passed",
                    passed=run.quality_passed,
                    detail=(run.quality_summary or "no failures recorded")[:300]
                    if run.quality_passed is not None
                    else "no suite ran for this run",
                )
            )
            checks.append(
                m.QualityCheck(
                    check="signals final (computed after the close)",
                    passed=run.final,
                    detail="final" if run.final else "provisional: recomputed until the close",
                )
            )
        gaps = [
            g for g in snap.gaps if g.applies_to(info.symbol) and g.overlap_ns(start_ns, end_ns) > 0
        ]
        gap_rows = [
            m.GapRow(
                subscription=g.subscription,
                start=iso_utc(g.last_before_ns),
                end=iso_utc(g.first_after_ns),
                seconds=None
                if g.last_before_ns is None or g.first_after_ns is None
                else round((g.first_after_ns - g.last_before_ns) / NS, 3),
                reason=g.reason[:200],
            )
            for g in gaps[:50]
        ]
        # As the day_completeness view counts them: gaps overlapping the regular session.
        open_ns = parse_time(f"{d.isoformat()}T09:30:00", "start")
        close_ns = parse_time(f"{d.isoformat()}T16:00:00", "start")
        in_session = [g for g in gaps if g.overlap_ns(open_ns, close_ns) > 0]
        gap_s = sum(g.overlap_ns(open_ns, close_ns) for g in in_session) / NS
        checks.append(
            m.QualityCheck(
                check="no feed gaps in the regular session",
                passed=not in_session,
                detail=f"{len(in_session)} gap(s) cover {gap_s:.1f} s of 09:30-16:00"
                + (
                    f"; {len(gaps) - len(in_session)} more outside it"
                    if len(gaps) > len(in_session)
                    else ""
                )
                if in_session
                else "no reconnect gap of this symbol's subscription in the session"
                + (f" ({len(gaps)} outside it)" if gaps else ""),
            )
        )
        by_reason = snap.rejects.count(info.symbol, start_ns, end_ns)
        for k, v in snap.rejects.count("", start_ns, end_ns).items():
            by_reason[f"{k} (unattributed)"] = by_reason.get(f"{k} (unattributed)", 0) + v
        n_rej = sum(by_reason.values())
        checks.append(
            m.QualityCheck(
                check="no rejected records",
                passed=n_rej == 0,
                detail=f"{n_rej} record(s) rejected that day (symbol's and unattributed)",
            )
        )
        minutes = q.minutes_with_trades if q else 0
        checks.append(
            m.QualityCheck(
                check="every regular-hours minute has trades",
                passed=minutes == reads.SESSION_MINUTES,
                detail=f"{minutes} of {reads.SESSION_MINUTES} minutes have at least one trade "
                "(a quiet symbol can have empty minutes without missing data)",
            )
        )
        samples_raw, qs = reads.read_reject_samples(snap, info.symbol, d, 10)
        samples = [
            m.RejectSample(
                stage=str(s[0]),
                reason=str(s[1])[:200],
                raw_untrusted=None if s[2] is None else str(s[2]),
                kafka_partition=int(s[4]),
                kafka_offset=int(s[5]),
            )
            for s in samples_raw
        ]
        prov, comp = self._envelope(snap, stale, info, start_ns, end_ns, [d])
        data = {
            "symbol": info.symbol,
            "day": d.isoformat(),
            "checks": [c.model_dump(mode="json") for c in checks],
            "rejects_by_reason": by_reason,
            "reject_samples": [r.model_dump(mode="json") for r in samples],
            "gaps": [g.model_dump(mode="json") for g in gap_rows],
            "minutes_with_trades": minutes,
            "session_minutes": reads.SESSION_MINUTES,
            "paging": paging(
                shown=len(checks),
                fetched=len(checks),
                total=len(checks),
                remaining_after_fetch=0,
                limit_cut=False,
                next_cursor=None,
                what="checks",
            ).model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        failed = [c.check for c in checks if c.passed is False]
        unknown = [c.check for c in checks if c.passed is None]
        summary = (
            f"{info.symbol} {d} quality: {len(checks) - len(failed) - len(unknown)} of "
            f"{len(checks)} checks passed"
            + ("; failed: " + "; ".join(failed) if failed else "")
            + ("; not evaluated: " + "; ".join(unknown) if unknown else "")
        )
        return Answer(data, render_text(summary, data, rows_key="checks"), len(checks), qs + qs2)

    # get_signal_evaluation ----------------------------------------------------------------------

    def signal_evaluation(self, snap: Snapshot, stale: str | None, symbol: str | None) -> Answer:
        """Answer ``get_signal_evaluation``: the newest stored evaluation."""
        info = find_symbol(snap, symbol) if symbol is not None else None
        rows, qs = reads.read_evaluation(snap, None if info is None else info.symbol)
        if not rows:
            raise ToolError(
                "no signal evaluation is stored yet: run `microstructure evaluate --start DAY "
                "--end DAY` on the warehouse, then ask again"
            )
        head = rows[0]
        first, last = head["start_date"], head["end_date"]
        start_ns = parse_time(str(first), "start")
        end_ns = parse_time(str(last), "end")
        prov, comp = self._envelope(snap, stale, info, start_ns, end_ns)
        out_rows: list[dict[str, Any]] = [
            {
                k: (_r(v) if isinstance(v, float) else v)
                for k, v in r.items()
                if k in m.EvaluationRow.model_fields
            }
            | {"verdict_text": EVALUATION_VERDICTS.get(str(r["verdict"]), str(r["verdict"]))}
            for r in rows
        ]
        pg = paging(
            shown=len(out_rows),
            fetched=len(out_rows),
            total=len(out_rows),
            remaining_after_fetch=0,
            limit_cut=False,
            next_cursor=None,
            what="rows",
        )
        data = {
            "evaluation_id": str(head["evaluation_id"]),
            "computed": iso_utc(int(head["computed_ns"])) or "",
            "start_date": str(first),
            "end_date": str(last),
            "method": EVALUATION_METHOD,
            "min_signals": int(head["min_signals"]),
            "random_per_signal": int(head["random_per_signal"]),
            "seed": int(head["seed"]),
            "kernel_version": head["kernel_version"],
            "rows": out_rows,
            "paging": pg.model_dump(mode="json"),
            "provenance": prov,
            "completeness": comp,
        }
        pooled = [r for r in out_rows if r["symbol"] == "*"]
        verdicts = "; ".join(
            f"{int(r['horizon_s']) // 60} min: {r['verdict_text']}" for r in pooled
        )
        summary = (
            f"signal evaluation {first}..{last} (all symbols pooled) - {verdicts}"
            if pooled
            else f"signal evaluation {first}..{last}"
        )
        return Answer(data, render_text(summary, data), len(out_rows), qs)

    def chart_rows(
        self, snap: Snapshot, symbol: str, day: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Return the signal rows and daily statistics a chart of one symbol-day draws."""
        info = find_symbol(snap, symbol)
        rows, metrics, _ = reads.read_chart(snap, info.symbol, parse_day(day, "day"))
        return parse_rows(rows), (orjson.loads(metrics) if metrics is not None else None)


EVALUATION_VERDICTS: dict[str, str] = {
    "too_few_signals": "too few signals to say anything",
    "edge": "signals beat random entries",
    "negative_edge": "signals do worse than random entries",
    "no_edge": "no evidence of an edge over random entries",
}
EVALUATION_METHOD = (
    "For every BUY/SELL signal, the signed forward log return (a SELL counts negated) at "
    "each horizon, previous-tick, within the same session; hit rate, mean (bp) and a "
    "t-statistic whose standard error counts overlapping windows; compared with seeded "
    "random entry times on the same symbol-days carrying the same BUY share. edge = signal "
    "mean - random mean, Welch t, p-values Bonferroni-adjusted over the evaluation's tests. "
    "too_few_signals: below min_signals signals or 10 effective observations."
)


_TRADE_FIELDS = ("time", "timestamp_ns", "price", "size", "exchange", "conditions")
_SIGNAL_FIELDS = (
    "time",
    "timestamp_ns",
    "date",
    "price",
    "trading_signal",
    "lee_mykland_stat",
    "jump_detected",
    "standardized_return",
    "trade_intensity_zscore",
)


def _aged(
    row: Mapping[str, Any] | None, fields: Sequence[str], now_ns: int
) -> dict[str, Any] | None:
    if row is None:
        return None
    out = {f: row[f] for f in fields}
    out["age_s"] = round((now_ns - int(row["timestamp_ns"])) / NS, 3)
    return out


def _real_time_row(snap: Snapshot, info: SymbolInfo, now_ns: int) -> dict[str, Any]:
    """Return one symbol's newest trade and signals (ages from ``now_ns``)."""
    key = ("realtime", info.symbol)
    base = snap.memo.get(key)
    if base is None:
        day = info.days[-1] if info.days else None
        lo = parse_time(day.isoformat(), "start") if day else 0
        hi = parse_time(day.isoformat(), "end") if day else 0
        got = snap.latest.get(info.symbol, {})
        parsed = {k: orjson.loads(v) for k, v in got.items()}
        base = snap.remember(
            key,
            (
                parsed,
                len(range(*info.trades.window(lo, hi))),
                {k: len(range(*info.by_type[k].window(lo, hi))) for k in reads.SIGNAL_TYPES},
            ),
        )
    parsed, trades_today, counts = base
    trade = _aged(parsed.get("trade"), _TRADE_FIELDS, now_ns)
    if trade is not None:
        trade["trading_signal"] = parsed["trade"]["trading_signal"]
    return {
        "symbol": info.symbol,
        "last_trade": trade,
        "last_signal": _aged(parsed.get("signal"), _SIGNAL_FIELDS, now_ns),
        "last_buy_or_sell": _aged(parsed.get("action"), _SIGNAL_FIELDS, now_ns),
        "trades_today": trades_today,
        "signals_today": counts,
    }


def _merge_completeness(parts: Sequence[m.Completeness]) -> m.Completeness:
    order = {"incomplete": 2, "unknown": 1, "complete": 0}
    status: Literal["complete", "incomplete", "unknown"] = max(
        (p.status for p in parts), key=lambda s: order[s]
    )
    finals = [p.signals_final for p in parts if p.signals_final is not None]
    return m.Completeness(
        status=status,
        reasons=sorted({r for p in parts for r in p.reasons}),
        feed_gaps=sum(p.feed_gaps for p in parts),
        gap_seconds=round(sum(p.gap_seconds for p in parts), 3),
        rejects=sum(p.rejects for p in parts),
        batches=sum(p.batches for p in parts),
        batches_failed_quality=sum(p.batches_failed_quality for p in parts),
        batches_unchecked=sum(p.batches_unchecked for p in parts),
        days_without_signals=sorted({d for p in parts for d in p.days_without_signals}),
        signals_final=all(finals) if finals else None,
        measured_from=MEASURED_FROM,
    )
