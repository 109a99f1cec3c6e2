"""Wire shapes of the Polygon/Massive stocks WebSocket, with the upstream keys (pure).

Every server frame is a JSON **array** of events; one frame may mix ``T`` and ``status``
events (integrations.md 1.2, 1.3). Handshake::

    server  [{"ev":"status","status":"connected","message":"Connected Successfully"}]
    client  {"action":"auth","params":"<key>"}
    server  [{"ev":"status","status":"auth_success","message":"authenticated"}]
            (or auth_failed; auth_timeout when no auth arrives in time)
    client  {"action":"subscribe","params":"T.AAPL,T.MSFT"}     ("T.*" = every ticker)
    server  [{"ev":"status","status":"success","message":"subscribed to: T.AAPL"}]  one per channel

The status texts above are the ones quoted by the provider's docs and by independent
clients' fixtures; the texts of ``auth_failed``, ``auth_timeout``, ``unsubscribed`` and
``max_connections`` below are [unconfirmed] paraphrases (clients must key on ``status``,
never on ``message``).

Trade ``T`` keys: ``sym`` str, ``x`` int exchange id, ``i`` **str** trade id, ``z`` int
tape (1=A, 2=B, 3=C), ``p`` price, ``s`` int size, ``c`` int[] conditions (may be
absent), ``t`` SIP time in **Unix milliseconds**, ``q`` sequence number, ``trfi``/``trft``
TRF id / TRF time (ms; off-exchange prints only).

Quote ``Q`` keys (integrations.md 1.3): ``bx``/``ax`` exchanges, ``bp``/``ap`` prices,
``bs``/``as`` sizes, ``c`` an **int scalar** condition, ``i`` an **int[]** of indicators
(not an id, unlike ``T``), ``t`` ms, ``q``, ``z``.

Aggregate ``A`` (per second) / ``AM`` (per minute) keys: ``v`` volume, ``av`` accumulated
day volume, ``op`` day open, ``vw`` bar VWAP, ``o``/``h``/``l``/``c`` bar prices (``c`` is
the close here, not conditions), ``a`` day VWAP, ``z`` average trade size (not the tape),
``s``/``e`` window start/end ms, ``otc`` bool (optional).

Error statuses besides ``auth_failed``, ``auth_timeout`` and ``max_connections``:
``slow_consumer``, ``force_disconnect`` and ``error`` (a refused subscription comes back
as ``error``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NotRequired, TypedDict

from pipeline.events import Aggregate, Quote, Trade

EV_TRADE = "T"
EV_QUOTE = "Q"
EV_AGG_SECOND = "A"
EV_AGG_MINUTE = "AM"
EV_STATUS = "status"
CHANNEL_TRADES = "T"
CHANNEL_QUOTES = "Q"
CHANNEL_AGG_SECOND = "A"
CHANNEL_AGG_MINUTE = "AM"
CHANNEL_KINDS: tuple[str, ...] = (
    CHANNEL_TRADES,
    CHANNEL_QUOTES,
    CHANNEL_AGG_SECOND,
    CHANNEL_AGG_MINUTE,
)

STATUS_CONNECTED = "connected"
STATUS_AUTH_SUCCESS = "auth_success"
STATUS_AUTH_FAILED = "auth_failed"
STATUS_AUTH_TIMEOUT = "auth_timeout"
STATUS_MAX_CONNECTIONS = "max_connections"
STATUS_SUCCESS = "success"
STATUS_ERROR = "error"
STATUS_SLOW_CONSUMER = "slow_consumer"
STATUS_FORCE_DISCONNECT = "force_disconnect"

ACTION_AUTH = "auth"
ACTION_SUBSCRIBE = "subscribe"
ACTION_UNSUBSCRIBE = "unsubscribe"

NS_PER_MS = 1_000_000


class TradeMessage(TypedDict):
    """A ``T`` event as sent on the wire."""

    ev: str
    sym: str
    x: int
    i: str
    p: float
    s: int
    t: int
    q: NotRequired[int]
    z: NotRequired[int]
    c: NotRequired[list[int]]
    trfi: NotRequired[int]
    trft: NotRequired[int]


QuoteMessage = TypedDict(
    "QuoteMessage",
    {
        "ev": str,
        "sym": str,
        "bx": int,
        "bp": float,
        "bs": int,
        "ax": int,
        "ap": float,
        "as": int,  # a keyword in Python: hence the functional TypedDict form
        "c": NotRequired[int],
        "i": NotRequired[list[int]],
        "t": int,
        "q": NotRequired[int],
        "z": NotRequired[int],
    },
)


class AggregateMessage(TypedDict):
    """An ``A`` or ``AM`` event as sent on the wire."""

    ev: str
    sym: str
    v: int
    av: NotRequired[int]
    op: NotRequired[float]
    vw: NotRequired[float]
    o: float
    c: float
    h: float
    l: float  # noqa: E741 - the provider's key
    a: NotRequired[float]
    z: NotRequired[int]
    s: int
    e: int
    otc: NotRequired[bool]


class StatusMessage(TypedDict):
    """A ``status`` event."""

    ev: str
    status: str
    message: str


class ActionMessage(TypedDict):
    """A client -> server message (auth, subscribe, unsubscribe)."""

    action: str
    params: str


def trade_message(trade: Trade) -> TradeMessage:
    """Return the wire ``T`` event of a trade (ns -> ms by truncation, as the SIP feed does).

    Parameters
    ----------
    trade
        A normalised trade.

    Returns
    -------
    TradeMessage
        The event; ``c``, ``q``, ``z``, ``trfi`` and ``trft`` only when known.
    """
    msg: TradeMessage = {
        "ev": EV_TRADE,
        "sym": trade.symbol,
        "i": trade.trade_id,
        "x": trade.exchange,
        "p": trade.price,
        "s": trade.size,
        "t": trade.sip_timestamp_ns // NS_PER_MS,
    }
    if trade.conditions:
        msg["c"] = list(trade.conditions)
    if trade.sequence_number is not None:
        msg["q"] = trade.sequence_number
    if trade.tape is not None:
        msg["z"] = trade.tape
    if trade.trf_id is not None:
        msg["trfi"] = trade.trf_id
    if trade.trf_timestamp_ns is not None:
        msg["trft"] = trade.trf_timestamp_ns // NS_PER_MS
    return msg


def status_message(status: str, message: str) -> StatusMessage:
    """Return a ``status`` event."""
    return {"ev": EV_STATUS, "status": status, "message": message}


def auth_action(api_key: str) -> ActionMessage:
    """Return the client's auth message."""
    return {"action": ACTION_AUTH, "params": api_key}


def subscribe_action(channels: Iterable[str], *, unsubscribe: bool = False) -> ActionMessage:
    """Return a subscribe (or unsubscribe) message for ``channels`` (comma list, no spaces)."""
    return {
        "action": ACTION_UNSUBSCRIBE if unsubscribe else ACTION_SUBSCRIBE,
        "params": ",".join(channels),
    }


def trade_channels(symbols: Iterable[str]) -> list[str]:
    """Return ``T.<SYM>`` channels for ``symbols`` (``*`` = all), upper-cased, de-duplicated."""
    return channels(symbols, (CHANNEL_TRADES,))


def channels(symbols: Iterable[str], kinds: Iterable[str]) -> list[str]:
    """Return ``<KIND>.<SYM>`` channels, kinds outermost (``T.A,T.B,Q.A,Q.B``), de-duplicated.

    Parameters
    ----------
    symbols
        Tickers (``*`` = all); blanks are skipped, names upper-cased.
    kinds
        Channel kinds among :data:`CHANNEL_KINDS`.

    Returns
    -------
    list[str]
        The channels in a stable order.

    Raises
    ------
    ValueError
        If a kind is not one of :data:`CHANNEL_KINDS`.
    """
    syms: list[str] = []
    for s in symbols:
        s = s.strip().upper()
        if s and s not in syms:
            syms.append(s)
    out: list[str] = []
    for kind in kinds:
        k = kind.strip().upper()
        if k not in CHANNEL_KINDS:
            raise ValueError(f"channel kind {kind!r} is not one of {','.join(CHANNEL_KINDS)}")
        for s in syms:
            ch = f"{k}.{s}"
            if ch not in out:
                out.append(ch)
    return out


def quote_message(quote: Quote) -> QuoteMessage:
    """Return the wire ``Q`` event of a quote (ns -> ms by truncation)."""
    msg: QuoteMessage = {
        "ev": EV_QUOTE,
        "sym": quote.symbol,
        "bx": quote.bid_exchange,
        "bp": quote.bid_price,
        "bs": quote.bid_size,
        "ax": quote.ask_exchange,
        "ap": quote.ask_price,
        "as": quote.ask_size,
        "t": quote.sip_timestamp_ns // NS_PER_MS,
    }
    if quote.condition is not None:
        msg["c"] = quote.condition
    if quote.indicators:
        msg["i"] = list(quote.indicators)
    if quote.sequence_number is not None:
        msg["q"] = quote.sequence_number
    if quote.tape is not None:
        msg["z"] = quote.tape
    return msg


def aggregate_message(agg: Aggregate) -> AggregateMessage:
    """Return the wire ``A``/``AM`` event of a bar (ns -> ms)."""
    msg: AggregateMessage = {
        "ev": agg.kind,
        "sym": agg.symbol,
        "v": agg.volume,
        "o": agg.open,
        "c": agg.close,
        "h": agg.high,
        "l": agg.low,
        "s": agg.start_ns // NS_PER_MS,
        "e": agg.end_ns // NS_PER_MS,
    }
    if agg.accumulated_volume is not None:
        msg["av"] = agg.accumulated_volume
    if agg.day_open is not None:
        msg["op"] = agg.day_open
    if agg.vwap is not None:
        msg["vw"] = agg.vwap
    if agg.day_vwap is not None:
        msg["a"] = agg.day_vwap
    if agg.average_size is not None:
        msg["z"] = agg.average_size
    if agg.otc:
        msg["otc"] = True
    return msg
