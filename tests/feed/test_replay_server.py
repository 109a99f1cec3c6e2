"""The replay server speaks the stocks protocol to a real websockets client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from pipeline.commands.replay_server import load_trades
from pipeline.events import Trade
from pipeline.feed.replay_server import ReplayServer
from tests.support.wait import until

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


# -- the test double: live timeline, REST v3, scripted faults -------------------------------------
def _ticks(n: int, symbols: tuple[str, ...] = ("AAA", "BBB")) -> list[Trade]:
    return [
        Trade(
            symbols[k % len(symbols)],
            1_700_000_000_000_000_000 + k * 1_000_123,
            10.0 + k % 7,
            100 + k,
            4 + k % 2,
            str(k),
            1,
            (12,) if k % 3 else (),
            k,
        )
        for k in range(n)
    ]


async def _subscribe(ws: ClientConnection, params: str) -> list[dict[str, object]]:
    await _handshake(ws)
    await ws.send(orjson.dumps({"action": "subscribe", "params": params}).decode())
    return await _recv_json(ws)


def test_a_shared_timeline_is_live_what_is_due_while_away_is_gone_from_the_socket() -> None:
    trades = _ticks(400)

    async def session() -> tuple[list[str], list[str]]:
        srv = ReplayServer(trades, api_key="k", rate=2000, shared_timeline=True, frame_events=10)
        async with srv:
            async with connect(srv.url) as ws:
                await _subscribe(ws, "T.*")
                first = [str(e["i"]) for e in await _recv_json(ws)]
            # Away while the session goes on, then back: the feed resumes "now".
            await until(lambda: srv.due_count() >= 200, timeout_s=30.0, what="200 due")
            async with connect(srv.url) as ws:
                await _subscribe(ws, "T.*")
                events: list[dict[str, object]] = []
                with contextlib.suppress(TimeoutError):
                    while True:
                        events.extend(await asyncio.wait_for(_recv_json(ws), 0.5))
            return first, [str(e["i"]) for e in events if e["ev"] == "T"]

    first, second = run(session())
    assert first[0] == "0"
    assert int(second[0]) >= 200  # prints 10..~199 were sent while nobody listened
    assert second[-1] == "399"
    assert second == [str(k) for k in range(int(second[0]), 400)]


def test_rest_v3_serves_the_same_prints_with_ns_times_and_next_url_pagination() -> None:
    trades = _ticks(250)

    async def fetch() -> tuple[list[dict[str, object]], list[str], list[dict[str, object]]]:
        async with ReplayServer(trades, api_key="k", close_at_end=True) as srv:
            rows: list[dict[str, object]] = []
            pages: list[str] = []
            async with httpx.AsyncClient(base_url=srv.rest_url) as c:
                url: str | None = "/v3/trades/AAA?timestamp.gte=0&order=asc&sort=timestamp&limit=50"
                while url:
                    r = await c.get(url, headers={"Authorization": "Bearer k"})
                    assert r.status_code == 200
                    body = r.json()
                    rows.extend(body["results"])
                    nxt = body.get("next_url")
                    pages.append(str(nxt))
                    url = nxt.split(srv.rest_url, 1)[1] if nxt else None
            async with connect(srv.url) as ws:
                await _subscribe(ws, "T.AAA")
                live = [e for e in await _drain(ws) if e["ev"] == "T"]
            return rows, pages, live

    rows, pages, live = run(fetch())
    assert len(rows) == 125
    assert len(pages) == 3
    assert "cursor=" in pages[0]
    assert pages[-1] == "None"
    assert [r["id"] for r in rows] == [e["i"] for e in live]  # the same ids live and on REST
    assert [r["sip_timestamp"] // 1_000_000 for r in rows] == [e["t"] for e in live]  # type: ignore[operator]
    assert rows[1]["sip_timestamp"] == 1_700_000_000_002_000_246  # ns, not truncated
    assert isinstance(rows[0]["size"], float)


def test_rest_checks_the_key_bounds_and_limits() -> None:
    trades = _ticks(20)

    t2 = trades[2].sip_timestamp_ns
    bearer = {"Authorization": "Bearer k"}

    async def calls() -> list[tuple[int, object]]:
        async with ReplayServer(trades, api_key="k", rest_failures=2) as srv:
            out: list[tuple[int, object]] = []
            async with httpx.AsyncClient(base_url=srv.rest_url) as c:
                for path, headers in [
                    ("/v3/trades/AAA", {}),
                    ("/v3/trades/AAA?apiKey=k", {}),
                    ("/v3/trades/AAA?apiKey=k", {}),
                    ("/v3/trades/AAA?apiKey=k&limit=50001", {}),
                    (f"/v3/trades/AAA?timestamp.gt={t2}&limit=2", bearer),
                    (f"/v3/trades/AAA?timestamp.lte={t2}&order=desc", bearer),
                    ("/v3/trades/AAA?timestamp=2023-11-14", bearer),
                    ("/nope", {}),
                ]:  # fmt: skip
                    r = await c.get(path, headers=headers)
                    body = r.json()
                    ids = [x["id"] for x in body["results"]] if "results" in body else body
                    out.append((r.status_code, ids))
            return out

    out = run(calls())
    assert out[0] == (401, {"status": "ERROR", "request_id": "replay", "error": "Unknown API Key"})
    assert [code for code, _ in out[1:3]] == [503, 429]  # rest_failures, then served
    assert out[3][0] == 400
    assert out[4] == (200, ["4", "6"])
    assert out[5] == (200, ["2", "0"])
    assert out[6] == (200, [str(k) for k in range(0, 20, 2)])
    assert out[7][0] == 404


def test_rest_on_a_shared_timeline_cannot_see_the_future() -> None:
    trades = _ticks(1000)

    async def fetch() -> tuple[int, int]:
        srv = ReplayServer(
            trades, api_key="k", rate=1000, shared_timeline=True, clock_from_start=True
        )
        async with srv, httpx.AsyncClient(base_url=srv.rest_url) as c:
            await asyncio.sleep(0.2)
            r = await c.get("/v3/trades/AAA?limit=50000", headers={"Authorization": "Bearer k"})
            return len(r.json()["results"]), srv.due_count()

    served, due = run(fetch())
    assert 0 < served <= due // 2 + 1 < 500


@pytest.mark.parametrize(
    ("mode", "code", "status"),
    [
        ("abort", 1006, None),
        ("going_away", 1001, None),
        ("force_disconnect", 1008, "force_disconnect"),
    ],
)
def test_scripted_drops_end_a_connection_the_way_asked(
    mode: str, code: int | None, status: str | None
) -> None:
    async def session() -> tuple[list[dict[str, object]], int | None, int]:
        srv = ReplayServer(_ticks(500), api_key="k", rate=5000, shared_timeline=True,
                           drop_after_events=30, drop_mode=mode, frame_events=10)  # type: ignore[arg-type]  # fmt: skip
        async with srv, connect(srv.url) as ws:
            await _subscribe(ws, "T.*")
            events: list[dict[str, object]] = []
            with contextlib.suppress(ConnectionClosed):
                while True:
                    events.extend(await _recv_json(ws))
            return events, ws.close_code, srv.stats.drops

    events, close_code, drops = run(session())
    assert len([e for e in events if e["ev"] == "T"]) == 30
    assert close_code == code
    assert drops == 1
    assert [e["status"] for e in events if e["ev"] == "status"] == ([status] if status else [])


def test_a_reader_that_stops_reading_is_cut_off() -> None:
    async def session() -> tuple[int, bool]:
        srv = ReplayServer(_ticks(50_000), api_key="k", slow_reader_timeout_s=0.3,
                           write_buffer_bytes=4096, frame_events=100)  # fmt: skip
        async with srv:
            ws = await connect(srv.url, max_queue=1)
            ws.transport.pause_reading()  # a client stuck in its own callback
            await ws.send('{"action":"auth","params":"k"}')
            await ws.send('{"action":"subscribe","params":"T.*"}')
            await until(lambda: srv.stats.slow_reader_kills, 30.0, what="a slow-reader kill")
            ws.transport.resume_reading()
            closed = False
            try:
                while True:
                    await ws.recv()
            except ConnectionClosed:
                closed = True
            return srv.stats.slow_reader_kills, closed

    kills, closed = run(session())
    assert (kills, closed) == (1, True)


def test_a_revoked_key_gets_auth_failed_on_the_next_connection() -> None:
    async def session() -> list[dict[str, object]]:
        async with ReplayServer(_ticks(5), api_key="k", revoke_key_after=1) as srv:
            async with connect(srv.url) as ws:
                await _handshake(ws)
            async with connect(srv.url) as ws:
                await _recv_json(ws)
                await ws.send('{"action":"auth","params":"k"}')
                return await _recv_json(ws)

    assert run(session())[0]["status"] == "auth_failed"


def test_quote_and_minute_bar_channels_and_an_unknown_channel() -> None:
    from pipeline.events import Quote

    trades = [Trade("AAA", 60_000_000_000 * m + k * 1_000_000_000, 10.0 + k, 10, 4, f"{m}-{k}")
              for m in range(3) for k in range(3)]  # fmt: skip
    quotes = [Quote("AAA", 60_000_000_000 + 1, 4, 9.9, 1, 7, 10.1, 2)]

    async def session() -> list[dict[str, object]]:
        srv = ReplayServer(trades, api_key="k", quotes=quotes, close_at_end=True)
        async with srv, connect(srv.url) as ws:
            statuses = await _subscribe(ws, "AM.AAA,Q.AAA,X.AAA")
            return statuses + await _drain(ws)

    events = run(session())
    assert [e["status"] for e in events[:3]] == ["success", "success", "error"]
    assert [e["ev"] for e in events[3:]].count("T") == 0
    [q] = [e for e in events if e["ev"] == "Q"]
    assert (q["bp"], q["ap"], q["t"]) == (9.9, 10.1, 60_000)
    bars = [e for e in events if e["ev"] == "AM"]
    assert [(b["s"], b["o"], b["h"], b["l"], b["c"], b["v"]) for b in bars] == [
        (0, 10.0, 12.0, 10.0, 12.0, 30),
        (60_000, 10.0, 12.0, 10.0, 12.0, 30),
        (120_000, 10.0, 12.0, 10.0, 12.0, 30),
    ]
    assert [b["av"] for b in bars] == [30, 60, 90]


def test_a_stalled_session_keeps_the_socket_open_and_sends_nothing() -> None:
    async def session() -> tuple[int, int]:
        srv = ReplayServer(_ticks(1000), api_key="k", rate=5000, shared_timeline=True,
                           stall_after_events=50, frame_events=10)  # fmt: skip
        async with srv, connect(srv.url) as ws:
            await _subscribe(ws, "T.*")
            got = 0
            with contextlib.suppress(TimeoutError):
                while True:
                    got += len(await asyncio.wait_for(_recv_json(ws), 0.4))
            return got, srv.stats.stalls

    assert run(session()) == (50, 1)
