"""``microstructure bench stream``: replay server -> streamer -> Kafka, events/s and receipt -> ack.

Set-up: a throwaway local KRaft broker on free ports (or ``--bootstrap`` /
``KAFKA_BOOTSTRAP_SERVERS``), a fresh 4-partition topic per phase, and the replay server
in its own process (so it does not share the streamer's interpreter lock), serving
``--symbols`` synthetic tickers in frames of ``--frame-events`` (100) trade events, as
the provider batches them. The streamer is the production one (``pipeline.streamer``:
reader -> bounded queue -> parser -> idempotent producer, acks=all, every delivery
report checked, its delivery-report thread on).

Phases (after ``--warmup-events`` records to a scratch topic: a broker JVM that just
started compiles its hot paths for a while, and that is not the streamer's latency):

1. **Maximum rate.** The server sends ``--events`` (1,000,000) as fast as the socket
   takes them. Sustained events/s = events acknowledged / (last ack - first receipt);
   receipt -> ack percentiles are printed too (they measure queueing at saturation).
2. **Fixed rate.** The server sends ``--rate`` (10,000) events/s for ``--warmup-s`` (5)
   plus ``--seconds`` (10). Latency of each event = Kafka ack time - receipt time (the
   frame read from the socket), both on this process's clock; the first ``--warmup-s`` are
   left out (connection set-up, producer id, and a broker JVM that keeps compiling for a
   while after a million records). p50 / p99 / max in ms over the measured seconds.

Figures are printed, never asserted. ``--json`` prints exactly
``{"max_events_per_s", "p50_ms_at_10k", "p99_ms_at_10k", "max_ms_at_10k"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

TOPIC_PREFIX = "bench-stream"
API_KEY = "bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options (``--json`` is added by the ``bench`` command)."""
    parser.add_argument(
        "--rate", type=float, default=10_000.0, help="fixed-rate phase events/s (10,000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="fixed-rate phase: measured seconds (10)"
    )
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=5.0,
        help="fixed-rate phase: seconds sent first and left out (5)",
    )
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="phase 2 events at max rate (1,000,000)"
    )
    parser.add_argument("--symbols", type=int, default=100, help="synthetic tickers (100)")
    parser.add_argument("--frame-events", type=int, default=100, help="events per frame (100)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (4)")
    parser.add_argument(
        "--linger-ms", type=float, default=1.0, help="producer linger.ms (the streamer's: 1)"
    )
    parser.add_argument(
        "--bootstrap", default=None, help="use this Kafka instead of a throwaway local broker"
    )
    parser.add_argument(
        "--warmup-events",
        type=int,
        default=1_000_000,
        help="records produced to a scratch topic first, so a fresh broker JVM is warm (1,000,000)",
    )
    parser.add_argument("--skip-fixed", action="store_true", help="only the max-rate phase")
    parser.add_argument("--skip-max", action="store_true", help="only the fixed-rate phase")


def synthetic_trades(n: int, symbols: int, seed: int = 7) -> list[Any]:
    """Return ``n`` trades over ``symbols`` tickers, 1 ms apart, with realistic fields.

    Parameters
    ----------
    n
        Number of prints.
    symbols
        Number of tickers (``S000``...).
    seed
        Random seed (deterministic).

    Returns
    -------
    list[Trade]
        Prints in SIP order; ids count per (symbol, exchange) like the provider's.
    """
    import random

    from pipeline.events import Trade

    rng = random.Random(seed)  # noqa: S311 - synthetic data, not cryptography
    names = [f"S{k:03d}" for k in range(symbols)]
    prices = [50.0 + rng.random() * 200 for _ in names]
    ids: dict[tuple[int, int], int] = {}
    conds = [(), (), (), (14,), (12, 37), (37,)]
    t0 = 1_700_000_000_000_000_000
    out: list[Trade] = []
    for k in range(n):
        s = rng.randrange(symbols)
        x = rng.choice((4, 10, 11, 12, 19))
        prices[s] = max(1.0, prices[s] + rng.choice((-0.01, 0.0, 0.01)))
        nid = ids.get((s, x), 0) + 1
        ids[(s, x)] = nid
        out.append(
            Trade(
                symbol=names[s],
                sip_timestamp_ns=t0 + k * 1_000_000,
                price=round(prices[s], 2),
                size=rng.choice((1, 5, 100, 100, 200, 300)),
                exchange=x,
                trade_id=str(nid),
                tape=1,
                conditions=rng.choice(conds),
                sequence_number=k + 1,
                source="ws",
            )
        )
    return out


def _serve(conn: Any, n: int, symbols: int, rate: float | None, frame_events: int) -> None:
    """Child process: serve the synthetic day until terminated; send the port back."""
    from pipeline.feed.replay_server import ReplayServer

    trades = synthetic_trades(n, symbols)

    async def main() -> None:
        srv = ReplayServer(
            trades,
            api_key=API_KEY,
            rate=rate,
            frame_events=frame_events,
            close_at_end=True,
            write_buffer_bytes=1 << 20,
        )
        await srv.start()
        conn.send(srv.port)
        await srv.serve_forever()

    asyncio.run(main())


def _phase(
    bootstrap: str,
    topic: str,
    *,
    events: int,
    symbols: int,
    rate: float | None,
    frame_events: int,
    linger_ms: float = 1.0,
) -> dict[str, Any]:
    from pipeline.feed.source import WebSocketSource
    from pipeline.kafka.producer import EventProducer
    from pipeline.streamer import Streamer

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_serve, args=(child, events, symbols, rate, frame_events), daemon=True
    )
    proc.start()
    try:
        deadline = time.monotonic() + 180.0
        while not parent.poll(0.5):
            if not proc.is_alive():
                raise RuntimeError(f"the replay server process exited ({proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError("the replay server process did not start within 180 s")
        port = parent.recv()
        rec = _Recorder()
        producer = EventProducer(
            bootstrap,
            topic,
            latency_sink=rec,
            message_timeout_ms=120_000,
            queue_max_messages=500_000,
            linger_ms=linger_ms,
        )
        streamer = Streamer(
            source=WebSocketSource(f"ws://127.0.0.1:{port}"),
            producer=producer,
            api_key=API_KEY,
            symbols=["*"],
            exit_on_close=True,
            queue_size=2_000,
            flush_timeout_s=120.0,
            progress_interval_s=1.0,
        )
        t0 = time.monotonic()
        stats = asyncio.run(streamer.run())
        wall = time.monotonic() - t0
    finally:
        proc.terminate()
        proc.join(10)
    return {"stats": stats, "recorder": rec, "wall_s": wall}


class _Recorder:
    """Exact receipt and ack times of every acknowledged trade (a producer latency sink)."""

    def __init__(self) -> None:
        self.receipt_ns: list[int] = []
        self.ack_ns: list[int] = []

    def record_ack(
        self, kind: str, sip_ns: int | None, receipt_ns: int, ack_ns: int, count: int = 1
    ) -> None:
        if kind == "trade":
            self.receipt_ns.append(receipt_ns)
            self.ack_ns.append(ack_ns)


def _percentiles(rec: _Recorder, warmup_s: float) -> dict[str, float | int | None]:
    import numpy as np

    receipt = np.asarray(rec.receipt_ns, dtype=np.int64)
    ack = np.asarray(rec.ack_ns, dtype=np.int64)
    if receipt.size == 0:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "events_per_s": None}
    keep = receipt >= receipt.min() + int(warmup_s * 1e9)
    lat = (ack[keep] - receipt[keep]) / 1e6
    span_s = (ack.max() - receipt.min()) / 1e9
    return {
        "n": int(receipt.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
        "max_ms": round(float(lat.max()), 3) if lat.size else None,
        "events_per_s": round(receipt.size / span_s, 1) if span_s > 0 else None,
    }


def _warm_broker(bootstrap: str, n: int, partitions: int) -> None:
    """Produce ``n`` records to a scratch topic and delete it (JIT warm-up of the broker)."""
    from pipeline.kafka.broker import delete_topic, ensure_topic
    from pipeline.kafka.codec import encode_fields
    from pipeline.kafka.producer import EventProducer

    topic = f"{TOPIC_PREFIX}-warmup-{os.getpid()}-{int(time.time())}"
    ensure_topic(bootstrap, topic, partitions, timeout_s=60.0)
    try:
        producer = EventProducer(bootstrap, topic, queue_max_messages=500_000)
        producer.warm_up()
        hdrs = [("schema", b"trade.v1"), ("recv_ns", b"0")]
        batch = [
            (*encode_fields({"symbol": f"W{k % 50:02d}", "sip_timestamp_ns": k, "k": k}), k)
            for k in range(1000)
        ]
        sent = 0
        while sent < n:
            k = producer.produce_frame("warmup", batch, hdrs, 0)
            sent += k
            if k < len(batch):
                producer.poll(0.01)
            else:
                producer.poll(0)
        producer.flush(120.0)
    finally:
        delete_topic(bootstrap, topic, timeout_s=60.0)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with ``--json``).

    Parameters
    ----------
    args
        Parsed options.

    Returns
    -------
    int
        Exit code.
    """
    from pipeline.kafka.broker import LocalBroker, delete_topic, ensure_topic, free_port
    from pipeline.settings import Settings

    settings = Settings.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    broker: LocalBroker | None = None
    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    results: dict[str, Any] = {}
    try:
        if bootstrap is None:
            broker = LocalBroker(
                kafka_home=settings.home / "kafka",
                version=settings.kafka_version,
                port=free_port(),
                controller_port=free_port(),
                state_dir=workdir / "broker",
                heap_mb=768,
                die_with_parent=True,
            )
            broker.fetch()
            broker.up(timeout_s=90.0)
            bootstrap = broker.bootstrap
        if args.warmup_events > 0:
            _warm_broker(bootstrap, args.warmup_events, args.partitions)
        # Maximum rate first: a million records also finish warming the broker's JIT, which
        # the latency figures at the fixed rate would otherwise measure.
        phases: list[tuple[str, int, float | None, float]] = []
        if not args.skip_max:
            phases.append(("max", args.events, None, 0.0))
        if not args.skip_fixed:
            n_fixed = int(args.rate * (args.warmup_s + args.seconds))
            phases.append(("fixed", n_fixed, args.rate, args.warmup_s))
        for name, n, rate, warmup in phases:
            topic = f"{TOPIC_PREFIX}-{name}-{os.getpid()}-{int(time.time())}"
            ensure_topic(bootstrap, topic, args.partitions, timeout_s=60.0)
            try:
                out = _phase(
                    bootstrap,
                    topic,
                    events=n,
                    symbols=args.symbols,
                    rate=rate,
                    frame_events=args.frame_events,
                    linger_ms=args.linger_ms,
                )
            finally:
                delete_topic(bootstrap, topic, timeout_s=60.0)
            st = out["stats"]
            pct = _percentiles(out["recorder"], warmup)
            results[name] = {
                "events": n,
                "delivered": st.delivered,
                "rejects": st.reject_total,
                "wall_s": round(out["wall_s"], 2),
                "queue_high_water": st.queue_high_water,
                "producer_blocked_s": round(st.producer_blocked_s, 2),
                **pct,
            }
    finally:
        if broker is not None:
            broker.down(timeout_s=30.0)
        shutil.rmtree(workdir, ignore_errors=True)
    fixed = results.get("fixed", {})
    mx = results.get("max", {})
    summary = {
        "max_events_per_s": mx.get("events_per_s"),
        "p50_ms_at_10k": fixed.get("p50_ms"),
        "p99_ms_at_10k": fixed.get("p99_ms"),
        "max_ms_at_10k": fixed.get("max_ms"),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"bench stream: {args.symbols} symbols, {args.frame_events} events/frame, "
          f"{args.partitions} partitions, acks=all, idempotent")  # fmt: skip
    for name, label in (("max", "maximum rate"), ("fixed", f"fixed {args.rate:,.0f} events/s")):
        r = results.get(name)
        if not r:
            continue
        print(
            f"{label:<24} {r['delivered']:>9,} events in {r['wall_s']:>6.2f} s  "
            f"sustained {r['events_per_s'] or 0:>10,.0f}/s  receipt->ack p50 {r['p50_ms']} ms  "
            f"p99 {r['p99_ms']} ms  max {r['max_ms']} ms  (queue high water "
            f"{r['queue_high_water']} frames, producer blocked {r['producer_blocked_s']} s)"
        )
    print(json.dumps(summary))
    return 0
