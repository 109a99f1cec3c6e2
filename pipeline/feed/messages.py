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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NotRequired, TypedDict

from pipeline.events import Trade

EV_TRADE = "T"
EV_STATUS = "status"
CHANNEL_TRADES = "T"

STATUS_CONNECTED = "connected"
STATUS_AUTH_SUCCESS = "auth_success"
STATUS_AUTH_FAILED = "auth_failed"
STATUS_AUTH_TIMEOUT = "auth_timeout"
STATUS_MAX_CONNECTIONS = "max_connections"
STATUS_SUCCESS = "success"
STATUS_ERROR = "error"

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
    out: list[str] = []
    for s in symbols:
        s = s.strip().upper()
        if s and f"{CHANNEL_TRADES}.{s}" not in out:
            out.append(f"{CHANNEL_TRADES}.{s}")
    return out
