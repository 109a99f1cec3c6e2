"""``microstructure replay-server FILE``: replay a trades file over the stocks WebSocket API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
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
        help="local Polygon/Massive-protocol WebSocket server replaying a trades file",
        description="Serve a plain trades CSV or a Polygon trades_v1 flat file (optionally .gz) "
        "over the stocks WebSocket protocol: status frames, auth, subscribe, T events.",
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
    )

    async def main() -> None:
        await server.start()
        speed = "max" if args.speed is None else f"{args.speed:g}x"
        print(f"replay server on {server.url} (speed {speed}); Ctrl-C stops", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    st = server.stats
    print(f"served {st.connections} connections, {st.frames_sent} frames, {st.trades_sent} trades")
    return 0
