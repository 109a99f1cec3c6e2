"""replay-server -> streamer -> real broker: each trade delivered once; rejects and gaps kept."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

import orjson
import pytest

from pipeline.cli import main
from pipeline.commands.replay_server import load_trades
from pipeline.errors import DeliveryError
from pipeline.events import Event, Gap, Reject, Trade
from pipeline.feed.replay_server import ReplayServer
from pipeline.feed.source import RecordedSource, WebSocketSource
from pipeline.kafka.codec import decode
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import EventProducer, LatencyRecorder
from pipeline.streamer import Streamer
from tests.support.wait import until

pytestmark = [pytest.mark.kafka, pytest.mark.replay]

SAMPLE = (
    Path(__file__).parents[2] / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
)
CONNECTED = '[{"ev":"status","status":"connected","message":"Connected Successfully"}]'
AUTHED = '[{"ev":"status","status":"auth_success","message":"authenticated"}]'
T = TypeVar("T")


def run(coro: Awaitable[T], timeout_s: float = 60.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)

    return asyncio.run(bounded())


def _events(bootstrap: str, topic: str) -> list[Event]:
    out: list[Event] = []
    for p, (low, high) in watermarks(bootstrap, topic, 10.0).items():
        out.extend(
            decode(r.value, r.headers)
            for r in read_range(bootstrap, OffsetRange(topic, p, low, high), 30.0)
        )
    return out


def _key(t: Trade) -> tuple[str, int, int, str]:
    return (t.symbol, t.sip_timestamp_ns // 1_000_000, t.exchange, t.trade_id)


def test_every_source_trade_of_a_sample_slice_is_delivered_exactly_once(
    kafka_broker: str, kafka_topic: str
) -> None:
    source_trades, _ = load_trades(SAMPLE, tape=1, limit=5000)
    latency = LatencyRecorder()

    async def go() -> tuple[object, ReplayServer]:
        async with ReplayServer(source_trades, api_key="k", close_at_end=True) as srv:
            producer = EventProducer(kafka_broker, kafka_topic, on_ack=latency)
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=producer,
                api_key="k",
                symbols=["XXX"],
                exit_on_close=True,
            )
            return await streamer.run(), srv

    stats, srv = run(go())
    assert srv.stats.trades_sent == 5000
    assert (stats.trades, stats.sent, stats.delivered, stats.reject_total) == (5000, 5000, 5000, 0)  # type: ignore[attr-defined]
    assert stats.statuses == Counter({"connected": 1, "auth_success": 1, "success": 1})  # type: ignore[attr-defined]
    assert len(latency.receipt_to_ack_ns) == 5000
    delivered = [e for e in _events(kafka_broker, kafka_topic) if isinstance(e, Trade)]
    keys = Counter(_key(t) for t in delivered)
    assert len(delivered) == 5000
    assert max(keys.values()) == 1  # no duplicates
    assert set(keys) == {_key(t) for t in source_trades}  # nothing lost
    by_seq = {t.sequence_number: t for t in delivered}
    for src in source_trades[:50]:
        got = by_seq[src.sequence_number]
        assert (got.price, got.size, got.conditions, got.tape, got.source) == (
            src.price,
            src.size,
            src.conditions,
            1,
            "ws",
        )
        assert (
            got.sip_timestamp_ns == src.sip_timestamp_ns
        )  # the sample has ms stamps: ms on the wire is exact
        assert got.receipt_ns > 0


def test_bad_frames_become_reject_records_and_the_stream_goes_on(
    kafka_broker: str, kafka_topic: str
) -> None:
    good = '[{"ev":"T","sym":"AAA","i":"%d","x":4,"p":1.5,"s":10,"t":1536036818784,"q":%d}]'
    bad_json = b'[{"ev":"T","sym":'
    bad_price = '[{"ev":"T","sym":"AAA","i":"9","x":4,"p":-1,"s":10,"t":1536036818784,"q":9}]'
    frames: list[str | bytes] = [
        CONNECTED,
        AUTHED,
        good % (1, 1),
        bad_json,
        bad_price,
        '[{"ev":"NOI"}]',
        good % (2, 2),
    ]
    producer = EventProducer(kafka_broker, kafka_topic)
    streamer = Streamer(
        source=RecordedSource([frames]),
        producer=producer,
        api_key="k",
        symbols=["AAA"],
        exit_on_close=True,
    )
    stats = run(streamer.run())
    assert stats.trades == 2
    assert stats.rejects == Counter(
        {"malformed_json": 1, "non_positive_price": 1, "unknown_event_type": 1}
    )
    events = _events(kafka_broker, kafka_topic)
    rejects = sorted((e for e in events if isinstance(e, Reject)), key=lambda r: r.reason)
    assert [r.raw for r in rejects] == [bad_json, bad_price.encode(), b'[{"ev":"NOI"}]']
    assert all(r.stage == "parse" for r in rejects)
    assert sorted(e.trade_id for e in events if isinstance(e, Trade)) == ["1", "2"]


def test_a_disconnect_becomes_a_gap_record_between_the_neighbouring_trades(
    kafka_broker: str, kafka_topic: str
) -> None:
    t1 = '[{"ev":"T","sym":"AAA","i":"1","x":4,"p":1.5,"s":10,"t":1000,"q":1}]'
    t2 = '[{"ev":"T","sym":"AAA","i":"2","x":4,"p":1.5,"s":10,"t":5000,"q":5}]'
    source = RecordedSource(
        [[CONNECTED, AUTHED, t1], [CONNECTED, AUTHED, t2]], ends=["error", "normal"]
    )

    async def no_wait(_: float) -> None:
        return None

    producer = EventProducer(kafka_broker, kafka_topic)
    streamer = Streamer(
        source=source,
        producer=producer,
        api_key="k",
        symbols=["AAA"],
        exit_on_close=True,
        sleep=no_wait,
    )
    stats = run(streamer.run())
    assert (stats.disconnects, stats.gaps, stats.trades) == (1, 1, 2)
    [gap] = [e for e in _events(kafka_broker, kafka_topic) if isinstance(e, Gap)]
    assert (gap.subscription, gap.last_before_ns, gap.first_after_ns) == (
        "T.AAA",
        1_000_000_000,
        5_000_000_000,
    )
    assert "code 1006" in gap.reason
    # No REST source: recorded, with the window it would need, and why it was not repaired.
    assert (gap.repair, gap.repair_from_ns, gap.repair_to_ns) == (
        "not_attempted",
        0,
        5_000_999_999,
    )
    assert "no REST source" in gap.repair_detail


def test_a_delivery_failure_ends_the_stream_with_delivery_error(kafka_broker: str) -> None:
    t1 = '[{"ev":"T","sym":"AAA","i":"1","x":4,"p":1.5,"s":10,"t":1000,"q":1}]'
    producer = EventProducer(kafka_broker, "no-such-topic-stream", message_timeout_ms=1000)
    streamer = Streamer(
        source=RecordedSource([[CONNECTED, AUTHED, t1]]),
        producer=producer,
        api_key="k",
        symbols=["AAA"],
        exit_on_close=True,
        flush_timeout_s=15.0,
    )
    with pytest.raises(DeliveryError, match="not acknowledged"):
        run(streamer.run())


def test_max_events_and_idle_exit_stop_a_stream_that_the_server_keeps_open(
    kafka_broker: str, kafka_topic: str
) -> None:
    source_trades, _ = load_trades(SAMPLE, tape=1, limit=300)

    async def go(**kw: object) -> object:
        async with ReplayServer(source_trades, api_key="k", frame_events=10) as srv:
            producer = EventProducer(kafka_broker, kafka_topic)
            return await Streamer(
                source=WebSocketSource(srv.url),
                producer=producer,
                api_key="k",
                symbols=["XXX"],
                **kw,  # type: ignore[arg-type]
            ).run()

    idle = run(go(idle_exit_s=0.5))
    assert (idle.trades, idle.delivered) == (300, 300)  # type: ignore[attr-defined]
    assert idle.stop_reason == "idle for 0.5 s"  # type: ignore[attr-defined]
    capped = run(go(max_events=50))
    assert 50 <= capped.trades <= 300  # type: ignore[attr-defined]
    assert capped.delivered == capped.sent  # type: ignore[attr-defined]
    assert capped.stop_reason == "max events (50)"  # type: ignore[attr-defined]


def test_cli_replay_server_and_stream_end_to_end(
    kafka_broker: str,
    kafka_topic: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cmd = [sys.executable, "-m", "pipeline.cli", "replay-server", str(SAMPLE), "--port", "0",
           "--limit", "2000", "--api-key", "demo", "--close-at-end"]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            server.stdout.readline()  # file summary
            line = server.stdout.readline()
            assert "replay server on ws://" in line, line + (
                server.stderr.read() if server.stderr else ""
            )
            url = line.split(" on ", 1)[1].split(" ", 1)[0]
            monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
            monkeypatch.setenv("MASSIVE_API_KEY", "demo")
            monkeypatch.setenv("MICROSTRUCTURE_TOPIC", kafka_topic)
            code = main(["stream", "--symbols", "XXX", "--url", url, "--exit-on-close", "--json"])
        finally:
            server.terminate()
            server.wait(timeout=10)
    assert code == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["trades"], summary["delivered"], summary["rejects"]) == (2000, 2000, {})
    assert summary["stop_reason"] == "server closed the connection"
    assert sum(hi - lo for lo, hi in watermarks(kafka_broker, kafka_topic, 10.0).values()) == 2000


def test_cli_stream_without_a_key_or_topic_fails_clearly(
    kafka_broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    assert main(["stream", "--symbols", "XXX"]) == 2
    assert "MASSIVE_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("POLYGON_API_KEY", "k")
    monkeypatch.setenv("MICROSTRUCTURE_TOPIC", "absent-topic-for-cli")
    assert main(["stream", "--symbols", "XXX", "--url", "ws://127.0.0.1:9"]) == 1
    assert "microstructure kafka up" in capsys.readouterr().err


def test_sigterm_to_the_stream_command_drains_and_flushes_before_exit(
    kafka_broker: str, kafka_topic: str, tmp_path: Path
) -> None:
    import os
    import signal

    from tests.support.wait import wait_until

    source_trades, _ = load_trades(SAMPLE, tape=1, limit=400)

    async def serve_and_stream() -> tuple[int, str]:
        # A server that never closes: only the signal can end the stream.
        async with ReplayServer(source_trades, api_key="k", frame_events=20) as srv:
            env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_broker, "MASSIVE_API_KEY": "k",
                   "MICROSTRUCTURE_TOPIC": kafka_topic}  # fmt: skip
            args = ["-m", "pipeline.cli", "stream", "--symbols", "XXX", "--url", srv.url, "--json"]
            pipe = asyncio.subprocess.PIPE
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=env, stdout=pipe, stderr=pipe
            )
            await srv.replay_finished.wait()
            proc.send_signal(signal.SIGTERM)
            out, _ = await proc.communicate()
            return proc.returncode or 0, out.decode()

    code, out = run(serve_and_stream())
    assert code == 0
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["stop_reason"] == "signal SIGTERM"
    assert summary["delivered"] == summary["trades"] == 400
    wait_until(
        lambda: sum(h - lo for lo, h in watermarks(kafka_broker, kafka_topic, 5.0).values()) == 400,
        10.0,
    )


# -- gaps repaired from REST, slow consumers, restarts, other channels, metrics -------------------
def _all_events(bootstrap: str, topic: str) -> list[object]:
    from pipeline.kafka.codec import decode_event

    out: list[object] = []
    for p, (low, high) in watermarks(bootstrap, topic, 10.0).items():
        out.extend(
            decode_event(r.value, r.headers)
            for r in read_range(bootstrap, OffsetRange(topic, p, low, high), 30.0)
        )
    return out


def _dedup(t: Trade) -> object:
    from pipeline.feed.dedup import dedup_key

    return dedup_key(
        {
            "symbol": t.symbol,
            "sip_timestamp_ns": t.sip_timestamp_ns,
            "exchange": t.exchange,
            "trf_id": t.trf_id,
            "trade_id": t.trade_id,
        }
    )


def _exactly_once(source: list[Trade], events: list[object]) -> Counter[str]:
    """Assert Kafka holds each source print once; return the trades' sources (ws/rest)."""
    trades = [e for e in events if isinstance(e, Trade)]
    keys = Counter(_dedup(t) for t in trades)
    assert max(keys.values()) == 1, "duplicated"
    assert set(keys) == {_dedup(t) for t in source}, "lost or unexpected"
    return Counter(t.source for t in trades)


def _ticks(n: int, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC")) -> list[Trade]:
    return [
        Trade(
            symbols[k % len(symbols)],
            1_700_000_000_000_000_000 + k * 1_000_000,
            10.0,
            1 + k % 9,
            4 + k % 3,
            str(k),
            1,
            (),
            k,
        )
        for k in range(n)
    ]


async def _stop_when_done(streamer: Streamer, srv: ReplayServer, settle_s: float = 0.5) -> None:
    """Stop once the live session is over and every queued repair has finished."""
    await until(
        lambda: srv.timeline_finished.is_set() and not streamer._open_repairs,
        timeout_s=300.0,
        interval_s=0.05,
        what="the session's end and its repairs",
    )
    await asyncio.sleep(settle_s)  # deliberate: the last frames' delivery, not a condition
    streamer.request_stop("session over")


def test_disconnects_of_a_live_session_are_backfilled_from_rest_exactly_once(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.feed.rest import RestTrades
    from pipeline.retry import Backoff

    source = _ticks(6000)

    async def go() -> tuple[object, object]:
        srv = ReplayServer(source, api_key="k", rate=3000, shared_timeline=True,
                           drop_every_s=0.5, frame_events=20)  # fmt: skip
        async with srv, RestTrades(srv.rest_url, "k", limit=500) as rest:
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA", "BBB", "CCC"],
                rest=rest,
                backoff=Backoff(initial_s=0.05, max_s=0.2),
                close_after_s=0.2,
            )
            stopper = asyncio.create_task(_stop_when_done(streamer, srv))
            stats = await streamer.run()
            await stopper
            return stats, srv.stats

    stats, served = run(go())
    assert served.drops >= 3  # type: ignore[attr-defined]
    events = _all_events(kafka_broker, kafka_topic)
    sources = _exactly_once(source, events)
    assert sources["rest"] == stats.backfilled > 0  # type: ignore[attr-defined]
    gaps = [e for e in events if isinstance(e, Gap)]
    by_id: dict[str, list[str]] = {}
    for g in gaps:
        by_id.setdefault(g.gap_id, []).append(g.repair)
    assert by_id
    assert all(r == ["pending", "backfilled"] for r in by_id.values())
    done = [g for g in gaps if g.repair == "backfilled"]
    assert sum(g.backfilled for g in done) == stats.backfilled  # type: ignore[attr-defined]
    assert all(g.repair_from_ns is not None for g in done)
    assert all(g.repaired_ns for g in done)


def test_a_rest_outage_leaves_the_gap_recorded_as_failed_with_the_reason(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.feed.rest import RestTrades

    async def no_wait(_: float) -> None:
        return None

    t1 = '[{"ev":"T","sym":"AAA","i":"1","x":4,"p":1.5,"s":10,"t":1000,"q":1}]'
    t2 = '[{"ev":"T","sym":"AAA","i":"2","x":4,"p":1.5,"s":10,"t":5000,"q":5}]'
    recorded = RecordedSource(
        [[CONNECTED, AUTHED, t1], [CONNECTED, AUTHED, t2]], ends=["error", "normal"]
    )

    async def go() -> object:
        async with (
            ReplayServer([], api_key="k", rest_failures=100) as srv,
            RestTrades(srv.rest_url, "k", max_attempts=2, sleep=no_wait) as rest,
        ):
            return await Streamer(
                source=recorded,
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA"],
                exit_on_close=True,
                sleep=no_wait,
                rest=rest,
            ).run()

    stats = run(go())
    assert stats.repairs_failed == 1  # type: ignore[attr-defined]
    [pending, failed] = [e for e in _all_events(kafka_broker, kafka_topic) if isinstance(e, Gap)]
    assert (pending.repair, failed.repair, failed.gap_id) == ("pending", "failed", pending.gap_id)
    assert "gave up after 2 attempts" in failed.repair_detail


def test_a_slow_consumer_hangs_up_and_the_backfill_fills_what_it_missed(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.feed.rest import RestTrades
    from pipeline.retry import Backoff

    source = _ticks(3000)

    async def go() -> object:
        srv = ReplayServer(source, api_key="k", rate=6000, shared_timeline=True, frame_events=10)
        async with srv, RestTrades(srv.rest_url, "k") as rest:
            # A one-message Kafka client queue: each record waits for the previous ack, far
            # slower than the feed, so the frame queue fills and the policy hangs up.
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic, queue_max_messages=1),
                api_key="k",
                symbols=["*"],
                queue_size=4,
                slow_consumer="disconnect",
                rest=rest,
                backoff=Backoff(initial_s=0.05, max_s=0.1),
                close_after_s=0.1,
            )
            stopper = asyncio.create_task(_stop_when_done(streamer, srv))
            stats = await streamer.run()
            await stopper
            return stats

    stats = run(go(), timeout_s=120.0)
    assert stats.slow_consumer_drops >= 1  # type: ignore[attr-defined]
    assert stats.producer_blocked_s > 0  # type: ignore[attr-defined]
    sources = _exactly_once(source, _all_events(kafka_broker, kafka_topic))
    assert sources["rest"] > 0


def test_a_restart_resumes_from_the_kafka_tail_and_repairs_the_downtime(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.feed.rest import RestTrades
    from pipeline.streamer import recover_from_kafka

    source = _ticks(4000)

    async def go() -> tuple[object, object, object]:
        srv = ReplayServer(source, api_key="k", rate=4000, shared_timeline=True, frame_events=20)
        async with srv, RestTrades(srv.rest_url, "k") as rest:
            first = await Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA", "BBB", "CCC"],
                max_events=800,
            ).run()
            await asyncio.sleep(0.2)  # down while the session goes on
            recovery = await asyncio.to_thread(recover_from_kafka, kafka_broker, kafka_topic)
            second = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA", "BBB", "CCC"],
                rest=rest,
                recovery=recovery,
            )
            stopper = asyncio.create_task(_stop_when_done(second, srv))
            stats = await second.run()
            await stopper
            return first, stats, recovery

    _first, second, recovery = run(go())
    assert recovery.before_sip is not None  # type: ignore[attr-defined]
    assert set(recovery.last_by_symbol) == {"AAA", "BBB", "CCC"}  # type: ignore[attr-defined]
    events = _all_events(kafka_broker, kafka_topic)
    sources = _exactly_once(source, events)
    assert sources["rest"] == second.backfilled > 0  # type: ignore[attr-defined]
    restart_gaps = [e for e in events if isinstance(e, Gap) and "restart" in e.reason]
    assert sorted((g.subscription, g.repair) for g in restart_gaps) == [
        (f"T.{s}", r) for s in ("AAA", "BBB", "CCC") for r in ("backfilled", "pending")
    ]


def test_a_wildcard_restart_repairs_each_symbol_and_fails_only_the_illiquid_ones_window(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Issue 14.9: with ``*``, one symbol that last traded 7 h before the restart pushed the
    single restart window past --max-backfill-s (6 h): no symbol was backfilled."""
    from pipeline.feed.rest import RestTrades
    from pipeline.streamer import recover_from_kafka

    ticks = _ticks(12_000)  # 3 s of session: the second run resumes while it is live
    illiquid = Trade("ILL", ticks[0].sip_timestamp_ns - 7 * 3600 * 10**9, 3.0, 1, 4, "i1", 1, (), 0)
    source = [illiquid, *ticks]

    async def go() -> tuple[object, object]:
        srv = ReplayServer(source, api_key="k", rate=4000, shared_timeline=True, frame_events=20)
        async with srv, RestTrades(srv.rest_url, "k") as rest:
            await Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["*"],
                max_events=800,
            ).run()
            await asyncio.sleep(0.2)  # down while the session goes on
            recovery = await asyncio.to_thread(recover_from_kafka, kafka_broker, kafka_topic)
            second = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["*"],
                rest=rest,
                recovery=recovery,
            )
            stopper = asyncio.create_task(_stop_when_done(second, srv))
            stats = await second.run()
            await stopper
            return stats, recovery

    second, recovery = run(go())
    assert set(recovery.last_by_symbol) == {"AAA", "BBB", "CCC", "ILL"}  # type: ignore[attr-defined]
    events = _all_events(kafka_broker, kafka_topic)
    sources = _exactly_once(source, events)
    assert sources["rest"] == second.backfilled > 0  # type: ignore[attr-defined]
    restart_gaps = [e for e in events if isinstance(e, Gap) and "restart" in e.reason]
    assert sorted((g.subscription, g.repair) for g in restart_gaps) == [
        *((f"T.{s}", r) for s in ("AAA", "BBB", "CCC") for r in ("backfilled", "pending")),
        ("T.ILL", "failed"),
    ]
    [ill] = [g for g in restart_gaps if g.subscription == "T.ILL"]
    assert "exceeds --max-backfill-s 21600" in ill.repair_detail
    assert ill.last_before_ns == illiquid.sip_timestamp_ns
    assert second.repairs_failed == 1  # type: ignore[attr-defined]
    assert second.gap_records["failed"] == 1  # type: ignore[attr-defined]


def test_a_restart_gap_still_open_at_stop_fails_a_window_past_the_limit_and_repairs_the_rest(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Issue 14.9: a window without an end (the stream stopped before the feed resumed) was
    backfilled whatever its length: --max-backfill-s was not checked."""
    from pipeline.feed.rest import RestTrades
    from pipeline.streamer import Recovery

    ticks = _ticks(30, symbols=("AAA",))
    last = ticks[9].sip_timestamp_ns
    recovery = Recovery(
        before_sip=last, last_by_symbol={"AAA": last, "ILL": last - 7 * 3600 * 10**9}
    )
    recorded = RecordedSource([[CONNECTED, AUTHED]], ends=["normal"])

    async def go() -> object:
        async with ReplayServer(ticks, api_key="k") as srv, RestTrades(srv.rest_url, "k") as rest:
            return await Streamer(
                source=recorded,
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["*"],
                exit_on_close=True,
                rest=rest,
                recovery=recovery,
            ).run()

    stats = run(go())
    gaps = [e for e in _all_events(kafka_broker, kafka_topic) if isinstance(e, Gap)]
    assert sorted((g.subscription, g.repair, g.backfilled) for g in gaps) == [
        ("T.AAA", "backfilled", 30),
        ("T.AAA", "pending", 0),
        ("T.ILL", "failed", 0),
    ]
    [ill] = [g for g in gaps if g.subscription == "T.ILL"]
    assert "window of at least 25201 s exceeds --max-backfill-s 21600" in ill.repair_detail
    assert stats.repairs_failed == 1  # type: ignore[attr-defined]


def test_the_silence_watchdog_notices_a_stalled_session_through_a_rest_probe(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.clock import SystemClock
    from pipeline.feed.rest import RestTrades
    from pipeline.feed.watchdog import AlwaysOpen, SilenceWatchdog
    from pipeline.retry import Backoff

    source = _ticks(3000)

    async def go() -> object:
        srv = ReplayServer(source, api_key="k", rate=2000, shared_timeline=True,
                           stall_after_events=500, frame_events=20)  # fmt: skip
        clock = SystemClock()
        async with srv, RestTrades(srv.rest_url, "k") as rest:
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA", "BBB", "CCC"],
                clock=clock,
                rest=rest,
                watchdog=SilenceWatchdog(clock, AlwaysOpen(), min_silence_s=0.3, max_silence_s=5.0),
                progress_interval_s=0.1,
                backoff=Backoff(initial_s=0.05, max_s=0.1),
                close_after_s=0.2,
            )
            stopper = asyncio.create_task(_stop_when_done(streamer, srv))
            stats = await streamer.run()
            await stopper
            return stats

    stats = run(go())
    assert stats.watchdog_reconnects == 1  # type: ignore[attr-defined]
    events = _all_events(kafka_broker, kafka_topic)
    _exactly_once(source, events)
    assert any(isinstance(e, Gap) and "silence watchdog" in e.reason for e in events)


def test_quotes_and_minute_bars_stream_with_their_own_schemas(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.events import Aggregate, Quote

    t0 = 1_700_000_040_000_000_000  # a minute boundary
    trades = [Trade("AAA", t0 + 60_000_000_000 * m + k * 10**9, 10.0 + k, 10, 4, f"{m}-{k}")
              for m in range(3) for k in range(3)]  # fmt: skip
    quotes = [
        Quote("AAA", t0 + 60_000_000_000 * m + 1, 4, 9.9, 1, 7, 10.1, 2, None, (), m)
        for m in range(3)
    ]

    async def go() -> object:
        async with ReplayServer(trades, api_key="k", quotes=quotes, close_at_end=True) as srv:
            return await Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA"],
                kinds=["T", "Q", "AM"],
                exit_on_close=True,
            ).run()

    stats = run(go())
    assert (stats.trades, stats.quotes, stats.aggregates) == (9, 3, 3)  # type: ignore[attr-defined]
    assert stats.statuses["success"] == 3  # type: ignore[attr-defined]
    events = _all_events(kafka_broker, kafka_topic)
    assert sorted(e.sequence_number or 0 for e in events if isinstance(e, Quote)) == [0, 1, 2]
    bars = sorted((e for e in events if isinstance(e, Aggregate)), key=lambda b: b.start_ns)
    assert [(b.kind, b.open, b.close, b.volume) for b in bars] == [("AM", 10.0, 12.0, 30)] * 3
    assert all(q.receipt_ns > 0 for q in events if isinstance(q, Quote))


def test_a_key_revoked_mid_session_stops_with_auth_error_after_producing_what_came(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.errors import AuthError
    from pipeline.retry import Backoff

    async def go() -> None:
        srv = ReplayServer(_ticks(100), api_key="k", revoke_key_after=1, drop_after_events=40,
                           rate=2000, shared_timeline=True)  # fmt: skip
        async with srv:
            await Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["*"],
                backoff=Backoff(initial_s=0.01, max_s=0.02),
            ).run()

    with pytest.raises(AuthError, match="rejected the API key"):
        run(go())
    assert len([e for e in _all_events(kafka_broker, kafka_topic) if isinstance(e, Trade)]) == 40


def test_the_metrics_endpoint_serves_the_stream_metrics_on_loopback(
    kafka_broker: str, kafka_topic: str
) -> None:
    import httpx
    from prometheus_client import CollectorRegistry

    from pipeline.metrics import LatencyHistograms, StreamMetrics, serve_metrics

    source_trades, _ = load_trades(SAMPLE, tape=1, limit=500)
    latency = LatencyHistograms()
    registry = CollectorRegistry()

    async def go() -> Streamer:
        async with ReplayServer(source_trades, api_key="k", close_at_end=True) as srv:
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic, latency_sink=latency),
                api_key="k",
                symbols=["XXX"],
                exit_on_close=True,
                latency=latency,
            )
            await streamer.run()
            return streamer

    streamer = run(go())
    registry.register(StreamMetrics(streamer.metrics_snapshot, latency))
    server = serve_metrics(0, registry=registry)
    try:
        assert server.host == "127.0.0.1"
        text = httpx.get(server.url, timeout=5.0).text
    finally:
        server.close()
    assert 'microstructure_stream_events_in_total{type="trade"} 500.0' in text
    assert 'microstructure_stream_events_out_total{type="trade"} 500.0' in text
    assert "microstructure_stream_reconnects_total 0.0" in text
    assert 'microstructure_stream_blocked_seconds_total{stage="reader"}' in text
    assert "microstructure_stream_queue_depth_frames 0.0" in text
    assert 'microstructure_stream_receipt_to_ack_seconds_count{type="trade"} 500.0' in text
    assert 'microstructure_stream_sip_to_ack_seconds_bucket{le="+Inf",type="trade"} 500.0' in text
    assert 'microstructure_stream_sip_to_receipt_seconds_count{type="trade"} 500.0' in text


def test_a_2_mib_frame_of_trades_is_parsed_and_every_trade_delivered(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Issue 14.8: frames between the old 1 MiB parse limit and the socket's limit lost their
    trades (one oversize reject, no gap). A `T.*` burst at the open can be that large."""
    source_trades, _ = load_trades(SAMPLE, tape=1, limit=20_000)

    async def go() -> tuple[object, ReplayServer]:
        async with ReplayServer(
            source_trades, api_key="k", close_at_end=True, frame_events=20_000
        ) as srv:
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["XXX"],
                exit_on_close=True,
            )
            return await streamer.run(), srv

    stats, srv = run(go())
    assert srv.stats.trades_sent == 20_000
    assert srv.stats.frames_sent == 1  # the 20,000 trades went out as one frame
    assert (stats.trades, stats.delivered, stats.reject_total) == (20_000, 20_000, 0)  # type: ignore[attr-defined]
    delivered = [e for e in _events(kafka_broker, kafka_topic) if isinstance(e, Trade)]
    assert len({_key(t) for t in delivered}) == 20_000


def test_a_flood_of_large_frames_hits_the_byte_bound_and_the_policy_hangs_up_losing_nothing(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Issue 14.10: the frame queue was bounded by count only (10,000 frames of up to
    16 MiB). Here bursts of 400 prints in one SIP millisecond go out as ~40 KB frames and
    fill a 100 KB bound at 3 frames of 10,000."""
    from pipeline.feed.rest import RestTrades
    from pipeline.retry import Backoff

    t0 = 1_700_000_000_000_000_000
    source = [
        Trade(s, t0 + b * 100_000_000, 10.0, 1 + k % 9, 4 + k % 3, f"{b}-{k}", 1, (), k)
        for b in range(10)
        for k in range(400)
        for s in ("AAA", "BBB", "CCC")[k % 3 : k % 3 + 1]
    ]
    levels: list[float] = []

    async def sample(streamer: Streamer) -> None:
        while True:  # what the /metrics endpoint reads, at scrape time
            levels.append(streamer.metrics_snapshot().buffer_bytes["queue"])
            await asyncio.sleep(0.005)

    async def go() -> tuple[object, Streamer]:
        srv = ReplayServer(source, api_key="k", speed=1.0, shared_timeline=True, frame_events=400)
        async with srv, RestTrades(srv.rest_url, "k") as rest:
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                # One message in the Kafka client at a time: the parser is far slower than
                # the feed, so frames pile up in the queue.
                producer=EventProducer(kafka_broker, kafka_topic, queue_max_messages=1),
                api_key="k",
                symbols=["*"],
                queue_size=10_000,
                queue_bytes=100_000,
                slow_consumer="disconnect",
                rest=rest,
                backoff=Backoff(initial_s=0.05, max_s=0.1),
                close_after_s=0.1,
            )
            sampler = asyncio.create_task(sample(streamer))
            stopper = asyncio.create_task(_stop_when_done(streamer, srv))
            stats = await streamer.run()
            await stopper
            sampler.cancel()
            return stats, streamer

    stats, streamer = run(go(), timeout_s=120.0)
    assert stats.slow_consumer_drops >= 1  # type: ignore[attr-defined]
    assert stats.queue_high_water < 10  # type: ignore[attr-defined]
    assert 100_000 - 40_000 < stats.queue_bytes_high_water <= 100_000  # type: ignore[attr-defined]
    assert 0 < max(levels) <= 100_000
    assert streamer.metrics_snapshot().buffer_limit_bytes["queue"] == 100_000
    events = _all_events(kafka_broker, kafka_topic)
    hangups = [e for e in events if isinstance(e, Gap) and "slow consumer" in e.reason]
    assert hangups
    assert all("bytes bound" in g.reason for g in hangups)
    sources = _exactly_once(source, events)  # nothing lost, nothing twice
    assert sources["rest"] > 0


def test_a_repair_that_reaches_the_dedup_bound_stops_and_its_gap_fails_with_the_reason(
    kafka_broker: str, kafka_topic: str
) -> None:
    """Issue 14.10: the repair guards kept every print of a window (up to 6 h) in memory."""
    from pipeline.feed.dedup import KEY_BYTES
    from pipeline.feed.rest import RestTrades

    async def no_wait(_: float) -> None:
        return None

    missed = [
        Trade("AAA", 2_000_000_000 + k * 1_000_000, 1.5, 10, 4, f"m{k}", 1, (), k)
        for k in range(1000)
    ]
    t1 = '[{"ev":"T","sym":"AAA","i":"1","x":4,"p":1.5,"s":10,"t":1000,"q":1}]'
    t2 = '[{"ev":"T","sym":"AAA","i":"2","x":4,"p":1.5,"s":10,"t":5000,"q":5}]'
    recorded = RecordedSource(
        [[CONNECTED, AUTHED, t1], [CONNECTED, AUTHED, t2]], ends=["error", "normal"]
    )

    async def go() -> tuple[object, Streamer]:
        async with (
            ReplayServer(missed, api_key="k") as srv,
            RestTrades(srv.rest_url, "k", limit=100) as rest,
        ):
            streamer = Streamer(
                source=recorded,
                producer=EventProducer(kafka_broker, kafka_topic),
                api_key="k",
                symbols=["AAA"],
                exit_on_close=True,
                sleep=no_wait,
                rest=rest,
                dedup_bytes=250 * KEY_BYTES,
            )
            return await streamer.run(), streamer

    stats, streamer = run(go())
    assert stats.repairs_failed == 1  # type: ignore[attr-defined]
    [pending, failed] = [e for e in _all_events(kafka_broker, kafka_topic) if isinstance(e, Gap)]
    assert (pending.repair, failed.repair, failed.gap_id) == ("pending", "failed", pending.gap_id)
    # Three pages of 100 were taken (the third found 200 keys + the seeds under the bound);
    # the fourth found it spent.
    assert failed.backfilled == stats.backfilled == 300  # type: ignore[attr-defined]
    assert "dedup memory bound reached (--dedup-bytes 48,000" in failed.repair_detail
    assert streamer.metrics_snapshot().buffer_bytes["dedup"] > 0
