"""``microstructure replay-server FILE``: replay a trades file over the stocks WebSocket API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)


def parse_speed(text: str) -> float | None:
    """Return the replay speed: ``max`` -> None, else a positive multiple of SIP time."""
    if text.strip().lower() in ("max", "inf", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed {text!r} is not a number or 'max'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"speed {value} must be positive (or 'max')")
    return value


def register(sub: Any) -> None:
    """Add the ``replay-server`` subcommand."""
    p = sub.add_parser(
        "replay-server",
        help="local Polygon/Massive test double (WebSocket + REST v3 trades) replaying a file",
        description="Serve a plain trades CSV or a Polygon trades_v1 flat file (optionally .gz) "
        "over the stocks WebSocket protocol (status frames, auth, subscribe, T events, A/AM "
        "bars built from the trades) and the REST v3 trades endpoint on the same port, with "
        "scripted faults: disconnects, slow-reader kills, key revocation, REST errors.",
    )
    p.add_argument(
        "file", type=Path, help="plain trades CSV or Polygon us_stocks_sip/trades_v1 CSV"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8865, help="port (default 8865; 0 = any free)")
    p.add_argument(
        "--speed", type=parse_speed, default=None, help="1, 100, ... x SIP time, or max (default)"
    )
    p.add_argument(
        "--api-key",
        default=None,
        help="key clients must send (default: $MASSIVE_API_KEY, else 'replay')",
    )
    p.add_argument(
        "--frame-events", type=int, default=100, help="most T events per frame (default 100)"
    )
    p.add_argument(
        "--tape",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="z for files without a tape (default 1)",
    )
    p.add_argument("--limit", type=int, default=None, help="replay only the first N prints")
    p.add_argument(
        "--max-pause-s", type=float, default=None, help="cap any single wait (e.g. overnight)"
    )
    p.add_argument(
        "--max-connections", type=int, default=1, help="simultaneous clients (default 1)"
    )
    p.add_argument("--auth-timeout-s", type=float, default=10.0, help="auth deadline (default 10)")
    p.add_argument(
        "--close-at-end",
        action="store_true",
        help="close connections normally when the replay ends",
    )
    p.add_argument("--rate", type=float, default=None, help="pace by events/s instead of SIP time")
    p.add_argument(
        "--shared-timeline",
        action="store_true",
        help="one live session for every connection (needs --speed or --rate): a reconnecting "
        "client misses what was sent while it was away, as with the real feed",
    )
    p.add_argument(
        "--drop-every-s", type=float, default=None, help="end each connection after S seconds"
    )
    p.add_argument(
        "--drop-after-events", type=int, default=None, help="end each connection after N events"
    )
    p.add_argument(
        "--drop-mode",
        choices=("abort", "going_away", "force_disconnect"),
        default="abort",
        help="how scripted drops end a connection (default abort: TCP reset, client sees 1006)",
    )
    p.add_argument(
        "--slow-reader-timeout-s",
        type=float,
        default=None,
        help="cut off a client that leaves the server buffer full this long",
    )
    p.add_argument(
        "--write-buffer-bytes",
        type=int,
        default=1 << 20,
        help="server-side buffer per client (default 1 MiB)",
    )
    p.add_argument(
        "--revoke-key-after", type=int, default=None, help="auth_failed after N connections"
    )
    p.add_argument(
        "--rest-failures", type=int, default=0, help="the first N REST requests get 429/503"
    )
    p.set_defaults(func=_run)


def load_trades(path: Path, *, tape: int | None, limit: int | None) -> tuple[list[Any], Any]:
    """Read the prints of a trades file (rows that cannot be read are counted, not served)."""
    from pipeline.events import Trade
    from pipeline.feed.files import FileStats, read_trades

    stats = FileStats()
    trades: list[Trade] = []
    for item in read_trades(path, default_tape=tape, stats=stats):
        if isinstance(item, Trade):
            trades.append(item)
            if limit is not None and len(trades) >= limit:
                break
    return trades, stats


def _run(args: argparse.Namespace) -> int:
    from pipeline.feed.replay_server import ReplayServer
    from pipeline.settings import Settings

    settings = Settings.from_env()
    key = args.api_key or settings.api_key.get() or "replay"
    if args.frame_events < 1:
        raise ConfigError(f"--frame-events is {args.frame_events} and must be at least 1")
    trades, stats = load_trades(args.file, tape=args.tape, limit=args.limit)
    unmapped_x = dict(stats.unmapped_exchanges)
    unmapped_c = dict(stats.unmapped_conditions)
    print(
        f"{args.file}: {stats.format} file, {len(trades)} prints to replay, "
        f"{sum(stats.rejects.values())} unreadable rows; "
        f"unmapped TAQ exchanges {unmapped_x or 'none'}, "
        f"conditions {unmapped_c or 'none'}"
    )
    server = ReplayServer(
        trades,
        api_key=key,
        speed=args.speed,
        host=args.host,
        port=args.port,
        frame_events=args.frame_events,
        auth_timeout_s=args.auth_timeout_s,
        max_connections=args.max_connections,
        max_pause_s=args.max_pause_s,
        close_at_end=args.close_at_end,
        rate=args.rate,
        shared_timeline=args.shared_timeline,
        drop_every_s=args.drop_every_s,
        drop_after_events=args.drop_after_events,
        drop_mode=args.drop_mode,
        slow_reader_timeout_s=args.slow_reader_timeout_s,
        write_buffer_bytes=args.write_buffer_bytes,
        revoke_key_after=args.revoke_key_after,
        rest_failures=args.rest_failures,
    )

    async def main() -> None:
        await server.start()
        speed = "max" if args.speed is None else f"{args.speed:g}x"
        if args.rate is not None:
            speed = f"{args.rate:g} events/s"
        print(
            f"replay server on {server.url} (speed {speed}; REST v3 at {server.rest_url}); "
            "Ctrl-C stops",
            flush=True,
        )
        with _replay_progress(len(trades)) as show:
            watcher = asyncio.ensure_future(_watch(server, show))
            try:
                await server.serve_forever()
            finally:
                watcher.cancel()

    t0 = time.monotonic()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    st = server.stats
    elapsed = time.monotonic() - t0
    rate = (
        f" in {elapsed:.1f} s up ({st.trades_sent / elapsed:,.0f} trades/s over the uptime)"
        if elapsed > 0
        else ""
    )
    print(
        f"served {st.connections} connections, {st.frames_sent} frames, {st.trades_sent} trades, "
        f"{st.bars_sent} bars{rate}; {st.drops} drops, {st.slow_reader_kills} slow-reader kills; "
        f"REST {st.rest_requests} requests, {st.rest_trades} trades"
    )
    return 0


@contextlib.contextmanager
def _replay_progress(total: int) -> Iterator[Callable[[int], None]]:
    """Yield ``show(trades_sent)`` driving a progress bar on a terminal (nothing in logs)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]trades served"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task("served", total=total)
        yield lambda n: progress.update(task, completed=n)


async def _watch(server: Any, show: Callable[[int], None]) -> None:
    """Refresh the progress bar from the server's counters (trades to every client)."""
    while True:
        show(server.stats.trades_sent)
        await asyncio.sleep(0.5)
