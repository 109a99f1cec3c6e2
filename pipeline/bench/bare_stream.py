"""The bare client ``bench stream`` measures the streamer against (issue 15): WebSocket -> Kafka.

The simplest program doing the streamer's job, so that the streamer's events/s can be
given as a ratio to it, measured on the same machine in the same minutes (absolute
figures on a shared machine drift by 1.5x from run to run; the ratio does not).

What it does, exactly as the streamer does: connect with ``websockets`` (no compression),
authenticate and subscribe with the project's messages; per frame, stamp the receipt
time, ``orjson.loads`` the frame, and per ``T`` event build the same ``trade.v1`` value
(same fields, same order, same JSON), key = symbol, the same two headers shared by the
frame's records; one idempotent ``acks=all`` producer built from the project's settings
(:func:`~pipeline.kafka.producer.producer_conf`); delivery reports served after each
frame; at the end a flush, and it fails unless every record was acknowledged.

What it leaves out (the streamer's work it is compared against): validation of each
event (a malformed one would raise here, or be written as is; the streamer writes it as a
``reject.v1`` record), statuses and other event kinds (ignored), the bounded frame queue
between reader and parser (the socket waits while a frame is produced), gap detection
and repair, reconnects, the dedup guards, the ring of recent frames, the watchdog,
latency histograms and counters. When the client's queue is full it waits on the
event loop's thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from pipeline.errors import DeliveryError, FeedError
from pipeline.feed import messages as m
from pipeline.kafka import codec
from pipeline.kafka.producer import producer_conf


@dataclass
class BareResult:
    """What one run of the bare client delivered, and when."""

    frames: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    first_receipt_ns: int = 0
    last_ack_ns: int = 0

    @property
    def events_per_s(self) -> float | None:
        """Return events acknowledged / (last ack - first receipt), as the streamer's figure."""
        span_ns = self.last_ack_ns - self.first_receipt_ns
        return self.delivered / (span_ns / 1e9) if span_ns > 0 and self.delivered else None


def trade_value(ev: dict[str, Any], receipt_ns: int) -> dict[str, Any]:
    """Return the ``trade.v1`` value of one wire ``T`` event (no validation).

    Parameters
    ----------
    ev
        The decoded event (``sym``, ``t`` in ms, ``p``, ``s``, ``x``, ``i``, optional
        ``z``, ``c``, ``q``, ``trfi``, ``trft``).
    receipt_ns
        When its frame was read.

    Returns
    -------
    dict
        The value, keyed and ordered as :func:`pipeline.feed.parse.parse_frame_fields`.
    """
    trft = ev.get("trft")
    return {
        "symbol": ev["sym"],
        "sip_timestamp_ns": ev["t"] * m.NS_PER_MS,
        "price": float(ev["p"]),
        "size": ev["s"],
        "exchange": ev["x"],
        "trade_id": ev["i"],
        "tape": ev.get("z"),
        "conditions": ev.get("c", []),
        "sequence_number": ev.get("q"),
        "trf_id": ev.get("trfi"),
        "trf_timestamp_ns": None if trft is None else trft * m.NS_PER_MS,
        "receipt_ns": receipt_ns,
        "source": "ws",
    }


async def stream(
    url: str,
    api_key: str,
    bootstrap: str,
    topic: str,
    *,
    linger_ms: float = 1.0,
    queue_max_messages: int = 500_000,
    message_timeout_ms: int = 120_000,
    flush_timeout_s: float = 120.0,
) -> BareResult:
    """Stream every trade of ``T.*`` from ``url`` into ``topic`` until the server closes.

    Parameters
    ----------
    url
        A replay server's ``ws://`` URL.
    api_key
        Its key.
    bootstrap, topic
        Where to produce.
    linger_ms, queue_max_messages, message_timeout_ms
        Producer settings (``bench stream`` gives the streamer's producer the same).
    flush_timeout_s
        Bound of the final flush.

    Returns
    -------
    BareResult
        Counts and the first receipt / last ack times (UTC epoch ns).

    Raises
    ------
    FeedError
        If authentication fails.
    DeliveryError
        If a record was not acknowledged.
    """
    res = BareResult()
    producer = Producer(
        producer_conf(
            bootstrap,
            message_timeout_ms=message_timeout_ms,
            linger_ms=linger_ms,
            queue_max_messages=queue_max_messages,
        )
    )

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            res.failed += 1
            return
        res.delivered += 1
        res.last_ack_ns = time.time_ns()

    async with connect(url, compression=None, max_size=16 * 2**20) as ws:
        await ws.recv()  # status "connected"
        await ws.send(orjson.dumps(m.auth_action(api_key)).decode())
        reply = orjson.loads(await ws.recv(decode=False))
        if not any(ev.get("status") == m.STATUS_AUTH_SUCCESS for ev in reply):
            raise FeedError(f"authentication failed: {reply}")
        await ws.send(orjson.dumps(m.subscribe_action(m.trade_channels(["*"]))).decode())
        produce = producer.produce
        try:
            while True:
                frame = await ws.recv(decode=False)
                receipt_ns = time.time_ns()
                if not res.first_receipt_ns:
                    res.first_receipt_ns = receipt_ns
                res.frames += 1
                hdrs: list[tuple[str, str | bytes | None]] = [
                    *codec.headers(codec.SCHEMA_TRADE, receipt_ns)
                ]
                for ev in orjson.loads(frame):
                    if ev.get("ev") != m.EV_TRADE:
                        continue
                    key, value = codec.encode_fields(trade_value(ev, receipt_ns))
                    while True:
                        try:
                            produce(topic, value, key, headers=hdrs, on_delivery=on_delivery)
                            break
                        except BufferError:
                            producer.poll(0.05)  # queue full: serve reports to make room
                    res.sent += 1
                producer.poll(0)
        except ConnectionClosedOK:
            pass  # the replay server closes normally after its last frame
    remaining = producer.flush(flush_timeout_s)
    if remaining or res.failed or res.delivered != res.sent:
        raise DeliveryError(
            f"bare client: {res.sent} sent, {res.delivered} acknowledged, {res.failed} failed, "
            f"{remaining} unreported"
        )
    return res
