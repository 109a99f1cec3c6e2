"""``microstructure stream``: Polygon/Massive WebSocket -> Kafka, with a summary at the end."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

import orjson

from pipeline.errors import ConfigError, KafkaError


def register(sub: Any) -> None:
    """Add the ``stream`` subcommand."""
    p = sub.add_parser(
        "stream",
        help="stream T trades from Massive/Polygon (or a replay-server) into Kafka",
        description="Connect to the feed (MICROSTRUCTURE_FEED_URL, the real Massive URL by "
        "default), authenticate with MASSIVE_API_KEY or POLYGON_API_KEY, subscribe to "
        "T.<symbols>, and produce "
        "every trade and reject to Kafka with acks=all. Exits non-zero if a delivery fails.",
    )
    p.add_argument(
        "--symbols",
        default=None,
        help="comma list, e.g. AAPL,MSFT or * (default $MICROSTRUCTURE_SYMBOLS)",
    )
    p.add_argument(
        "--url",
        default=None,
        help="feed URL (default $MICROSTRUCTURE_FEED_URL or wss://socket.massive.com/stocks)",
    )
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
        help="give up after N failed attempts (default: never)",
    )
    p.add_argument(
        "--queue-size",
        type=int,
        default=None,
        help="frame queue bound (default $MICROSTRUCTURE_QUEUE_SIZE)",
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
            f"queue {st.queue_depth}  reconnects {st.disconnects}"
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
        "rejects": dict(st.rejects),
        "statuses": dict(st.statuses),
        "gaps": st.gaps,
        "disconnects": st.disconnects,
        "sent": st.sent,
        "delivered": st.delivered,
        "elapsed_s": round(st.elapsed_s, 3),
        "trades_per_s": round(st.trades / st.elapsed_s, 1) if st.elapsed_s > 0 else None,
        "queue_high_water": st.queue_high_water,
        "blocked_s": round(st.blocked_s, 3),
        "p50_receipt_to_ack_ms": latency.percentile_ms(50),
        "p99_receipt_to_ack_ms": latency.percentile_ms(99),
        "stop_reason": st.stop_reason,
    }


def _run(args: argparse.Namespace) -> int:
    from pipeline.feed.source import WebSocketSource
    from pipeline.feed.supervisor import Backoff
    from pipeline.kafka.consumer import watermarks
    from pipeline.kafka.producer import EventProducer, LatencyRecorder
    from pipeline.settings import Settings
    from pipeline.streamer import Streamer

    settings = Settings.from_env()
    if not settings.api_key:
        raise ConfigError("no API key: set MASSIVE_API_KEY (or POLYGON_API_KEY)")
    symbols = [
        s for s in (args.symbols.split(",") if args.symbols else settings.symbols) if s.strip()
    ]
    if not symbols:
        raise ConfigError("no symbols: pass --symbols AAPL,MSFT or set MICROSTRUCTURE_SYMBOLS")
    topic = args.topic or settings.topic
    url = args.url or settings.feed_url
    bootstrap = settings.bootstrap_servers
    try:
        watermarks(bootstrap, topic, 10.0, extra_conf=settings.kafka_extra)
    except KafkaError as e:
        raise KafkaError(
            f"{e}; start Kafka and create the topic with `microstructure kafka up`"
        ) from e
    latency = LatencyRecorder()
    producer = EventProducer(bootstrap, topic, extra_conf=settings.kafka_extra, on_ack=latency)
    progress = _Progress(enabled=not args.quiet and not args.json)
    streamer = Streamer(
        source=WebSocketSource(url),
        producer=producer,
        api_key=settings.api_key.get(),
        symbols=symbols,
        queue_size=args.queue_size or settings.queue_size,
        max_events=args.max_events,
        idle_exit_s=args.idle_exit_s,
        exit_on_close=args.exit_on_close,
        backoff=Backoff(max_attempts=args.max_reconnects),
        on_progress=progress,
    )
    print(
        f"streaming {','.join(streamer.channels)} from {url} into {topic} at {bootstrap}",
        file=sys.stderr,
    )

    async def main() -> Any:
        # SIGINT/SIGTERM stop reading, then everything received is produced and flushed.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, streamer.request_stop, f"signal {sig.name}")
        return await streamer.run()

    try:
        st = asyncio.run(main())
    finally:
        progress.stop()
    summary = summary_dict(st, latency)
    if args.json:
        print(orjson.dumps(summary).decode())
        return 0
    rejects = ", ".join(f"{k} {v}" for k, v in sorted(st.rejects.items())) or "none"
    p50, p99 = summary["p50_receipt_to_ack_ms"], summary["p99_receipt_to_ack_ms"]
    lat = f"{p50:.2f} / {p99:.2f} ms" if p50 is not None and p99 is not None else "n/a"
    print(f"stopped: {st.stop_reason or 'done'} after {st.elapsed_s:.1f} s")
    print(f"frames           {st.frames:,} ({st.frame_bytes:,} bytes)")
    print(f"trades           {st.trades:,} ({summary['trades_per_s'] or 0:,.0f}/s)")
    print(f"rejects          {st.reject_total:,} ({rejects})")
    print(f"statuses         {dict(st.statuses)}")
    print(f"disconnects      {st.disconnects} (gap records {st.gaps})")
    print(f"delivered        {st.delivered:,} of {st.sent:,} messages, all acknowledged (acks=all)")
    print(f"receipt->ack     p50 / p99 {lat}")
    return 0
