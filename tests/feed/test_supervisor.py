"""FeedSupervisor: handshake, fatal statuses, capped backoff with jitter (FakeClock)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable
from typing import TypeVar

import orjson
import pytest
from websockets.asyncio.client import connect

from pipeline.clock import FakeClock
from pipeline.errors import AuthError, FeedError, MaxConnectionsError
from pipeline.events import Trade
from pipeline.feed.replay_server import ReplayServer
from pipeline.feed.source import RecordedSource, WebSocketSource
from pipeline.feed.supervisor import Disconnect, FeedSupervisor
from pipeline.kafka.broker import free_port
from pipeline.retry import Backoff
from tests.support.wait import until

T = TypeVar("T")
CONNECTED = '[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
AUTHED = '[{"ev":"status","status":"auth_success","message":"authenticated"}]'
DATA = '[{"ev":"T","sym":"AAA","i":"1","x":4,"p":1.5,"s":10,"t":1536036818784,"q":1}]'


def run(coro: Awaitable[T], timeout_s: float = 20.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


class Recorder:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.frames: list[tuple[str | bytes, int]] = []
        self.disconnects: list[Disconnect] = []
        self.sleeps: list[float] = []

    async def on_frame(self, frame: str | bytes, receipt_ns: int) -> None:
        self.frames.append((frame, receipt_ns))

    async def on_disconnect(self, d: Disconnect) -> None:
        self.disconnects.append(d)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(seconds)


def _supervisor(source: object, rec: Recorder, **kw: object) -> FeedSupervisor:
    return FeedSupervisor(
        source,  # type: ignore[arg-type]
        "k",
        ["T.AAA"],
        rec.on_frame,
        clock=rec.clock,
        sleep=rec.sleep,
        rng=random.Random(7),
        on_disconnect=rec.on_disconnect,
        **kw,  # type: ignore[arg-type]
    )


def test_backoff_stays_at_its_cap_however_long_the_outage() -> None:
    """With max_attempts None ("never give up") the attempt count grows without bound: the
    1,025th reconnect computed 2.0 ** 1024 and crashed the streamer with OverflowError
    (about 8.5 hours of outage at the 30 s cap)."""
    b = Backoff()
    rng = random.Random(3)
    for attempt in (1_025, 10**6, 10**12):
        assert b.max_s / 2 <= b.delay_s(attempt, rng) <= b.max_s
    assert Backoff(multiplier=10.0).delay_s(400, rng) <= 30.0


def test_backoff_is_capped_exponential_with_jitter_in_the_upper_half() -> None:
    b = Backoff(initial_s=0.5, max_s=8.0)
    rng = random.Random(1)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0), (60, 8.0)]:
        delays = [b.delay_s(attempt, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not in step


def test_handshake_then_frames_are_handed_over_with_receipt_times_and_the_subscription_sent() -> (
    None
):
    clock = FakeClock()
    rec = Recorder(clock)
    source = RecordedSource([[CONNECTED, AUTHED, DATA]])
    sup = _supervisor(source, rec, exit_on_close=True)
    run(sup.run())
    assert [f for f, _ in rec.frames] == [CONNECTED, AUTHED, DATA]
    assert all(ns == clock.now_ns() for _, ns in rec.frames)
    assert [orjson.loads(m) for m in source.sent] == [
        {"action": "auth", "params": "k"},
        {"action": "subscribe", "params": "T.AAA"},
    ]
    assert sup.closed_normally
    assert not rec.disconnects


def test_abnormal_close_reconnects_after_a_jittered_delay_and_resubscribes() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    source = RecordedSource(
        [[CONNECTED, AUTHED, DATA], [CONNECTED, AUTHED, DATA]], ends=["error", "normal"]
    )
    sup = _supervisor(source, rec, exit_on_close=True)
    run(sup.run())
    assert [d.attempt for d in rec.disconnects] == [1]
    assert "code 1006" in rec.disconnects[0].reason
    assert len(rec.sleeps) == 1
    assert 0.25 <= rec.sleeps[0] <= 0.5
    assert [orjson.loads(m)["action"] for m in source.sent] == [
        "auth",
        "subscribe",
        "auth",
        "subscribe",
    ]
    assert len([f for f, _ in rec.frames if f == DATA]) == 2


def test_a_normal_close_is_an_outage_unless_exit_on_close() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    source = RecordedSource([[CONNECTED, AUTHED], [CONNECTED, AUTHED]])
    sup = _supervisor(source, rec, backoff=Backoff(max_attempts=2))
    with pytest.raises(FeedError, match=r"gave up .* after 2 failed attempts"):
        run(sup.run())
    assert len(rec.disconnects) == 2
    assert len(rec.sleeps) == 1


def test_refused_connections_back_off_exponentially_then_give_up_at_max_attempts() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    port = free_port()  # nothing listens here
    source = WebSocketSource(f"ws://127.0.0.1:{port}", open_timeout_s=2)
    sup = _supervisor(source, rec, backoff=Backoff(initial_s=1.0, max_s=4.0, max_attempts=4))
    with pytest.raises(FeedError, match=r"gave up on ws://127\.0\.0\.1:\d+ after 4 failed"):
        run(sup.run())
    caps = [1.0, 2.0, 4.0]
    assert all(cap / 2 <= s <= cap for s, cap in zip(rec.sleeps, caps, strict=True))
    assert [d.attempt for d in rec.disconnects] == [1, 2, 3, 4]
    assert clock.now_ns() > FakeClock().now_ns()  # time only moved through the injected sleep


def test_auth_failed_stops_with_auth_error_and_no_retry() -> None:
    rec = Recorder(FakeClock())

    async def go() -> None:
        async with ReplayServer([Trade("AAA", 1, 1.0, 1, 4, "1")], api_key="other") as srv:
            await _supervisor(WebSocketSource(srv.url), rec).run()

    with pytest.raises(AuthError, match="rejected the API key"):
        run(go())
    assert rec.sleeps == []


def test_max_connections_stops_with_a_clear_error() -> None:
    rec = Recorder(FakeClock())

    async def go() -> None:
        async with (
            ReplayServer([Trade("AAA", 1, 1.0, 1, 4, "1")], api_key="k") as srv,
            connect(srv.url) as holder,
        ):
            await holder.recv()
            await _supervisor(WebSocketSource(srv.url), rec).run()

    with pytest.raises(MaxConnectionsError, match="another streamer"):
        run(go())
    assert rec.sleeps == []


def test_auth_timeout_is_an_outage_and_retried() -> None:
    clock = FakeClock()
    rec = Recorder(clock)
    timeout = '[{"ev":"status","status":"auth_timeout","message":"x"}]'
    source = RecordedSource([[CONNECTED, timeout], [CONNECTED, AUTHED, DATA]])
    run(_supervisor(source, rec, exit_on_close=True).run())
    assert "auth_timeout" in rec.disconnects[0].reason


def test_a_server_that_greets_wrongly_is_an_outage() -> None:
    rec = Recorder(FakeClock())
    source = RecordedSource([[AUTHED]])
    with pytest.raises(FeedError, match="did not greet"):
        run(_supervisor(source, rec, backoff=Backoff(max_attempts=1)).run())


def test_a_requested_reconnect_is_an_outage_with_its_reason_and_resubscribes() -> None:
    clock = FakeClock()
    rec = Recorder(clock)

    async def go() -> FeedSupervisor:
        async with ReplayServer(
            [Trade("AAA", 10**18 + k * 10**6, 1.0, 1, 4, str(k)) for k in range(5000)],
            api_key="k",
            rate=1000,
            shared_timeline=True,
            close_at_end=True,
        ) as srv:
            sup = _supervisor(WebSocketSource(srv.url), rec, exit_on_close=True)
            task = asyncio.create_task(sup.run())
            await until(lambda: len(rec.frames) >= 10, timeout_s=30.0, what="10 frames")
            assert await sup.request_reconnect("silence watchdog: test")
            await until(lambda: rec.disconnects and sup.connected, 30.0, what="a reconnect")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return sup

    sup = run(go())
    [d] = rec.disconnects
    assert d.reason.startswith("silence watchdog: test (connection to ws://")
    assert sup.connects == 2


def test_slow_consumer_and_force_disconnect_statuses_are_logged_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder(FakeClock())
    slow = '[{"ev":"status","status":"slow_consumer","message":"falling behind"}]'
    source = RecordedSource([[CONNECTED, AUTHED, DATA, slow]])
    run(_supervisor(source, rec, exit_on_close=True).run())
    assert "feed status slow_consumer: falling behind" in caplog.text


def test_a_frame_beyond_the_sockets_limit_closes_the_connection_abnormally() -> None:
    """What `--max-frame-bytes` promises: a larger frame is not read but ends the connection
    as an abnormal close, which the supervisor treats as any disconnect (a gap record)."""
    import asyncio

    from websockets.asyncio.server import serve

    from pipeline.feed.source import FeedClosed, WebSocketSource

    async def big(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.send(b"[" + b"0," * (1 << 20) + b"0]")
        await ws.wait_closed()

    async def go() -> FeedClosed:
        async with serve(big, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            conn = await WebSocketSource(
                f"ws://127.0.0.1:{port}", max_frame_bytes=1 << 20
            ).connect()
            try:
                await conn.recv()
            except FeedClosed as e:
                return e
            raise AssertionError("a frame over the limit was read")

    closed = asyncio.run(asyncio.wait_for(go(), 30))
    assert closed.normal is False
