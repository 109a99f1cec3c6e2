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
