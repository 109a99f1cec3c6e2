"""Feed -> Kafka: reader task -> bounded queue -> parser task -> codec -> idempotent producer.

The reader (a :class:`~pipeline.feed.supervisor.FeedSupervisor`) only stamps and
enqueues raw frames, so a slow parser or broker never stalls the socket read loop
(integrations.md 1.5, 1.6). The parser task parses each frame
(:func:`~pipeline.feed.parse.parse_frame`) and sends trades and rejects through one
:class:`~pipeline.kafka.producer.EventProducer`; rejects go to the same topic as
``reject.v1`` records so they reach the warehouse through the same exactly-once path.

Slow-consumer policy (for now): when the queue is full the reader waits for room
(back-pressure onto the socket) and the time spent waiting is counted in
:attr:`StreamStats.blocked_s`. Every received frame is parsed and produced: stopping
early (``max_events``, idle exit, a normal close) stops *reading*, then drains the queue
and flushes the producer, which raises :class:`~pipeline.errors.DeliveryError` unless
every message was acknowledged.

Outages become :class:`~pipeline.events.Gap` records per subscription, in stream order:
``last_before_ns`` is the SIP time of the last trade parsed before the outage,
``first_after_ns`` the first one after it (None if none came before the stream ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.clock import Clock, SystemClock
from pipeline.errors import FeedError
from pipeline.events import FeedStatus, Gap, Reject, Trade
from pipeline.feed.messages import trade_channels
from pipeline.feed.parse import parse_frame, reason_code
from pipeline.feed.source import FrameSource
from pipeline.feed.supervisor import Backoff, Disconnect, FeedSupervisor, Sleep
from pipeline.kafka.producer import EventProducer

_QueueItem = tuple[str | bytes, int] | Disconnect | None


@dataclass
class StreamStats:
    """Counters of one streamer run (printed as its summary)."""

    frames: int = 0
    frame_bytes: int = 0
    trades: int = 0
    statuses: Counter[str] = field(default_factory=lambda: Counter[str]())
    rejects: Counter[str] = field(default_factory=lambda: Counter[str]())
    gaps: int = 0
    disconnects: int = 0
    sent: int = 0
    delivered: int = 0
    queue_depth: int = 0
    queue_high_water: int = 0
    blocked_s: float = 0.0
    elapsed_s: float = 0.0
    stop_reason: str = ""

    @property
    def reject_total(self) -> int:
        """Return the number of rejects over all reasons."""
        return sum(self.rejects.values())


@dataclass
class _OpenGap:
    channel: str
    last_before_ns: int | None
    reason: str
    detected_ns: int


class Streamer:
    """Stream ``T`` trades of ``symbols`` from a feed into Kafka.

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
    clock
        Receipt times and idle detection.
    queue_size
        Bound of the frame queue between reader and parser.
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
    """

    def __init__(
        self,
        *,
        source: FrameSource,
        producer: EventProducer,
        api_key: str,
        symbols: Sequence[str],
        clock: Clock | None = None,
        queue_size: int = 10_000,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
        exit_on_close: bool = False,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_progress: Callable[[StreamStats], None] | None = None,
        progress_interval_s: float = 0.5,
        flush_timeout_s: float = 60.0,
    ) -> None:
        self.channels = trade_channels(symbols)
        if not self.channels:
            raise FeedError("no symbols to stream: pass --symbols or set MICROSTRUCTURE_SYMBOLS")
        self.source = source
        self.producer = producer
        self.clock: Clock = clock or SystemClock()
        self.queue_size = queue_size
        self.max_events = max_events
        self.idle_exit_s = idle_exit_s
        self.on_progress = on_progress
        self.progress_interval_s = progress_interval_s
        self.flush_timeout_s = flush_timeout_s
        self.stats = StreamStats()
        self._queue: asyncio.Queue[_QueueItem] = asyncio.Queue(maxsize=queue_size)
        self._stop = asyncio.Event()
        self._last_frame_mono_ns = self.clock.monotonic_ns()
        self._last_sip: dict[str, int] = {}
        self._open_gaps: list[_OpenGap] = []
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
        )

    # -- reader side -----------------------------------------------------------------------------
    async def _enqueue(self, frame: str | bytes, receipt_ns: int) -> None:
        st = self.stats
        st.frames += 1
        st.frame_bytes += len(frame)
        self._last_frame_mono_ns = self.clock.monotonic_ns()
        q = self._queue
        if q.full():
            t0 = self.clock.monotonic_ns()
            await q.put((frame, receipt_ns))
            st.blocked_s += (self.clock.monotonic_ns() - t0) / 1e9
        else:
            q.put_nowait((frame, receipt_ns))
        depth = q.qsize()
        if depth > st.queue_high_water:
            st.queue_high_water = depth

    async def _on_disconnect(self, d: Disconnect) -> None:
        self.stats.disconnects += 1
        await self._queue.put(d)

    # -- parser side -----------------------------------------------------------------------------
    def _open_gap(self, d: Disconnect) -> None:
        for channel in self.channels:
            sym = channel.partition(".")[2]
            if sym == "*":
                last = max(self._last_sip.values()) if self._last_sip else None
            else:
                last = self._last_sip.get(sym)
            self._open_gaps.append(_OpenGap(channel, last, d.reason, d.detected_ns))

    def _close_gaps(self, trade: Trade | None) -> None:
        keep: list[_OpenGap] = []
        for g in self._open_gaps:
            sym = g.channel.partition(".")[2]
            if trade is None or sym in ("*", trade.symbol):
                first_after = trade.sip_timestamp_ns if trade is not None else None
                self.producer.send(
                    Gap(g.channel, g.last_before_ns, first_after, g.reason, g.detected_ns)
                )
                self.stats.gaps += 1
            else:
                keep.append(g)
        self._open_gaps = keep

    async def _parse_loop(self) -> None:
        st = self.stats
        producer = self.producer
        while True:
            item = await self._queue.get()
            if item is None:
                break
            if isinstance(item, Disconnect):
                self._open_gap(item)
                continue
            frame, receipt_ns = item
            for ev in parse_frame(frame, receipt_ns):
                if isinstance(ev, Trade):
                    if self._open_gaps:
                        self._close_gaps(ev)
                    producer.send(ev)
                    st.trades += 1
                    self._last_sip[ev.symbol] = ev.sip_timestamp_ns
                elif isinstance(ev, Reject):
                    producer.send(ev)
                    st.rejects[reason_code(ev.reason)] += 1
                elif isinstance(ev, FeedStatus):
                    st.statuses[ev.status] += 1
            if (
                self.max_events is not None
                and st.trades >= self.max_events
                and not self._stop.is_set()
            ):
                st.stop_reason = f"max events ({self.max_events})"
                self._stop.set()
            # Let the reader run between frames: parsing must not starve the socket.
            await asyncio.sleep(0)
        if self._open_gaps:
            self._close_gaps(None)

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
        st.elapsed_s = (self.clock.monotonic_ns() - self._t0_ns) / 1e9
        return st

    async def _watch(self) -> None:
        interval = self.progress_interval_s
        if self.idle_exit_s is not None:
            interval = min(interval, max(0.05, self.idle_exit_s / 4))
        while not self._stop.is_set():
            await asyncio.sleep(interval)
            self.producer.poll(0)
            if self.on_progress is not None:
                self.on_progress(self._snapshot())
            if self.idle_exit_s is not None:
                idle_s = (self.clock.monotonic_ns() - self._last_frame_mono_ns) / 1e9
                if idle_s >= self.idle_exit_s:
                    self.stats.stop_reason = f"idle for {self.idle_exit_s} s"
                    self._stop.set()

    async def run(self) -> StreamStats:
        """Stream until a stop condition, then drain, flush and return the stats.

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
        reader = asyncio.create_task(self.supervisor.run(), name="feed-reader")
        parser = asyncio.create_task(self._parse_loop(), name="feed-parser")
        watcher = asyncio.create_task(self._watch(), name="feed-watch")
        stopper = asyncio.create_task(self._stop.wait(), name="feed-stop")
        try:
            done, _ = await asyncio.wait(
                {reader, parser, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            if parser in done:
                # The parser only ends early on an error (e.g. DeliveryError): surface it.
                reader.cancel()
                parser.result()
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
            self.producer.flush(self.flush_timeout_s)
            if reader_error is not None:
                raise reader_error
            return self._snapshot()
        finally:
            self._stop.set()
            for task in (reader, parser, watcher, stopper):
                if not task.done():
                    task.cancel()
            # Reap every task; their errors (if any) were already raised above or are moot.
            await asyncio.gather(reader, parser, watcher, stopper, return_exceptions=True)
            self._snapshot()
