"""The naive loader ``bench load`` measures the loader against (issue 15): Kafka -> DuckDB.

The simplest program doing the loader's job, so that the loader's rows/s can be given as
a ratio to it, measured on the same machine in the same minutes on the same topic
contents (absolute figures on a shared machine drift by 1.5x; the ratio does not).

What it does, like the loader: per partition (one worker process each at a time, as the
bench runs the loader), ``assign`` at the range's start and ``consume`` in batches of at
most ``max_records`` offsets; per batch, ``orjson.loads`` each value, one pyarrow table
of the ``trade.v1`` fields plus partition and offset, and one DuckDB transaction that
inserts the rows and the batch's offsets row, on a connection opened per batch through
the warehouse's file lock (several processes share one file, as the loader's do). It is
given the two settings the project itself uses, so the ratio measures the code and not
them: the consumer's fetch settings (:func:`~pipeline.kafka.consumer.range_fetch_conf`)
and the cyclic garbage collector paused in the worker
(:func:`~pipeline.microbatch.paused_gc`).

What it leaves out (the loader's work it is compared against): the derived columns
(``trade_date``, ``in_regular_hours``, ``ns_from_open``) and the rest of the shaping
(every value is taken to be a ``trade.v1`` trade: no rejects, gaps, quotes or bars, no
schema header read), the ingest gates, dedup within the batch and against stored rows,
the ledger's checks (expected start, topic id, one loader per range), the quality rows,
read_committed and the offset checks against the watermarks (it assumes contiguous
offsets: a topic without transactions, as the bench's).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as _LibKafkaError

from pipeline.kafka.broker import client_conf
from pipeline.kafka.consumer import range_fetch_conf
from pipeline.microbatch import paused_gc
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse

GROUP_ID = "bench-naive-load"
# The trade.v1 value (pipeline.kafka.codec), then where the record was.
SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("sip_timestamp_ns", pa.int64()),
        ("price", pa.float64()),
        ("size", pa.int64()),
        ("exchange", pa.int32()),
        ("trade_id", pa.string()),
        ("tape", pa.int32()),
        ("conditions", pa.list_(pa.int32())),
        ("sequence_number", pa.int64()),
        ("trf_id", pa.int32()),
        ("trf_timestamp_ns", pa.int64()),
        ("receipt_ns", pa.int64()),
        ("source", pa.string()),
    ]
)
CREATE = (
    "CREATE TABLE trades (symbol VARCHAR, sip_timestamp_ns BIGINT, price DOUBLE, size BIGINT, "
    "exchange INTEGER, trade_id VARCHAR, tape INTEGER, conditions INTEGER[], "
    "sequence_number BIGINT, trf_id INTEGER, trf_timestamp_ns BIGINT, receipt_ns BIGINT, "
    "source VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT)",
    "CREATE TABLE offsets (topic VARCHAR, kafka_partition INTEGER, start_offset BIGINT, "
    "stop_offset BIGINT, n_rows BIGINT, PRIMARY KEY (topic, kafka_partition, start_offset))",
)


def create(path: Path) -> None:
    """Create the naive loader's two tables in a new DuckDB file.

    Parameters
    ----------
    path
        The file (must not exist yet).
    """
    with DuckDBWarehouse(path).connect() as conn:
        for sql in CREATE:
            conn.execute(sql)


def load_partition(
    bootstrap: str,
    topic: str,
    partition: int,
    start: int,
    stop: int,
    path: Path,
    max_records: int,
    timeout_s: float = 120.0,
) -> int:
    """Load offsets ``[start, stop)`` of one partition into ``path``, one transaction per batch.

    Parameters
    ----------
    bootstrap, topic, partition
        Where to read.
    start, stop
        The half-open offset range (contiguous: no transaction markers).
    path
        A DuckDB file made by :func:`create`.
    max_records
        Largest batch (offsets per transaction).
    timeout_s
        Bound of each batch's read.

    Returns
    -------
    int
        Rows committed.

    Raises
    ------
    KafkaException
        On a consumer error, or a batch not read within ``timeout_s``.
    """
    conf = client_conf(bootstrap) | {"group.id": GROUP_ID, "enable.auto.commit": False}
    consumer = Consumer(conf | range_fetch_conf())
    warehouse = DuckDBWarehouse(path, lock_timeout_s=timeout_s, load_threads=None)
    rows = 0
    with paused_gc():
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            pos = start
            while pos < stop:
                end = min(stop, pos + max_records)
                values, offsets = _consume(consumer, end - pos, timeout_s)
                table = pa.Table.from_pylist([orjson.loads(v) for v in values], schema=SCHEMA)
                table = table.append_column(
                    "kafka_partition", pa.array([partition] * len(values), pa.int32())
                ).append_column("kafka_offset", pa.array(offsets, pa.int64()))
                with warehouse.connect() as conn:
                    conn.execute("BEGIN TRANSACTION")
                    conn.register("batch", table)
                    conn.execute("INSERT INTO trades SELECT * FROM batch")
                    conn.execute(
                        "INSERT INTO offsets VALUES (?, ?, ?, ?, ?)",
                        [topic, partition, pos, end, len(values)],
                    )
                    conn.execute("COMMIT")
                rows += len(values)
                pos = end
        finally:
            consumer.close()
    return rows


def _consume(consumer: Consumer, n: int, timeout_s: float) -> tuple[list[bytes], list[int]]:
    """Return the values and offsets of the next ``n`` records."""
    values: list[bytes] = []
    offsets: list[int] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < n:
        if time.monotonic() > deadline:
            raise KafkaException(f"{len(values)} of {n} records read in {timeout_s} s")
        for msg in consumer.consume(num_messages=min(2_000, n - len(values)), timeout=0.1):
            err = msg.error()
            if err is not None:
                if err.code() == _LibKafkaError._PARTITION_EOF:
                    continue  # the fetch settings ask for EOF events (the loader's end test)
                raise KafkaException(err)
            values.append(msg.value() or b"null")
            offsets.append(msg.offset() or 0)
    return values, offsets
