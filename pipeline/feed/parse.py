"""Frame bytes -> domain events (pure: no IO, clock or environment).

Nothing here raises on bad input: whatever cannot become an event becomes a
:class:`~pipeline.events.Reject` carrying a precise reason and the raw frame, and the
stream goes on. A reason reads ``"<code>: <detail>"``; the code is one of
:data:`REASON_CODES` (stable, for counters and metric labels), the detail names the
event index, field and value.

Two entry points share one set of rules:

- :func:`parse_frame` returns dataclasses (:class:`Trade`, :class:`Quote`,
  :class:`Aggregate`, :class:`FeedStatus`, :class:`Reject`): tests, files, tools.
- :func:`parse_frame_fields` is the streamer's hot path: each valid data event is
  ``(kind, fields)`` where ``fields`` is a plain dict keyed by the dataclass field names
  (exactly the Kafka value layout of :mod:`pipeline.kafka.codec`), so a trade is
  validated and encoded without building a frozen dataclass per event. A trade is first
  checked by one flat expression (:func:`_trade_fast`); anything it does not accept
  goes through the detailed validator, which either accepts it too (e.g. an integral
  float size) or names the reason. The fuzz tests hold both paths to the same answers.

Units: the WebSocket's ``t``, ``trft``, ``s``/``e`` (aggregates) are Unix
**milliseconds** and become ns here. ``i`` is a **string** trade id on ``T`` but an
**int[]** of indicators on ``Q``; ``c`` is an int[] of conditions on ``T``, an int on
``Q`` and the close price on ``A``/``AM``. Unknown extra keys are ignored (forward
compatibility); missing or mistyped known keys are rejects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeGuard

import orjson

from pipeline.events import Aggregate, FeedStatus, Quote, Reject, Trade
from pipeline.feed.messages import (
    EV_AGG_MINUTE,
    EV_AGG_SECOND,
    EV_QUOTE,
    EV_STATUS,
    EV_TRADE,
    NS_PER_MS,
)

STAGE = "parse"

MALFORMED_JSON = "malformed_json"
FRAME_NOT_ARRAY = "frame_not_array"
OVERSIZE_FRAME = "oversize_frame"
EVENT_NOT_OBJECT = "event_not_object"
UNKNOWN_EVENT_TYPE = "unknown_event_type"
MISSING_FIELD = "missing_field"
MISTYPED_FIELD = "mistyped_field"
INVALID_VALUE = "invalid_value"
NON_POSITIVE_PRICE = "non_positive_price"
NON_POSITIVE_SIZE = "non_positive_size"

REASON_CODES: frozenset[str] = frozenset(
    {
        MALFORMED_JSON,
        FRAME_NOT_ARRAY,
        OVERSIZE_FRAME,
        EVENT_NOT_OBJECT,
        UNKNOWN_EVENT_TYPE,
        MISSING_FIELD,
        MISTYPED_FIELD,
        INVALID_VALUE,
        NON_POSITIVE_PRICE,
        NON_POSITIVE_SIZE,
    }
)

KIND_TRADE = EV_TRADE
KIND_QUOTE = EV_QUOTE
KIND_AGG_SECOND = EV_AGG_SECOND
KIND_AGG_MINUTE = EV_AGG_MINUTE

_MAX_INT64 = 2**63 - 1
# Millisecond stamps from this one on (2262-04-11) would overflow int64 once in ns: rejected
# here, with the field named, rather than at the loader. (The loader also rejects trades
# stamped more than a few minutes ahead of its clock: future_timestamp.)
_MAX_MS = _MAX_INT64 // NS_PER_MS + 1
_INF = math.inf
# An oversize frame's reject keeps this much of it: enough to see what it was, small
# enough to fit a Kafka record (message.max.bytes defaults to about 1 MB).
RAW_KEEP_BYTES = 64 * 1024

Fields = dict[str, Any]
ParsedEvent = Trade | Quote | Aggregate | FeedStatus | Reject
FrameItem = tuple[str, Fields] | FeedStatus | Reject
"""An item of :func:`parse_frame_fields`: ``(kind, fields)`` for data events."""


def reason_code(reason: str) -> str:
    """Return the stable code of a reject reason (the part before the first colon)."""
    return reason.split(":", 1)[0]


def _raw(frame: bytes | str) -> bytes:
    if isinstance(frame, bytes):
        return frame
    # surrogatepass: a text frame with lone surrogates must still be kept, byte for byte.
    return frame.encode("utf-8", "surrogatepass")


def _kept(frame: bytes | str) -> bytes:
    """Return the raw bytes a frame's reject keeps: all of it, or its first RAW_KEEP_BYTES.

    A reject is one Kafka record, which must fit the broker's record size limit.
    """
    raw = _raw(frame)
    return raw if len(raw) <= RAW_KEEP_BYTES else raw[:RAW_KEEP_BYTES]


def _event_raw(frame: bytes | str, ev: object) -> bytes:
    """Return the raw bytes of one bad event's reject: the frame, or the event in a large one.

    Every bad event of a large frame would otherwise carry the whole frame.
    """
    if len(frame) <= RAW_KEEP_BYTES:
        return _raw(frame)
    try:
        return orjson.dumps(ev)[:RAW_KEEP_BYTES]
    except TypeError:  # orjson refuses what it parsed only for integers beyond 64 bits
        return repr(ev).encode("utf-8", "surrogatepass")[:RAW_KEEP_BYTES]


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _mistyped(idx: int, name: str, value: object, expected: str) -> str:
    return f"{MISTYPED_FIELD}: event {idx} field {name!r} is {_short(value)}, expected {expected}"


def _missing(idx: int, name: str) -> str:
    return f"{MISSING_FIELD}: event {idx} field {name!r}"


# -- field rules shared by every event type -----------------------------------------------------
def _symbol(ev: dict[str, object], idx: int) -> str:
    """Return the symbol, or raise _Bad with the reason."""
    sym = ev.get("sym")
    if sym is None:
        raise _Bad(_missing(idx, "sym"))
    if not isinstance(sym, str) or not sym:
        raise _Bad(_mistyped(idx, "sym", sym, "a non-empty string"))
    return sym


def _uint(ev: dict[str, object], idx: int, name: str, *, required: bool, what: str) -> int | None:
    v = ev.get(name)
    if v is None:
        if required:
            raise _Bad(_missing(idx, name))
        return None
    if not _is_int(v) or not 0 <= v <= _MAX_INT64:
        raise _Bad(_mistyped(idx, name, v, what))
    return v


def _count(ev: dict[str, object], idx: int, name: str, *, required: bool) -> int | None:
    """Return a non-negative whole number (sizes, volumes); an integral float is accepted."""
    v = ev.get(name)
    if v is None:
        if required:
            raise _Bad(_missing(idx, name))
        return None
    if _is_int(v):
        n: int = v
    elif isinstance(v, float) and math.isfinite(v) and v.is_integer():
        n = int(v)
    else:
        raise _Bad(_mistyped(idx, name, v, "an integer"))
    if n < 0:
        raise _Bad(f"{INVALID_VALUE}: event {idx} field {name!r} is {_short(v)}, must be >= 0")
    if n > _MAX_INT64:
        raise _Bad(f"{INVALID_VALUE}: event {idx} field {name!r} is {_short(v)}, out of range")
    return n


def _ms(ev: dict[str, object], idx: int, name: str, *, required: bool) -> int | None:
    """Return a Unix-millisecond stamp in ns."""
    v = ev.get(name)
    if v is None:
        if required:
            raise _Bad(_missing(idx, name))
        return None
    if not _is_int(v):
        raise _Bad(_mistyped(idx, name, v, "integer ms"))
    if not 0 < v < _MAX_MS:
        raise _Bad(f"{INVALID_VALUE}: event {idx} field {name!r} is {_short(v)}, expected Unix ms")
    return v * NS_PER_MS


def _price(
    ev: dict[str, object], idx: int, name: str, *, required: bool, zero_ok: bool
) -> float | None:
    v = ev.get(name)
    if v is None:
        if required:
            raise _Bad(_missing(idx, name))
        return None
    if not _is_number(v):
        raise _Bad(_mistyped(idx, name, v, "a number"))
    price = float(v)
    if not math.isfinite(price):
        raise _Bad(
            f"{INVALID_VALUE}: event {idx} field {name!r} is {_short(v)}, expected a finite number"
        )
    if price < 0.0 or (price == 0.0 and not zero_ok):
        if zero_ok:
            raise _Bad(f"{INVALID_VALUE}: event {idx} field {name!r} is {_short(v)}, must be >= 0")
        raise _Bad(f"{NON_POSITIVE_PRICE}: event {idx} field {name!r} is {_short(v)}")
    return price


def _int_list(ev: dict[str, object], idx: int, name: str, what: str) -> list[int]:
    v = ev.get(name)
    if v is None:
        return []
    if not isinstance(v, list) or not all(_is_int(x) and 0 <= x <= _MAX_INT64 for x in v):
        raise _Bad(_mistyped(idx, name, v, what))
    return list(v)


class _Bad(Exception):
    """A reject reason raised inside a validator."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- trades --------------------------------------------------------------------------------------
def _trade_fast(ev: dict[str, Any], receipt_ns: int) -> Fields | None:
    """Accept the common well-formed trade in one flat check (hot path), else None.

    None means "not sure": the detailed validator decides. Every accepted event is one
    the detailed validator accepts with the same fields (checked by the fuzz tests).
    """
    try:  # subscripts: cheaper than .get() on the common path; a miss is the slow path's job
        sym = ev["sym"]
        x = ev["x"]
        i = ev["i"]
        p = ev["p"]
        s = ev["s"]
        t = ev["t"]
    except KeyError:
        return None
    tp = type(p)
    if not (
        type(sym) is str
        and sym
        and type(x) is int
        and 0 <= x <= _MAX_INT64
        and type(i) is str
        and (tp is float or tp is int)
        and 0 < p < _INF
        and type(s) is int
        and 0 < s <= _MAX_INT64
        and type(t) is int
        and 0 < t < _MAX_MS
    ):
        return None
    c = ev.get("c")
    if c is None:
        c = []
    elif type(c) is list:
        for v in c:
            if type(v) is not int or not 0 <= v <= _MAX_INT64:
                return None
    else:
        return None
    q = ev.get("q")
    if q is not None and (type(q) is not int or not 0 <= q <= _MAX_INT64):
        return None
    z = ev.get("z")
    if z is not None and (type(z) is not int or not 0 <= z <= _MAX_INT64):
        return None
    trfi = ev.get("trfi")
    if trfi is not None and (type(trfi) is not int or not 0 <= trfi <= _MAX_INT64):
        return None
    trft = ev.get("trft")
    if trft is not None:
        if type(trft) is not int or not 0 <= trft < _MAX_MS:
            return None
        trft *= NS_PER_MS
    # Key order = the trade.v1 value layout (pipeline.kafka.codec).
    return {
        "symbol": sym,
        "sip_timestamp_ns": t * NS_PER_MS,
        "price": p if tp is float else float(p),
        "size": s,
        "exchange": x,
        "trade_id": i,
        "tape": z,
        "conditions": c,
        "sequence_number": q,
        "trf_id": trfi,
        "trf_timestamp_ns": trft,
        "receipt_ns": receipt_ns,
        "source": "ws",
    }


def _trade_fields(ev: dict[str, object], idx: int, receipt_ns: int) -> Fields:
    """Validate a trade in detail: return its fields or raise _Bad with the reason."""
    sym = _symbol(ev, idx)
    x = _uint(ev, idx, "x", required=True, what="a non-negative integer")
    i = ev.get("i")
    if i is None:
        raise _Bad(_missing(idx, "i"))
    if not isinstance(i, str):
        raise _Bad(_mistyped(idx, "i", i, "a string (trade id)"))
    price = _price(ev, idx, "p", required=True, zero_ok=False)
    s = ev.get("s")
    if s is None:
        raise _Bad(_missing(idx, "s"))
    if _is_int(s):
        size: int = s
    elif isinstance(s, float) and math.isfinite(s) and s.is_integer():
        size = int(s)
    else:
        raise _Bad(_mistyped(idx, "s", s, "an integer"))
    if size <= 0:
        raise _Bad(f"{NON_POSITIVE_SIZE}: event {idx} field 's' is {_short(s)}")
    if size > _MAX_INT64:
        raise _Bad(f"{INVALID_VALUE}: event {idx} field 's' is {_short(s)}, out of range")
    t_ns = _ms(ev, idx, "t", required=True)
    conditions = _int_list(ev, idx, "c", "a list of integers")
    q = _uint(ev, idx, "q", required=False, what="a non-negative integer")
    z = _uint(ev, idx, "z", required=False, what="an integer tape")
    trfi = _uint(ev, idx, "trfi", required=False, what="an integer")
    trft = ev.get("trft")
    trft_ns: int | None = None
    if trft is not None:
        if not _is_int(trft):
            raise _Bad(_mistyped(idx, "trft", trft, "integer ms"))
        if not 0 <= trft < _MAX_MS:
            raise _Bad(
                f"{INVALID_VALUE}: event {idx} field 'trft' is {_short(trft)}, expected Unix ms"
            )
        trft_ns = trft * NS_PER_MS
    return {
        "symbol": sym,
        "sip_timestamp_ns": t_ns,
        "price": price,
        "size": size,
        "exchange": x,
        "trade_id": i,
        "tape": z,
        "conditions": conditions,
        "sequence_number": q,
        "trf_id": trfi,
        "trf_timestamp_ns": trft_ns,
        "receipt_ns": receipt_ns,
        "source": "ws",
    }


# -- quotes and aggregates ----------------------------------------------------------------------
def _quote_fields(ev: dict[str, object], idx: int, receipt_ns: int) -> Fields:
    sym = _symbol(ev, idx)
    bx = _uint(ev, idx, "bx", required=True, what="a non-negative integer")
    bp = _price(ev, idx, "bp", required=True, zero_ok=True)  # 0 = no bid
    bs = _count(ev, idx, "bs", required=True)
    ax = _uint(ev, idx, "ax", required=True, what="a non-negative integer")
    ap = _price(ev, idx, "ap", required=True, zero_ok=True)
    as_ = _count(ev, idx, "as", required=True)
    t_ns = _ms(ev, idx, "t", required=True)
    c = _uint(ev, idx, "c", required=False, what="an integer condition")
    indicators = _int_list(ev, idx, "i", "a list of integer indicators")
    q = _uint(ev, idx, "q", required=False, what="a non-negative integer")
    z = _uint(ev, idx, "z", required=False, what="an integer tape")
    return {
        "symbol": sym,
        "sip_timestamp_ns": t_ns,
        "bid_exchange": bx,
        "bid_price": bp,
        "bid_size": bs,
        "ask_exchange": ax,
        "ask_price": ap,
        "ask_size": as_,
        "condition": c,
        "indicators": indicators,
        "sequence_number": q,
        "tape": z,
        "receipt_ns": receipt_ns,
        "source": "ws",
    }


def _aggregate_fields(kind: str, ev: dict[str, object], idx: int, receipt_ns: int) -> Fields:
    sym = _symbol(ev, idx)
    volume = _count(ev, idx, "v", required=True)
    o = _price(ev, idx, "o", required=True, zero_ok=False)
    h = _price(ev, idx, "h", required=True, zero_ok=False)
    low = _price(ev, idx, "l", required=True, zero_ok=False)
    c = _price(ev, idx, "c", required=True, zero_ok=False)
    start_ns = _ms(ev, idx, "s", required=True)
    end_ns = _ms(ev, idx, "e", required=True)
    # required=True above: None is impossible here (the asserts narrow the types).
    assert o is not None
    assert h is not None
    assert low is not None
    assert c is not None
    assert start_ns is not None
    assert end_ns is not None
    if end_ns < start_ns:
        raise _Bad(
            f"{INVALID_VALUE}: event {idx} window end 'e' {end_ns // NS_PER_MS} is before "
            f"start 's' {start_ns // NS_PER_MS}"
        )
    if not low <= min(o, c) <= max(o, c) <= h:
        raise _Bad(
            f"{INVALID_VALUE}: event {idx} bar is inconsistent (o={o!r} h={h!r} l={low!r} c={c!r})"
        )
    otc = ev.get("otc", False)
    if otc is None:
        otc = False
    if not isinstance(otc, bool):
        raise _Bad(_mistyped(idx, "otc", otc, "a boolean"))
    return {
        "kind": kind,
        "symbol": sym,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": volume,
        "vwap": _price(ev, idx, "vw", required=False, zero_ok=True),
        "accumulated_volume": _count(ev, idx, "av", required=False),
        "day_open": _price(ev, idx, "op", required=False, zero_ok=True),
        "day_vwap": _price(ev, idx, "a", required=False, zero_ok=True),
        "average_size": _count(ev, idx, "z", required=False),
        "otc": otc,
        "receipt_ns": receipt_ns,
    }


def _status(ev: dict[str, object], idx: int, receipt_ns: int) -> FeedStatus | str:
    status = ev.get("status")
    if status is None:
        return _missing(idx, "status")
    if not isinstance(status, str):
        return _mistyped(idx, "status", status, "a string")
    message = ev.get("message", "")
    if message is None:
        message = ""
    if not isinstance(message, str):
        return _mistyped(idx, "message", message, "a string")
    return FeedStatus(status=status, message=message, receipt_ns=receipt_ns)


_DATA_VALIDATORS: dict[str, Callable[[dict[str, object], int, int], Fields]] = {
    EV_TRADE: _trade_fields,
    EV_QUOTE: _quote_fields,
    EV_AGG_SECOND: lambda ev, idx, r: _aggregate_fields(EV_AGG_SECOND, ev, idx, r),
    EV_AGG_MINUTE: lambda ev, idx, r: _aggregate_fields(EV_AGG_MINUTE, ev, idx, r),
}


def _frame_reject(
    frame: bytes | str, receipt_ns: int, max_frame_bytes: int | None
) -> Reject | None:
    if max_frame_bytes is not None and len(frame) > max_frame_bytes:
        raw = _raw(frame)
        return Reject(
            STAGE,
            f"{OVERSIZE_FRAME}: frame is {len(raw)} bytes, limit {max_frame_bytes} "
            f"(raw kept: first {min(len(raw), RAW_KEEP_BYTES)} bytes)",
            raw[:RAW_KEEP_BYTES],
            receipt_ns,
        )
    return None


def parse_frame_fields(
    frame: bytes | str, receipt_ns: int, *, max_frame_bytes: int | None = None
) -> list[FrameItem]:
    """Parse one WebSocket frame into ``(kind, fields)`` items, statuses and rejects (hot path).

    Parameters
    ----------
    frame
        The frame as received (text frames may be ``str``).
    receipt_ns
        When the frame was read from the socket (UTC epoch ns); stamped on every event.
    max_frame_bytes
        Frames longer than this become one ``oversize_frame`` reject (None = no limit;
        for a ``str`` frame the length in characters is compared, a lower bound of its bytes).

    Returns
    -------
    list[tuple[str, dict] | FeedStatus | Reject]
        One item per event, in frame order; ``kind`` is ``T``, ``Q``, ``A`` or ``AM`` and
        ``fields`` is keyed by the matching dataclass's field names. Never raises on bad input.
    """
    if max_frame_bytes is not None:
        big = _frame_reject(frame, receipt_ns, max_frame_bytes)
        if big is not None:
            return [big]
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        return [Reject(STAGE, f"{MALFORMED_JSON}: {e}", _kept(frame), receipt_ns)]
    if type(doc) is not list:
        kind = type(doc).__name__
        return [
            Reject(STAGE, f"{FRAME_NOT_ARRAY}: frame is a JSON {kind}", _kept(frame), receipt_ns)
        ]
    out: list[FrameItem] = []
    append = out.append
    for idx, ev in enumerate(doc):
        if type(ev) is dict:
            kind_ev = ev.get("ev")
            if kind_ev == EV_TRADE:
                fields = _trade_fast(ev, receipt_ns)
                if fields is not None:
                    append((EV_TRADE, fields))
                    continue
            if kind_ev == EV_STATUS:
                status = _status(ev, idx, receipt_ns)
                if isinstance(status, FeedStatus):
                    append(status)
                else:
                    append(Reject(STAGE, status, _event_raw(frame, ev), receipt_ns))
                continue
            validator = _DATA_VALIDATORS.get(kind_ev) if isinstance(kind_ev, str) else None
            if validator is not None:
                try:
                    append((kind_ev, validator(ev, idx, receipt_ns)))  # type: ignore[arg-type]
                except _Bad as bad:
                    append(Reject(STAGE, bad.reason, _event_raw(frame, ev), receipt_ns))
                continue
            if kind_ev is None:
                reason = _missing(idx, "ev")
            elif not isinstance(kind_ev, str):
                reason = _mistyped(idx, "ev", kind_ev, "a string")
            else:
                reason = f"{UNKNOWN_EVENT_TYPE}: event {idx} ev {_short(kind_ev)}"
        else:
            reason = f"{EVENT_NOT_OBJECT}: event {idx} is a JSON {type(ev).__name__}"
        append(Reject(STAGE, reason, _event_raw(frame, ev), receipt_ns))
    return out


def trade_from_fields(fields: Fields) -> Trade:
    """Return the :class:`Trade` of trade fields (``conditions`` becomes a tuple)."""
    return Trade(**{**fields, "conditions": tuple(fields["conditions"])})


def quote_from_fields(fields: Fields) -> Quote:
    """Return the :class:`Quote` of quote fields."""
    return Quote(**{**fields, "indicators": tuple(fields["indicators"])})


def aggregate_from_fields(fields: Fields) -> Aggregate:
    """Return the :class:`Aggregate` of aggregate fields."""
    return Aggregate(**fields)


_FROM_FIELDS: dict[str, Callable[[Fields], Trade | Quote | Aggregate]] = {
    EV_TRADE: trade_from_fields,
    EV_QUOTE: quote_from_fields,
    EV_AGG_SECOND: aggregate_from_fields,
    EV_AGG_MINUTE: aggregate_from_fields,
}


def parse_frame(
    frame: bytes | str, receipt_ns: int, *, max_frame_bytes: int | None = None
) -> list[ParsedEvent]:
    """Parse one WebSocket frame into events, status frames and rejects.

    Parameters
    ----------
    frame
        The frame as received (text frames may be ``str``).
    receipt_ns
        When the frame was read from the socket (UTC epoch ns); stamped on every event.
    max_frame_bytes
        See :func:`parse_frame_fields`.

    Returns
    -------
    list[Trade | Quote | Aggregate | FeedStatus | Reject]
        One item per event in the frame, in order (one :class:`Reject` for a frame that
        is not a JSON array or is too large). Never raises on bad input.
    """
    out: list[ParsedEvent] = []
    for item in parse_frame_fields(frame, receipt_ns, max_frame_bytes=max_frame_bytes):
        if isinstance(item, tuple):
            kind, fields = item
            out.append(_FROM_FIELDS[kind](fields))
        else:
            out.append(item)
    return out


def check_trade_fields(ev: dict[str, object], receipt_ns: int) -> Fields | str:
    """Run only the detailed trade validator (tests compare it with the fast path).

    Parameters
    ----------
    ev
        One decoded ``T`` event.
    receipt_ns
        Receipt time to stamp.

    Returns
    -------
    dict | str
        The fields, or the reject reason.
    """
    try:
        return _trade_fields(ev, 0, receipt_ns)
    except _Bad as bad:
        return bad.reason


def fast_trade_fields(ev: dict[str, object], receipt_ns: int) -> Fields | None:
    """Run only the hot-path trade check (tests compare it with the detailed validator)."""
    return _trade_fast(ev, receipt_ns)  # type: ignore[arg-type]


def rest_trade_fields(row: object, symbol: str, receipt_ns: int) -> Fields | str:
    """Return the trade fields of one REST v3 ``results[]`` row, or the reject reason.

    REST rows carry ns timestamps (``sip_timestamp``, ``trf_timestamp``), ``size`` as a
    double (a fractional size cannot be a :class:`Trade` and is rejected), ``id`` as the
    same string trade id as the WebSocket's ``i``, and ``trf_id`` 0 or absent on exchange
    prints (read as None, like the WebSocket's absent ``trfi``): the dedup key
    ``(symbol, trade_date, exchange, trf_id, trade_id)`` of a print is the same whichever
    way it arrived.

    Parameters
    ----------
    row
        One decoded row.
    symbol
        The ticker of the request (rows do not repeat it).
    receipt_ns
        When the page was read.

    Returns
    -------
    dict | str
        Fields with ``source="rest"`` in the trade.v1 layout, or ``"<code>: <detail>"``.
    """
    if not isinstance(row, dict):
        return f"{EVENT_NOT_OBJECT}: REST row is a JSON {type(row).__name__}"
    r: dict[str, object] = row
    try:
        exchange = _uint(r, 0, "exchange", required=True, what="a non-negative integer")
        trade_id = r.get("id")
        if trade_id is None:
            raise _Bad(_missing(0, "id"))
        if not isinstance(trade_id, str):
            raise _Bad(_mistyped(0, "id", trade_id, "a string (trade id)"))
        price = _price(r, 0, "price", required=True, zero_ok=False)
        size_v = r.get("size")
        if size_v is None:
            raise _Bad(_missing(0, "size"))
        if not _is_number(size_v) or not math.isfinite(size_v) or not float(size_v).is_integer():
            raise _Bad(_mistyped(0, "size", size_v, "a whole number of shares"))
        size = int(size_v)
        if size <= 0:
            raise _Bad(f"{NON_POSITIVE_SIZE}: event 0 field 'size' is {_short(size_v)}")
        sip = _uint(r, 0, "sip_timestamp", required=True, what="integer ns")
        assert sip is not None
        if sip == 0:
            raise _Bad(f"{INVALID_VALUE}: event 0 field 'sip_timestamp' is 0")
        conditions = _int_list(r, 0, "conditions", "a list of integers")
        trf_id = _uint(r, 0, "trf_id", required=False, what="an integer") or None
        trf_ts = _uint(r, 0, "trf_timestamp", required=False, what="integer ns") or None
        seq = _uint(r, 0, "sequence_number", required=False, what="a non-negative integer")
        tape = _uint(r, 0, "tape", required=False, what="an integer tape")
    except _Bad as bad:
        return bad.reason.replace("event 0 field", "REST row field", 1)
    return {
        "symbol": symbol,
        "sip_timestamp_ns": sip,
        "price": price,
        "size": size,
        "exchange": exchange,
        "trade_id": trade_id,
        "tape": tape,
        "conditions": conditions,
        "sequence_number": seq,
        "trf_id": trf_id,
        "trf_timestamp_ns": trf_ts,
        "receipt_ns": receipt_ns,
        "source": "rest",
    }


def validate_trade(trade: Trade) -> str | None:
    """Return a reject reason for a trade read from a file or REST, None if it is valid.

    The same value rules as the WebSocket path: positive finite price, positive size,
    non-empty symbol, non-negative exchange, a positive SIP time.

    Parameters
    ----------
    trade
        A trade built by a file or REST reader.

    Returns
    -------
    str | None
        ``"<code>: <detail>"`` or None.
    """
    if not trade.symbol:
        return f"{MISSING_FIELD}: symbol is empty"
    if not math.isfinite(trade.price):
        return f"{INVALID_VALUE}: price is {trade.price!r}"
    if trade.price <= 0.0:
        return f"{NON_POSITIVE_PRICE}: price is {trade.price!r}"
    if trade.size <= 0:
        return f"{NON_POSITIVE_SIZE}: size is {trade.size!r}"
    if trade.exchange < 0:
        return f"{INVALID_VALUE}: exchange is {trade.exchange!r}"
    if not 0 < trade.sip_timestamp_ns <= _MAX_INT64:
        return f"{INVALID_VALUE}: sip_timestamp_ns is {trade.sip_timestamp_ns!r}"
    return None
