"""Frame bytes -> domain events (pure: no IO, clock or environment).

:func:`parse_frame` never raises on bad input: whatever cannot become a :class:`Trade`
or a :class:`FeedStatus` becomes a :class:`Reject` carrying a precise reason and the raw
frame, and the stream goes on. A reason reads ``"<code>: <detail>"``; the code is one of
:data:`REASON_CODES` (stable, for counters and metric labels), the detail names the
event index, field and value.

Units: the WebSocket's ``t`` / ``trft`` are Unix **milliseconds** and become ns here.
``i`` is a **string** on ``T``. ``c`` may be absent (no conditions). Unknown extra keys
are ignored (forward compatibility); missing or mistyped known keys are rejects.
"""

from __future__ import annotations

import math
from typing import TypeGuard

import orjson

from pipeline.events import FeedStatus, Reject, Trade
from pipeline.feed.messages import EV_STATUS, EV_TRADE, NS_PER_MS

STAGE = "parse"

MALFORMED_JSON = "malformed_json"
FRAME_NOT_ARRAY = "frame_not_array"
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
        EVENT_NOT_OBJECT,
        UNKNOWN_EVENT_TYPE,
        MISSING_FIELD,
        MISTYPED_FIELD,
        INVALID_VALUE,
        NON_POSITIVE_PRICE,
        NON_POSITIVE_SIZE,
    }
)

# Millisecond stamps beyond this (year 2286) are garbage, and their ns would overflow int64.
_MAX_MS = 10**13
_MAX_INT64 = 2**63 - 1

ParsedEvent = Trade | FeedStatus | Reject


def reason_code(reason: str) -> str:
    """Return the stable code of a reject reason (the part before the first colon)."""
    return reason.split(":", 1)[0]


def _raw(frame: bytes | str) -> bytes:
    if isinstance(frame, bytes):
        return frame
    # surrogatepass: a text frame with lone surrogates must still be kept, byte for byte.
    return frame.encode("utf-8", "surrogatepass")


def _is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _short(v: object) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _mistyped(idx: int, name: str, value: object, expected: str) -> str:
    return f"{MISTYPED_FIELD}: event {idx} field {name!r} is {_short(value)}, expected {expected}"


def _trade(ev: dict[str, object], idx: int, receipt_ns: int) -> Trade | str:
    """Return the trade, or the reject reason."""
    sym = ev.get("sym")
    if sym is None:
        return f"{MISSING_FIELD}: event {idx} field 'sym'"
    if not isinstance(sym, str) or not sym:
        return _mistyped(idx, "sym", sym, "a non-empty string")

    x = ev.get("x")
    if x is None:
        return f"{MISSING_FIELD}: event {idx} field 'x'"
    if not _is_int(x) or not 0 <= x <= _MAX_INT64:
        return _mistyped(idx, "x", x, "a non-negative integer")

    i = ev.get("i")
    if i is None:
        return f"{MISSING_FIELD}: event {idx} field 'i'"
    if not isinstance(i, str):
        return _mistyped(idx, "i", i, "a string (trade id)")

    p = ev.get("p")
    if p is None:
        return f"{MISSING_FIELD}: event {idx} field 'p'"
    if isinstance(p, bool) or not isinstance(p, int | float):
        return _mistyped(idx, "p", p, "a number")
    price = float(p)
    if not math.isfinite(price):
        return f"{INVALID_VALUE}: event {idx} field 'p' is {_short(p)}, expected a finite number"
    if price <= 0.0:
        return f"{NON_POSITIVE_PRICE}: event {idx} field 'p' is {_short(p)}"

    s = ev.get("s")
    if s is None:
        return f"{MISSING_FIELD}: event {idx} field 's'"
    if _is_int(s):
        size: int = s
    elif isinstance(s, float) and math.isfinite(s) and s.is_integer():
        size = int(s)
    else:
        return _mistyped(idx, "s", s, "an integer")
    if size <= 0:
        return f"{NON_POSITIVE_SIZE}: event {idx} field 's' is {_short(s)}"
    if size > _MAX_INT64:
        return f"{INVALID_VALUE}: event {idx} field 's' is {_short(s)}, out of range"

    t = ev.get("t")
    if t is None:
        return f"{MISSING_FIELD}: event {idx} field 't'"
    if not _is_int(t):
        return _mistyped(idx, "t", t, "integer ms")
    if not 0 < t < _MAX_MS:
        return f"{INVALID_VALUE}: event {idx} field 't' is {_short(t)}, expected Unix ms"

    c = ev.get("c")
    conditions: tuple[int, ...] = ()
    if c is not None:
        if not isinstance(c, list) or not all(_is_int(v) and 0 <= v <= _MAX_INT64 for v in c):
            return _mistyped(idx, "c", c, "a list of integers")
        conditions = tuple(c)

    q = ev.get("q")
    if q is not None and (not _is_int(q) or not 0 <= q <= _MAX_INT64):
        return _mistyped(idx, "q", q, "a non-negative integer")
    z = ev.get("z")
    if z is not None and (not _is_int(z) or not 0 <= z <= _MAX_INT64):
        return _mistyped(idx, "z", z, "an integer tape")
    trfi = ev.get("trfi")
    if trfi is not None and (not _is_int(trfi) or not 0 <= trfi <= _MAX_INT64):
        return _mistyped(idx, "trfi", trfi, "an integer")
    trft = ev.get("trft")
    trft_ns: int | None = None
    if trft is not None:
        if not _is_int(trft) or not 0 <= trft < _MAX_MS:
            return _mistyped(idx, "trft", trft, "integer ms")
        trft_ns = trft * NS_PER_MS

    return Trade(
        symbol=sym,
        sip_timestamp_ns=t * NS_PER_MS,
        price=price,
        size=size,
        exchange=x,
        trade_id=i,
        tape=z,
        conditions=conditions,
        sequence_number=q,
        trf_id=trfi,
        trf_timestamp_ns=trft_ns,
        receipt_ns=receipt_ns,
        source="ws",
    )


def _status(ev: dict[str, object], idx: int, receipt_ns: int) -> FeedStatus | str:
    status = ev.get("status")
    if status is None:
        return f"{MISSING_FIELD}: event {idx} field 'status'"
    if not isinstance(status, str):
        return _mistyped(idx, "status", status, "a string")
    message = ev.get("message", "")
    if message is None:
        message = ""
    if not isinstance(message, str):
        return _mistyped(idx, "message", message, "a string")
    return FeedStatus(status=status, message=message, receipt_ns=receipt_ns)


def parse_frame(frame: bytes | str, receipt_ns: int) -> list[ParsedEvent]:
    """Parse one WebSocket frame into trades, status events and rejects.

    Parameters
    ----------
    frame
        The frame as received (text frames may be ``str``).
    receipt_ns
        When the frame was read from the socket (UTC epoch ns); stamped on every event.

    Returns
    -------
    list[Trade | FeedStatus | Reject]
        One item per event in the frame, in order (one :class:`Reject` for a frame that
        is not a JSON array). Never raises on bad input.
    """
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError as e:
        return [Reject(STAGE, f"{MALFORMED_JSON}: {e}", _raw(frame), receipt_ns)]
    if not isinstance(doc, list):
        kind = type(doc).__name__
        return [
            Reject(STAGE, f"{FRAME_NOT_ARRAY}: frame is a JSON {kind}", _raw(frame), receipt_ns)
        ]
    out: list[ParsedEvent] = []
    for idx, ev in enumerate(doc):
        result: Trade | FeedStatus | str
        if not isinstance(ev, dict):
            result = f"{EVENT_NOT_OBJECT}: event {idx} is a JSON {type(ev).__name__}"
        else:
            kind_ev = ev.get("ev")
            if kind_ev == EV_TRADE:
                result = _trade(ev, idx, receipt_ns)
            elif kind_ev == EV_STATUS:
                result = _status(ev, idx, receipt_ns)
            elif kind_ev is None:
                result = f"{MISSING_FIELD}: event {idx} field 'ev'"
            elif not isinstance(kind_ev, str):
                result = _mistyped(idx, "ev", kind_ev, "a string")
            else:
                result = f"{UNKNOWN_EVENT_TYPE}: event {idx} ev {_short(kind_ev)}"
        if isinstance(result, str):
            out.append(Reject(STAGE, result, _raw(frame), receipt_ns))
        else:
            out.append(result)
    return out


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
