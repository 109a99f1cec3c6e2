"""``microstructure stream``: Polygon/Massive WebSocket -> Kafka, gaps repaired, with a summary."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson

from pipeline.errors import ConfigError, KafkaError


def register(sub: Any) -> None:
    """Add the ``stream`` subcommand."""
    p = sub.add_parser(
        "stream",
        help="stream trades (and optionally quotes, aggregates) from Massive/Polygon into Kafka",
        description="Connect to the feed (MICROSTRUCTURE_FEED_URL, the real Massive URL by "
        "default), authenticate with MASSIVE_API_KEY or POLYGON_API_KEY, subscribe, and produce "
        "every event and reject to Kafka with acks=all (idempotent, key = symbol). Every "
        "disconnect becomes a gap record, repaired from the REST v3 trades endpoint through "
        "the same producer; a restart resumes from the tail of the topic. Exits non-zero if a "
        "delivery fails.",
    )
    p.add_argument(
        "--symbols",
        default=None,
        help="comma list, e.g. AAPL,MSFT or * (default $MICROSTRUCTURE_SYMBOLS)",
    )
    p.add_argument(
        "--channels",
        default="T",
        help="event kinds: T (trades, default), Q (quotes), A (second bars), AM (minute bars); "
        "e.g. T,Q,AM",
    )
    p.add_argument(
        "--url",
        default=None,
        help="feed URL (default $MICROSTRUCTURE_FEED_URL or wss://socket.massive.com/stocks)",
    )
    p.add_argument(
        "--rest-url",
        default=None,
        help="REST base for gap backfill (default $MICROSTRUCTURE_REST_URL, or the replay "
        "server's own http://host:port when --url is a plain ws:// URL, else "
        "https://api.massive.com)",
    )
    p.add_argument("--no-backfill", action="store_true", help="record gaps without repairing")
    p.add_argument("--topic", default=None, help="Kafka topic (default $MICROSTRUCTURE_TOPIC)")
    p.add_argument("--max-events", type=int, default=None, help="stop reading after N trades")
    p.add_argument(
        "--idle-exit-s", type=float, default=None, help="stop after S seconds without a frame"
    )
    p.add_argument(
        "--exit-on-close", action="store_true", help="stop when the server closes normally"
    )
    p.add_argument(
        "--max-reconnects",
        type=int,
        default=None,
        help="give up after N failed attempts in a row (default: never)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=None,
        help="frame queue bound in frames (default $MICROSTRUCTURE_QUEUE_SIZE)",
    )
    p.add_argument(
        "--queue-bytes",
        type=int,
        default=None,
        help="frame queue bound in bytes (default $MICROSTRUCTURE_QUEUE_BYTES, 256 MiB); "
        "the slow-consumer policy applies at either bound",
    )
    p.add_argument(
        "--ring-bytes",
        type=int,
        default=64 << 20,
        help="recent frames kept to seed the dedup of a repair, in bytes (default 64 MiB; "
        "also at most 2,048 frames); past it the oldest are forgotten",
    )
    p.add_argument(
        "--dedup-bytes",
        type=int,
        default=256 << 20,
        help="memory of the repairs' dedup keys (default 256 MiB, ~1.4 M prints); a repair "
        "that reaches it stops and its gap is recorded failed with the reason",
    )
    p.add_argument(
        "--slow-consumer",
        choices=("block", "disconnect"),
        default="block",
        help="when the frame queue is full (frames or bytes): block (wait; hang up after "
        "--max-blocked-s if given) or disconnect at once; either way the outage is a gap that "
        "is backfilled",
    )
    p.add_argument(
        "--max-blocked-s", type=float, default=None, help="with block: hang up after S seconds"
    )
    p.add_argument(
        "--max-frame-bytes",
        type=int,
        default=16 << 20,
        help="largest WebSocket frame accepted (default 16 MiB); every accepted frame is "
        "parsed, whatever its size, and a larger one closes the connection like any "
        "disconnect (a gap, backfilled)",
    )
    p.add_argument(
        "--watchdog",
        choices=("us", "always", "off"),
        default="us",
        help="silence watchdog: us = only during NYSE extended hours (default), always, off",
    )
    p.add_argument(
        "--watchdog-min-s", type=float, default=15.0, help="shortest silence threshold (15)"
    )
    p.add_argument(
        "--watchdog-max-s", type=float, default=600.0, help="longest silence threshold (600)"
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="do not read the topic's tail at start (no restart gap, no unfinished repairs)",
    )
    p.add_argument(
        "--resume-records",
        type=int,
        default=100_000,
        help="records per partition read at start to resume (default 100,000)",
    )
    p.add_argument(
        "--late-margin-s",
        type=float,
        default=1.0,
        help="repair windows start this much before the last event seen (late prints)",
    )
    p.add_argument(
        "--close-after-s",
        type=float,
        default=5.0,
        help="SIP seconds after a reconnect that close a quiet symbol's gap (5)",
    )
    p.add_argument(
        "--max-backfill-s",
        type=float,
        default=6 * 3600.0,
        help="longest window asked from REST (default 6 h); a longer one is recorded as a "
        "failed gap with the reason",
    )
    p.add_argument(
        "--message-timeout-s",
        type=float,
        default=300.0,
        help="how long Kafka may be unreachable before a delivery fails (default 300)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus /metrics on this port (off by default; 9108 is the usual one)",
    )
    p.add_argument(
        "--metrics-host", default="127.0.0.1", help="metrics bind address (default 127.0.0.1)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=_run)


class _Progress:
    """One status line on a terminal; a line every few seconds otherwise."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.live = None
        self._last_print = 0.0
        if enabled and self.console.is_terminal:
            from rich.live import Live

            self.live = Live("", console=self.console, refresh_per_second=4, transient=True)
            self.live.start()

    def __call__(self, st: Any) -> None:
        if not self.enabled:
            return
        rate = st.trades / st.elapsed_s if st.elapsed_s > 0 else 0.0
        line = (
            f"frames {st.frames:,}  trades {st.trades:,} ({rate:,.0f}/s)  "
            f"rejects {st.reject_total:,}  delivered {st.delivered:,}/{st.sent:,}  "
            f"queue {st.queue_depth}  reconnects {st.disconnects}  gaps {st.gaps}  "
            f"backfilled {st.backfilled:,}"
        )
        if self.live is not None:
            self.live.update(line)
        elif time.monotonic() - self._last_print >= 5.0:
            self._last_print = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def summary_dict(st: Any, latency: Any) -> dict[str, Any]:
    """Return the summary printed by ``stream --json``."""
    return {
        "frames": st.frames,
        "trades": st.trades,
        "quotes": st.quotes,
        "aggregates": st.aggregates,
        "rejects": dict(st.rejects),
        "statuses": dict(st.statuses),
        "gaps": st.gaps,
        "gap_records": dict(st.gap_records),
        "gap_seconds": round(st.gap_seconds, 3),
        "backfilled": st.backfilled,
        "duplicates_skipped": st.duplicates_skipped,
        "repairs_failed": st.repairs_failed,
        "disconnects": st.disconnects,
        "sent": st.sent,
        "delivered": st.delivered,
        "elapsed_s": round(st.elapsed_s, 3),
        "trades_per_s": round(st.trades / st.elapsed_s, 1) if st.elapsed_s > 0 else None,
        "queue_high_water": st.queue_high_water,
        "queue_bytes_high_water": st.queue_bytes_high_water,
        "blocked_s": round(st.blocked_s, 3),
        "producer_blocked_s": round(st.producer_blocked_s, 3),
        "slow_consumer_drops": st.slow_consumer_drops,
        "watchdog_reconnects": st.watchdog_reconnects,
        "p50_receipt_to_ack_ms": _quantile_ms(latency, 0.5),
        "p99_receipt_to_ack_ms": _quantile_ms(latency, 0.99),
        "stop_reason": st.stop_reason,
    }


def _quantile_ms(latency: Any, q: float) -> float | None:
    """Bucket-bound quantile of receipt -> ack over trades (histogram resolution)."""
    h = latency.receipt_to_ack.get("trade")
    if h is None:
        return None
    value = h.quantile_s(q)
    return None if value is None else round(value * 1000, 3)


def rest_base(url: str, rest_url: str | None) -> str:
    """Return the REST base: explicit > $MICROSTRUCTURE_REST_URL > a replay server's own > Massive.

    Parameters
    ----------
    url
        The feed URL.
    rest_url
        ``--rest-url`` (None if not given).

    Returns
    -------
    str
        The base URL.
    """
    from pipeline.settings import DEFAULT_REST_URL

    if rest_url:
        return rest_url
    env = os.environ.get("MICROSTRUCTURE_REST_URL", "").strip()
    if env:
        return env
    parts = urlsplit(url)
    if parts.scheme == "ws" and parts.netloc:
        # A plain ws:// feed is a replay server; it serves REST v3 on the same port.
        return f"http://{parts.netloc}"
    return DEFAULT_REST_URL


def _run(args: argparse.Namespace) -> int:
    # A signal during start-up (reading the topic's tail can take seconds) must not kill the
    # process mid-way: remember it, start, and stop at once the normal way.
    early_stop: list[str] = []

    def remember_signal(signum: int, _frame: object) -> None:
        early_stop.append(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, remember_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _stream(args, early_stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stream(args: argparse.Namespace, early_stop: list[str]) -> int:
    import logging

    from pipeline.clock import SystemClock
    from pipeline.feed.rest import RestTrades
    from pipeline.feed.source import WebSocketSource
    from pipeline.feed.watchdog import AlwaysOpen, SilenceWatchdog, UsEquityHours
    from pipeline.kafka.consumer import watermarks
    from pipeline.kafka.producer import EventProducer
    from pipeline.metrics import REGISTRY, LatencyHistograms, StreamMetrics, serve_metrics
    from pipeline.retry import Backoff
    from pipeline.settings import Settings
    from pipeline.streamer import Recovery, Streamer, recover_from_kafka

    settings = Settings.from_env()
    if not settings.api_key:
        raise ConfigError("no API key: set MASSIVE_API_KEY (or POLYGON_API_KEY)")
    # One INFO line per REST page is noise next to our own gap records.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    symbols = [
        s for s in (args.symbols.split(",") if args.symbols else settings.symbols) if s.strip()
    ]
    if not symbols:
        raise ConfigError("no symbols: pass --symbols AAPL,MSFT or set MICROSTRUCTURE_SYMBOLS")
    kinds = [k.strip().upper() for k in args.channels.split(",") if k.strip()]
    topic = args.topic or settings.topic
    url = args.url or settings.feed_url
    bootstrap = settings.bootstrap_servers
    try:
        watermarks(bootstrap, topic, 10.0, extra_conf=settings.kafka_extra)
    except KafkaError as e:
        raise KafkaError(
            f"{e}; start Kafka and create the topic with `microstructure kafka up`"
        ) from e
    api_key = settings.api_key.get()
    recovery: Recovery | None = None
    if not args.no_resume:
        recovery = recover_from_kafka(
            bootstrap,
            topic,
            records_per_partition=args.resume_records,
            late_margin_ns=round(args.late_margin_s * 1e9),
            extra_conf=settings.kafka_extra,
        )
        if recovery.before_sip is not None or recovery.pending:
            print(
                f"resuming: {recovery.records_read:,} tail records read, "
                f"{len(recovery.pending)} unfinished repairs",
                file=sys.stderr,
            )
    latency = LatencyHistograms()
    producer = EventProducer(
        bootstrap,
        topic,
        extra_conf=settings.kafka_extra,
        latency_sink=latency,
        message_timeout_ms=round(args.message_timeout_s * 1000),
    )
    progress = _Progress(enabled=not args.quiet and not args.json)
    clock = SystemClock()
    rest: RestTrades | None = None
    if not args.no_backfill:
        rest = RestTrades(rest_base(url, args.rest_url), api_key)
    watchdog: SilenceWatchdog | None = None
    if args.watchdog != "off":
        watchdog = SilenceWatchdog(
            clock,
            UsEquityHours() if args.watchdog == "us" else AlwaysOpen(),
            min_silence_s=args.watchdog_min_s,
            max_silence_s=args.watchdog_max_s,
            can_probe=rest is not None,
        )
    streamer = Streamer(
        source=WebSocketSource(url, max_frame_bytes=args.max_frame_bytes),
        producer=producer,
        api_key=api_key,
        symbols=symbols,
        kinds=kinds,
        clock=clock,
        queue_size=args.queue_size or settings.queue_size,
        queue_bytes=args.queue_bytes or settings.queue_bytes,
        ring_bytes=args.ring_bytes,
        dedup_bytes=args.dedup_bytes,
        max_events=args.max_events,
        idle_exit_s=args.idle_exit_s,
        exit_on_close=args.exit_on_close,
        backoff=Backoff(max_attempts=args.max_reconnects),
        on_progress=progress,
        rest=rest,
        slow_consumer=args.slow_consumer,
        max_blocked_s=args.max_blocked_s,
        watchdog=watchdog,
        latency=latency,
        recovery=recovery,
        late_margin_s=args.late_margin_s,
        close_after_s=args.close_after_s,
        max_backfill_s=args.max_backfill_s,
    )
    metrics_server = None
    collector = None
    if args.metrics_port is not None:
        collector = StreamMetrics(streamer.metrics_snapshot, latency)
        REGISTRY.register(collector)
        metrics_server = serve_metrics(args.metrics_port, host=args.metrics_host)
        print(f"metrics on {metrics_server.url}", file=sys.stderr)
    print(
        f"streaming {','.join(streamer.channels)} from {url} into {topic} at {bootstrap}",
        file=sys.stderr,
    )

    async def main() -> Any:
        # SIGINT/SIGTERM stop reading, then everything received is produced and flushed.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, streamer.request_stop, f"signal {sig.name}")
        if early_stop:
            streamer.request_stop(early_stop[0])
        try:
            return await streamer.run()
        finally:
            if rest is not None:
                await rest.aclose()

    try:
        st = asyncio.run(main())
    finally:
        progress.stop()
        if metrics_server is not None:
            metrics_server.close()
        if collector is not None:
            REGISTRY.unregister(collector)
    summary = summary_dict(st, latency)
    if args.json:
        print(orjson.dumps(summary).decode())
        return 0
    rejects = ", ".join(f"{k} {v}" for k, v in sorted(st.rejects.items())) or "none"
    p50, p99 = summary["p50_receipt_to_ack_ms"], summary["p99_receipt_to_ack_ms"]
    lat = f"<= {p50} / <= {p99} ms" if p50 is not None and p99 is not None else "n/a"
    print(f"stopped: {st.stop_reason or 'done'} after {st.elapsed_s:.1f} s")
    print(f"frames           {st.frames:,} ({st.frame_bytes:,} bytes)")
    print(f"trades           {st.trades:,} ({summary['trades_per_s'] or 0:,.0f}/s)")
    if st.quotes or st.aggregates:
        print(f"quotes, bars     {st.quotes:,}, {st.aggregates:,}")
    print(f"rejects          {st.reject_total:,} ({rejects})")
    print(f"statuses         {dict(st.statuses)}")
    print(
        f"disconnects      {st.disconnects} (gaps {st.gaps}, records {dict(st.gap_records)}, "
        f"{st.gap_seconds:.1f} s of SIP time)"
    )
    print(
        f"backfilled       {st.backfilled:,} trades from REST, "
        f"{st.duplicates_skipped:,} duplicates skipped"
    )
    print(f"delivered        {st.delivered:,} of {st.sent:,} messages, all acknowledged (acks=all)")
    print(f"receipt->ack     p50 / p99 {lat} (histogram buckets)")
    return 0
