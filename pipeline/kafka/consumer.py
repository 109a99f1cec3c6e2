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
- Speed: :func:`read_range_columns` (the loader's path) returns columns, not an object
  per record, consumes in batches and keeps librdkafka prefetching (see
  :func:`range_fetch_conf`); :func:`read_range` wraps it for callers that want records.

:func:`commit_advisory` commits a stop offset to a consumer group for lag dashboards
only, after the warehouse transaction committed; nothing reads it back.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Mapping
from typing import cast

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _LibKafkaError

from pipeline.errors import KafkaError, OffsetError
from pipeline.kafka.broker import client_conf
from pipeline.kafka.offsets import KafkaRecord, OffsetRange
from pipeline.microbatch import Headers, PackedHeaders, RecordColumns, paused_gc
from pipeline.retry import Backoff

DEFAULT_GROUP_ID = "microstructure-warehouse"
# Messages per consume() call: a batch's fields are taken out right after the call, while
# its messages are still in cache (headers() of 200,000 cold messages took 5x longer).
CONSUME_BATCH = 2_000

# Errors that mean "the offsets asked for are not there", as opposed to a broken client.
_OFFSET_CODES = {
    _LibKafkaError._AUTO_OFFSET_RESET,
    _LibKafkaError.OFFSET_OUT_OF_RANGE,
}
# Errors a partition answers with while its leader is being elected (just after the topic
# is created, or a broker restarted): librdkafka raises them from get_watermark_offsets
# with retriable() False, yet waiting is exactly what fixes them.
_LEADERSHIP_CODES = {
    _LibKafkaError.NOT_LEADER_FOR_PARTITION,
    _LibKafkaError.LEADER_NOT_AVAILABLE,
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
        return {
            p: _watermarks_of(consumer, TopicPartition(topic, p), deadline, bootstrap)
            for p in sorted(tmeta.partitions)
        }
    finally:
        consumer.close()


def _watermarks_of(
    consumer: Consumer, tp: TopicPartition, deadline: float, bootstrap: str
) -> tuple[int, int]:
    """Return ``(low, high)`` of one partition, retrying retriable errors until ``deadline``.

    Just after a topic is created or a broker restarts, a partition answers "not leader"
    until its leader is elected: a moment, not a failure.
    """
    backoff = Backoff(initial_s=0.02, max_s=0.5)
    attempt = 0
    while True:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=remaining, cached=False)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            retriable = isinstance(err, _LibKafkaError) and (
                err.retriable() or err.code() in _LEADERSHIP_CODES
            )
            attempt += 1
            delay_s = backoff.delay_s(attempt)
            if not retriable or time.monotonic() + delay_s >= deadline:
                raise KafkaError(
                    f"watermarks of {tp.topic}:{tp.partition} on {bootstrap} not available: {e}"
                ) from e
            time.sleep(delay_s)
            continue
        return int(low), int(high)


def read_range_columns(
    bootstrap: str,
    offset_range: OffsetRange,
    timeout_s: float,
    extra_conf: Mapping[str, str] | None = None,
    *,
    group_id: str = DEFAULT_GROUP_ID,
) -> RecordColumns:
    """Read every record of ``[start, stop)`` of one partition, column by column.

    The loader's hot path: messages come in batches of :data:`CONSUME_BATCH` and each
    batch's fields are taken out at once (while its messages are still in cache), with
    no object per record. Every message's ``error()`` is checked; a batch holding an
    error (partition EOF, an offset error) is handled message by message.

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
    RecordColumns
        The records in offset order; possibly fewer than ``stop - start`` (offsets are
        not contiguous).

    Raises
    ------
    OffsetError
        If ``start`` is below the low watermark, ``stop`` is beyond the high watermark,
        or the range is not complete before the deadline.
    KafkaError
        On any other consumer error.
    """
    rng = offset_range
    cols = _Columns()
    if rng.start == rng.stop:
        return cols.finish(rng)
    deadline = time.monotonic() + timeout_s
    consumer = _consumer(bootstrap, group_id, extra_conf, **range_fetch_conf())
    tp = TopicPartition(rng.topic, rng.partition)
    # The read makes ~5 small objects per record; cyclic GC passes over them cost more
    # than the read itself (3x on 200,000 records) and find nothing to free.
    with paused_gc():
        try:
            low, high = _watermarks_of(consumer, tp, deadline, bootstrap)
            if rng.start < low:
                raise OffsetError(
                    f"{rng} starts below the low watermark {low}: those records have expired"
                )
            if rng.stop > high:
                raise OffsetError(
                    f"{rng} ends beyond the high watermark (last stable offset) {high}"
                )
            consumer.assign([TopicPartition(rng.topic, rng.partition, rng.start)])
            done = False
            while not done:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = cols.offsets[-1] if cols.offsets else None
                    raise OffsetError(
                        f"{rng} not complete after {timeout_s} s: "
                        f"{len(cols.offsets)} records read, last offset {got}"
                    )
                # consume() returns when it holds num_messages or at its timeout: never ask
                # for more than the range can still hold, or the last call of a range
                # ending at the high watermark waits out the whole timeout.
                following = cols.offsets[-1] + 1 if cols.offsets else rng.start
                want = max(1, min(CONSUME_BATCH, rng.stop - following))
                msgs = consumer.consume(num_messages=want, timeout=min(0.1, remaining))
                if any(map(Message.error, msgs)):
                    done = _add_one_by_one(cols, msgs, rng)
                elif msgs:
                    done = cols.add(msgs, rng.stop)
                if not done:
                    done = consumer.position([tp])[0].offset >= rng.stop
            return cols.finish(rng)
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

    :func:`read_range_columns` with one :class:`KafkaRecord` per record (same checks,
    same errors).

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
    return read_range_columns(
        bootstrap, offset_range, timeout_s, extra_conf, group_id=group_id
    ).records()


def range_fetch_conf() -> dict[str, object]:
    """Return the fetch settings of a range read.

    librdkafka stops prefetching when its queue holds ``queued.min.messages``, then waits
    ``fetch.queue.backoff.ms`` (1 s by default) before fetching again: with the defaults a
    200,000-record read stalled for a second at a time. A queue of 20,000 (a few MB)
    keeps messages warm in cache, and fetching resumes 10 ms after the queue drains.
    (The naive loader ``bench load`` compares the loader with reads with them too.)

    Returns
    -------
    dict[str, object]
        librdkafka consumer settings.
    """
    return {
        "enable.partition.eof": True,
        "queued.min.messages": 20_000,
        "fetch.queue.backoff.ms": 10,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
    }


class _Columns:
    """Fields of the messages read so far, one list each."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.headers = PackedHeaders()
        self.timestamps_ms: list[int] = []

    def add(self, msgs: list[Message], stop: int) -> bool:
        """Add a batch of error-free messages below ``stop``; return True once the range ends."""
        # A message without an error always has an offset.
        offsets = cast(list[int], list(map(Message.offset, msgs)))
        # Offsets ascend within a partition: everything from the first at or past stop
        # is beyond the range (and means the range is complete).
        cut = bisect.bisect_left(offsets, stop)
        past = cut < len(offsets)
        if past:
            msgs, offsets = msgs[:cut], offsets[:cut]
        self.offsets += offsets
        self.keys += map(Message.key, msgs)
        self.values += map(Message.value, msgs)
        self.headers.extend(cast(list[Headers], list(map(Message.headers, msgs))))
        # Plain ints, not the client's (type, ms) tuples: nothing left for the cyclic GC to
        # visit. TIMESTAMP_NOT_AVAILABLE is type 0: -1, as in KafkaRecord.
        self.timestamps_ms += [ms if kind else -1 for kind, ms in map(Message.timestamp, msgs)]
        return past or (bool(offsets) and offsets[-1] >= stop - 1)

    def finish(self, rng: OffsetRange) -> RecordColumns:
        n = len(self.offsets)
        return RecordColumns(
            topic=rng.topic,
            partition=rng.partition,
            offsets=np.asarray(self.offsets, dtype=np.int64).reshape(n),
            keys=self.keys,
            values=self.values,
            headers=self.headers,
            timestamps_ms=np.asarray(self.timestamps_ms, dtype=np.int64).reshape(n),
        )


def _add_one_by_one(cols: _Columns, msgs: list[Message], rng: OffsetRange) -> bool:
    """Add a batch that holds an error message; return True once the range ends."""
    for msg in msgs:
        err = msg.error()
        offset = msg.offset()
        if err is not None:
            if err.code() == _LibKafkaError._PARTITION_EOF:
                # EOF comes at the fetch position, past any trailing txn marker.
                if offset is not None and offset >= rng.stop:
                    return True
                continue
            if err.code() in _OFFSET_CODES:
                raise OffsetError(f"{rng} cannot be read: {err.str()}")
            raise KafkaError(f"consumer error reading {rng}: {err.str()}")
        if offset is None or offset >= rng.stop:
            return True
        if cols.add([msg], rng.stop):
            return True
    return False


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
