"""Domain events: what the feed produces and Kafka carries.

Wire models (upstream keys ``sym, x, i, p, s, c, t, q, z``) live in
``pipeline.feed.messages``; these are ours. Time is always ``int`` UTC epoch
nanoseconds (the WebSocket's milliseconds are converted at the edge).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["ws", "rest", "file"]
Repair = Literal["pending", "backfilled", "failed", "not_attempted", "unsupported"]


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
class Quote:
    """One NBBO quote update (``Q``), normalised; prices in dollars, sizes as sent."""

    symbol: str
    sip_timestamp_ns: int
    bid_exchange: int
    bid_price: float
    bid_size: int
    ask_exchange: int
    ask_price: float
    ask_size: int
    condition: int | None = None
    indicators: tuple[int, ...] = ()
    sequence_number: int | None = None
    tape: int | None = None
    receipt_ns: int = 0
    source: Source = "ws"


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One per-second (``A``) or per-minute (``AM``) bar over ``[start_ns, end_ns)``."""

    kind: Literal["A", "AM"]
    symbol: str
    start_ns: int
    end_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: int
    vwap: float | None = None
    accumulated_volume: int | None = None
    day_open: float | None = None
    day_vwap: float | None = None
    average_size: int | None = None
    otc: bool = False
    receipt_ns: int = 0


@dataclass(frozen=True, slots=True)
class Gap:
    """A window in which the feed may have missed events for ``subscription``.

    ``last_before_ns`` is the SIP time of the last event seen before the
    disconnect and ``first_after_ns`` the first one after it (None if unknown).
    The repair fields say what the streamer did about it: ``repair`` is
    ``pending`` (a backfill is about to run; a record with the outcome and the same
    ``gap_id`` follows), ``backfilled``, ``failed`` (the backfill failed, or the window
    exceeds ``--max-backfill-s``; ``repair_detail`` says which), ``not_attempted`` (no REST
    source configured, or no window or symbol to ask for) or ``unsupported`` (quotes and
    aggregates are not backfilled);
    ``[repair_from_ns, repair_to_ns]`` is the SIP window asked from REST and
    ``backfilled`` the number of trades it added.
    """

    subscription: str
    last_before_ns: int | None
    first_after_ns: int | None
    reason: str
    detected_ns: int
    gap_id: str = ""
    repair: Repair = "not_attempted"
    repair_from_ns: int | None = None
    repair_to_ns: int | None = None
    backfilled: int = 0
    repair_detail: str = ""
    repaired_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Input that could not become an event, kept with its reason and raw bytes."""

    stage: str
    reason: str
    raw: bytes
    receipt_ns: int = 0


Event = Trade | Gap | Reject
AnyEvent = Trade | Quote | Aggregate | Gap | Reject
