"""``bench stream`` prints its figures and its baseline is honest (tiny runs; never timed)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from pipeline.bench.bare_stream import stream
from pipeline.bench.stream import API_KEY, synthetic_trades
from pipeline.cli import main
from pipeline.feed.replay_server import ReplayServer
from pipeline.feed.source import WebSocketSource
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import EventProducer
from pipeline.streamer import Streamer
from tests.support.kafka import TopicFactory

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(240)
def test_bench_stream_prints_the_figures_and_the_ratio_to_the_bare_client(
    kafka_broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--rate", "2000", "--seconds", "1", "--warmup-s", "0", "--events", "5000"]
    code = main(["bench", "stream", "--json", "--bootstrap", kafka_broker, "--symbols", "5", *args])
    # Exit code 0 also means every run, the bare client's too, left 5,000 records in its topic.
    assert code == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out) == [
        "max_events_per_s",
        "p50_ms_at_10k",
        "p99_ms_at_10k",
        "max_ms_at_10k",
        "baseline_events_per_s",
        "ratio",
    ]
    assert all(isinstance(v, float) and v > 0 for v in out.values())


def _records(bootstrap: str, topic: str) -> dict[int, list[tuple[bytes | None, bytes, dict]]]:
    """Per partition, in offset order: key, schema header, value without its receipt time."""
    out: dict[int, list[tuple[bytes | None, bytes, dict]]] = {}
    for p, (low, high) in watermarks(bootstrap, topic, 10.0).items():
        rows = []
        for r in read_range(bootstrap, OffsetRange(topic, p, low, high), 30.0):
            headers = dict(r.headers or [])
            assert r.value is not None
            value = orjson.loads(r.value)
            assert headers["recv_ns"] == str(value.pop("receipt_ns")).encode()
            rows.append((r.key, headers["schema"], value))
        out[p] = rows
    return out


@pytest.mark.timeout(120)
def test_the_bare_client_writes_exactly_the_records_the_streamer_writes(
    kafka_broker: str, make_kafka_topic: TopicFactory
) -> None:
    bare_topic, streamer_topic = make_kafka_topic(4), make_kafka_topic(4)
    trades = synthetic_trades(600, 7)

    async def both() -> None:
        async with ReplayServer(trades, api_key=API_KEY, frame_events=50, close_at_end=True) as srv:
            res = await stream(srv.url, API_KEY, kafka_broker, bare_topic)
            assert res.delivered == len(trades)
            streamer = Streamer(
                source=WebSocketSource(srv.url),
                producer=EventProducer(kafka_broker, streamer_topic),
                api_key=API_KEY,
                symbols=["*"],
                exit_on_close=True,
            )
            assert (await streamer.run()).delivered == len(trades)

    asyncio.run(asyncio.wait_for(both(), 90.0))
    bare, streamed = _records(kafka_broker, bare_topic), _records(kafka_broker, streamer_topic)
    # Same keys, schema and values (receipt time aside), in the same partitions and order.
    assert sum(map(len, bare.values())) == len(trades)
    assert bare == streamed
