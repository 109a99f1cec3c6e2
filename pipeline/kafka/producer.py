"""Produce events to Kafka with no silent loss.

- ``enable.idempotence=true`` (librdkafka's default is false) with ``acks=all``: no
  duplicates from retries, per-partition order kept (integrations.md 2.2).
- Key = symbol (via :mod:`pipeline.kafka.codec`), so a symbol stays ordered in one partition.
- Delivery reports run only inside ``poll()``/``flush()``: :meth:`EventProducer.send`
  polls regularly, and polls on ``BufferError`` (full local queue) until there is room
  or a bound passes.
- ``flush()`` returning 0 is *not* success: a timed-out message leaves the queue and
  reaches the callback with ``_MSG_TIMED_OUT``. :meth:`EventProducer.flush` raises
  :class:`~pipeline.errors.DeliveryError` unless every report arrived with ``err is None``,
  and :meth:`EventProducer.send` raises as soon as a failed report has been seen.
- Every acknowledged message can feed a latency hook (receipt -> ack, and SIP -> ack
  for trades) for metrics; :class:`LatencyRecorder` is a simple in-memory one.

The streamer's hot path is :meth:`EventProducer.produce_frame`: the records of one
WebSocket frame share their headers (schema, receipt time) and one delivery callback
object, and a full local queue returns control to the caller (which waits without
blocking its event loop) instead of polling here. With :meth:`start_background_poll`
a thread serves delivery reports as they arrive, so an ack time is the time the broker's
answer was read, not the time the event loop next found a moment to poll: the receipt
-> ack figure measures Kafka, not our scheduling.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from confluent_kafka import KafkaError as _LibKafkaError
from confluent_kafka import KafkaException, Message, Producer

from pipeline.clock import Clock, SystemClock
from pipeline.errors import DeliveryError
from pipeline.events import Aggregate, AnyEvent, Gap, Quote, Reject, Trade
from pipeline.kafka import codec
from pipeline.kafka.broker import client_conf
from pipeline.metrics import sample_quantile

_POLL_EVERY = 64
# The interpreter's switch interval while a delivery-report thread runs (see
# EventProducer.start_background_poll): how long a report may wait for the event loop.
GIL_SWITCH_INTERVAL_S = 0.0005
_MAX_KEPT_ERRORS = 20


@dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged message, as seen by an ack hook.

    ``receipt_ns`` and ``ack_ns`` are UTC epoch ns from the producer's clock;
    ``sip_ns`` is the trade's SIP time (None for gaps and rejects).
    """

    kind: str
    sip_ns: int | None
    receipt_ns: int
    ack_ns: int
    partition: int
    offset: int

    @property
    def receipt_to_ack_ns(self) -> int:
        """Return ack time minus receipt time."""
        return self.ack_ns - self.receipt_ns


AckHook = Callable[[Ack], None]


class LatencySink(Protocol):
    """Receives the timing of every acknowledged message (metrics)."""

    def record_ack(
        self, kind: str, sip_ns: int | None, receipt_ns: int, ack_ns: int, count: int = 1
    ) -> None:
        """Record ``count`` acknowledged messages of ``kind`` with these times (UTC epoch ns)."""
        ...


class _FrameAck:
    """One delivery callback shared by the records of one frame (no per-message objects).

    SIP times are kept in produce order per key; a symbol's records go to one partition
    and are acknowledged in order, so the n-th report for a key is its n-th record.

    Only the keys and SIP times are kept (and only when acks are observed), not the
    records: a frame's record tuples and values would otherwise stay alive until its last
    ack, about a hundred tracked containers per frame that kept the cyclic garbage
    collector running (300-370 collections per 300,000 trades at full rate, against
    0-10 for a client that keeps nothing) and freed their values on the report thread.
    """

    __slots__ = ("_by_key", "_keys", "_producer", "_sips", "kind", "receipt_ns")

    def __init__(
        self,
        producer: EventProducer,
        kind: str,
        receipt_ns: int,
        records: Sequence[tuple[bytes, bytes, int | None]],
    ) -> None:
        self._producer = producer
        self.kind = kind
        self.receipt_ns = receipt_ns
        observed = producer._latency_sink is not None or producer._on_ack is not None
        self._keys: list[bytes] | None = [r[0] for r in records] if observed else None
        self._sips: list[int | None] | None = [r[2] for r in records] if observed else None
        self._by_key: dict[bytes, list[int | None]] | None = None

    def __call__(self, err: _LibKafkaError | None, msg: Message) -> None:
        p = self._producer
        if err is not None:
            p._record_failure(err, msg)
            return
        p.delivered += 1
        sink = p._latency_sink
        hook = p._on_ack
        if sink is None and hook is None:
            return
        by_key = self._by_key
        if by_key is None:
            by_key = {}
            keys, sips = self._keys or [], self._sips or []
            for key, sip in zip(reversed(keys), reversed(sips), strict=True):
                lst = by_key.get(key)
                if lst is None:
                    by_key[key] = [sip]
                else:
                    lst.append(sip)
            self._by_key = by_key
            self._keys = self._sips = None
        lst = by_key.get(msg.key() or b"")
        sip = lst.pop() if lst else None
        ack_ns = p._clock.now_ns()
        if sink is not None:
            sink.record_ack(self.kind, sip, self.receipt_ns, ack_ns)
        if hook is not None:
            partition = msg.partition()
            offset = msg.offset()
            hook(
                Ack(
                    kind=self.kind,
                    sip_ns=sip,
                    receipt_ns=self.receipt_ns,
                    ack_ns=ack_ns,
                    partition=-1 if partition is None else partition,
                    offset=-1 if offset is None else offset,
                )
            )


class PendingAcks:
    """One delivery callback shared by a batch of records: how many are still unacknowledged.

    :meth:`EventProducer.produce_batch` returns it. A failed report is recorded on the
    producer (:meth:`EventProducer.raise_if_failed` raises), and ``left`` never reaches 0
    for that batch, so a caller that commits input offsets only when ``left == 0``
    commits nothing past a lost record. ``hook`` sees every acknowledged message.
    """

    __slots__ = ("_hook", "_producer", "left")

    def __init__(
        self, producer: EventProducer, count: int, hook: Callable[[Message], None] | None
    ) -> None:
        self._producer = producer
        self._hook = hook
        self.left = count

    def __call__(self, err: _LibKafkaError | None, msg: Message) -> None:
        """Count one delivery report (librdkafka calls it inside ``poll``/``flush``)."""
        p = self._producer
        if err is not None:
            p._record_failure(err, msg)
            return
        p.delivered += 1
        self.left -= 1
        if self._hook is not None:
            self._hook(msg)


class LatencyRecorder:
    """Collect receipt -> ack latencies (ns) of acknowledged messages.

    Usable as an :data:`AckHook` (``on_ack=``) or, cheaper, as a :class:`LatencySink`
    (``latency_sink=``); benchmarks use it for exact percentiles.
    """

    def __init__(self) -> None:
        self.receipt_to_ack_ns: list[int] = []

    def __call__(self, ack: Ack) -> None:
        """Record one acknowledgement."""
        self.receipt_to_ack_ns.append(ack.ack_ns - ack.receipt_ns)

    def record_ack(
        self, kind: str, sip_ns: int | None, receipt_ns: int, ack_ns: int, count: int = 1
    ) -> None:
        """Record acknowledged messages (the :class:`LatencySink` protocol)."""
        self.receipt_to_ack_ns.extend([ack_ns - receipt_ns] * count)

    def percentile_ms(self, q: float) -> float | None:
        """Return the ``q``-th percentile (0-100) in ms, None if empty.

        The platform's one sample percentile, :func:`~pipeline.metrics.sample_quantile`.
        """
        if not self.receipt_to_ack_ns:
            return None
        return sample_quantile(self.receipt_to_ack_ns, q / 100.0) / 1e6


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """A message the broker did not acknowledge."""

    key: bytes | None
    partition: int | None
    error: str


def _event_meta(event: AnyEvent) -> tuple[str, int | None, int]:
    if isinstance(event, Trade):
        return "trade", event.sip_timestamp_ns, event.receipt_ns
    if isinstance(event, Quote):
        return "quote", event.sip_timestamp_ns, event.receipt_ns
    if isinstance(event, Aggregate):
        return "agg", event.end_ns, event.receipt_ns
    if isinstance(event, Gap):
        return "gap", None, event.detected_ns
    if isinstance(event, Reject):
        return "reject", None, event.receipt_ns
    raise TypeError(f"cannot produce {type(event).__name__}")


def producer_conf(
    bootstrap: str,
    extra_conf: Mapping[str, str] | None = None,
    *,
    message_timeout_ms: int = 60_000,
    linger_ms: float = 1.0,
    queue_max_messages: int = 200_000,
) -> dict[str, object]:
    """Return the librdkafka settings of the project's producer (idempotent, acks=all).

    :class:`EventProducer` is built from them, and so is the bare client ``bench stream``
    measures the streamer against, so that both produce under the same guarantees.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    extra_conf
        Extra librdkafka settings (TLS/SASL pass-through), applied before ours are
        checked: settings that would weaken delivery guarantees are refused.
    message_timeout_ms
        How long librdkafka keeps retrying a message before failing it.
    linger_ms
        Batching delay; small, because receipt -> ack latency is a product figure.
    queue_max_messages
        Local queue bound.

    Returns
    -------
    dict[str, object]
        The configuration for ``confluent_kafka.Producer``.

    Raises
    ------
    DeliveryError
        If ``extra_conf`` sets ``acks`` or ``enable.idempotence`` to a weaker value.
    """
    conf = client_conf(bootstrap, extra_conf)
    for key, required in (("acks", "all"), ("enable.idempotence", "true")):
        given = conf.get(key)
        if given is not None and str(given).lower() not in (
            required,
            "-1" if key == "acks" else required,
        ):
            raise DeliveryError(
                f"{key}={given!r} in extra Kafka settings would weaken delivery; "
                f"the producer requires {key}={required}"
            )
    conf.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": message_timeout_ms,
            "linger.ms": linger_ms,
            # Small produce requests must not wait for the previous segment's ACK
            # (Nagle + delayed ACK adds ~40 ms): latency is a product figure.
            "socket.nagle.disable": True,
            "queue.buffering.max.messages": queue_max_messages,
        }
    )
    return conf


class EventProducer:
    """An idempotent producer of :mod:`pipeline.events` to one topic.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic
        Destination topic.
    extra_conf
        Extra librdkafka settings (TLS/SASL pass-through), applied before ours are
        checked: settings that would weaken delivery guarantees are refused.
    message_timeout_ms
        How long librdkafka keeps retrying a message before failing it.
    linger_ms
        Batching delay; small, because receipt -> ack latency is a product figure.
    queue_max_messages
        Local queue bound; a full queue makes :meth:`send` poll (back-pressure).
    on_ack
        Called once per acknowledged message (inside ``poll``/``flush``).
    clock
        Source of ack times (tests inject a fake).
    latency_sink
        Receives the times of every acknowledged message (metrics histograms).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        extra_conf: Mapping[str, str] | None = None,
        message_timeout_ms: int = 60_000,
        linger_ms: float = 1.0,
        queue_max_messages: int = 200_000,
        on_ack: AckHook | None = None,
        clock: Clock | None = None,
        latency_sink: LatencySink | None = None,
    ) -> None:
        self._producer = Producer(
            producer_conf(
                bootstrap,
                extra_conf,
                message_timeout_ms=message_timeout_ms,
                linger_ms=linger_ms,
                queue_max_messages=queue_max_messages,
            )
        )
        self.topic = topic
        self.bootstrap = bootstrap
        self._on_ack = on_ack
        self._latency_sink = latency_sink
        self._clock: Clock = clock or SystemClock()
        self._block_timeout_s = message_timeout_ms / 1000.0
        self._since_poll = 0
        self._poller: threading.Thread | None = None
        self._poller_stop = threading.Event()
        self._saved_switch_s: float | None = None
        self.sent = 0
        self.delivered = 0
        self.failed = 0
        self.failures: list[DeliveryFailure] = []

    # -- delivery reports ------------------------------------------------------------------------
    def _on_delivery(
        self,
        kind: str,
        sip_ns: int | None,
        receipt_ns: int,
        err: _LibKafkaError | None,
        msg: Message,
    ) -> None:
        if err is not None:
            self._record_failure(err, msg)
            return
        self.delivered += 1
        if self._latency_sink is not None:
            self._latency_sink.record_ack(kind, sip_ns, receipt_ns, self._clock.now_ns())
        if self._on_ack is not None:
            partition = msg.partition()
            offset = msg.offset()
            self._on_ack(
                Ack(
                    kind=kind,
                    sip_ns=sip_ns,
                    receipt_ns=receipt_ns,
                    ack_ns=self._clock.now_ns(),
                    partition=-1 if partition is None else partition,
                    offset=-1 if offset is None else offset,
                )
            )

    def _record_failure(self, err: _LibKafkaError, msg: Message) -> None:
        self.failed += 1
        if len(self.failures) < _MAX_KEPT_ERRORS:
            self.failures.append(
                DeliveryFailure(msg.key(), msg.partition(), f"{err.name()}: {err.str()}")
            )

    def raise_if_failed(self) -> None:
        """Raise :class:`DeliveryError` if any delivery report has failed so far."""
        if self.failed:
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.failed:
            first = self.failures[0] if self.failures else None
            detail = (
                f"; first: key={first.key!r} partition={first.partition} {first.error}"
                if first
                else ""
            )
            raise DeliveryError(
                f"{self.failed} of {self.sent} messages to {self.topic!r} "
                f"were not acknowledged{detail}"
            )

    # -- producing -------------------------------------------------------------------------------
    def send(self, event: AnyEvent) -> None:
        """Encode ``event`` and hand it to librdkafka (asynchronous).

        Parameters
        ----------
        event
            A trade, quote, aggregate, gap or reject.

        Raises
        ------
        DeliveryError
            If an earlier message already failed, or the local queue stayed full for
            longer than the message timeout.
        """
        if self.failed:
            self._raise_if_failed()
        key, value, encoded_headers = codec.encode(event)
        kind, sip_ns, receipt_ns = _event_meta(event)
        callback = functools.partial(self._on_delivery, kind, sip_ns, receipt_ns)
        self._produce(key, value, encoded_headers, callback)

    def produce_record(
        self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]], kind: str
    ) -> None:
        """Hand one already-encoded record to librdkafka (asynchronous), as :meth:`send` does.

        For records derived from another topic (``signal.v1`` of ``live-signals``), whose
        headers differ per record.

        Parameters
        ----------
        key, value
            The encoded record.
        headers
            Its headers.
        kind
            Event kind for the latency hooks (receipt time is the produce time here).

        Raises
        ------
        DeliveryError
            If an earlier message already failed, or the local queue stayed full for
            longer than the message timeout.
        """
        if self.failed:
            self._raise_if_failed()
        callback = functools.partial(self._on_delivery, kind, None, self._clock.now_ns())
        self._produce(key, value, headers, callback)

    def _produce(
        self,
        key: bytes,
        value: bytes,
        encoded_headers: Sequence[tuple[str, bytes]],
        callback: Callable[[_LibKafkaError | None, Message], None],
    ) -> None:
        headers: list[tuple[str, str | bytes | None]] = [*encoded_headers]
        deadline: float | None = None
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, headers=headers, on_delivery=callback
                )
                break
            except BufferError:
                # Local queue full: serve delivery reports to make room (back-pressure);
                # with the background poller running, it serves them and we only wait.
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._block_timeout_s
                elif now >= deadline:
                    raise DeliveryError(
                        f"local producer queue for {self.topic!r} stayed full "
                        f"for {self._block_timeout_s} s "
                        f"({len(self._producer)} messages waiting)"
                    ) from None
                if self._poller is None:
                    self._producer.poll(0.05)
                else:
                    time.sleep(0.005)
                if self.failed:
                    self._raise_if_failed()
            except KafkaException as e:
                raise DeliveryError(f"cannot produce to {self.topic!r}: {e}") from e
        self.sent += 1
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            if self._poller is None:
                self._producer.poll(0)

    def produce_frame(
        self,
        kind: str,
        records: Sequence[tuple[bytes, bytes, int | None]],
        headers: Sequence[tuple[str, bytes]],
        receipt_ns: int,
        start: int = 0,
    ) -> int:
        """Hand ``records[start:]`` (one frame's events) to librdkafka; never blocks.

        Parameters
        ----------
        kind
            Event kind for the latency sink (``trade``, ``quote``, ``agg``, ...).
        records
            ``(key, value, sip_ns)`` per event, in frame order.
        headers
            Shared by every record (schema and receipt time).
        receipt_ns
            When the frame was read (for receipt -> ack).
        start
            First record to produce (a retry after a full queue resumes here).

        Returns
        -------
        int
            Index of the first record *not* produced: ``len(records)`` when all were
            queued, less when the local queue is full (wait for room and call again with
            ``start`` = the returned index).

        Raises
        ------
        DeliveryError
            If an earlier message already failed, or the client refused a record.
        """
        if self.failed:
            self._raise_if_failed()
        produce = self._producer.produce
        topic = self.topic
        callback = _FrameAck(self, kind, receipt_ns, records[start:] if start else records)
        hdrs: list[tuple[str, str | bytes | None]] = list(headers)
        k = start
        n = len(records)
        try:
            while k < n:
                key, value, _ = records[k]
                produce(topic, value, key, headers=hdrs, on_delivery=callback)
                k += 1
        except BufferError:
            pass  # local queue full: the caller waits for room (back-pressure)
        except KafkaException as e:
            raise DeliveryError(f"cannot produce to {self.topic!r}: {e}") from e
        finally:
            self.sent += k - start
        if self._poller is None:
            self._producer.poll(0)
        return k

    def produce_batch(
        self,
        records: Sequence[tuple[bytes, bytes, Sequence[tuple[str, bytes]]]],
        hook: Callable[[Message], None] | None = None,
    ) -> PendingAcks:
        """Hand already-encoded records, each with its own headers, to librdkafka.

        One shared callback per batch (no per-record object); while the local queue is
        full it serves delivery reports (back-pressure) up to the message timeout.

        Parameters
        ----------
        records
            ``(key, value, headers)`` per record, in the order to produce them.
        hook
            Called with each acknowledged message (inside ``poll``/``flush``).

        Returns
        -------
        PendingAcks
            Its ``left`` is the number of records not yet acknowledged.

        Raises
        ------
        DeliveryError
            If an earlier message already failed, or the local queue stayed full for
            longer than the message timeout.
        """
        if self.failed:
            self._raise_if_failed()
        pending = PendingAcks(self, len(records), hook)
        produce = self._producer.produce
        topic = self.topic
        deadline: float | None = None
        k = 0
        n = len(records)
        try:
            while k < n:
                key, value, headers = records[k]
                try:
                    # librdkafka takes any list of (name, value) pairs; ours hold bytes.
                    hdrs = cast("list[tuple[str, str | bytes | None]]", headers)
                    produce(topic, value, key, headers=hdrs, on_delivery=pending)
                except BufferError:
                    now = time.monotonic()
                    if deadline is None:
                        deadline = now + self._block_timeout_s
                    elif now >= deadline:
                        raise DeliveryError(
                            f"local producer queue for {self.topic!r} stayed full "
                            f"for {self._block_timeout_s} s ({len(self._producer)} waiting)"
                        ) from None
                    self._producer.poll(0.05)
                    if self.failed:
                        self._raise_if_failed()
                    continue
                k += 1
        except KafkaException as e:
            raise DeliveryError(f"cannot produce to {self.topic!r}: {e}") from e
        finally:
            self.sent += k
        return pending

    def warm_up(self, timeout_s: float = 10.0) -> bool:
        """Connect and fetch the topic's metadata now, so the first records do not pay for it.

        The idempotent producer also obtains its producer id on the first connection. A
        missing topic is not an error here (deliveries will fail and say so).

        Parameters
        ----------
        timeout_s
            Bound of the metadata request.

        Returns
        -------
        bool
            True if the topic's partitions all have a leader.
        """
        try:
            meta = self._producer.list_topics(self.topic, timeout=timeout_s)
        except KafkaException:
            return False
        tmeta = meta.topics.get(self.topic)
        return bool(
            tmeta is not None
            and tmeta.error is None
            and tmeta.partitions
            and all(p.leader >= 0 for p in tmeta.partitions.values())
        )

    # -- background delivery reports ------------------------------------------------------------
    def start_background_poll(
        self, interval_s: float = 0.05, switch_interval_s: float | None = GIL_SWITCH_INTERVAL_S
    ) -> None:
        """Serve delivery reports in a thread from now on (idempotent).

        The report thread needs the interpreter lock to run its callbacks, and a thread
        that wants the lock waits for the holder to give it up: by default up to 5 ms
        (``sys.getswitchinterval``), every time the event loop is parsing a frame. That
        wait is added to the acknowledgement time of every record the report carries, so
        while the thread runs the process hands the lock over every ``switch_interval_s``
        instead (restored by :meth:`stop_background_poll`). Measured with ``bench stream``'s
        fixed-rate phase alternating both values in one process: receipt -> ack p50 15-21 ms
        at 5 ms, 1.7-2.6 ms at 0.5 ms (a loaded machine).

        Parameters
        ----------
        interval_s
            Longest wait of one ``poll``; a report wakes it at once.
        switch_interval_s
            The interpreter's switch interval while the thread runs; None leaves it alone.
        """
        if self._poller is not None:
            return
        self._poller_stop.clear()
        if switch_interval_s is not None:
            self._saved_switch_s = sys.getswitchinterval()
            sys.setswitchinterval(min(switch_interval_s, self._saved_switch_s))

        def loop() -> None:
            poll = self._producer.poll
            stop = self._poller_stop
            while not stop.is_set():
                poll(interval_s)

        self._poller = threading.Thread(target=loop, name="kafka-delivery-reports", daemon=True)
        self._poller.start()

    def stop_background_poll(self) -> None:
        """Stop the delivery-report thread (reports are then served by poll/flush)."""
        if self._poller is None:
            return
        self._poller_stop.set()
        self._poller.join()
        self._poller = None
        if self._saved_switch_s is not None:
            sys.setswitchinterval(self._saved_switch_s)
            self._saved_switch_s = None

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports; return how many were served.

        Parameters
        ----------
        timeout_s
            Longest wait for a report.

        Returns
        -------
        int
            Number of events served (0 while the background thread serves them).
        """
        if self._poller is not None:
            return 0
        return int(self._producer.poll(timeout_s))

    @property
    def in_flight(self) -> int:
        """Return messages produced but not yet reported (queued or awaiting ack)."""
        return len(self._producer)

    def flush(self, timeout_s: float) -> int:
        """Wait for every delivery report; raise unless all succeeded.

        Parameters
        ----------
        timeout_s
            Bound of the wait.

        Returns
        -------
        int
            Number of messages delivered so far (cumulative).

        Raises
        ------
        DeliveryError
            If a message failed, or some are still unreported after ``timeout_s``.
        """
        # One thread serves reports at a time: the counters are plain ints.
        self.stop_background_poll()
        remaining = self._producer.flush(timeout_s)
        self._raise_if_failed()
        if remaining:
            raise DeliveryError(
                f"{remaining} of {self.sent} messages to {self.topic!r} "
                f"still unacknowledged after {timeout_s} s"
            )
        if self.delivered != self.sent:  # defensive: every sent message must have a report
            raise DeliveryError(
                f"{self.sent} messages sent to {self.topic!r} but {self.delivered} acknowledged"
            )
        return self.delivered

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush (raising on failure) and drop the client.

        Parameters
        ----------
        timeout_s
            Bound of the final flush.
        """
        self.flush(timeout_s)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            # Already failing: give in-flight messages a short chance, never mask the error.
            self.stop_background_poll()
            self._producer.flush(1.0)
