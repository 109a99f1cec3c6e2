"""``microstructure bench live``: receipt -> signal ack latency and one instance's events/s.

Set-up as ``bench stream`` (:func:`pipeline.bench.stream.bench_broker`: a throwaway local
KRaft broker, or ``--bootstrap``; ``--warmup-events`` to a scratch topic first), fresh
topics per run (4 partitions, the broker's log-append time), synthetic trades of
``--symbols`` tickers 1 ms apart from 2018-01-02 09:30 New York (regular hours, so every
trade gets a signal). Each ``live-signals`` instance is the production service
(:class:`~pipeline.live.service.LiveSignalsService`, default settings) in its own
process, in a fresh consumer group, its kernels loaded before it subscribes.

1. **Latency at a fixed rate.** The replay server (own process) sends ``--rate``
   (10,000) trade events/s for ``--warmup-s`` (5) + ``--seconds`` (10) through the
   production streamer (:func:`pipeline.bench.stream._phase`) into the input topic, which
   one instance consumes. Latency of a trade = the time live-signals' producer received
   the broker's acknowledgement of the trade's signal record (its delivery callback,
   ``time.time_ns()``) - the trade's receipt time (the streamer's ``recv_ns``, read from
   the input record's header). Both are this machine's wall clock. The callback is the
   honest end: the broker's log-append time of the signal record (also reported, ms
   resolution) is earlier than the acknowledgement and leaves out the response's trip.
   The first ``--warmup-s`` of receipts are left out; p50 / p99 / max in ms.
2. **Highest sustained events/s of one instance, as a ratio.** The input topic is filled
   with ``--events`` (1,000,000) trades, and another with half of them; on each, the bare
   loop (:mod:`pipeline.bench.bare_live`) and an instance alternate (``--rounds``, 2),
   each consuming the whole topic from the start. events/s = records consumed / (last
   acknowledgement - first consume). ``max_events_per_s`` is the median at ``--events``;
   ``half_over_full`` (the median at half the volume over it) shows whether the cost per
   trade grows with the volume (1.0: it does not); ``ratio`` is instance / bare loop.
   Every run must leave one output record per input record in its output topic and its
   group's committed offsets at the end of the input, else the command fails.
3. **Causal mismatches on the demo day.** The demo's day (XXX, 2018-01-02, every print of
   the New York date) is produced to an input topic and consumed by an instance; its signal
   records are reconciled with the batch (:func:`pipeline.live.reconcile.reconcile`, the
   ``reconcile`` command's comparison) whose rows :mod:`pipeline.bench.live_causal` computes
   with ``symbol_day`` on the trades as read back from the input topic.

``--json`` prints one object: ``p50_ms``, ``p99_ms``, ``max_ms``, ``max_events_per_s``,
``causal_mismatches``, then details. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TOPIC_PREFIX = "bench-live"
RTH_T0_NS = 1_514_903_400_000_000_000  # 2018-01-02 09:30:00 New York (14:30 UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options (``--json`` is added by the ``bench`` command)."""
    from pipeline.bench.stream import add_feed_arguments

    add_feed_arguments(parser)
    parser.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="trades per max-rate run; a second set of runs takes half (1,000,000)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="max-rate runs of each per volume, alternating bare loop and instance (2)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=2000, help="live-signals --batch-size (2000)"
    )
    parser.add_argument("--skip-fixed", action="store_true", help="leave out the latency phase")
    parser.add_argument("--skip-max", action="store_true", help="leave out the events/s phase")
    parser.add_argument(
        "--skip-causal", action="store_true", help="leave out the demo day's comparison"
    )


# -- child processes --------------------------------------------------------------------------


def _warm_kernels() -> None:
    """Load the compiled kernels (numba cache) before the clock starts."""
    from pipeline.bench.stream import synthetic_trades
    from pipeline.kafka import codec
    from pipeline.live.partition import PartitionProcessor
    from udx.kernels import Params

    trades = synthetic_trades(600, 3, t0_ns=RTH_T0_NS)
    proc = PartitionProcessor("warm", 0, Params())
    proc.process_batch([(k, *codec.encode(t)[1:]) for k, t in enumerate(trades)])


def _live_child(conn: Any, bootstrap: str, topic: str, out: str, group: str, batch: int) -> None:
    """Child process: one live-signals instance until told to stop; send back what it did."""
    import numpy as np
    from confluent_kafka import Message

    from pipeline.live.service import LiveConfig, LiveSignalsService

    _warm_kernels()
    acks: list[tuple[int, int, int]] = []

    def on_ack(msg: Message) -> None:
        acks.append((msg.partition() or 0, msg.offset() or 0, time.time_ns()))

    service = LiveSignalsService(
        LiveConfig(bootstrap, topic, out, group, batch_size=batch), on_ack=on_ack
    )
    stop = threading.Event()
    failure: list[str] = []

    def serve() -> None:
        try:
            service.run(stop=stop)
        except Exception as e:  # reported to the parent, which fails the benchmark
            failure.append(f"{type(e).__name__}: {e}")

    runner = threading.Thread(target=serve, name="live-signals")
    runner.start()
    while not service.assigned and runner.is_alive():
        time.sleep(0.05)
    conn.send("ready")
    conn.recv()  # "stop"
    stop.set()
    runner.join()
    conn.send(
        {
            "summary": service.summary.as_dict(),
            "acks": np.asarray(acks, dtype=np.int64).reshape(-1, 3).tobytes(),
            "failure": failure[0] if failure else None,
        }
    )


def _bare_child(conn: Any, bootstrap: str, topic: str, out: str, group: str, batch: int) -> None:
    """Child process: the bare loop over the whole topic; send back what it did."""
    from pipeline.bench.bare_live import consume_produce

    res = consume_produce(bootstrap, topic, out, group, batch_size=batch, idle_exit_s=2.0)
    conn.send(
        {
            "summary": {
                "consumed": res.consumed,
                "first_record_ns": res.first_record_ns,
                "last_acked_ns": res.last_acked_ns,
            },
            "acks": b"",
            "failure": None,
        }
    )


@contextmanager
def _child(target: Any, *args: Any) -> Iterator[Any]:
    """Run ``target(conn, *args)`` in a spawned process for the block; yield the pipe."""
    # A fork server: a clean process (no Kafka client threads) that imported the service
    # once; each instance forks from it instead of importing numba, pyarrow and the
    # pipeline again.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pipeline.live.service", "pipeline.bench.bare_live"])
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    try:
        yield parent
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.terminate()
            proc.join(10)


def _recv(conn: Any, timeout_s: float, what: str) -> Any:
    if not conn.poll(timeout_s):
        raise TimeoutError(f"bench live: {what} did not answer within {timeout_s} s")
    return conn.recv()


# -- Kafka helpers ----------------------------------------------------------------------------


def _fresh_topic(bootstrap: str, name: str, partitions: int) -> str:
    from pipeline.kafka.broker import ensure_topic

    topic = f"{TOPIC_PREFIX}-{name}-{os.getpid()}-{time.time_ns() % 10**9}"
    ensure_topic(bootstrap, topic, partitions, timeout_s=60.0)
    return topic


def _produce(bootstrap: str, topic: str, trades: Sequence[Any]) -> None:
    """Write ``trades`` as ``trade.v1`` records (the streamer's layout), every one acknowledged."""
    from pipeline.kafka import codec
    from pipeline.kafka.producer import EventProducer

    with EventProducer(bootstrap, topic, queue_max_messages=500_000) as producer:
        for lo in range(0, len(trades), 5000):
            producer.produce_batch([codec.encode(t) for t in trades[lo : lo + 5000]])
            producer.poll(0)
        producer.flush(300.0)


def _caught_up(bootstrap: str, topic: str, group: str) -> bool:
    from pipeline.errors import KafkaError
    from pipeline.kafka.consumer import committed_offset, watermarks

    for p, (_, high) in watermarks(bootstrap, topic, 10.0).items():
        try:
            committed = committed_offset(bootstrap, topic, p, group_id=group) or 0
        except KafkaError:  # the group's coordinator is not ready yet
            return False
        if high and committed < high:
            return False
    return True


def _wait_caught_up(bootstrap: str, topic: str, group: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not _caught_up(bootstrap, topic, group):
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} did not commit the end of {topic} in {timeout_s} s")
        time.sleep(0.2)


def _records(bootstrap: str, topic: str) -> list[Any]:
    from pipeline.kafka.consumer import read_range, watermarks
    from pipeline.kafka.offsets import OffsetRange

    out: list[Any] = []
    for p, (low, high) in sorted(watermarks(bootstrap, topic, 30.0).items()):
        if high > low:
            out += read_range(bootstrap, OffsetRange(topic, p, low, high), 300.0)
    return out


def _count(bootstrap: str, topic: str) -> int:
    from pipeline.kafka.consumer import watermarks

    return sum(high - low for low, high in watermarks(bootstrap, topic, 30.0).values())


def _instance(
    target: Any, bootstrap: str, topic: str, batch: int, *, during: Any = None
) -> dict[str, Any]:
    """Run one instance (or the bare loop) on ``topic`` to its end; return its figures."""
    out = _fresh_topic(bootstrap, "out", 4)
    group = f"{TOPIC_PREFIX}-{os.getpid()}-{time.time_ns()}"
    try:
        with _child(target, bootstrap, topic, out, group, batch) as conn:
            if target is _live_child:
                _recv(conn, 180.0, "the live-signals instance")  # "ready": assigned
                if during is not None:
                    during()
                _wait_caught_up(bootstrap, topic, group, 600.0)
                conn.send("stop")
            result = _recv(conn, 600.0, "the instance")
        if result["failure"]:
            raise RuntimeError(f"bench live: the instance failed: {result['failure']}")
        _wait_caught_up(bootstrap, topic, group, 60.0)
        s = result["summary"]
        span_s = (s["last_acked_ns"] - s["first_record_ns"]) / 1e9
        result["events_per_s"] = round(s["consumed"] / span_s, 1) if span_s > 0 else None
        result["out_topic"] = out
        result["records_out"] = _count(bootstrap, out)
        result["records_in"] = _count(bootstrap, topic)
        return result
    except BaseException:
        _delete(bootstrap, out)
        raise


def _delete(bootstrap: str, *topics: str) -> None:
    from pipeline.kafka.broker import delete_topic

    for t in topics:
        delete_topic(bootstrap, t, timeout_s=60.0)


# -- phases -----------------------------------------------------------------------------------


def _fixed_rate(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Replay server -> streamer -> Kafka -> live-signals at ``--rate``; receipt -> signal ack."""
    import numpy as np

    from pipeline.bench.stream import _phase, _replay_server
    from pipeline.metrics import sample_quantile

    n = int(args.rate * (args.warmup_s + args.seconds))
    topic = _fresh_topic(bootstrap, "fixed", args.partitions)
    streamed: dict[str, Any] = {}

    def stream() -> None:
        with _replay_server(n, args.symbols, args.rate, args.frame_events, RTH_T0_NS) as port:
            streamed.update(_phase(bootstrap, topic, port))

    res = _instance(_live_child, bootstrap, topic, args.batch_size, during=stream)
    try:
        inputs = {
            (r.partition, r.offset): (int(dict(r.headers)["recv_ns"] or 0), r.timestamp_ms)
            for r in _records(bootstrap, topic)
        }
        acks = np.frombuffer(res["acks"], dtype=np.int64).reshape(-1, 3)
        ack_at = {(int(p), int(o)): int(t) for p, o, t in acks}
        rows = []
        for r in _records(bootstrap, res["out_topic"]):
            h = dict(r.headers)
            recv_ns, in_ms = inputs[(int(h["input_partition"] or -1), int(h["input_offset"] or -1))]
            rows.append((recv_ns, ack_at[(r.partition, r.offset)], r.timestamp_ms, in_ms))
    finally:
        _delete(bootstrap, topic, res["out_topic"])
    data = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    receipt, ack, append_ms, in_ms = data[:, 0], data[:, 1], data[:, 2], data[:, 3]
    keep = receipt >= receipt.min() + int(args.warmup_s * 1e9) if len(receipt) else receipt > 0
    lat = (ack[keep] - receipt[keep]) / 1e6
    append_lat = (append_ms[keep] * 1_000_000 - receipt[keep]) / 1e6
    # Where the time goes: receipt -> the trade's log-append time in the input topic
    # (streamer and broker), then -> the signal's acknowledgement (live-signals and broker).
    to_input = (in_ms[keep] * 1_000_000 - receipt[keep]) / 1e6
    input_to_ack = (ack[keep] - in_ms[keep] * 1_000_000) / 1e6
    stats = streamed.get("stats")

    def pct(x: Any, q: float) -> float | None:
        return round(sample_quantile(x, q / 100), 3) if len(x) else None

    return {
        "events": n,
        "streamed": stats.delivered if stats is not None else None,
        "signals": len(receipt),
        "measured": int(keep.sum()),
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": round(float(lat.max()), 3) if len(lat) else None,
        "log_append_p50_ms": pct(append_lat, 50),
        "log_append_p99_ms": pct(append_lat, 99),
        "receipt_to_input_append_p50_ms": pct(to_input, 50),
        "receipt_to_input_append_p99_ms": pct(to_input, 99),
        "input_append_to_ack_p50_ms": pct(input_to_ack, 50),
        "input_append_to_ack_p99_ms": pct(input_to_ack, 99),
        # Per second of receipt: is the p99 a steady cost or a few stalls, and in which half?
        "by_second": _by_second(receipt[keep], lat, to_input),
    }


def _by_second(receipt: Any, lat_ms: Any, to_input_ms: Any) -> list[dict[str, Any]]:
    """Return, per second of receipt, the trades and the p99 of the path and its first half."""
    import numpy as np

    from pipeline.metrics import sample_quantile

    if not len(receipt):
        return []
    second = (receipt - receipt.min()) // 1_000_000_000
    out = []
    for k in np.unique(second).tolist():
        sel = second == k
        out.append(
            {
                "second": int(k),
                "n": int(sel.sum()),
                "p99_ms": round(sample_quantile(lat_ms[sel], 0.99), 1),
                "to_input_p99_ms": round(sample_quantile(to_input_ms[sel], 0.99), 1),
            }
        )
    return out


def _max_rate(bootstrap: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Alternate bare loop and instance on a pre-filled topic, at full and half volume."""
    from pipeline.bench.stream import synthetic_trades

    trades = synthetic_trades(args.events, args.symbols, t0_ns=RTH_T0_NS)
    runs: list[dict[str, Any]] = []
    for volume in (args.events, args.events // 2):
        topic = _fresh_topic(bootstrap, f"in-{volume}", args.partitions)
        try:
            _produce(bootstrap, topic, trades[:volume])
            for k in range(args.rounds):
                for who, target in (("baseline", _bare_child), ("live", _live_child)):
                    res = _instance(target, bootstrap, topic, args.batch_size)
                    _delete(bootstrap, res["out_topic"])
                    runs.append(
                        {
                            "who": who,
                            "volume": volume,
                            "round": k + 1,
                            "events_per_s": res["events_per_s"],
                            "consumed": res["summary"]["consumed"],
                            "records_in": res["records_in"],
                            "records_out": res["records_out"],
                        }
                    )
        finally:
            _delete(bootstrap, topic)
    return runs


def _causal(bootstrap: str) -> dict[str, Any]:
    """Run the demo day through one instance; reconcile its records with the batch."""
    from pipeline.bench.live_causal import batch_rows
    from pipeline.commands.demo import DEMO_DAY, SAMPLE
    from pipeline.commands.replay_server import load_trades
    from pipeline.events import Trade
    from pipeline.kafka import codec
    from pipeline.live.reconcile import collect_live, reconcile
    from udx.kernels import local_date

    trades = list(load_trades(SAMPLE, tape=None, limit=None)[0])
    day = [t for t in trades if local_date(t.sip_timestamp_ns) == DEMO_DAY]
    topic = _fresh_topic(bootstrap, "demo", 4)
    try:
        _produce(bootstrap, topic, day)
        res = _instance(_live_child, bootstrap, topic, 2000)
        try:
            inputs = [
                (r.partition, r.offset, e)
                for r in _records(bootstrap, topic)
                if isinstance(e := codec.decode_event(r.value, r.headers), Trade)
            ]
            live = collect_live(
                ((r.headers, r.value) for r in _records(bootstrap, res["out_topic"])),
                DEMO_DAY,
                topic,
            )
        finally:
            _delete(bootstrap, res["out_topic"])
    finally:
        _delete(bootstrap, topic)
    rec = reconcile(live, batch_rows(inputs), DEMO_DAY)
    return {
        "day": DEMO_DAY,
        "prints": len(day),
        "signals": len(live.records),
        "compared": rec.compared,
        "causal_mismatches": rec.causal_mismatches,
        "causal": rec.causal,
        "comparison": "pipeline.live.reconcile.reconcile, batch rows from symbol_day",
    }


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v]
    return round(statistics.median(vals), 1) if vals else None


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with ``--json``).

    Parameters
    ----------
    args
        Parsed options.

    Returns
    -------
    int
        Exit code: 1 if a max-rate run did not move every record (one output per input,
        offsets committed to the end), or the demo day's signals were not all compared.
    """
    from pipeline.bench.stream import _warm_broker, bench_broker

    workdir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    given = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    fixed: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    causal: dict[str, Any] = {}
    try:
        with bench_broker(given, workdir) as bootstrap:
            if args.warmup_events > 0:
                _warm_broker(bootstrap, args.warmup_events, args.partitions)
            if not args.skip_max:
                runs = _max_rate(bootstrap, args)
            if not args.skip_fixed:
                fixed = _fixed_rate(bootstrap, args)
            if not args.skip_causal:
                causal = _causal(bootstrap)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def med(who: str, volume: int) -> float | None:
        return _median(
            [r["events_per_s"] for r in runs if (r["who"], r["volume"]) == (who, volume)]
        )

    full, half = args.events, args.events // 2
    live_full, live_half = med("live", full), med("live", half)
    base_full, base_half = med("baseline", full), med("baseline", half)
    summary = {
        "p50_ms": fixed.get("p50_ms"),
        "p99_ms": fixed.get("p99_ms"),
        "max_ms": fixed.get("max_ms"),
        "max_events_per_s": live_full,
        "causal_mismatches": causal.get("causal_mismatches"),
        "latency_end": "delivery callback of the signal record in live-signals",
        "log_append_p50_ms": fixed.get("log_append_p50_ms"),
        "log_append_p99_ms": fixed.get("log_append_p99_ms"),
        "baseline_events_per_s": base_full,
        "ratio": round(live_full / base_full, 3) if live_full and base_full else None,
        "events_per_s_half": live_half,
        "baseline_events_per_s_half": base_half,
        "ratio_half": round(live_half / base_half, 3) if live_half and base_half else None,
        "half_over_full": round(live_half / live_full, 3) if live_half and live_full else None,
        "events": full,
        "runs": runs,
        "fixed": fixed,
        "causal": causal,
    }
    bad = [
        r for r in runs if not (r["records_in"] == r["records_out"] == r["consumed"] == r["volume"])
    ]
    uncompared = bool(causal) and not causal["signals"] == causal["compared"] > 0
    if uncompared:
        print(
            f"bench live: {causal['signals']:,} signals on the demo day, "
            f"{causal['compared']:,} compared with the batch"
        )
    if args.json:
        print(json.dumps(summary))
    else:
        _print_text(args, summary)
    for r in bad:
        print(
            f"bench live: {r['who']} run {r['round']} at {r['volume']:,} consumed "
            f"{r['consumed']:,} and left {r['records_out']:,} records for {r['records_in']:,}"
        )
    return 1 if bad or uncompared else 0


def _print_text(args: argparse.Namespace, s: dict[str, Any]) -> None:
    print(
        f"bench live: {args.symbols} symbols, {args.partitions} partitions, acks=all, "
        f"idempotent, live-signals --batch-size {args.batch_size}"
    )
    for r in s["runs"]:
        print(
            f"{r['who']:<9} run {r['round']} at {r['volume']:>9,} trades: "
            f"{r['events_per_s'] or 0:>9,.0f} events/s ({r['records_out']:,} records out)"
        )
    if s["runs"]:
        print(
            f"median at {s['events']:,}: live-signals {s['max_events_per_s'] or 0:,.0f}/s "
            f"(target >= 50,000), bare loop {s['baseline_events_per_s'] or 0:,.0f}/s, "
            f"ratio {s['ratio']}; at half the volume {s['events_per_s_half'] or 0:,.0f}/s "
            f"(ratio {s['ratio_half']}), half/full {s['half_over_full']}"
        )
    f = s["fixed"]
    if f:
        print(
            f"fixed {args.rate:,.0f} events/s: {f['signals']:,} signals, receipt -> signal ack "
            f"p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms (target < 30), max {f['max_ms']} ms; "
            f"to the broker's log-append time p50 {f['log_append_p50_ms']} ms, "
            f"p99 {f['log_append_p99_ms']} ms; receipt -> trade appended to the input topic "
            f"p50 {f['receipt_to_input_append_p50_ms']} ms, p99 "
            f"{f['receipt_to_input_append_p99_ms']} ms; then -> signal ack p50 "
            f"{f['input_append_to_ack_p50_ms']} ms, p99 {f['input_append_to_ack_p99_ms']} ms"
        )
    c = s["causal"]
    if c:
        print(
            f"demo day {c['day']}: {c['prints']:,} prints, {c['signals']:,} signals, "
            f"causal mismatches {c['causal_mismatches']} (target 0)"
        )
    print(json.dumps({k: s[k] for k in list(s)[:5]}))
