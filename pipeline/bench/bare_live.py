"""The bare loop ``bench live`` measures one live-signals instance against: consume -> produce.

The simplest program moving the same records from the market-data topic to a signals
topic under the same guarantees, so that live-signals' events/s can be given as a ratio
to it, measured on the same machine in the same minutes (absolute figures on a shared
machine drift by 1.5x from run to run; the ratio does not).

What it does, as the service does: a confluent-kafka consumer in a fresh group with the
service's settings (read_committed, no auto-commit, from the earliest offset); per
batch of up to ``batch_size`` records, ``orjson.loads`` of each value and one output
record per input record: key = symbol, a ``signal.v1``-shaped value (the trade's
symbol, time, price and size; every statistic null), the same six headers (schema,
input topic, partition and offset, kernel version, parameters); one idempotent
``acks=all`` producer built from the project's settings
(:func:`~pipeline.kafka.producer.producer_conf`); after each batch a flush, which must
acknowledge every record, then a synchronous commit of the next offsets. Like the
service, it runs with the cyclic garbage collector on a 10 s clock instead of allocation
counts (``gc.freeze`` at the start).

What it leaves out (the service's work it is compared against): the statistics (no
state, no kernels), validation of the trade (a malformed value raises here; the service
writes a ``reject.v1`` record), the New York date, session bounds and restart point,
the checkpoint in the commit metadata, restore on assignment, rebalance callbacks.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pipeline.errors import DeliveryError
from pipeline.kafka import codec
from pipeline.kafka.broker import client_conf
from pipeline.kafka.producer import producer_conf

_NULL_STATS = dict.fromkeys(
    (
        "seq", "log_return", "lee_mykland_stat", "lm_xi", "lm_n", "lm_n_rule", "jump_detected",
        "bns_stat", "garch_sigma2", "standardized_return", "conditional_duration",
        "acd_surprise", "trade_intensity_zscore", "trading_signal", "in_order", "garch_params",
        "acd_params",
    )
)  # fmt: skip


@dataclass
class BareLiveResult:
    """What one run of the bare loop moved, and when (UTC epoch ns)."""

    consumed: int = 0
    delivered: int = 0
    first_record_ns: int = 0
    last_acked_ns: int = 0


def consume_produce(
    bootstrap: str,
    input_topic: str,
    output_topic: str,
    group_id: str,
    *,
    batch_size: int = 2000,
    idle_exit_s: float = 2.0,
    linger_ms: float = 1.0,
) -> BareLiveResult:
    """Move every record of ``input_topic`` to ``output_topic`` until none came for a while.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    input_topic, output_topic
        Where to read and where to produce.
    group_id
        A fresh consumer group (it starts at the earliest offset).
    batch_size
        Most records per consume / flush / commit.
    idle_exit_s
        Stop after this long without a record, once records came (joining the group
        takes a few seconds; before the first record the bound is 120 s).
    linger_ms
        Producer linger (the service's default: 1).

    Returns
    -------
    BareLiveResult
        Counts and the first-consume / last-acknowledgement times.

    Raises
    ------
    DeliveryError
        If a record was not acknowledged.
    """
    res = BareLiveResult()
    conf = client_conf(bootstrap)
    conf.update(
        {
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer = Consumer(conf)
    producer = Producer(producer_conf(bootstrap, linger_ms=linger_ms))
    params = orjson.dumps({"bench": "bare"})
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            failed.append(str(err))
        else:
            res.delivered += 1

    consumer.subscribe([input_topic])
    last = last_gc = time.monotonic()
    gc.disable()
    gc.freeze()
    try:
        while time.monotonic() - last < (idle_exit_s if res.consumed else 120.0):
            msgs = consumer.consume(batch_size, 0.2)
            if not msgs:
                continue
            last = time.monotonic()
            if not res.first_record_ns:
                res.first_record_ns = time.time_ns()
            ends: dict[int, int] = {}
            for m in msgs:
                if m.error() is not None:
                    continue
                p, o = m.partition() or 0, m.offset() or 0
                t = orjson.loads(m.value() or b"")
                value = orjson.dumps(
                    {
                        "symbol": t["symbol"], "date": None, "timestamp_ns": t["sip_timestamp_ns"],
                        "price": t["price"], "size": t["size"], **_NULL_STATS, "provisional": True,
                    }
                )  # fmt: skip
                headers = codec.signal_headers(
                    codec.SCHEMA_SIGNAL, input_topic, p, o, "bare", params
                )
                while True:
                    try:
                        producer.produce(
                            output_topic, value, t["symbol"].encode(), headers=[*headers],
                            on_delivery=on_delivery,
                        )  # fmt: skip
                        break
                    except BufferError:
                        producer.poll(0.05)
                ends[p] = o + 1
                res.consumed += 1
            if producer.flush(60.0) or failed:
                raise DeliveryError(f"bare loop: {len(failed)} failed deliveries: {failed[:3]}")
            res.last_acked_ns = time.time_ns()
            consumer.commit(
                offsets=[TopicPartition(input_topic, p, o) for p, o in ends.items()],
                asynchronous=False,
            )
            if last - last_gc >= 10.0:
                gc.collect()
                last_gc = last
    finally:
        consumer.close()
        gc.unfreeze()
        gc.enable()
    return res
