"""Read explicit offset ranges; the warehouse, not Kafka, owns consumer offsets.

Pitfalls handled here (integrations.md 2.3, 2.4):

- ``group.id`` is required even for ``assign()``-only use; offsets are never committed
  by :func:`read_range` (``enable.auto.commit=false``, ``enable.auto.offset.store=false``),
  and the start is always passed in ``assign()`` because disabling auto-commit does not
  stop librdkafka from starting at a *committed* offset.
- A start below the low watermark (retention) fails loudly: checked up front, and
  ``auto.offset.reset=error`` makes the client fail instead of silently jumping.
- Offsets are not contiguous (transaction markers, aborted records, compaction): a
  range ends when the consumer's position reaches ``stop`` (a record at ``stop - 1``,
  a record at or past ``stop``, or partition EOF at or past ``stop``), never on a count.
- Every wait has a deadline: with an open transaction the high watermark exceeds the
  last stable offset and "read until high" would hang under ``read_committed``.

:func:`commit_advisory` commits a stop offset to a consumer group for lag dashboards
only, after the warehouse transaction committed; nothing reads it back.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as _LibKafkaError

from pipeline.errors import KafkaError, OffsetError
from pipeline.kafka.broker import client_conf
from pipeline.kafka.offsets import KafkaRecord, OffsetRange

DEFAULT_GROUP_ID = "microstructure-warehouse"
_BATCH = 1000

# Errors that mean "the offsets asked for are not there", as opposed to a broken client.
_OFFSET_CODES = {
    _LibKafkaError._AUTO_OFFSET_RESET,
    _LibKafkaError.OFFSET_OUT_OF_RANGE,
}


def _consumer(
    bootstrap: str, group_id: str, extra_conf: Mapping[str, str] | None, **conf: object
) -> Consumer:
    c = client_conf(bootstrap, extra_conf)
    c.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "error",
            # librdkafka's default, stated: aborted transactional records are never read.
            "isolation.level": "read_committed",
        }
    )
    c.update(conf)
    return Consumer(c)


def watermarks(
    bootstrap: str,
    topic: str,
    timeout_s: float,
    extra_conf: Mapping[str, str] | None = None,
) -> dict[int, tuple[int, int]]:
    """Return ``{partition: (low, high)}`` of ``topic``; ``high`` is the last offset + 1.

    Under ``read_committed`` (used here) ``high`` is the last *stable* offset: records of
    a still-open transaction are beyond it, so a stop offset planned from it never waits
    on a transaction.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic
        Topic name.
    timeout_s
        Bound of the whole call.
    extra_conf
        Extra librdkafka settings (TLS/SASL).

    Returns
    -------
    dict[int, tuple[int, int]]
        Low and high watermark per partition.

    Raises
    ------
    KafkaError
        If the topic does not exist or the cluster does not answer in time.
    """
    deadline = time.monotonic() + timeout_s
    consumer = _consumer(bootstrap, DEFAULT_GROUP_ID, extra_conf)
    try:
        try:
            meta = consumer.list_topics(topic, timeout=timeout_s)
        except KafkaException as e:
            raise KafkaError(
                f"Kafka at {bootstrap} did not describe topic {topic!r} within {timeout_s} s: {e}"
            ) from e
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            reason = tmeta.error if tmeta is not None else "absent"
            raise KafkaError(f"topic {topic!r} is not available on {bootstrap}: {reason}")
        out: dict[int, tuple[int, int]] = {}
        for p in sorted(tmeta.partitions):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=remaining, cached=False
                )
            except KafkaException as e:
                raise KafkaError(
                    f"watermarks of {topic}:{p} on {bootstrap} not available: {e}"
                ) from e
            out[p] = (int(low), int(high))
        return out
    finally:
        consumer.close()


def read_range(
    bootstrap: str,
    offset_range: OffsetRange,
    timeout_s: float,
    extra_conf: Mapping[str, str] | None = None,
    *,
    group_id: str = DEFAULT_GROUP_ID,
) -> list[KafkaRecord]:
    """Read every record of ``[start, stop)`` of one partition, in offset order.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    offset_range
        Topic, partition and half-open range.
    timeout_s
        Deadline of the whole read.
    extra_conf
        Extra librdkafka settings (TLS/SASL).
    group_id
        Required by librdkafka; never committed here.

    Returns
    -------
    list[KafkaRecord]
        The records; possibly fewer than ``stop - start`` (offsets are not contiguous).

    Raises
    ------
    OffsetError
        If ``start`` is below the low watermark, ``stop`` is beyond the high watermark,
        or the range is not complete before the deadline.
    KafkaError
        On any other consumer error.
    """
    rng = offset_range
    if rng.start == rng.stop:
        return []
    deadline = time.monotonic() + timeout_s
    consumer = _consumer(bootstrap, group_id, extra_conf, **{"enable.partition.eof": True})
    tp = TopicPartition(rng.topic, rng.partition)
    try:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
        except KafkaException as e:
            raise KafkaError(
                f"watermarks of {rng.topic}:{rng.partition} on {bootstrap} not available: {e}"
            ) from e
        if rng.start < low:
            raise OffsetError(
                f"{rng} starts below the low watermark {low}: those records have expired"
            )
        if rng.stop > high:
            raise OffsetError(f"{rng} ends beyond the high watermark (last stable offset) {high}")
        consumer.assign([TopicPartition(rng.topic, rng.partition, rng.start)])
        records: list[KafkaRecord] = []
        done = False
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = records[-1].offset if records else None
                raise OffsetError(
                    f"{rng} not complete after {timeout_s} s: "
                    f"{len(records)} records read, last offset {got}"
                )
            for msg in consumer.consume(num_messages=_BATCH, timeout=min(0.5, remaining)):
                err = msg.error()
                offset = msg.offset()
                if err is not None:
                    if err.code() == _LibKafkaError._PARTITION_EOF:
                        # EOF comes at the fetch position, past any trailing txn marker.
                        if offset is not None and offset >= rng.stop:
                            done = True
                        continue
                    if err.code() in _OFFSET_CODES:
                        raise OffsetError(f"{rng} cannot be read: {err.str()}")
                    raise KafkaError(f"consumer error reading {rng}: {err.str()}")
                if offset is None or offset >= rng.stop:
                    done = True
                    break
                ts_type, ts_ms = msg.timestamp()
                headers: list[tuple[str, bytes | None]] = []
                for k, v in msg.headers() or ():
                    headers.append((k, v.encode() if isinstance(v, str) else v))
                records.append(
                    KafkaRecord(
                        topic=rng.topic,
                        partition=rng.partition,
                        offset=offset,
                        key=msg.key(),
                        value=msg.value(),
                        headers=tuple(headers),
                        timestamp_ms=int(ts_ms) if ts_type else -1,
                    )
                )
                if offset >= rng.stop - 1:
                    done = True
                    break
            if not done:
                position = consumer.position([tp])[0].offset
                done = position >= rng.stop
        return records
    finally:
        consumer.close()


def commit_advisory(
    bootstrap: str,
    topic: str,
    partition: int,
    stop_offset: int,
    *,
    group_id: str = DEFAULT_GROUP_ID,
    timeout_s: float = 10.0,
    extra_conf: Mapping[str, str] | None = None,
) -> None:
    """Commit ``stop_offset`` of ``topic:partition`` to ``group_id`` for lag dashboards.

    Call only after the warehouse transaction that stored ``[.., stop_offset)``
    committed; nothing in the pipeline reads this offset back.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic, partition
        The topic-partition.
    stop_offset
        The next offset to read (exclusive end of the stored range).
    group_id
        Consumer group shown by lag tools.
    timeout_s
        Bound of the commit.
    extra_conf
        Extra librdkafka settings.

    Raises
    ------
    KafkaError
        If the commit fails.
    """
    consumer = _consumer(
        bootstrap, group_id, extra_conf, **{"socket.timeout.ms": int(timeout_s * 1000)}
    )
    try:
        try:
            result = consumer.commit(
                offsets=[TopicPartition(topic, partition, stop_offset)], asynchronous=False
            )
        except KafkaException as e:
            raise KafkaError(
                f"advisory commit of {topic}:{partition}@{stop_offset} for {group_id!r} failed: {e}"
            ) from e
        for tp in result or ():
            if tp.error is not None:
                raise KafkaError(
                    f"advisory commit of {topic}:{partition}@{stop_offset} failed: {tp.error}"
                )
    finally:
        consumer.close()


def committed_offset(
    bootstrap: str,
    topic: str,
    partition: int,
    *,
    group_id: str = DEFAULT_GROUP_ID,
    timeout_s: float = 10.0,
    extra_conf: Mapping[str, str] | None = None,
) -> int | None:
    """Return the offset committed for ``group_id`` (dashboards and tests), None if none.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic, partition
        The topic-partition.
    group_id
        Consumer group.
    timeout_s
        Bound of the request.
    extra_conf
        Extra librdkafka settings.

    Returns
    -------
    int | None
        The committed offset, or None when the group has none for this partition.
    """
    consumer = _consumer(bootstrap, group_id, extra_conf)
    try:
        try:
            [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=timeout_s)
        except KafkaException as e:
            raise KafkaError(
                f"committed offset of {topic}:{partition} for {group_id!r} not available: {e}"
            ) from e
        return tp.offset if tp.offset >= 0 else None
    finally:
        consumer.close()
