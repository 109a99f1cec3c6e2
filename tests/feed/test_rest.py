"""The REST v3 trades client against the replay test double: pagination, retries, secrets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from pipeline.events import Trade
from pipeline.feed.replay_server import ReplayServer
from pipeline.feed.rest import BackfillError, RestTrades

pytestmark = pytest.mark.replay
T = TypeVar("T")
SECRET = "sk-test-0123456789"


def run(coro: Awaitable[T], timeout_s: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def _trades(n: int) -> list[Trade]:
    return [
        Trade("AAA", 1_700_000_000_000_000_000 + k * 1_000_001, 5.0, 10 + k, 4, str(k), 1, (), k)
        for k in range(n)
    ]


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, s: float) -> None:
        self.delays.append(s)


def test_pages_follow_next_url_until_the_window_is_read_in_order() -> None:
    trades = _trades(230)

    async def go() -> tuple[list[list[str]], int]:
        async with (
            ReplayServer(trades, api_key=SECRET) as srv,
            RestTrades(srv.rest_url, SECRET, limit=100) as rest,
        ):
            lo, hi = trades[5].sip_timestamp_ns, trades[224].sip_timestamp_ns
            pages = [[f["trade_id"] for f in p.trades] async for p in rest.pages("AAA", lo, hi)]
            return pages, srv.stats.rest_requests

    pages, requests = run(go())
    assert [len(p) for p in pages] == [100, 100, 20]
    assert [i for p in pages for i in p] == [str(k) for k in range(5, 225)]
    assert requests == 3


def test_429_and_503_are_retried_with_backoff_and_401_fails_at_once() -> None:
    trades = _trades(10)
    sleeps = Sleeps()

    async def go() -> tuple[int, int]:
        async with (
            ReplayServer(trades, api_key=SECRET, rest_failures=3) as srv,
            RestTrades(srv.rest_url, SECRET, sleep=sleeps, backoff_initial_s=1.0) as rest,
        ):
            n = sum([len(p.trades) async for p in rest.pages("AAA", 0, 2**62)])
            return n, rest.stats.retries

    assert run(go()) == (10, 3)
    assert sleeps.delays == [0.0, 0.0, 0.0]  # the double says Retry-After: 0

    async def wrong_key() -> None:
        async with (
            ReplayServer(trades, api_key=SECRET) as srv,
            RestTrades(srv.rest_url, "wrong", sleep=sleeps) as rest,
        ):
            async for _ in rest.pages("AAA", 0, 1):
                pass

    with pytest.raises(BackfillError, match="HTTP 401"):
        run(wrong_key())


def test_retries_are_bounded_and_say_what_failed() -> None:
    sleeps = Sleeps()

    async def go() -> None:
        async with (
            ReplayServer(_trades(3), api_key=SECRET, rest_failures=10) as srv,
            RestTrades(srv.rest_url, SECRET, sleep=sleeps, max_attempts=3) as rest,
        ):
            async for _ in rest.pages("AAA", 0, 5):
                pass

    with pytest.raises(BackfillError, match=r"REST trades AAA \[0, 5\]: gave up after 3 attempts"):
        run(go())
    assert len(sleeps.delays) == 2


def test_an_unreachable_host_is_retried_then_fails() -> None:
    from pipeline.kafka.broker import free_port

    sleeps = Sleeps()

    async def go() -> None:
        async with RestTrades(
            f"http://127.0.0.1:{free_port()}", SECRET, sleep=sleeps, max_attempts=2
        ) as rest:
            await rest.probe("AAA", 0)

    with pytest.raises(BackfillError, match="ConnectError"):
        run(go())
    assert len(sleeps.delays) == 1


def test_the_key_never_appears_in_urls_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def go() -> str:
        async with (
            ReplayServer(_trades(5), api_key=SECRET, rest_failures=1) as srv,
            RestTrades(srv.rest_url, SECRET, sleep=Sleeps()) as rest,
        ):
            # A next_url carrying apiKey must not be followed with it either.
            assert "apiKey" not in rest._next_path(
                f"{srv.rest_url}/v3/trades/A?cursor=x&apiKey={SECRET}"
            )
            [page] = [p async for p in rest.pages("AAA", 0, 2**62)]
            assert len(page.trades) == 5
            return repr(rest)

    text = run(go())
    assert SECRET not in text
    # Our client and the HTTP stack under it (httpx, httpcore), even at DEBUG; the test
    # double's own server log (websockets.server) is the provider's side and may show it.
    client_lines = [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    assert any("HTTP Request: GET" in line for line in client_lines)
    assert not [line for line in client_lines if SECRET in line]


def test_probe_returns_the_first_trade_after_a_time() -> None:
    trades = _trades(4)

    async def go() -> tuple[int | None, int | None]:
        async with (
            ReplayServer(trades, api_key=SECRET) as srv,
            RestTrades(srv.rest_url, SECRET) as rest,
        ):
            return (
                await rest.probe("AAA", trades[1].sip_timestamp_ns),
                await rest.probe("AAA", trades[3].sip_timestamp_ns),
            )

    assert run(go()) == (trades[2].sip_timestamp_ns, None)
