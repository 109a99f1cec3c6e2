"""Domain events: what the feed produces and Kafka carries.

Wire models (upstream keys ``sym, x, i, p, s, c, t, q, z``) live in
``pipeline.feed.messages``; these are ours. Time is always ``int`` UTC epoch
nanoseconds (the WebSocket's milliseconds are converted at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["ws", "rest", "file"]


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade print, normalised.

    The dedup key of a print is ``(symbol, trade_date, exchange, trf_id, trade_id)``
    (integrations.md 1.4); ``sequence_number`` is kept as a secondary key.
    """

    symbol: str
    sip_timestamp_ns: int
    price: float
    size: int
    exchange: int
    trade_id: str
    tape: int | None = None
    conditions: tuple[int, ...] = ()
    sequence_number: int | None = None
    trf_id: int | None = None
    trf_timestamp_ns: int | None = None
    receipt_ns: int = 0
    source: Source = "ws"


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A provider status frame (connected, auth_success, success, ...)."""

    status: str
    message: str
    receipt_ns: int = 0


@dataclass(frozen=True, slots=True)
class Gap:
    """A window in which the feed may have missed events for ``subscription``.

    ``last_before_ns`` is the SIP time of the last event seen before the
    disconnect and ``first_after_ns`` the first one after it (None if unknown).
    """

    subscription: str
    last_before_ns: int | None
    first_after_ns: int | None
    reason: str
    detected_ns: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Input that could not become an event, kept with its reason and raw bytes."""

    stage: str
    reason: str
    raw: bytes
    receipt_ns: int = 0


Event = Trade | Gap | Reject
