"""The live resource per symbol, ``microstructure://live/{symbol}``, and its change notices.

Reading it returns the symbol's newest live signal (the live path's provisional row, as
``get_real_time_data`` gives it, beside the batch's value of the same trade) and the live
BUY/SELL counts of the symbol's newest live day. A watcher started with the server looks at
the serving catalog every ``interval_s`` (only when a new state was published) and, when a
symbol's live BUY + SELL count of its newest day grows, publishes ``ResourceUpdated`` for the
symbol's URI on the server's subscription bus: clients listening for that URI
(``subscriptions/listen``, MCP 2026-07-28) are told to read it again. Cost per look: one
integer comparison per symbol with live history, from catalog facts; no rows are read.

Limits (stated in docs/serving.md): notices reach ``subscriptions/listen`` streams only (the
2025-11-25 ``resources/subscribe`` is not served: this HTTP server is stateless); a notice
says "read again", it carries no row; with several HTTP workers each worker notifies its own
listeners from its own view; no replay after a dropped stream (the SDK's rule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import date
from typing import Any

import anyio
import orjson
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.subscriptions import ResourceUpdated

from mcp_server.tools import check_symbol_text, live_signal
from pipeline.nytime import iso_utc
from pipeline.serving.catalog import Catalog
from pipeline.serving.port import ServingError, ServingPort, ServingView

logger = logging.getLogger(__name__)

LIVE_URI = "microstructure://live/{symbol}"
"""The resource template: one live resource per symbol."""


def live_uri(symbol: str) -> str:
    """Return the live resource URI of ``symbol``."""
    return LIVE_URI.format(symbol=symbol)


def action_counts(catalog: Catalog) -> dict[str, tuple[date, int]]:
    """Return per symbol its newest live day and that day's live BUY + SELL count.

    Parameters
    ----------
    catalog
        The served catalog (its per symbol-day live facts).

    Returns
    -------
    dict[str, tuple[date, int]]
        Symbols with live history only.
    """
    out: dict[str, tuple[date, int]] = {}
    for symbol, info in catalog.symbols.items():
        if not info.live_days:
            continue
        day = info.live_days[-1]
        e = catalog.entry(symbol, day)
        live = None if e is None else e.live
        out[symbol] = (day, 0 if live is None else live.n_buy + live.n_sell)
    return out


def new_actions(
    before: Mapping[str, tuple[date, int]], after: Mapping[str, tuple[date, int]]
) -> list[str]:
    """Return the symbols with a new live BUY/SELL between two looks (pure).

    A new action: the same newest day with a larger count, or a newer day with any.
    """
    out = []
    for symbol, (day, n) in sorted(after.items()):
        old = before.get(symbol)
        if old is None or day > old[0]:
            if n > 0:
                out.append(symbol)
        elif day == old[0] and n > old[1]:
            out.append(symbol)
    return out


def read_live(view: ServingView, text: str) -> str:
    """Return the live resource of one symbol as JSON text.

    Raises
    ------
    ResourceError
        For a malformed or unknown symbol.
    """
    try:
        symbol = check_symbol_text(text)
    except Exception as e:  # the tool error's text says what to change
        raise ResourceError(str(e)) from None
    info = view.catalog.find_symbol(symbol)
    if info is None:
        raise ResourceError(f"{symbol} is not in the warehouse")
    counts = action_counts(view.catalog).get(info.symbol)
    doc: dict[str, Any] = {
        "symbol": info.symbol,
        "as_of": iso_utc(view.as_of_ns),
        "live_signal": live_signal(view, info.symbol, time.time_ns()),
        "live_day": None if counts is None else counts[0].isoformat(),
        "live_buy_sell_today": None if counts is None else counts[1],
    }
    return orjson.dumps(doc).decode()


async def watch(port: ServingPort, bus: SubscriptionBus, interval_s: float = 0.5) -> None:
    """Publish ``ResourceUpdated`` for each symbol that got a new live BUY/SELL (forever).

    Parameters
    ----------
    port
        The serving port; a look takes its newest view when one is ready.
    bus
        The server's subscription bus (``MCPServer(subscriptions=...)``).
    interval_s
        Pause between two looks.
    """
    previous: dict[str, tuple[date, int]] | None = None
    seen: Catalog | None = None
    while True:
        await anyio.sleep(interval_s)
        if not port.ready():
            continue
        try:
            catalog = port.view().catalog
        except ServingError:
            continue
        if catalog is seen:
            continue
        seen = catalog
        counts = action_counts(catalog)
        if previous is not None:
            for symbol in new_actions(previous, counts):
                await bus.publish(ResourceUpdated(uri=live_uri(symbol)))
        previous = counts


__all__ = ["LIVE_URI", "action_counts", "live_uri", "new_actions", "read_live", "watch"]
