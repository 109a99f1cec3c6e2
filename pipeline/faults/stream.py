"""``microstructure faults stream``: disconnects, a broker restart and kill -9 during a live replay.

The set-up is the production path end to end: a throwaway local KRaft broker on free ports,
the replay test double as a *live* session (shared timeline, ``--rate`` events/s,
REST v3 on the same port), and ``microstructure stream`` as a child process (the real
command: resume from the topic's tail, gap backfill from REST, idempotent producer).

During the session the campaign

- drops every connection every ``--drop-every-s`` seconds (TCP reset: the client sees
  1006 and misses what is sent while it reconnects);
- kills the streamer with SIGKILL at ``--kill-at-s`` and starts a new one
  ``--restart-after-s`` later: it resumes from the last records in Kafka;
- restarts the broker at ``--broker-restart-at-s`` (SIGTERM, then start on the same
  data directory and ports): the streamer buffers, then waits, then resumes.

The streamer subscribes to ``T.*``, and one of the ``--events`` prints is by an
*illiquid* ticker (``ILLQ``): the session's first event, stamped an hour before the
others, and its only one. At the kill -9, ILLQ's last trade in Kafka is an hour older
than everyone else's, and the streamer runs with ``--max-backfill-s`` 30 min: the
restart must give each symbol its own window, fail ILLQ's alone (it missed nothing) and
backfill the rest (issue 14.9: one window for all symbols lost every symbol's downtime).
ILLQ prints nothing after its first print, so however late a loaded machine restarts the
streamer, ILLQ's failed window never holds a print (a second print at the session's end
fell inside the outage when the restart took longer than the session).

Either fault waits for the other to be over (a streamer that is starting reads Kafka; a
kill right after Kafka's return would only test the start-up). A fault the session ended
before is reported and fails the campaign.

Drops stop a few seconds before the session ends (a gap that opens after the last event
can never close: nothing follows it). After the session, SIGTERM lets the streamer finish
its repairs and flush, then the topic is read back and compared with the source by the
dedup key ``(symbol, trade_date, exchange, trf_id, trade_id)``:

- ``source``: distinct prints the session published;
- ``delivered``: distinct source prints found in Kafka;
- ``lost``: source prints not in Kafka (``source - delivered``);
- ``duplicated``: trade records beyond the first of their key;
- ``gaps_backfilled``: gap records whose repair outcome is ``backfilled``.

``--json`` prints exactly ``{"source", "delivered", "lost", "duplicated",
"gaps_backfilled"}``; the exit code is 1 if anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

API_KEY = "faults"
TOPIC = "faults-stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the campaign's options (``--json`` is added by the ``faults`` command)."""
    parser.add_argument("--events", type=int, default=60_000, help="prints in the session")
    parser.add_argument("--rate", type=float, default=2_000.0, help="events/s (2,000)")
    parser.add_argument(
        "--symbols", type=int, default=20, help="liquid tickers (20), plus one illiquid"
    )
    parser.add_argument("--drop-every-s", type=float, default=4.0, help="disconnect period")
    parser.add_argument(
        "--broker-restart-at-s",
        type=float,
        default=9.0,
        help="restart Kafka at (-1: never); waits for a restarted streamer to subscribe",
    )
    parser.add_argument(
        "--kill-at-s",
        type=float,
        default=5.0,
        help="kill -9 the streamer at (-1: never); waits for Kafka to be back for 2 s",
    )
    parser.add_argument(
        "--restart-after-s", type=float, default=1.0, help="start a new streamer after"
    )
    parser.add_argument("--partitions", type=int, default=3, help="topic partitions")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")


@dataclass
class Outcome:
    """What the campaign found."""

    source: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    gaps_backfilled: int = 0
    gap_records: Counter[str] = field(default_factory=lambda: Counter[str]())
    unexpected: int = 0
    rest_trades: int = 0
    rejects: int = 0
    events: list[str] = field(default_factory=lambda: list[str]())
    streamer_exits: list[int | None] = field(default_factory=lambda: list[int | None]())
    skipped: list[str] = field(default_factory=lambda: list[str]())
    wall_s: float = 0.0

    def as_json(self) -> dict[str, int]:
        """Return the five figures of ``--json``."""
        return {
            "source": self.source,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "gaps_backfilled": self.gaps_backfilled,
        }


ILLIQUID = "ILLQ"
ILLIQUID_SILENCE_NS = 3600 * 1_000_000_000  # its first print's age at the others' first
MAX_BACKFILL_S = 1800.0  # longer than any downtime here, shorter than ILLQ's silence


def _with_illiquid(trades: list[Any]) -> list[Any]:
    """Return ``trades`` with an illiquid ticker's only print first (same count)."""
    from dataclasses import replace

    first = trades[0]
    return [
        replace(
            first,
            symbol=ILLIQUID,
            sip_timestamp_ns=first.sip_timestamp_ns - ILLIQUID_SILENCE_NS,
            trade_id="1",
        ),
        *trades[1:],
    ]


def _stream_cmd(url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline.cli",
        "stream",
        "--symbols",
        "*",
        "--max-backfill-s",
        str(MAX_BACKFILL_S),
        "--url",
        url,
        "--topic",
        TOPIC,
        "--watchdog",
        "off",
        "--quiet",
        "--json",
        "--close-after-s",
        "2",
        "--message-timeout-s",
        "300",
    ]


async def _campaign(args: argparse.Namespace, workdir: Path, out: Outcome) -> None:
    from pipeline.bench.stream import synthetic_trades
    from pipeline.feed.replay_server import ReplayServer
    from pipeline.kafka.broker import LocalBroker, ensure_topic, free_port
    from pipeline.settings import Settings

    settings = Settings.from_env()
    broker = LocalBroker(
        kafka_home=settings.home / "kafka",
        version=settings.kafka_version,
        port=free_port(),
        controller_port=free_port(),
        state_dir=workdir / "broker",
        heap_mb=512,
        die_with_parent=True,
    )
    await asyncio.to_thread(broker.fetch)
    await asyncio.to_thread(broker.up, 120.0)
    procs: list[asyncio.subprocess.Process] = []
    t_start = time.monotonic()

    def note(text: str) -> None:
        out.events.append(f"{time.monotonic() - t_start:6.1f} s  {text}")

    try:
        await asyncio.to_thread(
            ensure_topic, broker.bootstrap, TOPIC, args.partitions, timeout_s=60.0
        )
        trades = _with_illiquid(synthetic_trades(args.events, args.symbols, seed=11))
        srv = ReplayServer(
            trades, api_key=API_KEY, rate=args.rate, shared_timeline=True, frame_events=50
        )
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "MASSIVE_API_KEY": API_KEY,
            "MICROSTRUCTURE_QUIET": "1",
        }
        env.pop("MICROSTRUCTURE_REST_URL", None)
        async with srv:
            log_no = 0

            auth_before_latest = 0

            async def spawn() -> asyncio.subprocess.Process:
                nonlocal log_no, auth_before_latest
                log_no += 1
                auth_before_latest = srv.stats.authenticated
                stdout = (workdir / f"stream-{log_no}.out").open("wb")
                stderr = (workdir / f"stream-{log_no}.err").open("wb")
                proc = await asyncio.create_subprocess_exec(
                    *_stream_cmd(srv.url), env=env, stdout=stdout, stderr=stderr
                )
                stdout.close()
                stderr.close()
                procs.append(proc)
                note(f"streamer {log_no} started (pid {proc.pid})")
                return proc

            async def restart_broker() -> None:
                note("broker: stopping")
                await asyncio.to_thread(broker.down, 30.0)
                note("broker: down; starting again")
                await asyncio.to_thread(broker.up, 120.0)
                nonlocal broker_up_at
                broker_up_at = time.monotonic()
                note("broker: up")

            broker_up_at = 0.0
            restarting: asyncio.Task[None] | None = None
            proc = await spawn()
            # The session opens with the first subscription; give the child time to start.
            while srv.stats.subscriptions == [] and proc.returncode is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            t0 = time.monotonic()
            note("session opened")
            duration = srv.duration_s
            drops_until = duration - 3.0
            next_drop = args.drop_every_s
            broker_at = args.broker_restart_at_s if args.broker_restart_at_s >= 0 else None
            kill_at = args.kill_at_s if args.kill_at_s >= 0 else None
            restart_at: float | None = None
            while True:
                now = time.monotonic() - t0
                if now >= duration + 2.0:
                    break
                if next_drop is not None and now >= next_drop:
                    if now < drops_until:
                        n = srv.drop_all("abort")
                        note(f"dropped {n} connection(s)")
                        next_drop += args.drop_every_s
                    else:
                        next_drop = None
                if (
                    broker_at is not None
                    and now >= broker_at
                    # Not while a restarted streamer is still starting (it reads Kafka).
                    and restart_at is None
                    and srv.stats.authenticated > auth_before_latest
                ):
                    broker_at = None
                    restarting = asyncio.create_task(restart_broker())
                if (
                    kill_at is not None
                    and now >= kill_at
                    # Not while Kafka is down (the new streamer resumes from Kafka's tail),
                    # and not before the streamer had a moment to deliver its backlog.
                    and (restarting is None or restarting.done())
                    and time.monotonic() - broker_up_at >= 2.0
                ):
                    kill_at = None
                    proc.send_signal(signal.SIGKILL)
                    out.streamer_exits.append(await proc.wait())
                    note(f"streamer killed with SIGKILL (exit {proc.returncode})")
                    restart_at = now + args.restart_after_s
                if restart_at is not None and now >= restart_at:
                    restart_at = None
                    proc = await spawn()
                if proc.returncode is not None and restart_at is None:
                    raise RuntimeError(
                        f"the streamer exited early ({proc.returncode}); see {workdir}/stream-*.err"
                    )
                await asyncio.sleep(0.05)
            for what, pending_at in (("broker restart", broker_at), ("kill -9", kill_at)):
                if pending_at is not None:
                    out.skipped.append(what)
                    note(f"{what} NOT done: the session ended first (use more --events)")
            if restarting is not None:
                await restarting
            # A streamer started late must be subscribed before it is asked to stop.
            # (Generous: on a loaded machine a start-up has taken most of a minute.)
            deadline = time.monotonic() + 180.0
            while srv.stats.authenticated <= auth_before_latest:
                if time.monotonic() > deadline or proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            note("session over; stopping the streamer (SIGTERM: repair, flush, exit)")
            proc.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(proc.wait(), 300.0)
            except TimeoutError:
                proc.send_signal(signal.SIGKILL)
                code = await proc.wait()
            out.streamer_exits.append(code)
            note(f"streamer exited ({code})")
            out.rest_trades = srv.stats.rest_trades
        await asyncio.to_thread(_check, broker.bootstrap, trades, out)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await asyncio.to_thread(broker.down, 30.0)


def _check(bootstrap: str, trades: list[Any], out: Outcome) -> None:
    from pipeline.events import Gap, Reject, Trade
    from pipeline.feed.dedup import dedup_key
    from pipeline.kafka.codec import decode_event
    from pipeline.kafka.consumer import read_range, watermarks
    from pipeline.kafka.offsets import OffsetRange

    def key(t: Trade) -> Any:
        return dedup_key(
            {
                "symbol": t.symbol,
                "sip_timestamp_ns": t.sip_timestamp_ns,
                "exchange": t.exchange,
                "trf_id": t.trf_id,
                "trade_id": t.trade_id,
            }
        )

    source = {key(t) for t in trades}
    seen: Counter[Any] = Counter()
    backfilled: set[str] = set()
    for p, (low, high) in watermarks(bootstrap, TOPIC, 30.0).items():
        for r in read_range(bootstrap, OffsetRange(TOPIC, p, low, high), 120.0):
            ev = decode_event(r.value, r.headers)
            if isinstance(ev, Trade):
                seen[key(ev)] += 1
            elif isinstance(ev, Gap):
                out.gap_records[ev.repair] += 1
                if ev.repair == "backfilled":
                    backfilled.add(ev.gap_id)
            elif isinstance(ev, Reject):
                out.rejects += 1
    out.source = len(source)
    out.delivered = len(source & set(seen))
    out.lost = len(source - set(seen))
    out.duplicated = sum(n - 1 for n in seen.values())
    out.unexpected = len(set(seen) - source)
    out.gaps_backfilled = len(backfilled)


def run(args: argparse.Namespace) -> int:
    """Run the campaign and print its table (one JSON object with ``--json``).

    Parameters
    ----------
    args
        Parsed options.

    Returns
    -------
    int
        0 if Kafka holds exactly the source's prints, each once; 1 otherwise.
    """
    import logging

    # The replay server's per-connection INFO lines would bury the table.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="faults-stream-"))
    out = Outcome()
    t0 = time.monotonic()
    try:
        asyncio.run(_campaign(args, workdir, out))
    finally:
        out.wall_s = time.monotonic() - t0
        if not args.keep and out.lost == 0 and out.duplicated == 0 and out.source:
            shutil.rmtree(workdir, ignore_errors=True)
    ok = (
        out.source > 0
        and out.lost == 0
        and out.duplicated == 0
        and out.unexpected == 0
        and not out.skipped
    )
    if args.json:
        print(json.dumps(out.as_json()))
        return 0 if ok else 1
    for line in out.events:
        print(line)
    print()
    print(f"{'source':<18}{out.source:>10,}   prints published by the session")
    print(f"{'delivered':<18}{out.delivered:>10,}   distinct source prints in Kafka")
    print(f"{'lost':<18}{out.lost:>10,}")
    print(f"{'duplicated':<18}{out.duplicated:>10,}   records beyond the first per dedup key")
    print(
        f"{'gaps backfilled':<18}{out.gaps_backfilled:>10,}   "
        f"(gap records by outcome: {dict(out.gap_records)}; {out.rest_trades:,} rows from REST)"
    )
    if out.unexpected or out.rejects:
        print(
            f"{'unexpected':<18}{out.unexpected:>10,}   trades not in the source; "
            f"rejects {out.rejects}"
        )
    print(f"streamer exit codes {out.streamer_exits}; {out.wall_s:.0f} s in all")
    if not ok:
        print(f"FAILED: work directory kept at {workdir}")
    return 0 if ok else 1
