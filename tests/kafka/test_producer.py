"""EventProducer against the real broker: every delivery acknowledged or an error."""

from __future__ import annotations

import pytest

from pipeline.errors import DeliveryError
from pipeline.events import Gap, Reject, Trade
from pipeline.kafka.codec import decode
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import Ack, EventProducer, LatencyRecorder

pytestmark = pytest.mark.kafka


def _trades(n: int, symbols: tuple[str, ...] = ("AAA", "BBB", "CCC", "DDD")) -> list[Trade]:
    return [
        Trade(
            symbol=symbols[k % len(symbols)],
            sip_timestamp_ns=1_514_903_400_000_000_000 + k * 1_000_000,
            price=100.0 + k / 100,
            size=100 + k,
            exchange=4,
            trade_id=str(k),
            tape=1,
            conditions=(14, 37) if k % 3 == 0 else (),
            sequence_number=k + 1,
            receipt_ns=1_514_903_400_000_000_000 + k,
            source="file",
        )
        for k in range(n)
    ]


def _read_all(bootstrap: str, topic: str) -> dict[int, list[object]]:
    out: dict[int, list[object]] = {}
    for p, (low, high) in watermarks(bootstrap, topic, 10.0).items():
        records = read_range(bootstrap, OffsetRange(topic, p, low, high), 20.0)
        out[p] = [decode(r.value, r.headers) for r in records]
    return out


def test_every_sent_event_is_acknowledged_and_reads_back_equal(
    kafka_broker: str, kafka_topic: str
) -> None:
    trades = _trades(500)
    gap = Gap("T.AAA", 1, 2, "reconnect", 3)
    reject = Reject("parse", "malformed_json: x", b"\xff{not json", 5)
    latencies = LatencyRecorder()
    producer = EventProducer(kafka_broker, kafka_topic, on_ack=latencies)
    for t in trades:
        producer.send(t)
    producer.send(gap)
    producer.send(reject)
    assert producer.flush(30.0) == 502
    assert (producer.sent, producer.delivered, producer.failed, producer.in_flight) == (
        502,
        502,
        0,
        0,
    )
    assert len(latencies.receipt_to_ack_ns) == 502
    by_partition = _read_all(kafka_broker, kafka_topic)
    events = [e for es in by_partition.values() for e in es]
    assert (
        sorted((e for e in events if isinstance(e, Trade)), key=lambda t: t.sequence_number or 0)
        == trades
    )
    assert gap in events
    assert [e for e in events if isinstance(e, Reject)] == [
        Reject("parse", "malformed_json: x", b"\xff{not json")
    ]


def test_a_symbol_stays_in_one_partition_in_send_order(kafka_broker: str, kafka_topic: str) -> None:
    with EventProducer(kafka_broker, kafka_topic) as producer:
        for t in _trades(200):
            producer.send(t)
    seen: dict[str, int] = {}
    for p, events in _read_all(kafka_broker, kafka_topic).items():
        trades = [e for e in events if isinstance(e, Trade)]
        for t in trades:
            assert seen.setdefault(t.symbol, p) == p
        for sym in {t.symbol for t in trades}:
            seqs = [t.sequence_number or 0 for t in trades if t.symbol == sym]
            assert seqs == sorted(seqs)


def test_ack_hook_sees_partition_offset_and_trade_sip_time(
    kafka_broker: str, kafka_topic: str
) -> None:
    acks: list[Ack] = []
    producer = EventProducer(kafka_broker, kafka_topic, on_ack=acks.append)
    trade = _trades(1)[0]
    producer.send(trade)
    producer.flush(30.0)
    [ack] = acks
    assert (ack.kind, ack.sip_ns, ack.receipt_ns, ack.offset) == (
        "trade",
        trade.sip_timestamp_ns,
        trade.receipt_ns,
        0,
    )
    assert ack.receipt_to_ack_ns > 0


def test_frame_acks_carry_the_sip_time_of_their_own_record_across_partitions(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.kafka.codec import encode, headers

    acks: list[Ack] = []
    producer = EventProducer(kafka_broker, kafka_topic, on_ack=acks.append)
    producer.start_background_poll()
    trades = _trades(400, symbols=("AAA", "BBB", "CCC", "DDD", "EEE", "FFF"))
    for frame in (trades[:200], trades[200:]):
        records = [(*encode(t)[:2], t.sip_timestamp_ns) for t in frame]
        assert producer.produce_frame("trade", records, headers(b"trade.v1", 5), 5) == 200
    producer.flush(30.0)
    stored = {
        (p, low + k): e
        for p, (low, _) in watermarks(kafka_broker, kafka_topic, 10.0).items()
        for k, e in enumerate(_read_all(kafka_broker, kafka_topic)[p])
    }
    assert len(acks) == len(stored) == 400
    # Acks of one frame arrive per partition, interleaved: each must name its own record.
    for ack in acks:
        event = stored[(ack.partition, ack.offset)]
        assert isinstance(event, Trade)
        assert ack.sip_ns == event.sip_timestamp_ns


def test_delivery_to_a_missing_topic_raises_delivery_error_on_flush_and_next_send(
    kafka_broker: str,
) -> None:
    producer = EventProducer(kafka_broker, "no-such-topic-for-delivery", message_timeout_ms=1500)
    producer.send(_trades(1)[0])
    with pytest.raises(DeliveryError, match=r"1 of 1 messages .* not acknowledged"):
        producer.flush(15.0)
    with pytest.raises(DeliveryError):
        producer.send(_trades(1)[0])
    assert producer.failures[0].key == b"AAA"


def test_extra_settings_cannot_weaken_acks(kafka_broker: str) -> None:
    with pytest.raises(DeliveryError, match="acks"):
        EventProducer(kafka_broker, "x", extra_conf={"acks": "1"})


def test_latency_recorder_percentiles() -> None:
    rec = LatencyRecorder()
    assert rec.percentile_ms(50) is None
    for ms in range(1, 101):
        rec(Ack("trade", None, 0, ms * 1_000_000, 0, ms))
    assert rec.percentile_ms(50) == pytest.approx(50.0, abs=1)
    assert rec.percentile_ms(100) == 100.0


def test_report_thread_shortens_the_interpreter_switch_interval_while_it_runs(
    kafka_broker: str, kafka_topic: str
) -> None:
    import sys

    from pipeline.kafka.producer import GIL_SWITCH_INTERVAL_S

    before = sys.getswitchinterval()
    producer = EventProducer(kafka_broker, kafka_topic)
    producer.start_background_poll()
    try:
        # A report waits at most this long for the event loop to hand over the lock.
        assert sys.getswitchinterval() == pytest.approx(min(GIL_SWITCH_INTERVAL_S, before))
        producer.send(_trades(1)[0])
        producer.flush(30.0)
    finally:
        producer.stop_background_poll()
    assert sys.getswitchinterval() == before
