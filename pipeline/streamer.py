"""Feed -> Kafka: reader -> bounded queue -> parser -> idempotent producer, with gap repair.

Stages (integrations.md 1.5, 1.6; architecture.md section 7):

- **Reader** (:class:`~pipeline.feed.supervisor.FeedSupervisor`): stamps each raw frame
  with its receipt time and enqueues it; it never parses, so a slow parser or broker
  cannot stall the socket read loop.
- **Parser** (this module's hot loop): :func:`~pipeline.feed.parse.parse_frame_fields`
  turns a frame into plain field dicts, :func:`~pipeline.kafka.codec.encode_fields`
  into records, and :meth:`~pipeline.kafka.producer.EventProducer.produce_frame` hands a
  whole frame to librdkafka with one shared header list and one delivery callback.
  Rejects (bad JSON, unknown types, bad fields, oversize frames) go to the same topic as
  ``reject.v1`` records with their raw frame; the stream goes on.
- **Producer**: acks=all, idempotent, key = symbol; a background thread serves delivery
  reports as they arrive (latency histograms SIP -> receipt -> ack).
- **Repair worker**: backfills closed gap windows from REST v3 through the same producer.

**Slow consumer.** The frame queue is bounded in frames and in bytes
(:mod:`pipeline.feed.buffers`). When either bound is reached the reader waits
(``block``, the default) and the time is counted; with ``max_blocked_s`` (or policy
``disconnect``) the streamer also hangs up, so the provider stops buffering for us and
the outage becomes a gap that the backfill repairs. A received frame is never dropped:
a policy chooses when to stop *receiving*, not what to lose. A broker outage fills the
Kafka client's bounded queue; the parser then waits without blocking the event loop, the
frame queue fills, and the policy above applies; with the idempotent producer nothing
queued is lost or duplicated when the broker returns.

**Memory.** Every buffer is bounded in bytes, and its level is a metric
(``buffer_bytes{buffer}``): the frame queue (``queue_bytes``, the policy above), the ring
of recent frames (``ring_bytes``: it forgets its oldest), and the dedup guards' keys
(``dedup_bytes``: a repair that finds them at the bound stops, and its gap is recorded
``failed`` with the reason, instead of producing prints it can no longer tell apart).

**Gaps** (:mod:`pipeline.feed.gaps`). Every outage becomes one gap per subscription; a
restart (the last record in Kafka tells where the previous run stopped) one gap per
symbol, each with its own window. A trade gap with a REST source is recorded as
``pending`` when it closes, backfilled, then recorded again with the same ``gap_id`` and
its outcome (``backfilled``/``failed``); one whose window exceeds ``max_backfill_s`` is
recorded ``failed`` at once, with the reason, and counted in ``repairs_failed``. A
:class:`~pipeline.feed.dedup.Guard` per repaired symbol, seeded from the recent frames
and the Kafka tail, keeps prints that arrive both live and from REST to one record.

**Stop.** Stopping (``max_events``, idle, a normal close, a signal) stops *reading*,
drains the queue, lets queued repairs finish (bounded), and flushes the producer, which
raises :class:`~pipeline.errors.DeliveryError` unless every record was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pipeline.clock import Clock, SystemClock
from pipeline.errors import ConfigError, FeedError, ParseError
from pipeline.events import FeedStatus, Gap, Reject, Repair
from pipeline.feed import messages as m
from pipeline.feed.buffers import FrameQueue, FrameRing
from pipeline.feed.dedup import Guard, KeyBudget
from pipeline.feed.gaps import ClosedGap, GapBook
from pipeline.feed.parse import Fields, parse_frame_fields, reason_code
from pipeline.feed.rest import BackfillError, RestTrades
from pipeline.feed.source import FrameSource
from pipeline.feed.supervisor import Disconnect, FeedSupervisor, Sleep
from pipeline.feed.watchdog import SilenceWatchdog, Verdict
from pipeline.kafka import codec
from pipeline.kafka.producer import EventProducer
from pipeline.metrics import LatencyHistograms, StreamSnapshot
from pipeline.retry import Backoff

logger = logging.getLogger(__name__)

SlowConsumerPolicy = Literal["block", "disconnect"]
_QueueItem = tuple[str | bytes, int] | Disconnect | None
_KIND_NAMES = {"T": "trade", "Q": "quote", "A": "agg_second", "AM": "agg_minute"}
_SIP_FIELD = {"T": "sip_timestamp_ns", "Q": "sip_timestamp_ns", "A": "end_ns", "AM": "end_ns"}
NS_PER_S = 1_000_000_000
_OPEN_END = 2**63 - 1  # a repair window without an end: up to the provider's latest trade


@dataclass
class StreamStats:
    """Counters of one streamer run (its summary, and the metrics endpoint)."""

    frames: int = 0
    frame_bytes: int = 0
    trades: int = 0
    quotes: int = 0
    aggregates: int = 0
    statuses: Counter[str] = field(default_factory=lambda: Counter[str]())
    rejects: Counter[str] = field(default_factory=lambda: Counter[str]())
    gaps: int = 0
    gap_records: Counter[str] = field(default_factory=lambda: Counter[str]())
    gap_seconds: float = 0.0
    disconnects: int = 0
    backfilled: int = 0
    duplicates_skipped: int = 0
    repairs_failed: int = 0
    sent: int = 0
    delivered: int = 0
    queue_depth: int = 0
    queue_high_water: int = 0
    queue_bytes_high_water: int = 0
    blocked_s: float = 0.0
    producer_blocked_s: float = 0.0
    slow_consumer_drops: int = 0
    watchdog_reconnects: int = 0
    elapsed_s: float = 0.0
    stop_reason: str = ""

    @property
    def reject_total(self) -> int:
        """Return the number of rejects over all reasons."""
        return sum(self.rejects.values())


@dataclass
class Recovery:
    """What the Kafka tail says about the previous run (see :func:`recover_from_kafka`)."""

    before_sip: int | None = None
    last_by_symbol: dict[str, int] = field(default_factory=lambda: {})
    trades: list[Fields] = field(default_factory=lambda: list[Fields]())
    pending: list[Gap] = field(default_factory=lambda: list[Gap]())
    records_read: int = 0


@dataclass
class _Job:
    gap: ClosedGap
    guards: list[Guard]


class _DedupFull(Exception):
    """The guards' keys reached ``dedup_bytes``: a repair cannot go on without duplicates."""


def recover_from_kafka(
    bootstrap: str,
    topic: str,
    *,
    records_per_partition: int = 100_000,
    late_margin_ns: int = 1_000_000_000,
    extra_conf: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
) -> Recovery:
    """Read the tail of ``topic`` to resume where a previous run stopped (kill -9 included).

    Per partition the last ``records_per_partition`` records are read. A symbol lives in
    one partition and its acknowledged records are a prefix of what the dead run
    produced (idempotent, ordered producer), so the tail holds its latest delivered
    trade. One pass finds the latest SIP time per symbol, keeps the trades near it (the
    dedup guard's seeds for the restart window) and the ``pending`` gap records that have
    no outcome record (repairs the dead run did not finish); only then a second pass
    keeps the trades inside those windows.

    Parameters
    ----------
    bootstrap
        Bootstrap servers.
    topic
        The market-data topic.
    records_per_partition
        Tail length read per partition.
    late_margin_ns
        Start of the restart window before the latest SIP time (as the streamer's).
    extra_conf
        Extra librdkafka settings.
    timeout_s
        Deadline per partition read.

    Returns
    -------
    Recovery
        Latest SIP time overall and per symbol, guard seeds, unfinished repairs.

    Raises
    ------
    KafkaError
        If the topic cannot be read.
    """
    from pipeline.kafka.consumer import read_range, watermarks
    from pipeline.kafka.offsets import OffsetRange

    rec = Recovery()
    pending: dict[str, Gap] = {}
    finished: set[str] = set()
    # Per symbol, the trades within late_margin_ns of its latest one (the restart
    # window's guard seeds); a symbol's records are in produce order in its partition.
    recent: dict[str, deque[Fields]] = {}
    ranges = [
        OffsetRange(topic, p, max(low, high - records_per_partition), high)
        for p, (low, high) in watermarks(bootstrap, topic, 30.0, extra_conf=extra_conf).items()
        if high > max(low, high - records_per_partition)
    ]
    for rng in ranges:
        for r in read_range(bootstrap, rng, timeout_s, extra_conf):
            rec.records_read += 1
            schema = codec._header(r.headers, "schema")
            if schema == codec.SCHEMA_GAP:
                try:
                    ev = codec.decode_event(r.value, r.headers)
                except ParseError:
                    continue  # not ours to judge here; the loader keeps it as a reject
                assert isinstance(ev, Gap)
                if ev.repair == "pending":
                    pending.setdefault(ev.gap_id, ev)
                elif ev.gap_id:
                    finished.add(ev.gap_id)
            elif schema == codec.SCHEMA_TRADE and r.value is not None:
                fields = _trade_fields_of(r.value)
                if fields is None:
                    continue
                sym, sip = fields["symbol"], fields["sip_timestamp_ns"]
                last = rec.last_by_symbol.get(sym, -1)
                if sip > last:
                    rec.last_by_symbol[sym] = last = sip
                if rec.before_sip is None or sip > rec.before_sip:
                    rec.before_sip = sip
                q = recent.setdefault(sym, deque())
                if sip >= last - late_margin_ns:
                    q.append(fields)
                while q and q[0]["sip_timestamp_ns"] < last - late_margin_ns:
                    q.popleft()
    rec.pending = [g for gid, g in pending.items() if gid not in finished]
    for q in recent.values():
        rec.trades.extend(q)
    windows: list[tuple[int, int]] = [
        (g.repair_from_ns, g.repair_to_ns)
        for g in rec.pending
        if g.repair_from_ns is not None and g.repair_to_ns is not None
    ]
    if windows:
        # Rare (a run killed during a backfill): a second pass for the unfinished windows.
        for rng in ranges:
            for r in read_range(bootstrap, rng, timeout_s, extra_conf):
                if codec._header(r.headers, "schema") != codec.SCHEMA_TRADE or r.value is None:
                    continue
                fields = _trade_fields_of(r.value)
                if fields is not None and any(
                    lo <= fields["sip_timestamp_ns"] <= hi for lo, hi in windows
                ):
                    rec.trades.append(fields)
    return rec


def _trade_fields_of(value: bytes) -> Fields | None:
    import orjson

    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    needed = ("symbol", "sip_timestamp_ns", "exchange", "trade_id")
    if not all(k in obj for k in needed):
        return None
    obj.setdefault("trf_id", None)
    return obj


class Streamer:
    """Stream trades (and optionally quotes and aggregates) of ``symbols`` into Kafka.

    Parameters
    ----------
    source
        Where frames come from (a WebSocket URL in production).
    producer
        The Kafka producer (owned by the caller; flushed by :meth:`run`).
    api_key
        Provider key; handed to the supervisor only.
    symbols
        Tickers to subscribe (``*`` = all).
    kinds
        Channel kinds: ``T`` (default), ``Q``, ``A``, ``AM``.
    clock
        Receipt times and idle detection.
    queue_size
        Bound of the frame queue between reader and parser, in frames.
    queue_bytes
        Bound of the same queue in frame bytes (the slow-consumer policy applies at
        either bound).
    max_events
        Stop reading once this many trades have been parsed (None = no limit).
    idle_exit_s
        Stop when no frame has arrived for this long (None = never).
    exit_on_close
        Stop when the server closes the connection normally (replay ``close_at_end``).
    backoff, sleep, rng
        Reconnect policy and its clock (see :class:`FeedSupervisor`).
    on_progress
        Called with the live stats every ``progress_interval_s``.
    flush_timeout_s
        Bound of the final producer flush.
    rest
        REST v3 client for gap backfill and watchdog probes (None = gaps are recorded,
        not repaired).
    slow_consumer
        ``block`` (wait for room; hang up after ``max_blocked_s`` if given) or
        ``disconnect`` (hang up as soon as the queue is full).
    max_blocked_s
        With ``block``: longest wait for queue room before hanging up.
    max_frame_bytes
        Larger frames become ``oversize_frame`` rejects (None, the default: every frame the
        socket accepted is parsed; the source's own frame limit bounds memory, and a frame
        beyond it closes the connection like any disconnect: a gap, backfilled).
    watchdog
        Silence watchdog (None = none).
    latency
        Histograms fed by the parser and the producer's delivery reports.
    recovery
        The previous run's tail in Kafka (a restart gap and unfinished repairs).
    late_margin_s
        Widening of repair windows for prints published late.
    close_after_s
        SIP time after a resumption that closes a quiet symbol's gap.
    ring_frames, ring_bytes
        Recent frames kept to seed dedup guards: at most this many, of at most this many
        bytes.
    dedup_bytes
        Memory the dedup guards' keys may take (a repair that finds it spent fails).
    repair_drain_s
        Bound on queued repairs at stop.
    max_backfill_s
        Longest repair window asked from REST (longer: recorded, not repaired).
    """

    def __init__(
        self,
        *,
        source: FrameSource,
        producer: EventProducer,
        api_key: str,
        symbols: Sequence[str],
        kinds: Sequence[str] = (m.CHANNEL_TRADES,),
        clock: Clock | None = None,
        queue_size: int = 10_000,
        queue_bytes: int = 256 << 20,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
        exit_on_close: bool = False,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_progress: Callable[[StreamStats], None] | None = None,
        progress_interval_s: float = 0.5,
        flush_timeout_s: float = 60.0,
        rest: RestTrades | None = None,
        slow_consumer: SlowConsumerPolicy = "block",
        max_blocked_s: float | None = None,
        max_frame_bytes: int | None = None,
        watchdog: SilenceWatchdog | None = None,
        latency: LatencyHistograms | None = None,
        recovery: Recovery | None = None,
        late_margin_s: float = 1.0,
        close_after_s: float = 5.0,
        ring_frames: int = 2048,
        ring_bytes: int = 64 << 20,
        dedup_bytes: int = 256 << 20,
        repair_drain_s: float = 120.0,
        max_backfill_s: float = 6 * 3600.0,
    ) -> None:
        try:
            self.channels = m.channels(symbols, kinds)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        if not self.channels:
            raise FeedError("no symbols to stream: pass --symbols or set MICROSTRUCTURE_SYMBOLS")
        if slow_consumer not in ("block", "disconnect"):
            raise ConfigError(f"slow-consumer policy {slow_consumer!r} must be block or disconnect")
        for name, value in (
            ("queue size", queue_size),
            ("queue bytes", queue_bytes),
            ("ring bytes", ring_bytes),
        ):
            if value < 1:
                raise ConfigError(f"{name} is {value} and must be at least 1")
        try:
            self._dedup = KeyBudget(dedup_bytes)
        except ValueError as e:
            raise ConfigError(str(e)) from e
        self.source = source
        self.producer = producer
        self.clock: Clock = clock or SystemClock()
        self.queue_size = queue_size
        self.max_events = max_events
        self.idle_exit_s = idle_exit_s
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.rest = rest
        self.slow_consumer = slow_consumer
        self.max_blocked_s = max_blocked_s
        self.max_frame_bytes = max_frame_bytes
        self.watchdog = watchdog
        self.latency = latency
        self.recovery = recovery
        self.late_margin_ns = round(late_margin_s * NS_PER_S)
        self.repair_drain_s = repair_drain_s
        self.max_backfill_ns = round(max_backfill_s * NS_PER_S)
        self.stats = StreamStats()
        self._queue: FrameQueue[_QueueItem] = FrameQueue(queue_size, queue_bytes)
        self._stop = asyncio.Event()
        self._last_frame_mono_ns = self.clock.monotonic_ns()
        self._ring = FrameRing(max(1, ring_frames), ring_bytes)
        self._book = GapBook(
            self.channels,
            late_margin_ns=self.late_margin_ns,
            close_after_ns=round(close_after_s * NS_PER_S),
        )
        self._guards: dict[str, Guard] = {}
        self._guard_users: Counter[str] = Counter()
        self._jobs: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._open_repairs = 0
        self._probe_task: asyncio.Task[None] | None = None
        self._hangup_task: asyncio.Task[bool] | None = None
        self._t0_ns = self.clock.monotonic_ns()
        self._restart_seeds: Sequence[Fields] = ()
        self._restart_detected_ns: int | None = None
        self.supervisor = FeedSupervisor(
            source,
            api_key,
            self.channels,
            self._enqueue,
            clock=self.clock,
            backoff=backoff,
            sleep=sleep,
            rng=rng,
            exit_on_close=exit_on_close,
            on_disconnect=self._on_disconnect,
            on_connected=self._on_connected,
        )

    # -- reader side -----------------------------------------------------------------------------
    async def _enqueue(self, frame: str | bytes, receipt_ns: int) -> None:
        st = self.stats
        size = len(frame)
        st.frames += 1
        st.frame_bytes += size
        mono = self.clock.monotonic_ns()
        self._last_frame_mono_ns = mono
        wd = self.watchdog
        if wd is not None:
            is_status = ("status" in frame) if isinstance(frame, str) else (b"status" in frame)
            wd.on_frame(mono, data=not is_status)
        q = self._queue
        bound = q.full_for(size)
        if bound is not None:
            await self._enqueue_blocked(frame, receipt_ns, size, bound)
        else:
            q.put_nowait((frame, receipt_ns), size)

    async def _enqueue_blocked(
        self, frame: str | bytes, receipt_ns: int, size: int, bound: str
    ) -> None:
        """Wait for room; hang up per the slow-consumer policy, but never drop the frame.

        The policy is the same whichever bound (``frames`` or ``bytes``) is reached.
        """
        q = self._queue
        t0 = self.clock.monotonic_ns()
        limit = 0.0 if self.slow_consumer == "disconnect" else self.max_blocked_s
        if limit is not None:
            level = q.describe()  # at the moment it filled (the wait drains it)
            try:
                if limit > 0:
                    await asyncio.wait_for(q.wait_room(size), limit)
                    q.put_nowait((frame, receipt_ns), size)
                    self.stats.blocked_s += (self.clock.monotonic_ns() - t0) / 1e9
                    return
            except TimeoutError:
                pass
            self.stats.slow_consumer_drops += 1
            reason = (
                f"slow consumer: frame queue full ({bound} bound: {level}) "
                f"for {(self.clock.monotonic_ns() - t0) / 1e9:.1f} s"
            )
            # Hang up in the background: the socket read loop is the one waiting here.
            self._hangup_task = asyncio.create_task(self.supervisor.request_reconnect(reason))
        await q.put((frame, receipt_ns), size)
        self.stats.blocked_s += (self.clock.monotonic_ns() - t0) / 1e9

    async def _on_disconnect(self, d: Disconnect) -> None:
        self.stats.disconnects += 1
        await self._queue.put(d)

    def _on_connected(self) -> None:
        if self.watchdog is not None:
            self.watchdog.on_connect()

    # -- parser side (hot path) --------------------------------------------------------------------
    async def _parse_loop(self) -> None:
        st = self.stats
        q = self._queue
        ring = self._ring
        while True:
            item = await q.get()
            if item is None:
                break
            if type(item) is tuple:
                frame, receipt_ns = item
                await self._on_frame(frame, receipt_ns)
                ring.append(item)  # after processing: guards are seeded from *finished* frames
            elif isinstance(item, Disconnect):
                self._on_closed(self._book.on_disconnect(item.reason, item.detected_ns))
            if (
                self.max_events is not None
                and st.trades >= self.max_events
                and not self._stop.is_set()
            ):
                st.stop_reason = f"max events ({self.max_events})"
                self._stop.set()
            # Let the reader run between frames: parsing must not starve the socket.
            await asyncio.sleep(0)
        self._on_closed(self._book.close_all(), stopping=True)

    async def _on_frame(self, frame: str | bytes, receipt_ns: int) -> None:
        st = self.stats
        book = self._book
        last_t = book.last_sip.setdefault("T", {})
        guards = self._guards
        lat = self.latency
        s2r = lat._get(lat.sip_to_receipt, "trade") if lat is not None else None
        encode = codec.encode_fields
        trades: list[tuple[bytes, bytes, int | None]] = []
        others: dict[str, list[tuple[bytes, bytes, int | None]]] | None = None
        for it in parse_frame_fields(frame, receipt_ns, max_frame_bytes=self.max_frame_bytes):
            if type(it) is tuple:
                kind, f = it
                if kind == "T":
                    sym = f["symbol"]
                    sip = f["sip_timestamp_ns"]
                    if book.outage is not None:
                        self._on_closed(book.on_data("T", sym, sip))
                    if guards and sym in guards and not guards[sym].first_time(f):
                        st.duplicates_skipped += 1
                        continue
                    last_t[sym] = sip
                    key, value = encode(f)
                    trades.append((key, value, sip))
                    if s2r is not None:
                        s2r.observe_ns(receipt_ns - sip)
                else:
                    sym = f["symbol"]
                    sip = f[_SIP_FIELD[kind]]
                    if book.outage is not None:
                        self._on_closed(book.on_data(kind, sym, sip))
                    book.last_sip.setdefault(kind, {})[sym] = sip
                    if others is None:
                        others = {}
                    key, value = encode(f)
                    others.setdefault(kind, []).append((key, value, sip))
                    if lat is not None:
                        lat.observe_sip_to_receipt(_KIND_NAMES[kind], receipt_ns - sip)
            elif type(it) is FeedStatus:
                st.statuses[it.status] += 1
            else:
                assert isinstance(it, Reject)
                st.rejects[reason_code(it.reason)] += 1
                self.producer.send(it)
        if trades:
            st.trades += len(trades)
            await self._produce(
                "trade", trades, codec.headers(codec.SCHEMA_TRADE, receipt_ns), receipt_ns
            )
        if others:
            for kind, recs in others.items():
                if kind == "Q":
                    st.quotes += len(recs)
                else:
                    st.aggregates += len(recs)
                schema = codec.SCHEMA_BY_KIND[kind]
                await self._produce(
                    _KIND_NAMES[kind], recs, codec.headers(schema, receipt_ns), receipt_ns
                )

    async def _produce(
        self,
        kind: str,
        recs: Sequence[tuple[bytes, bytes, int | None]],
        hdrs: codec.Headers,
        receipt_ns: int,
    ) -> None:
        """Produce one frame's records; wait, not blocking the loop, while Kafka's queue is full."""
        producer = self.producer
        k = producer.produce_frame(kind, recs, hdrs, receipt_ns)
        if k == len(recs):
            return
        t0 = self.clock.monotonic_ns()
        while k < len(recs):
            # Delivery reports (served by the producer's thread) make room.
            await asyncio.sleep(0.002)
            k = producer.produce_frame(kind, recs, hdrs, receipt_ns, k)
        self.stats.producer_blocked_s += (self.clock.monotonic_ns() - t0) / 1e9

    # -- gaps and repairs ------------------------------------------------------------------------
    def _gap_record(
        self,
        g: ClosedGap,
        repair: Repair,
        *,
        backfilled: int = 0,
        detail: str = "",
        repaired_ns: int | None = None,
    ) -> Gap:
        return Gap(
            subscription=g.channel,
            last_before_ns=g.last_before_ns,
            first_after_ns=g.first_after_ns,
            reason=g.reason,
            detected_ns=g.detected_ns,
            gap_id=g.gap_id,
            repair=repair,
            repair_from_ns=g.repair_from_ns,
            repair_to_ns=g.repair_to_ns,
            backfilled=backfilled,
            repair_detail=detail,
            repaired_ns=repaired_ns,
        )

    def _emit_gap(self, gap: Gap) -> None:
        self.producer.send(gap)
        self.stats.gap_records[gap.repair] += 1

    def _on_closed(self, closed: list[ClosedGap], *, stopping: bool = False) -> None:
        """Record closed gaps; queue a backfill for each repairable trade gap."""
        if not closed:
            return
        seeded: dict[str, Guard] = {}
        window_from: int | None = None
        for g in closed:
            self.stats.gaps += 1
            self.stats.gap_seconds += g.seconds
            if g.kind != m.CHANNEL_TRADES:
                self._emit_gap(
                    self._gap_record(
                        g, "unsupported", detail="only trades are backfilled (REST v3 trades)"
                    )
                )
                continue
            verdict = self._unrepairable(g, stopping=stopping)
            if verdict is not None:
                repair, problem = verdict
                if repair == "failed":
                    self.stats.repairs_failed += 1
                    logger.warning("gap %s cannot be repaired: %s", g.gap_id, problem)
                self._emit_gap(self._gap_record(g, repair, detail=problem))
                continue
            self._emit_gap(self._gap_record(g, "pending"))
            restart = self.recovery is not None and g.detected_ns == self._restart_detected_ns
            seeded.update(self._queue_job(g, seeds=self._restart_seeds if restart else ()))
            assert g.repair_from_ns is not None
            window_from = (
                g.repair_from_ns if window_from is None else min(window_from, g.repair_from_ns)
            )
        if seeded and window_from is not None:
            # One pass over the recent frames for every gap this event closed (a wildcard
            # or many symbols at once must not rescan the ring per symbol).
            self._seed_from_ring(seeded, window_from)

    def _unrepairable(self, g: ClosedGap, *, stopping: bool) -> tuple[Repair, str] | None:
        """Return the outcome and reason of a trade gap that gets no backfill (None: it gets one).

        ``not_attempted``: there is nothing to ask (no REST source, no window, no symbol).
        ``failed``: a repair is due but cannot be done (its window exceeds the limit).
        """
        if self.rest is None:
            return "not_attempted", "no REST source configured (--rest-url)"
        if g.repair_from_ns is None:
            return "not_attempted", "no event before the outage: the window has no start"
        if not g.symbols:
            return "not_attempted", "no symbol known for a wildcard subscription"
        to_ns = g.repair_to_ns
        if to_ns is None:
            if not stopping:
                return "not_attempted", "the window has no end"
            # Stopping while the feed had not resumed: nothing more will arrive live, so the
            # window runs to whatever the provider has now, at least to the SIP time seen.
            to_ns = max(g.repair_from_ns, self._book.stream_clock() or g.repair_from_ns)
        if to_ns - g.repair_from_ns > self.max_backfill_ns:
            at_least = "at least " if g.repair_to_ns is None else ""
            return "failed", (
                f"window of {at_least}{(to_ns - g.repair_from_ns) / 1e9:.0f} s exceeds "
                f"--max-backfill-s {self.max_backfill_ns / 1e9:.0f}"
            )
        return None

    def _queue_job(self, g: ClosedGap, seeds: Sequence[Fields] = ()) -> dict[str, Guard]:
        """Queue the backfill of ``g``; return its guards (to be seeded from recent frames)."""
        assert g.repair_from_ns is not None
        to_ns = g.repair_to_ns if g.repair_to_ns is not None else _OPEN_END
        guards: list[Guard] = []
        fresh: dict[str, Guard] = {}
        start = g.repair_from_ns
        for sym in g.symbols:
            guard = self._guards.get(sym)
            if guard is None:
                guard = self._guards[sym] = Guard(sym, start, to_ns, self._dedup)
            else:
                guard.widen(start, to_ns)
            self._guard_users[sym] += 1
            fresh[sym] = guard
            guards.append(guard)
        for f in seeds:
            guard = fresh.get(f["symbol"])
            if guard is not None:
                guard.remember(f)
        self._open_repairs += 1
        self._jobs.put_nowait(_Job(g, guards))
        return fresh

    def _seed_from_ring(self, guards: Mapping[str, Guard], window_from: int) -> None:
        """Remember the prints of recent (already produced) frames inside the guards' windows."""
        older = 0
        for frame, receipt_ns in self._ring.newest_first():
            newest: int | None = None
            for it in parse_frame_fields(frame, receipt_ns, max_frame_bytes=self.max_frame_bytes):
                if type(it) is tuple and it[0] == "T":
                    f = it[1]
                    sip = f["sip_timestamp_ns"]
                    if newest is None or sip > newest:
                        newest = sip
                    guard = guards.get(f["symbol"])
                    if guard is not None:
                        guard.remember(f)
            if newest is not None and newest < window_from:
                older += 1
                if older >= 3:  # frames are SIP-ordered enough: the window is behind us
                    break

    async def _repair_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            if job is None:
                return
            try:
                await self._repair(job)
            finally:
                self._open_repairs -= 1
                for guard in job.guards:
                    self._guard_users[guard.symbol] -= 1

    async def _repair(self, job: _Job) -> None:
        g = job.gap
        rest = self.rest
        assert rest is not None
        assert g.repair_from_ns is not None
        produced = 0
        budget = self._dedup
        try:
            for guard in job.guards:
                async for page in rest.pages(guard.symbol, g.repair_from_ns, g.repair_to_ns):
                    if budget.exhausted:
                        # Its prints could no longer be remembered: going on would let a
                        # later copy of them through. Stop; the gap says why.
                        raise _DedupFull(
                            f"dedup memory bound reached (--dedup-bytes {budget.limit_bytes:,}; "
                            f"{budget.keys:,} keys held): {produced:,} trades backfilled, the "
                            f"rest of the window from {guard.symbol} on not repaired"
                        )
                    recs: list[tuple[bytes, bytes, int | None]] = []
                    receipt_ns = self.clock.now_ns()
                    for f in page.trades:
                        if guard.first_time(f):
                            f["receipt_ns"] = receipt_ns
                            key, value = codec.encode_fields(f)
                            recs.append((key, value, f["sip_timestamp_ns"]))
                        else:
                            self.stats.duplicates_skipped += 1
                    for r in page.rejects:
                        self.stats.rejects[reason_code(r.reason)] += 1
                        self.producer.send(r)
                    if recs:
                        await self._produce(
                            # A label of their own: their SIP -> ack is the gap, not latency.
                            "trade_backfill",
                            recs,
                            codec.headers(codec.SCHEMA_TRADE, receipt_ns),
                            receipt_ns,
                        )
                        produced += len(recs)
                        self.stats.backfilled += len(recs)
        except (BackfillError, _DedupFull) as e:
            self.stats.repairs_failed += 1
            logger.warning("backfill of %s failed: %s", g.gap_id, e)
            self._emit_gap(
                self._gap_record(
                    g, "failed", backfilled=produced, detail=str(e), repaired_ns=self.clock.now_ns()
                )
            )
            return
        self._emit_gap(
            self._gap_record(g, "backfilled", backfilled=produced, repaired_ns=self.clock.now_ns())
        )

    def _expire_guards(self) -> None:
        """Drop guards of finished repairs once the live stream is well past their window."""
        clock = self._book.stream_clock()
        if clock is None:
            return
        horizon = 30 * NS_PER_S
        for sym in [s for s, g in self._guards.items() if self._guard_users[s] <= 0]:
            if clock > self._guards[sym].to_ns + self.late_margin_ns + horizon:
                self._guards.pop(sym).release()
                del self._guard_users[sym]

    # -- control ---------------------------------------------------------------------------------
    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop reading, then drain and flush as for any other stop (e.g. on SIGTERM)."""
        if not self._stop.is_set():
            self.stats.stop_reason = reason
            self._stop.set()

    def _snapshot(self) -> StreamStats:
        st = self.stats
        st.sent = self.producer.sent
        st.delivered = self.producer.delivered
        st.queue_depth = self._queue.qsize()
        st.queue_high_water = self._queue.high_water_frames
        st.queue_bytes_high_water = self._queue.high_water_bytes
        st.elapsed_s = (self.clock.monotonic_ns() - self._t0_ns) / 1e9
        return st

    def metrics_snapshot(self) -> StreamSnapshot:
        """Return the live values the ``/metrics`` endpoint exposes (any thread)."""
        st = self.stats
        events_in: dict[str, float] = {
            "trade": float(st.trades),
            "quote": float(st.quotes),
            "aggregate": float(st.aggregates),
            "status": float(sum(st.statuses.values())),
        }
        return StreamSnapshot(
            events_in=events_in,
            rejects={k: float(v) for k, v in st.rejects.items()},
            reconnects=float(st.disconnects),
            gaps={k: float(v) for k, v in st.gap_records.items()},
            gap_seconds=st.gap_seconds,
            backfilled=float(st.backfilled),
            duplicates_skipped=float(st.duplicates_skipped),
            blocked_s={"reader": st.blocked_s, "producer": st.producer_blocked_s},
            slow_consumer=float(st.slow_consumer_drops + st.statuses.get("slow_consumer", 0)),
            watchdog_reconnects=float(st.watchdog_reconnects),
            frame_bytes=float(st.frame_bytes),
            queue_depth=float(self._queue.qsize()),
            queue_capacity=float(self.queue_size),
            buffer_bytes={
                "queue": float(self._queue.bytes),
                "ring": float(self._ring.bytes),
                "dedup": float(self._dedup.bytes),
            },
            buffer_limit_bytes={
                "queue": float(self._queue.max_bytes),
                "ring": float(self._ring.max_bytes),
                "dedup": float(self._dedup.limit_bytes),
            },
            in_flight=float(self.producer.in_flight),
            connected=1.0 if self.supervisor.connected else 0.0,
            last_frame_age_s=(self.clock.monotonic_ns() - self._last_frame_mono_ns) / 1e9,
            open_gaps=float(self._open_repairs + (1 if self._book.open else 0)),
        )

    async def _probe(self) -> None:
        """Ask REST whether a subscribed symbol printed after the last trade we saw.

        Any such print that is more than a grace period old (by the wall clock: on a live
        feed SIP time is wall time) should have reached us by now: the feed is stalled. A
        print younger than the grace may still be on its way over the socket.
        """
        wd = self.watchdog
        rest = self.rest
        assert wd is not None
        assert rest is not None
        last = self._book.last_sip.get("T", {})
        syms = [c.partition(".")[2] for c in self._book.channels if c.startswith("T.")]
        if "*" in syms:
            syms = [s for s, _ in sorted(last.items(), key=lambda kv: -kv[1])[:3]]
        stalled = False
        grace_ns = 2 * NS_PER_S
        try:
            for sym in syms[:5]:
                seen = last.get(sym)
                if seen is None:
                    continue
                newer = await rest.probe(sym, seen)
                if newer is not None and newer <= self.clock.now_ns() - grace_ns:
                    stalled = True
                    break
        except BackfillError as e:
            logger.warning("watchdog probe failed (%s): treating the silence as genuine", e)
        if wd.probe_result(stalled=stalled) is Verdict.RECONNECT:
            self.stats.watchdog_reconnects += 1
            await self.supervisor.request_reconnect(
                f"silence watchdog: no frame for {wd.silence_s():.1f} s "
                "while REST shows newer trades"
            )

    async def _watch(self) -> None:
        interval = self.progress_interval_s
        if self.idle_exit_s is not None:
            interval = min(interval, max(0.05, self.idle_exit_s / 4))
        while not self._stop.is_set():
            await asyncio.sleep(interval)
            if self.producer.failed:
                return  # the parser raises it at its next produce
            if self.on_progress is not None:
                self.on_progress(self._snapshot())
            self._expire_guards()
            wd = self.watchdog
            if wd is not None and self.supervisor.connected:
                verdict = wd.check()
                if verdict is Verdict.PROBE and self.rest is not None:
                    self._probe_task = asyncio.create_task(self._probe(), name="feed-probe")
                elif verdict is Verdict.RECONNECT:
                    self.stats.watchdog_reconnects += 1
                    await self.supervisor.request_reconnect(
                        f"silence watchdog: no frame for {wd.silence_s():.1f} s"
                    )
            if self.idle_exit_s is not None:
                idle_s = (self.clock.monotonic_ns() - self._last_frame_mono_ns) / 1e9
                if idle_s >= self.idle_exit_s and self._open_repairs == 0:
                    self.stats.stop_reason = f"idle for {self.idle_exit_s} s"
                    self._stop.set()

    def _resume(self) -> None:
        """Open the restart gap and queue the dead run's unfinished repairs."""
        rec = self.recovery
        if rec is None:
            return
        if rec.before_sip is not None:
            self._restart_detected_ns = self.clock.now_ns()
            self._book.restart(
                f"streamer restart (the last record in Kafka has SIP time {rec.before_sip})",
                self._restart_detected_ns,
                rec.before_sip,
                rec.last_by_symbol,
            )
        for gap in rec.pending:
            if gap.repair_from_ns is None or gap.repair_to_ns is None or self.rest is None:
                continue
            kind, _, sym = gap.subscription.partition(".")
            if kind != m.CHANNEL_TRADES:
                continue
            symbols = tuple(sorted(rec.last_by_symbol)) if sym == "*" else (sym,)
            closed = ClosedGap(
                channel=gap.subscription,
                kind=kind,
                symbol=sym,
                last_before_ns=gap.last_before_ns,
                first_after_ns=gap.first_after_ns,
                reason=gap.reason,
                detected_ns=gap.detected_ns,
                gap_id=gap.gap_id,
                repair_from_ns=gap.repair_from_ns,
                repair_to_ns=gap.repair_to_ns,
                symbols=symbols,
            )
            logger.warning("re-running the unfinished repair %s", gap.gap_id)
            self._queue_job(closed, seeds=rec.trades)  # nothing in the ring yet
        # Seeds for the restart gap's guards, created when it closes.
        self._restart_seeds = rec.trades

    async def run(self) -> StreamStats:
        """Stream until a stop condition, then drain, repair, flush and return the stats.

        Returns
        -------
        StreamStats
            Final counters (``delivered`` equals ``sent`` on success).

        Raises
        ------
        DeliveryError
            If any message was not acknowledged (after everything received was produced).
        AuthError, MaxConnectionsError, FeedError
            From the supervisor, after the frames already received were produced.
        """
        self._t0_ns = self.clock.monotonic_ns()
        self._last_frame_mono_ns = self._t0_ns
        self._resume()
        # Blocking, but before any frame is read: the first records must not wait for it.
        await asyncio.to_thread(self.producer.warm_up)
        self.producer.start_background_poll()
        reader = asyncio.create_task(self.supervisor.run(), name="feed-reader")
        parser = asyncio.create_task(self._parse_loop(), name="feed-parser")
        repairer = asyncio.create_task(self._repair_loop(), name="feed-repair")
        watcher = asyncio.create_task(self._watch(), name="feed-watch")
        stopper = asyncio.create_task(self._stop.wait(), name="feed-stop")
        tasks = (reader, parser, repairer, watcher, stopper)
        try:
            done, _ = await asyncio.wait(
                {reader, parser, repairer, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            if parser in done or repairer in done:
                # These only end early on an error (e.g. DeliveryError): surface it.
                reader.cancel()
                (parser if parser in done else repairer).result()
            if reader in done and not self.stats.stop_reason:
                self.stats.stop_reason = (
                    "server closed the connection" if reader.exception() is None else "feed error"
                )
            reader_error: BaseException | None = None
            if not reader.done():
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await reader
                except (FeedError, OSError) as e:
                    reader_error = e
            # Everything received is parsed and produced before we stop.
            await self._queue.put(None)
            await parser
            await self._jobs.put(None)
            try:
                await asyncio.wait_for(asyncio.shield(repairer), self.repair_drain_s)
            except TimeoutError:
                logger.warning(
                    "stopping with %d repairs unfinished; their gaps stay 'pending' "
                    "and a restart re-runs them",
                    self._open_repairs,
                )
                repairer.cancel()
            self.producer.flush(self.flush_timeout_s)
            if reader_error is not None:
                raise reader_error
            return self._snapshot()
        finally:
            self._stop.set()
            for task in tasks:
                if not task.done():
                    task.cancel()
            extra = [t for t in (self._probe_task, self._hangup_task) if t is not None]
            for t in extra:
                t.cancel()
            # Reap every task; their errors (if any) were already raised above or are moot.
            await asyncio.gather(*tasks, *extra, return_exceptions=True)
            self.producer.stop_background_poll()
            self._snapshot()
