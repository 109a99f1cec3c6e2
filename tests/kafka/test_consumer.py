"""read_range on the real broker: exact ranges, non-contiguous offsets, idle partitions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline.errors import OffsetError
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from tests.support.wait import wait_until

pytestmark = pytest.mark.kafka


def _plain(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for v in values:
        p.produce(topic, v, partition=partition)
    assert p.flush(30) == 0


def _transactional(bootstrap: str) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    p.init_transactions(30)
    return p


def _offsets(bootstrap: str, rng: OffsetRange, timeout_s: float = 20.0) -> list[int]:
    return [r.offset for r in read_range(bootstrap, rng, timeout_s)]


def test_read_range_returns_exactly_the_half_open_range(
    kafka_broker: str, kafka_topic: str
) -> None:
    _plain(kafka_broker, kafka_topic, [b"v%d" % i for i in range(10)])
    records = read_range(kafka_broker, OffsetRange(kafka_topic, 0, 3, 7), 20.0)
    assert [(r.offset, r.value) for r in records] == [
        (3, b"v3"),
        (4, b"v4"),
        (5, b"v5"),
        (6, b"v6"),
    ]
    assert all(r.partition == 0 and r.topic == kafka_topic and r.timestamp_ms > 0 for r in records)
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 0, 10)) == list(range(10))
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 9, 10)) == [9]
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 5, 5)) == []


def test_reading_never_commits_offsets(kafka_broker: str, kafka_topic: str) -> None:
    from pipeline.kafka.consumer import committed_offset

    _plain(kafka_broker, kafka_topic, [b"a", b"b"])
    read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, 2), 20.0, group_id="never-commits")
    assert committed_offset(kafka_broker, kafka_topic, 0, group_id="never-commits") is None


def test_idle_partitions_are_empty_ranges(kafka_broker: str, kafka_topic: str) -> None:
    _plain(kafka_broker, kafka_topic, [b"only-p1"], partition=1)
    marks = watermarks(kafka_broker, kafka_topic, 10.0)
    assert marks == {0: (0, 0), 1: (0, 1), 2: (0, 0)}
    assert read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, 0), 5.0) == []
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 1, 0, 1)) == [0]


def test_ranges_over_transaction_markers_end_on_position_not_count(
    kafka_broker: str, kafka_topic: str
) -> None:
    p = _transactional(kafka_broker)
    for batch in ([b"a0", b"a1", b"a2"], [b"b0", b"b1", b"b2"]):
        p.begin_transaction()
        for v in batch:
            p.produce(kafka_topic, v, partition=0)
        p.commit_transaction(30)
    # Offsets: 0-2 records, 3 commit marker, 4-6 records, 7 commit marker.
    assert watermarks(kafka_broker, kafka_topic, 10.0)[0] == (0, 8)
    whole = read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, 8), 20.0)
    assert [(r.offset, r.value) for r in whole] == [
        (0, b"a0"), (1, b"a1"), (2, b"a2"), (4, b"b0"), (5, b"b1"), (6, b"b2"),
    ]  # fmt: skip
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 3, 4)) == []  # only a marker
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 2, 5)) == [2, 4]
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 5, 8)) == [5, 6]


def test_aborted_transactions_are_invisible(kafka_broker: str, kafka_topic: str) -> None:
    p = _transactional(kafka_broker)
    p.begin_transaction()
    p.produce(kafka_topic, b"aborted", partition=0)
    p.abort_transaction(30)
    p.begin_transaction()
    p.produce(kafka_topic, b"kept", partition=0)
    p.commit_transaction(30)
    _, high = watermarks(kafka_broker, kafka_topic, 10.0)[0]
    assert [
        r.value for r in read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, high), 20.0)
    ] == [b"kept"]


def test_an_open_transaction_is_beyond_the_readable_range(
    kafka_broker: str, kafka_topic: str
) -> None:
    p = _transactional(kafka_broker)
    p.begin_transaction()
    p.produce(kafka_topic, b"pending", partition=0)
    p.flush(30)
    # Under read_committed the high watermark is the last stable offset: the open record is past it.
    assert watermarks(kafka_broker, kafka_topic, 10.0)[0] == (0, 0)
    with pytest.raises(OffsetError, match="beyond the high watermark"):
        read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, 1), 2.0)
    p.commit_transaction(30)
    # The commit returns once the coordinator has logged it; the partition's markers (and
    # with them the last stable offset) follow asynchronously, so wait for them.
    wait_until(
        lambda: watermarks(kafka_broker, kafka_topic, 10.0)[0] == (0, 2),
        30.0,
        what="the committed transaction readable",
    )
    assert [r.value for r in read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, 2), 10.0)] == [
        b"pending"
    ]


def test_a_start_below_the_low_watermark_is_an_offset_error(
    kafka_broker: str, kafka_topic: str
) -> None:
    _plain(kafka_broker, kafka_topic, [b"x%d" % i for i in range(5)])
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    [fut] = admin.delete_records([TopicPartition(kafka_topic, 0, 3)]).values()
    fut.result(timeout=20)
    assert watermarks(kafka_broker, kafka_topic, 10.0)[0] == (3, 5)
    with pytest.raises(OffsetError, match="below the low watermark 3"):
        read_range(kafka_broker, OffsetRange(kafka_topic, 0, 1, 5), 10.0)
    assert _offsets(kafka_broker, OffsetRange(kafka_topic, 0, 3, 5)) == [3, 4]


def test_a_stop_beyond_the_high_watermark_is_an_offset_error(
    kafka_broker: str, kafka_topic: str
) -> None:
    _plain(kafka_broker, kafka_topic, [b"x"])
    with pytest.raises(OffsetError, match=r"beyond the high watermark .* 1"):
        read_range(kafka_broker, OffsetRange(kafka_topic, 0, 0, 2), 10.0)


def test_large_range_reads_in_batches(
    kafka_broker: str, make_kafka_topic: Callable[..., str]
) -> None:
    topic = make_kafka_topic(1)
    _plain(kafka_broker, topic, [b"%d" % i for i in range(5000)])
    assert _offsets(kafka_broker, OffsetRange(topic, 0, 0, 5000)) == list(range(5000))


def test_columns_hold_exactly_what_the_records_hold(kafka_broker: str, kafka_topic: str) -> None:
    from pipeline.kafka.consumer import read_range_columns

    p = Producer({"bootstrap.servers": kafka_broker, "enable.idempotence": True})
    for i in range(30):
        headers: Any = [("schema", b"trade.v1"), ("recv_ns", b"%d" % i)] if i % 3 else None
        p.produce(
            kafka_topic,
            b"v%d" % i,
            key=None if i == 8 else b"k%d" % i,
            headers=headers,
            partition=0,
        )
    assert p.flush(30) == 0
    rng = OffsetRange(kafka_topic, 0, 5, 30)

    cols = read_range_columns(kafka_broker, rng, 20.0)
    records = read_range(kafka_broker, rng, 20.0)

    assert (cols.topic, cols.partition, len(cols)) == (kafka_topic, 0, 25)
    assert cols.offsets.dtype == np.int64
    assert cols.timestamps_ms.dtype == np.int64
    assert cols.records() == records
    assert [r.offset for r in records] == list(range(5, 30))
    assert records[1].headers == ()  # offset 6 was produced without headers
    assert records[2].headers == (("schema", b"trade.v1"), ("recv_ns", b"7"))
    assert records[2].value == b"v7"
    assert records[2].key == b"k7"
    assert records[3].key is None
    assert all(r.timestamp_ms > 0 for r in records)


def test_a_range_ending_at_a_trailing_transaction_marker_ends_on_position(
    kafka_broker: str, kafka_topic: str
) -> None:
    from pipeline.kafka.consumer import read_range_columns

    p = _transactional(kafka_broker)
    p.begin_transaction()
    for v in (b"a", b"b", b"c"):
        p.produce(kafka_topic, v, partition=0)
    p.commit_transaction(30)
    # Offsets 0-2 records, 3 the commit marker: the range holds one offset more than records.
    cols = read_range_columns(kafka_broker, OffsetRange(kafka_topic, 0, 0, 4), 20.0)
    assert cols.offsets.tolist() == [0, 1, 2]
    assert list(cols.values) == [b"a", b"b", b"c"]


def test_an_empty_range_gives_empty_columns(kafka_broker: str, kafka_topic: str) -> None:
    from pipeline.kafka.consumer import read_range_columns

    cols = read_range_columns(kafka_broker, OffsetRange(kafka_topic, 1, 0, 0), 5.0)
    assert len(cols) == 0
    assert cols.records() == []
