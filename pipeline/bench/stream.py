"""``microstructure bench stream``: replay server -> streamer -> Kafka, events/s and receipt -> ack.

Set-up: a throwaway local KRaft broker on free ports (or ``--bootstrap`` /
``KAFKA_BOOTSTRAP_SERVERS``), a fresh 4-partition topic per run, and the replay server
in its own process (so it does not share the streamer's interpreter lock), serving
``--symbols`` synthetic tickers in frames of ``--frame-events`` (100) trade events, as
the provider batches them. The streamer is the production one (``pipeline.streamer``:
reader -> bounded queue -> parser -> idempotent producer, acks=all, every delivery
report checked, its delivery-report thread on).

Phases (after ``--warmup-events`` records to a scratch topic: a broker JVM that just
started compiles its hot paths for a while, and that is not the streamer's latency):

1. **Maximum rate, as a ratio.** Absolute figures on a shared machine drift by 1.5x
   between runs, so the streamer is measured against a bare client doing the same job
   (:mod:`pipeline.bench.bare_stream`) in the same minutes: bare client, streamer, bare
   client, streamer, ... (``--rounds``, 2), each fed the same ``--events`` (1,000,000)
   by one replay server as fast as the socket takes them, each into a fresh topic.
   Sustained events/s = events acknowledged / (last ack - first receipt); the figures
   are the medians over the rounds and ``ratio`` = streamer / bare client. Every run must
   leave exactly ``--events`` records in its topic (counted by the broker), else the
   command fails: the two do the same work or the ratio means nothing.
2. **Fixed rate.** The server sends ``--rate`` (10,000) events/s for ``--warmup-s`` (5)
   plus ``--seconds`` (10). Latency of each event = Kafka ack time - receipt time (the
   frame read from the socket), both on this process's clock; the first ``--warmup-s`` are
   left out (connection set-up, producer id, and a broker JVM that keeps compiling for a
   while after a million records). p50 / p99 / max in ms over the measured seconds.

Figures are printed, never asserted. ``--json`` prints exactly ``{"max_events_per_s",
"p50_ms_at_10k", "p99_ms_at_10k", "max_ms_at_10k", "baseline_events_per_s", "ratio"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOPIC_PREFIX = "bench-stream"
API_KEY = "bench"


def add_feed_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of a replayed feed into a throwaway broker (bench stream, bench live).

    Parameters
    ----------
    parser
        The benchmark's subcommand parser.
    """
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
    parser.add_argument("--symbols", type=int, default=100, help="synthetic tickers (100)")
    parser.add_argument("--frame-events", type=int, default=100, help="events per frame (100)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (4)")
    parser.add_argument(
        "--bootstrap", default=None, help="use this Kafka instead of a throwaway local broker"
    )
    parser.add_argument(
        "--warmup-events",
        type=int,
        default=1_000_000,
        help="records produced to a scratch topic first, so a fresh broker JVM is warm (1,000,000)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options (``--json`` is added by the ``bench`` command)."""
    add_feed_arguments(parser)
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="events per max-rate run (1,000,000)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="max-rate runs of each, alternating bare client and streamer (2)",
    )
    parser.add_argument(
        "--linger-ms", type=float, default=1.0, help="producer linger.ms (the streamer's: 1)"
    )
    parser.add_argument("--skip-fixed", action="store_true", help="only the max-rate phase")
    parser.add_argument("--skip-max", action="store_true", help="only the fixed-rate phase")


T0_NS = 1_700_000_000_000_000_000


def synthetic_trades(n: int, symbols: int, seed: int = 7, t0_ns: int = T0_NS) -> list[Any]:
    """Return ``n`` trades over ``symbols`` tickers, 1 ms apart, with realistic fields.

    Parameters
    ----------
    n
        Number of prints.
    symbols
        Number of tickers (``S000``...).
    seed
        Random seed (deterministic).
    t0_ns
        SIP time of the first print (UTC ns).

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
    t0 = t0_ns
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


def _serve(
    conn: Any, n: int, symbols: int, rate: float | None, frame_events: int, t0_ns: int = T0_NS
) -> None:
    """Child process: serve the synthetic day until terminated; send the port back."""
    from pipeline.feed.replay_server import ReplayServer

    trades = synthetic_trades(n, symbols, t0_ns=t0_ns)

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


@contextmanager
def _replay_server(
    events: int, symbols: int, rate: float | None, frame_events: int, t0_ns: int = T0_NS
) -> Iterator[int]:
    """Run the replay server in its own process for the block; yield its port.

    Every connection replays the whole synthetic day from its subscription on, so the
    runs of one block (the bare client's and the streamer's) are fed the same frames.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=_serve, args=(child, events, symbols, rate, frame_events, t0_ns), daemon=True
    )
    proc.start()
    try:
        deadline = time.monotonic() + 180.0
        while not parent.poll(0.5):
            if not proc.is_alive():
                raise RuntimeError(f"the replay server process exited ({proc.exitcode})")
            if time.monotonic() > deadline:
                raise TimeoutError("the replay server process did not start within 180 s")
        yield parent.recv()
    finally:
        proc.terminate()
        proc.join(10)


def _phase(bootstrap: str, topic: str, port: int, *, linger_ms: float = 1.0) -> dict[str, Any]:
    """Stream the replay server's day through the production streamer into ``topic``."""
    from pipeline.feed.source import WebSocketSource
    from pipeline.kafka.producer import EventProducer
    from pipeline.streamer import Streamer

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
    return {"stats": stats, "recorder": rec, "wall_s": wall}


def _bare_phase(bootstrap: str, topic: str, port: int, *, linger_ms: float = 1.0) -> dict[str, Any]:
    """Stream the same day through the bare client (:mod:`pipeline.bench.bare_stream`)."""
    from pipeline.bench.bare_stream import stream

    t0 = time.monotonic()
    res = asyncio.run(
        stream(
            f"ws://127.0.0.1:{port}",
            API_KEY,
            bootstrap,
            topic,
            linger_ms=linger_ms,
            queue_max_messages=500_000,
            message_timeout_ms=120_000,
        )
    )
    wall = time.monotonic() - t0
    return {
        "delivered": res.delivered,
        "wall_s": round(wall, 2),
        "events_per_s": round(res.events_per_s, 1) if res.events_per_s else None,
    }


def _records_in(bootstrap: str, topic: str) -> int:
    """Return the records ``topic`` holds, as the broker counts them (the honesty check)."""
    from pipeline.kafka.consumer import watermarks

    return sum(high - low for low, high in watermarks(bootstrap, topic, 60.0).values())


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


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

    from pipeline.metrics import sample_quantile

    receipt = np.asarray(rec.receipt_ns, dtype=np.int64)
    ack = np.asarray(rec.ack_ns, dtype=np.int64)
    if receipt.size == 0:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "events_per_s": None}
    keep = receipt >= receipt.min() + int(warmup_s * 1e9)
    lat = (ack[keep] - receipt[keep]) / 1e6
    span_s = (ack.max() - receipt.min()) / 1e9
    return {
        "n": int(receipt.size),
        "p50_ms": round(sample_quantile(lat, 0.5), 3) if lat.size else None,
        "p99_ms": round(sample_quantile(lat, 0.99), 3) if lat.size else None,
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


def _streamer_figures(out: dict[str, Any], events: int, warmup_s: float) -> dict[str, Any]:
    st = out["stats"]
    return {
        "events": events,
        "delivered": st.delivered,
        "rejects": st.reject_total,
        "wall_s": round(out["wall_s"], 2),
        "queue_high_water": st.queue_high_water,
        "producer_blocked_s": round(st.producer_blocked_s, 2),
        **_percentiles(out["recorder"], warmup_s),
    }


def _max_rate_rounds(bootstrap: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Alternate bare client and streamer at maximum rate, ``--rounds`` times each.

    One replay server feeds every run the same frames; each run has a fresh topic, whose
    record count the broker gives before it is deleted.
    """
    from pipeline.kafka.broker import delete_topic, ensure_topic

    runs: list[dict[str, Any]] = []
    with _replay_server(args.events, args.symbols, None, args.frame_events) as port:
        for k in range(args.rounds):
            for who in ("baseline", "streamer"):
                topic = f"{TOPIC_PREFIX}-{who}-{k}-{os.getpid()}-{int(time.time())}"
                ensure_topic(bootstrap, topic, args.partitions, timeout_s=60.0)
                try:
                    if who == "baseline":
                        r = _bare_phase(bootstrap, topic, port, linger_ms=args.linger_ms)
                    else:
                        out = _phase(bootstrap, topic, port, linger_ms=args.linger_ms)
                        r = _streamer_figures(out, args.events, 0.0)
                    r["records_in_topic"] = _records_in(bootstrap, topic)
                finally:
                    delete_topic(bootstrap, topic, timeout_s=60.0)
                runs.append({"who": who, "round": k + 1, **r})
    return runs


@contextmanager
def bench_broker(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    """Yield ``bootstrap``, or start a throwaway local broker under ``workdir`` for the block."""
    from pipeline.kafka.broker import LocalBroker, free_port
    from pipeline.settings import Settings

    if bootstrap is not None:
        yield bootstrap
        return
    settings = Settings.from_env()
    broker = LocalBroker(
        kafka_home=settings.home / "kafka",
        version=settings.kafka_version,
        port=free_port(),
        controller_port=free_port(),
        state_dir=workdir / "broker",
        heap_mb=768,
        die_with_parent=True,
    )
    try:
        broker.fetch()
        broker.up(timeout_s=90.0)
        yield broker.bootstrap
    finally:
        broker.down(timeout_s=30.0)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with ``--json``).

    Parameters
    ----------
    args
        Parsed options.

    Returns
    -------
    int
        Exit code: 1 if a run did not leave exactly ``--events`` records in its topic.
    """
    from pipeline.kafka.broker import delete_topic, ensure_topic

    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    given = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    runs: list[dict[str, Any]] = []
    fixed: dict[str, Any] = {}
    try:
        with bench_broker(given, workdir) as bootstrap:
            if args.warmup_events > 0:
                _warm_broker(bootstrap, args.warmup_events, args.partitions)
            # Maximum rate first: millions of records also finish warming the broker's JIT,
            # which the latency figures at the fixed rate would otherwise measure.
            if not args.skip_max:
                runs = _max_rate_rounds(bootstrap, args)
            if not args.skip_fixed:
                n_fixed = int(args.rate * (args.warmup_s + args.seconds))
                topic = f"{TOPIC_PREFIX}-fixed-{os.getpid()}-{int(time.time())}"
                ensure_topic(bootstrap, topic, args.partitions, timeout_s=60.0)
                try:
                    with _replay_server(
                        n_fixed, args.symbols, args.rate, args.frame_events
                    ) as port:
                        out = _phase(bootstrap, topic, port, linger_ms=args.linger_ms)
                finally:
                    delete_topic(bootstrap, topic, timeout_s=60.0)
                fixed = _streamer_figures(out, n_fixed, args.warmup_s)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    streamer = _median([r["events_per_s"] for r in runs if r["who"] == "streamer"])
    baseline = _median([r["events_per_s"] for r in runs if r["who"] == "baseline"])
    summary = {
        "max_events_per_s": streamer,
        "p50_ms_at_10k": fixed.get("p50_ms"),
        "p99_ms_at_10k": fixed.get("p99_ms"),
        "max_ms_at_10k": fixed.get("max_ms"),
        "baseline_events_per_s": baseline,
        "ratio": round(streamer / baseline, 3) if streamer and baseline else None,
    }
    # The honesty check: every run, the bare client's too, left exactly the day's trades.
    short = [r for r in runs if r["records_in_topic"] != args.events]
    if not args.json:
        _print_text(args, runs, fixed, summary)
    if short:
        for r in short:
            print(
                f"bench stream: {r['who']} run {r['round']} left {r['records_in_topic']:,} "
                f"records in its topic, not {args.events:,}: the figures compare unequal work"
            )
        return 1
    if args.json:
        print(json.dumps(summary))
    return 0


def _print_text(
    args: argparse.Namespace,
    runs: list[dict[str, Any]],
    fixed: dict[str, Any],
    summary: dict[str, Any],
) -> None:
    print(f"bench stream: {args.symbols} symbols, {args.frame_events} events/frame, "
          f"{args.partitions} partitions, acks=all, idempotent")  # fmt: skip
    for r in runs:
        label = f"{r['who']} run {r['round']}, max rate"
        line = (
            f"{label:<28} {r['delivered']:>9,} events in {r['wall_s']:>6.2f} s  "
            f"sustained {r['events_per_s'] or 0:>10,.0f}/s  "
            f"({r['records_in_topic']:,} records in its topic"
        )
        if r["who"] == "streamer":
            line += (
                f"; receipt->ack p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms; queue high "
                f"water {r['queue_high_water']} frames, producer blocked "
                f"{r['producer_blocked_s']} s"
            )
        print(line + ")")
    if runs:
        print(
            f"{'median, max rate':<28} streamer {summary['max_events_per_s'] or 0:,.0f}/s, "
            f"bare client {summary['baseline_events_per_s'] or 0:,.0f}/s: "
            f"ratio {summary['ratio']} (target >= 0.8)"
        )
    if fixed:
        label = f"fixed {args.rate:,.0f} events/s"
        print(
            f"{label:<28} {fixed['delivered']:>9,} events in {fixed['wall_s']:>6.2f} s  "
            f"receipt->ack p50 {fixed['p50_ms']} ms  p99 {fixed['p99_ms']} ms "
            f"(target < 5 ms)  max {fixed['max_ms']} ms"
        )
    print(json.dumps(summary))
