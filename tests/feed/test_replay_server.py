"""The replay server speaks the stocks protocol to a real websockets client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from pipeline.commands.replay_server import load_trades
from pipeline.events import Trade
from pipeline.feed.replay_server import ReplayServer

pytestmark = pytest.mark.replay

SAMPLE = (
    Path(__file__).parents[2] / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
)
T = TypeVar("T")


def run(coro: Awaitable[T], timeout_s: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def _two_symbols(n: int = 10) -> list[Trade]:
    return [
        Trade(
            "AAA" if k % 2 else "BBB",
            1_514_903_400_000_000_000 + k * 1_000_000,
            10.0 + k,
            100,
            4,
            str(k),
            1,
            (),
            k,
        )
        for k in range(n)
    ]


async def _recv_json(ws: ClientConnection) -> list[dict[str, object]]:
    frame = await ws.recv()
    assert isinstance(frame, str)  # text frames, like the provider
    doc = orjson.loads(frame)
    assert isinstance(doc, list)
    return doc


async def _handshake(ws: ClientConnection, key: str = "k") -> None:
    assert await _recv_json(ws) == [
        {"ev": "status", "status": "connected", "message": "Connected Successfully"}
    ]
    await ws.send(orjson.dumps({"action": "auth", "params": key}).decode())
    assert await _recv_json(ws) == [
        {"ev": "status", "status": "auth_success", "message": "authenticated"}
    ]


async def _drain(ws: ClientConnection) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    try:
        while True:
            events.extend(await _recv_json(ws))
    except ConnectionClosedOK:
        return events


def test_handshake_subscribe_and_every_trade_with_wire_types() -> None:
    trades, _ = load_trades(SAMPLE, tape=1, limit=250)

    async def session() -> tuple[list[dict[str, object]], ReplayServer]:
        async with (
            ReplayServer(trades, api_key="k", close_at_end=True) as srv,
            connect(srv.url) as ws,
        ):
            await _handshake(ws)
            await ws.send('{"action":"subscribe","params":"T.XXX"}')
            return await _drain(ws), srv

    events, srv = run(session())
    assert events[0] == {"ev": "status", "status": "success", "message": "subscribed to: T.XXX"}
    data = [e for e in events if e["ev"] == "T"]
    assert len(data) == 250
    first = data[0]
    assert first == {
        "ev": "T", "sym": "XXX", "i": "1", "x": 11, "p": 157.8, "s": 2, "t": 1514887281479,
        "c": [14, 12, 37], "q": 1, "z": 1,
    }  # fmt: skip
    assert all(
        isinstance(e["t"], int) and isinstance(e["i"], str) and isinstance(e["x"], int)
        for e in data
    )
    assert [e["q"] for e in data] == list(range(1, 251))
    assert srv.stats.frames_sent == 3  # 100 + 100 + 50 events per frame
    assert srv.stats.completed_replays == 1


def test_one_success_status_per_channel_and_subscriptions_filter_symbols() -> None:
    async def session() -> list[dict[str, object]]:
        async with (
            ReplayServer(_two_symbols(), api_key="k", close_at_end=True) as srv,
            connect(srv.url) as ws,
        ):
            await _handshake(ws)
            await ws.send('{"action":"subscribe","params":"T.AAA,T.CCC"}')
            return await _drain(ws)

    events = run(session())
    assert events[:2] == [
        {"ev": "status", "status": "success", "message": "subscribed to: T.AAA"},
        {"ev": "status", "status": "success", "message": "subscribed to: T.CCC"},
    ]
    assert {e["sym"] for e in events[2:]} == {"AAA"}
    assert len(events[2:]) == 5


def test_star_subscribes_every_symbol_and_unsubscribe_is_acknowledged() -> None:
    async def session() -> list[dict[str, object]]:
        srv = ReplayServer(_two_symbols(), api_key="k", speed=None, close_at_end=True)
        async with srv, connect(srv.url) as ws:
            await _handshake(ws)
            await ws.send('{"action":"unsubscribe","params":"T.AAA"}')
            unsub = await _recv_json(ws)
            await ws.send('{"action":"subscribe","params":"T.*"}')
            return unsub + await _drain(ws)

    events = run(session())
    assert events[0] == {"ev": "status", "status": "success", "message": "unsubscribed to: T.AAA"}
    assert events[1] == {"ev": "status", "status": "success", "message": "subscribed to: T.*"}
    assert len([e for e in events if e["ev"] == "T"]) == 10


def test_a_wrong_key_gets_auth_failed_and_the_socket_closes_with_1008() -> None:
    async def session() -> tuple[list[dict[str, object]], int | None]:
        async with ReplayServer(_two_symbols(), api_key="right") as srv, connect(srv.url) as ws:
            await _recv_json(ws)
            await ws.send('{"action":"auth","params":"wrong"}')
            reply = await _recv_json(ws)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return reply, ws.close_code

    reply, code = run(session())
    assert reply == [{"ev": "status", "status": "auth_failed", "message": "authentication failed"}]
    assert code == 1008


def test_no_auth_in_time_gets_auth_timeout() -> None:
    async def session() -> list[dict[str, object]]:
        async with (
            ReplayServer(_two_symbols(), api_key="k", auth_timeout_s=0.2) as srv,
            connect(srv.url) as ws,
        ):
            await _recv_json(ws)
            reply = await _recv_json(ws)
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return reply

    assert run(session())[0]["status"] == "auth_timeout"


def test_actions_before_auth_are_refused() -> None:
    async def session() -> list[dict[str, object]]:
        async with ReplayServer(_two_symbols(), api_key="k") as srv, connect(srv.url) as ws:
            await _recv_json(ws)
            await ws.send('{"action":"subscribe","params":"T.AAA"}')
            return await _recv_json(ws)

    assert run(session()) == [{"ev": "status", "status": "error", "message": "not authorized"}]


def test_a_second_connection_gets_max_connections() -> None:
    async def session() -> tuple[list[dict[str, object]], int | None]:
        async with ReplayServer(_two_symbols(), api_key="k") as srv, connect(srv.url) as first:
            await _handshake(first)
            async with connect(srv.url) as second:
                reply = await _recv_json(second)
                with pytest.raises(ConnectionClosed):
                    await second.recv()
                return reply, second.close_code

    reply, code = run(session())
    assert reply[0]["status"] == "max_connections"
    assert code == 1008


def test_paced_replay_caps_long_pauses() -> None:
    # Two prints an hour apart at 1x: max_pause_s makes the replay finish at once.
    trades = [
        Trade("AAA", 1_000_000_000_000, 1.0, 1, 4, "1"),
        Trade("AAA", 1_000_000_000_000 + 3_600 * 10**9, 1.0, 1, 4, "2"),
    ]

    async def session() -> list[dict[str, object]]:
        async with (
            ReplayServer(
                trades, api_key="k", speed=1.0, max_pause_s=0.01, close_at_end=True
            ) as srv,
            connect(srv.url) as ws,
        ):
            await _handshake(ws)
            await ws.send('{"action":"subscribe","params":"T.AAA"}')
            return await _drain(ws)

    events = run(session(), timeout_s=10.0)
    assert [e["i"] for e in events if e["ev"] == "T"] == ["1", "2"]
