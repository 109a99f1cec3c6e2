"""The replay server's events on the wire and the ``A``/``AM`` bars it builds from trades, pure.

A bar covers one second (``A``) or one minute (``AM``) of one symbol's trades; it is sent
when that symbol's next trade falls in a later window, or at the end of the replay
(:meth:`Bars.flush`), with the day's running volume, open and VWAP, as the provider's are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from pipeline.events import Aggregate
from pipeline.feed import messages as m

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class WireEvent:
    """One event as every connection sends it, with what bars need of a trade."""

    sip_ns: int
    symbol: str
    kind: str  # "T" or "Q"
    text: str  # one event's JSON, pre-serialised once for every connection
    price: float = 0.0
    size: int = 0


class Bars:
    """Per-second (A) and per-minute (AM) bars of one connection's symbols, built from trades."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], list[Any]] = {}
        self._day: dict[str, list[float]] = {}  # symbol -> [day open, volume, notional]

    def day(self, w: WireEvent) -> None:
        """Count a trade once in its symbol's day totals (``av``, ``op``, ``a``)."""
        day = self._day.setdefault(w.symbol, [w.price, 0.0, 0.0])
        day[1] += w.size
        day[2] += w.price * w.size

    def add(self, kind: str, w: WireEvent) -> str | None:
        """Add a trade to the ``kind`` bar of its symbol; return a finished bar's JSON."""
        width = NS_PER_S if kind == m.EV_AGG_SECOND else 60 * NS_PER_S
        start = w.sip_ns - w.sip_ns % width
        key = (kind, w.symbol)
        bar = self._open.get(key)
        out: str | None = None
        if bar is not None and bar[0] != start:
            out = self._finish(kind, w.symbol, bar, width)
            bar = None
        if bar is None:
            # start, open, high, low, close, volume, notional, count
            self._open[key] = [
                start,
                w.price,
                w.price,
                w.price,
                w.price,
                w.size,
                w.price * w.size,
                1,
            ]
        else:
            bar[2] = max(bar[2], w.price)
            bar[3] = min(bar[3], w.price)
            bar[4] = w.price
            bar[5] += w.size
            bar[6] += w.price * w.size
            bar[7] += 1
        return out

    def _finish(self, kind: str, symbol: str, bar: list[Any], width: int) -> str:
        start, o, h, low, c, v, notional, count = bar
        day = self._day.get(symbol, [o, v, notional])
        agg = Aggregate(
            kind=kind,  # type: ignore[arg-type]
            symbol=symbol,
            start_ns=start,
            end_ns=start + width,
            open=o,
            high=h,
            low=low,
            close=c,
            volume=int(v),
            vwap=round(notional / v, 4) if v else None,
            accumulated_volume=int(day[1]),
            day_open=day[0],
            day_vwap=round(day[2] / day[1], 4) if day[1] else None,
            average_size=int(v // count) if count else None,
        )
        return orjson.dumps(m.aggregate_message(agg)).decode()

    def flush(self) -> list[str]:
        """Finish every open bar (end of the replay)."""
        out = []
        for (kind, symbol), bar in sorted(self._open.items()):
            width = NS_PER_S if kind == m.EV_AGG_SECOND else 60 * NS_PER_S
            out.append(self._finish(kind, symbol, bar, width))
        self._open.clear()
        return out
