"""The tools' logic: validate input, read a serving view, build the answer models.

Nothing here knows about transports or backends: every tool reads one
:class:`~pipeline.serving.port.ServingView` (one consistent state of the warehouse,
DuckDB's serving store or Vertica directly). Every fixable input problem (unknown symbol,
bad window, bad cursor) raises :class:`~mcp.server.mcpserver.exceptions.ToolError` with a
message that says what to change; :mod:`mcp_server.server` registers the tools and wraps
them with auditing, time limits and metrics.

Time windows are half-open ``[start, end)`` and count back from the newest data of the
symbol unless ``start``/``end`` are given, so a replayed day answers as if it were live.
Times are ISO 8601; a time without an offset is New York exchange time, and a bare date
means that day's New York midnight (as ``end``: the following midnight, so the day is
included). Pages are keyset pages: a cursor names the window and the key of the last row
shown, and is signed by the server, so it can neither be forged nor widened.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import orjson
from mcp.server.mcpserver.exceptions import ToolError

from mcp_server import models as m
from mcp_server.toolspec import TOOL_BY_NAME, SignalType
from pipeline.nytime import NEW_YORK, NS, iso_new_york, iso_utc, ny_date, wall_time_ns
from pipeline.serving.catalog import SESSION_MINUTES, SymbolSummary
from pipeline.serving.format import round_value
from pipeline.serving.port import Page, ServingView, SignalKind

HOUR_NS = 3600 * NS
MAX_WINDOW_HOURS = 24.0 * 31
MAX_METRIC_DAYS = 62
SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,11}$")
MAX_CURSOR_CHARS = 400
SIGNAL_TYPES: tuple[str, ...] = ("BUY", "SELL", "HOLD")

MEASURED_FROM = (
    "feed_gaps (reconnect windows of the symbol's subscription), market_data_rejects "
    "(records refused by the streamer or the loader), kafka_offsets (the microbatch ledger "
    "and each batch's quality verdict) and signal_runs (published, final, suite verdict). "
    "Trade counts are not yet reconciled with the provider's own counts (REST or flat files)."
)

__all__ = [
    "MEASURED_FROM",
    "Answer",
    "Cursor",
    "SignalType",
    "ToolService",
    "iso_new_york",
    "iso_utc",
    "parse_day",
    "parse_time",
]


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


def find_symbol(view: ServingView, text: str) -> SymbolSummary:
    """Return the view's symbol for ``text`` (exact, then upper case).

    Raises
    ------
    ToolError
        If the text is not a ticker or the warehouse has no such symbol.
    """
    s = check_symbol_text(text)
    info = view.catalog.find_symbol(s)
    if info is None:
        known = list(view.catalog.symbols)
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


MAX_WINDOW_NS = int(MAX_WINDOW_HOURS * HOUR_NS)


def resolve_window(
    info: SymbolSummary,
    hours_back: float | None,
    start: str | None,
    end: str | None,
    default_hours: float,
    newest_ns: int | None = None,
) -> ResolvedWindow:
    """Turn the window arguments into ``[start_ns, end_ns)``.

    Without ``start``/``end`` the window ends just after the symbol's newest trade (or
    ``newest_ns`` when given: signal windows end at the newest signal, live ones included)
    and reaches ``hours_back`` (default ``default_hours``) back. With only ``start`` it runs
    to that end; with only ``end`` it reaches ``hours_back`` back from ``end``.

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
    newest = info.last_ns if newest_ns is None else newest_ns
    newest_end = (newest if newest is not None else time.time_ns()) + 1
    if start is None and end is None:
        end_ns = newest_end
        return ResolvedWindow(end_ns - int(hours * HOUR_NS), end_ns, "newest_data")
    end_ns = parse_time(end, "end") if end is not None else newest_end
    start_ns = parse_time(start, "start") if start is not None else end_ns - int(hours * HOUR_NS)
    if start_ns >= end_ns:
        raise ToolError(
            f"the window is empty: start {iso_utc(start_ns)} is not before end {iso_utc(end_ns)}"
        )
    if end_ns - start_ns > MAX_WINDOW_NS:
        raise ToolError(
            "the window is longer than 31 days; narrow it, or use get_symbol_metrics for daily "
            "aggregates"
        )
    return ResolvedWindow(start_ns, end_ns, "explicit")


# --- cursors --------------------------------------------------------------------------------

_BAD_CURSOR = "cursor is not one this server issued (or it expired); drop it to start again"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: the query it belongs to, its window, the last row's key.

    The text form is ``payload.mac``: the payload in URL-safe base64 and an HMAC-SHA256
    of it under the server's secret. A cursor edited by a client (another window, another
    key) fails the MAC and is refused; one from a server with another secret too.
    """

    query: str
    start_ns: int
    end_ns: int
    key: tuple[int, ...]

    def encode(self, secret: bytes) -> str:
        """Return the signed, opaque text form."""
        raw = orjson.dumps(
            {"v": 2, "q": self.query, "w": [self.start_ns, self.end_ns], "k": list(self.key)}
        )
        payload = base64.urlsafe_b64encode(raw).rstrip(b"=")
        mac = hmac.new(secret, payload, hashlib.sha256).digest()[:16]
        return (payload + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()

    @staticmethod
    def decode(text: str, query: str, secret: bytes, key_len: int) -> Cursor:
        """Verify and parse a cursor made for ``query``.

        Parameters
        ----------
        text
            The cursor as the client sent it.
        query
            The query id the call computes from its own arguments.
        secret
            The server's cursor secret.
        key_len
            How many integers the query's row key has.

        Raises
        ------
        ToolError
            If it is malformed, not signed by this server, for another query, or names a
            window beyond the caps.
        """
        t = text.strip()
        if len(t) > MAX_CURSOR_CHARS or t.count(".") != 1:
            raise ToolError(_BAD_CURSOR)
        payload, _, mac_text = t.partition(".")
        try:
            mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
        except ValueError:
            raise ToolError(_BAD_CURSOR) from None
        want = hmac.new(secret, payload.encode(), hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, want):
            raise ToolError(_BAD_CURSOR)
        try:
            d = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            w, k = d["w"], d["k"]
            cur = Cursor(str(d["q"]), int(w[0]), int(w[1]), tuple(int(x) for x in k))
        except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
            raise ToolError(_BAD_CURSOR) from None
        if cur.query != query:
            raise ToolError(
                "cursor belongs to another query (tool, symbol or filter differ); repeat the "
                "first call's arguments with the cursor, or drop it"
            )
        # Signed windows were capped when issued; check again so that no key or secret
        # mistake can ever widen one.
        if len(cur.key) != key_len or not 0 < cur.end_ns - cur.start_ns <= MAX_WINDOW_NS:
            raise ToolError(_BAD_CURSOR)
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
    view: ServingView,
    days: Sequence[date],
    newest_ns: int | None,
) -> dict[str, Any]:
    """Return the provenance (:class:`~mcp_server.models.Provenance` JSON) of an answer.

    Built as plain JSON (the SDK validates every answer against the output schema); the
    run list depends on the state only and is kept per state.
    """
    cat = view.catalog
    key = ("runs", tuple(days))
    runs_doc = view.memo.get(key)
    if runs_doc is None:
        runs = [r for d in sorted(days) if (r := cat.run(d)) is not None]
        runs_doc = view.memo[key] = (
            sorted({r.kernel_version for r in runs}),
            dict(runs[-1].params) if runs else None,
            [
                {
                    "date": r.date.isoformat(),
                    "run_id": r.run_id,
                    "kernel_version": r.kernel_version,
                    "final": bool(cat.final(r.date)),
                    "quality_passed": r.quality_passed,
                    "computed": iso_utc(r.computed_ns) or "",
                }
                for r in runs
            ],
            cat.ledger_through(),
            iso_utc(cat.last_commit_ns),
        )
    versions, params, run_rows, through, last_load = runs_doc
    as_of = view.as_of_ns
    stale = view.stale_reason
    return {
        "as_of": iso_utc(as_of) or "",
        "as_of_ns": as_of,
        "ledger_through": through,
        "newest_trade": iso_utc(newest_ns),
        "newest_trade_ns": newest_ns,
        "data_lag_s": None if newest_ns is None else round((as_of - newest_ns) / NS, 3),
        "last_load": last_load,
        "snapshot_stale": stale is not None,
        "stale_reason": stale,
        "kernel_versions": versions,
        "params": params,
        "signal_runs": run_rows,
    }


def completeness(
    view: ServingView,
    info: SymbolSummary | None,
    start_ns: int,
    end_ns: int,
    need_signals: bool,
) -> m.Completeness:
    """Judge how complete the data of ``info`` (None: every symbol) in a window is."""
    cat = view.catalog
    symbols = [info] if info is not None else list(cat.symbols.values())
    window_days = set(days_between(start_ns, end_ns))
    reasons: list[str] = []
    n_gaps, gap_ns = 0, 0
    for g in cat.gaps:
        if any(g.applies_to(s.symbol) for s in symbols):
            overlap = g.overlap_ns(start_ns, end_ns)
            if overlap > 0:
                n_gaps += 1
                gap_ns += overlap
    n_rejects = sum(view.reject_counts("", start_ns, end_ns).values())
    for s in symbols:
        n_rejects += sum(view.reject_counts(s.symbol, start_ns, end_ns).values())
    batches = failed = unchecked = 0
    days_with_data: set[date] = set()
    for s in symbols:
        for d in s.days:
            if d in window_days:
                days_with_data.add(d)
                e = cat.entry(s.symbol, d)
                if e is not None:
                    batches += e.n_batches
                    failed += e.n_failed
                    unchecked += e.n_unchecked
    missing = sorted(d for d in days_with_data if cat.run(d) is None)
    runs = [r for d in days_with_data if (r := cat.run(d)) is not None]
    final = all(cat.final(r.date) for r in runs) if runs else None
    stale = sorted(r.date.isoformat() for r in runs if cat.stale(r.date))
    if n_gaps:
        reasons.append(f"{n_gaps} feed gap(s) cover {gap_ns / NS:.1f} s of the window")
    if failed:
        reasons.append(f"{failed} loading batch(es) failed an ingest quality check")
    if need_signals and missing:
        reasons.append("no published signals for " + ", ".join(d.isoformat() for d in missing))
    if need_signals and stale:
        reasons.append(
            "signals of " + ", ".join(stale) + " were computed before trades loaded since "
            "(a recompute is due)"
        )
    elif need_signals and final is False:
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


def fit_rows(rows: Sequence[Mapping[str, Any]], max_bytes: int) -> int:
    """Return how many leading rows fit in ``max_bytes`` of JSON (at least one)."""
    used = 2
    for i, row in enumerate(rows):
        used += len(orjson.dumps(row)) + 1
        if used > max_bytes:
            return max(i, 1)
    return len(rows)


def paging(
    *,
    shown: int,
    fetched: int,
    total: int,
    remaining_after_fetch: int,
    limit_cut: bool,
    next_cursor: str | None,
    what: str,
) -> dict[str, Any]:
    """Return the paging facts (:class:`~mcp_server.models.Paging` JSON) of a page."""
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
    return {
        "returned": shown,
        "total": total,
        "remaining": remaining,
        "truncated": truncated,
        "truncated_by": by,
        "next_cursor": next_cursor if truncated else None,
        "hint": hint,
    }


def _whole(n: int, what: str) -> dict[str, Any]:
    """Return the paging of an answer that is never cut."""
    return paging(
        shown=n,
        fetched=n,
        total=n,
        remaining_after_fetch=0,
        limit_cut=False,
        next_cursor=None,
        what=what,
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
    """The tools over a serving view; stateless apart from the caps and the cursor secret.

    Parameters
    ----------
    max_rows
        Most rows in one answer (a tool's ``limit`` may not exceed it).
    max_bytes
        Most bytes of JSON rows in one answer; longer pages are cut and get a cursor.
    cursor_secret
        Key of the cursors' HMAC (shared by every worker of one server).
    """

    def __init__(
        self, max_rows: int = 1000, max_bytes: int = 24_000, cursor_secret: bytes = b""
    ) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.cursor_secret = cursor_secret or hashlib.sha256(str(time.time_ns()).encode()).digest()

    def _envelope(
        self,
        view: ServingView,
        info: SymbolSummary | None,
        start_ns: int,
        end_ns: int,
        days: Sequence[date] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return (provenance, completeness) JSON for a symbol and window."""
        newest = view.catalog.newest_trade_ns if info is None else info.last_ns
        span = days_between(start_ns, end_ns) if days is None else days
        # Completeness depends on the state and the window only (not on the time the
        # answer is taken): computed once per state, symbol and window.
        key = ("completeness", None if info is None else info.symbol, start_ns, end_ns)
        comp = view.memo.get(key)
        if comp is None:
            comp = view.memo[key] = completeness(
                view, info, start_ns, end_ns, need_signals=True
            ).model_dump(mode="json")
        return provenance(view, span, newest), comp

    def _limit(self, limit: int) -> int:
        if not 1 <= limit <= self.max_rows:
            raise ToolError(f"limit is {limit} and must be between 1 and {self.max_rows}")
        return limit

    def _paged(
        self,
        query: str,
        window: ResolvedWindow,
        cursor: str | None,
        key_len: int,
        read: Any,
        limit: int,
        what: str,
    ) -> tuple[list[dict[str, Any]], dict[str, Any], ResolvedWindow, float]:
        before: tuple[int, ...] | None = None
        if cursor is not None:
            c = Cursor.decode(cursor, query, self.cursor_secret, key_len)
            window = ResolvedWindow(c.start_ns, c.end_ns, "cursor")
            before = c.key
        page: Page = read(window.start_ns, window.end_ns, before, limit)
        shown = fit_rows(page.rows, self.max_bytes) if page.rows else 0
        rows = page.rows[:shown]
        remaining = page.older + (len(page.rows) - shown)
        next_cursor = None
        if shown and remaining > 0:
            next_cursor = Cursor(
                query, window.start_ns, window.end_ns, page.keys[shown - 1]
            ).encode(self.cursor_secret)
        pg = paging(
            shown=shown,
            fetched=len(page.rows),
            total=page.total,
            remaining_after_fetch=page.older,
            limit_cut=True,
            next_cursor=next_cursor,
            what=what,
        )
        return rows, pg, window, page.query_s

    # get_enriched_data --------------------------------------------------------------------------

    def enriched_data(
        self,
        view: ServingView,
        *,
        symbol: str,
        limit: int = 50,
        hours_back: float | None = None,
        start: str | None = None,
        end: str | None = None,
        cursor: str | None = None,
    ) -> Answer:
        """Answer ``get_enriched_data``."""
        info = find_symbol(view, symbol)
        limit = self._limit(limit)
        win = resolve_window(info, hours_back, start, end, default_hours=1.0)
        q = query_id("get_enriched_data", info.symbol)
        rows, pg, win, qs = self._paged(
            q,
            win,
            cursor,
            3,
            lambda a, b, before, n: view.trades_page(info.symbol, a, b, before, n),
            limit,
            "trades",
        )
        prov, comp = self._envelope(view, info, win.start_ns, win.end_ns)
        data = {
            "symbol": info.symbol,
            "window": (w := win.as_dict()),
            "rows": rows,
            "paging": pg,
            "provenance": prov,
            "completeness": comp,
        }
        summary = (
            f"{info.symbol} trades with signals, newest first, {w['start_new_york']} "
            f"to {w['end_new_york']}: {pg['returned']} of {pg['total']}"
            + (
                f" (truncated by {pg['truncated_by']}; next_cursor given)"
                if pg["truncated"]
                else ""
            )
        )
        return Answer(data, render_text(summary, data), pg["returned"], qs)

    # get_trading_signals ------------------------------------------------------------------------

    def trading_signals(
        self,
        view: ServingView,
        *,
        symbol: str,
        signal_type: SignalType = "ALL",
        limit: int = 50,
        hours_back: float | None = None,
        start: str | None = None,
        end: str | None = None,
        cursor: str | None = None,
    ) -> Answer:
        """Answer ``get_trading_signals``."""
        info = find_symbol(view, symbol)
        limit = self._limit(limit)
        win = resolve_window(
            info, hours_back, start, end, default_hours=24.0, newest_ns=info.signals_last_ns
        )
        kind: SignalKind = signal_type
        q = query_id("get_trading_signals", info.symbol, signal_type)
        rows, pg, win, qs = self._paged(
            q,
            win,
            cursor,
            2,
            lambda a, b, before, n: _finality(
                view, view.signals_page(info.symbol, kind, a, b, before, n)
            ),
            limit,
            "signals" if signal_type == "ALL" else f"{signal_type} signals",
        )
        counts = view.signal_counts(info.symbol, win.start_ns, win.end_ns)
        prov, comp = self._envelope(view, info, win.start_ns, win.end_ns)
        data = {
            "symbol": info.symbol,
            "signal_type": signal_type,
            "window": (w := win.as_dict()),
            "counts": counts,
            "rows": rows,
            "paging": pg,
            "provenance": prov,
            "completeness": comp,
        }
        summary = (
            f"{info.symbol} {signal_type} signals, newest first, "
            f"{w['start_new_york']} to {w['end_new_york']}: "
            f"{pg['returned']} of {pg['total']}; in the window "
            f"BUY {counts['BUY']}, SELL {counts['SELL']}, HOLD {counts['HOLD']}"
        )
        return Answer(data, render_text(summary, data), pg["returned"], qs)

    # get_jump_events ----------------------------------------------------------------------------

    def jump_events(
        self,
        view: ServingView,
        *,
        symbol: str,
        limit: int = 50,
        hours_back: float | None = None,
        start: str | None = None,
        end: str | None = None,
        cursor: str | None = None,
    ) -> Answer:
        """Answer ``get_jump_events``."""
        info = find_symbol(view, symbol)
        limit = self._limit(limit)
        win = resolve_window(
            info, hours_back, start, end, default_hours=24.0 * 7, newest_ns=info.signals_last_ns
        )
        q = query_id("get_jump_events", info.symbol)
        rows, pg, win, qs = self._paged(
            q,
            win,
            cursor,
            2,
            lambda a, b, before, n: _finality(
                view, view.signals_page(info.symbol, "JUMP", a, b, before, n)
            ),
            limit,
            "jumps",
        )
        days = days_between(win.start_ns, win.end_ns)
        cat = view.catalog
        daily = []
        for d in reversed(cat.symbol_days.get(info.symbol, ())):
            e = cat.entry(info.symbol, d)
            if d not in days or e is None or e.signals is None or not e.signals.has_metrics:
                continue
            s = e.signals
            daily.append(
                {
                    "date": d.isoformat(),
                    "bns_z": round_value(s.bns_z),
                    "bns_p_value": round_value(s.bns_p_value),
                    "bns_jump": s.bns_jump,
                    "lm_jump_count": s.lm_jump_count,
                }
            )
        prov, comp = self._envelope(view, info, win.start_ns, win.end_ns, days)
        data = {
            "symbol": info.symbol,
            "window": (w := win.as_dict()),
            "daily_bns": daily,
            "rows": rows,
            "paging": pg,
            "provenance": prov,
            "completeness": comp,
        }
        bns_days = [str(d["date"]) for d in daily if d["bns_jump"]]
        summary = (
            f"{info.symbol} Lee-Mykland jumps, newest first, {w['start_new_york']} to "
            f"{w['end_new_york']}: {pg['returned']} of {pg['total']}; BNS day-level jumps: "
            + (", ".join(bns_days) if bns_days else "none")
        )
        return Answer(data, render_text(summary, data), pg["returned"], qs)

    # get_symbol_metrics -------------------------------------------------------------------------

    def symbol_metrics(
        self,
        view: ServingView,
        *,
        symbol: str,
        start_day: str | None = None,
        end_day: str | None = None,
        days: int = 5,
    ) -> Answer:
        """Answer ``get_symbol_metrics``."""
        t0 = time.perf_counter()
        info = find_symbol(view, symbol)
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
        found = view.metrics(info.symbol, first, last)
        cut = found[: self.max_rows]
        shown = fit_rows(cut, self.max_bytes) if cut else 0
        rows = cut[:shown]
        pg = paging(
            shown=shown,
            fetched=shown,
            total=len(found),
            remaining_after_fetch=len(found) - shown,
            limit_cut=False,
            next_cursor=None,
            what="days",
        )
        if shown < len(found):
            pg["truncated_by"] = "max_bytes"
            pg["hint"] = (
                f"{pg['remaining']} older day(s) not shown: ask again with "
                f"end_day={found[shown]['date']}"
            )
        start_ns = parse_time(first.isoformat(), "start")
        end_ns = parse_time(last.isoformat(), "end")
        prov, comp = self._envelope(view, info, start_ns, end_ns)
        data = {
            "symbol": info.symbol,
            "first_day": first.isoformat(),
            "last_day": last.isoformat(),
            "rows": rows,
            "paging": pg,
            "provenance": prov,
            "completeness": comp,
        }
        summary = (
            f"{info.symbol} daily statistics {first}..{last} (newest first): "
            f"{pg['returned']} day(s) of {pg['total']}"
        )
        return Answer(data, render_text(summary, data), pg["returned"], time.perf_counter() - t0)

    # get_real_time_data -------------------------------------------------------------------------

    def real_time_data(self, view: ServingView, *, symbols: Sequence[str]) -> Answer:
        """Answer ``get_real_time_data``."""
        t0 = time.perf_counter()
        if not symbols:
            raise ToolError('symbols is empty; name at least one, e.g. ["AAPL"]')
        cat = view.catalog
        seen: dict[str, SymbolSummary] = {}
        unknown: list[str] = []
        for text in symbols:
            s = check_symbol_text(text)
            info = cat.find_symbol(s)
            if info is None:
                unknown.append(s)
            else:
                seen.setdefault(info.symbol, info)
        if not seen:
            known = ", ".join(list(cat.symbols)[:20]) or "none"
            raise ToolError(f"none of {', '.join(unknown)} is in the warehouse; known: {known}")
        infos = list(seen.values())
        now_ns = time.time_ns()
        rows = [_real_time_row(view, info, now_ns) for info in infos]
        days = sorted({d for i in infos for d in i.days[-1:]})
        start_ns = parse_time(days[0].isoformat(), "start") if days else 0
        end_ns = parse_time(days[-1].isoformat(), "end") if days else 1
        newest = [i.last_ns for i in infos if i.last_ns is not None]
        data = {
            "rows": rows,
            "unknown_symbols": unknown,
            "paging": _whole(len(rows), "symbols"),
            "provenance": provenance(view, days, max(newest) if newest else None),
            "completeness": _merge_completeness(
                [completeness(view, i, start_ns, end_ns, need_signals=True) for i in infos]
            ).model_dump(mode="json"),
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
        return Answer(data, render_text(summary, data), len(rows), time.perf_counter() - t0)

    # list_symbols ------------------------------------------------------------------------------

    def list_symbols(
        self, view: ServingView, *, limit: int = 200, cursor: str | None = None
    ) -> Answer:
        """Answer ``list_symbols``."""
        limit = self._limit(limit)
        cat = view.catalog
        names = list(cat.symbols)
        q = query_id("list_symbols")
        start = 0
        if cursor is not None:
            c = _decode_position(cursor, q, self.cursor_secret)
            start = max(0, c)
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
            for s in (cat.symbols[n] for n in chunk)
        ]
        shown = fit_rows(rows, self.max_bytes) if rows else 0
        rows = rows[:shown]
        after = len(names) - start - shown
        next_cursor = (
            Cursor(q, 0, 1, (start + shown,)).encode(self.cursor_secret) if after > 0 else None
        )
        all_days = sorted({d for s in cat.symbols.values() for d in s.days})
        start_ns = parse_time(all_days[0].isoformat(), "start") if all_days else 0
        end_ns = parse_time(all_days[-1].isoformat(), "end") if all_days else 1
        prov, comp = self._envelope(view, None, start_ns, end_ns, all_days)
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
            ),
            "provenance": prov,
            "completeness": comp,
        }
        summary = f"{len(names)} symbol(s) in the warehouse; {shown} listed"
        return Answer(data, render_text(summary, data), shown, 0.0)

    # get_data_quality ---------------------------------------------------------------------------

    def data_quality(self, view: ServingView, *, symbol: str, day: str | None = None) -> Answer:
        """Answer ``get_data_quality``."""
        t0 = time.perf_counter()
        info = find_symbol(view, symbol)
        cat = view.catalog
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
        q = cat.entry(info.symbol, d)
        run = cat.run(d)
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
        targets = (d.isoformat(), *(q.failed_targets if q else ()))
        failed_exp = [
            (suite, target, expectation, observed)
            for target in targets
            for suite, expectation, observed in cat.failed_expectations.get(target, ())
        ][:20]
        for suite, target, expectation, observed in failed_exp:
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
                    passed=bool(cat.final(run.date)),
                    detail="final"
                    if cat.final(run.date)
                    else "stale: trades of the session were loaded after this run; "
                    "a recompute is due"
                    if cat.stale(run.date)
                    else "provisional: recomputed until the close",
                )
            )
        gaps = [
            g for g in cat.gaps if g.applies_to(info.symbol) and g.overlap_ns(start_ns, end_ns) > 0
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
        open_ns, close_ns = wall_time_ns(d, 9, 30), wall_time_ns(d, 16, 0)
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
        by_reason = view.reject_counts(info.symbol, start_ns, end_ns)
        for k, v in view.reject_counts("", start_ns, end_ns).items():
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
                passed=minutes == SESSION_MINUTES,
                detail=f"{minutes} of {SESSION_MINUTES} minutes have at least one trade "
                "(a quiet symbol can have empty minutes without missing data)",
            )
        )
        samples = view.reject_samples(info.symbol, d, 10)
        prov, comp = self._envelope(view, info, start_ns, end_ns, [d])
        data = {
            "symbol": info.symbol,
            "day": d.isoformat(),
            "checks": [c.model_dump(mode="json") for c in checks],
            "rejects_by_reason": by_reason,
            "reject_samples": samples,
            "gaps": [g.model_dump(mode="json") for g in gap_rows],
            "minutes_with_trades": minutes,
            "session_minutes": SESSION_MINUTES,
            "paging": _whole(len(checks), "checks"),
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
        return Answer(
            data,
            render_text(summary, data, rows_key="checks"),
            len(checks),
            time.perf_counter() - t0,
        )

    # get_signal_evaluation ----------------------------------------------------------------------

    def signal_evaluation(self, view: ServingView, *, symbol: str | None = None) -> Answer:
        """Answer ``get_signal_evaluation``: the newest stored evaluation."""
        t0 = time.perf_counter()
        info = find_symbol(view, symbol) if symbol is not None else None
        rows = view.evaluation(None if info is None else info.symbol)
        if not rows:
            raise ToolError(
                "no signal evaluation is stored yet: run `microstructure evaluate --start DAY "
                "--end DAY` on the warehouse, then ask again"
            )
        head = rows[0]
        first, last = head["start_date"], head["end_date"]
        start_ns = parse_time(str(first), "start")
        end_ns = parse_time(str(last), "end")
        prov, comp = self._envelope(view, info, start_ns, end_ns)
        out_rows: list[dict[str, Any]] = [
            {k: round_value(v) for k, v in r.items() if k in m.EvaluationRow.model_fields}
            | {"verdict_text": EVALUATION_VERDICTS.get(str(r["verdict"]), str(r["verdict"]))}
            for r in rows
        ]
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
            "paging": _whole(len(out_rows), "rows"),
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
        return Answer(data, render_text(summary, data), len(out_rows), time.perf_counter() - t0)

    def call(self, view: ServingView, tool: str, args: Mapping[str, Any]) -> Answer:
        """Answer ``tool`` with ``args`` checked by its input model (benchmark and tests).

        The server's tools call the same methods with the same validated arguments
        (:data:`mcp_server.toolspec.TOOLS`).

        Raises
        ------
        KeyError
            For a name that is not a tool.
        pydantic.ValidationError
            For arguments its input model refuses.
        """
        spec = TOOL_BY_NAME[tool]
        return getattr(self, spec.method)(view, **spec.service_kwargs(args))

    def chart_rows(
        self, view: ServingView, symbol: str, day: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Return the signal rows and daily statistics a chart of one symbol-day draws."""
        info = find_symbol(view, symbol)
        d = parse_day(day, "day")
        rows = view.day_signal_rows(info.symbol, d)
        metrics = view.metrics(info.symbol, d, d)
        return rows, (metrics[0] if metrics else None)


def _decode_position(text: str, query: str, secret: bytes) -> int:
    """Return the position a ``list_symbols`` cursor names."""
    c = Cursor.decode(text, query, secret, 1)
    return c.key[0]


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


def _finality(view: ServingView, page: Page) -> Page:
    """Mark each signal row of a page provisional (live, or its day not final) or final."""
    cat = view.catalog
    finals: dict[str, bool] = {}
    for r in page.rows:
        day = r["date"]
        if day not in finals:
            finals[day] = bool(cat.final(date.fromisoformat(day)))
        r["provisional"] = r["source"] == "live" or not finals[day]
    return page


_LIVE_FIELDS = (
    "time",
    "timestamp_ns",
    "date",
    "seq",
    "price",
    "trading_signal",
    "lee_mykland_stat",
    "lm_xi",
    "jump_detected",
    "standardized_return",
    "trade_intensity_zscore",
    "kafka_partition",
    "kafka_offset",
)


def live_signal(view: ServingView, symbol: str, now_ns: int) -> dict[str, Any] | None:
    """Return the newest live signal of ``symbol`` beside the batch's value of its trade."""
    row = view.newest_live(symbol)
    if row is None:
        return None
    out: dict[str, Any] = {"provisional": True}
    out.update(_aged(row, _LIVE_FIELDS, now_ns) or {})
    emitted = row["emitted_ns"]
    out["emitted"] = iso_utc(emitted)
    out["emitted_age_s"] = None if emitted is None else round((now_ns - emitted) / NS, 3)
    out["provenance"] = {
        k: row[k] for k in ("lm_n", "lm_n_rule", "garch_params", "acd_params", "kernel_version")
    }
    day = date.fromisoformat(row["date"])
    batch = None
    if row["kafka_partition"] is not None and row["kafka_offset"] is not None:
        batch = view.batch_signal_of(
            symbol, day, row["timestamp_ns"], row["kafka_partition"], row["kafka_offset"]
        )
    value = None if batch is None else _aged(batch, _SIGNAL_FIELDS, now_ns)
    if value is not None:
        value["final"] = bool(view.catalog.final(day))
    out["batch"] = value
    return out


def _aged(
    row: Mapping[str, Any] | None, fields: Sequence[str], now_ns: int
) -> dict[str, Any] | None:
    if row is None:
        return None
    out = {f: row[f] for f in fields}
    out["age_s"] = round((now_ns - int(row["timestamp_ns"])) / NS, 3)
    return out


def _real_time_row(view: ServingView, info: SymbolSummary, now_ns: int) -> dict[str, Any]:
    """Return one symbol's newest trade and signals (ages from ``now_ns``)."""
    newest = view.newest(info.symbol)
    day = info.days[-1] if info.days else None
    e = view.catalog.entry(info.symbol, day) if day is not None else None
    s = e.signals if e is not None else None
    trade = _aged(newest.trade, _TRADE_FIELDS, now_ns)
    if trade is not None and newest.trade is not None:
        trade["trading_signal"] = newest.trade["trading_signal"]
    return {
        "symbol": info.symbol,
        "last_trade": trade,
        "last_signal": _aged(newest.signal, _SIGNAL_FIELDS, now_ns),
        "last_buy_or_sell": _aged(newest.action, _SIGNAL_FIELDS, now_ns),
        "live_signal": live_signal(view, info.symbol, now_ns),
        "trades_today": e.n_trades if e is not None else 0,
        "signals_today": {
            "BUY": s.n_buy if s else 0,
            "SELL": s.n_sell if s else 0,
            "HOLD": s.n_hold if s else 0,
        },
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
