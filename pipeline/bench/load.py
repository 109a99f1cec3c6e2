"""``microstructure bench load``: Kafka -> DuckDB rows/s, and append-to-commit latency.

Two measurements on a real broker (a throwaway local one unless
``KAFKA_BOOTSTRAP_SERVERS`` is set) and a throwaway DuckDB file:

1. **Throughput, as a ratio.** ``--trades`` (1,000,000) trades are produced first (the
   shipped XXX sample replayed under several symbols, so they spread over the
   partitions), then loaded by the microbatch path of the ``market_data`` asset (ledger
   -> exact range read -> shape -> ingest gates -> one-transaction load), ``--processes``
   partitions at a time. rows/s = trades committed / wall time of the load phase, from
   the first run's start to the last COMMIT, with every worker warmed up before the
   clock starts (Dagster run overhead excluded; it is a per-run constant, see the latency
   figure). The watermarks are read once before the clock, as one sensor tick does for
   the runs it requests. Absolute figures on a shared machine drift by 1.5x between
   runs, so the same topic is also loaded by a naive loader
   (:mod:`pipeline.bench.naive_load`) in the same pool arrangement, alternating: naive,
   loader, naive, loader, ... (``--rounds``, 2), each into a fresh DuckDB file. The
   figures are the medians and ``ratio`` = loader / naive loader; every run must commit
   every trade produced, else the command fails.
2. **Latency through the sensor path.** Trades are produced at ``--rate`` for
   ``--seconds`` while the real ``market_data_sensor`` ticks every ``--interval-s``
   (Dagster's default for this sensor) and its runs execute in-process, as
   ``microstructure ingest`` does. Latency of each row = its warehouse commit time minus
   its Kafka append time (LogAppendTime), read back from the warehouse.

What bounds the latency: a message waits on average half a sensor interval for the next
tick, then for its run (read + shape + gates + COMMIT); with the Dagster daemon each run
is also a fresh process (imports, ~5-10 s here) unless runs are executed in-process.

``--json`` prints exactly ``{"rows_per_s", "append_to_commit_p50_s",
"append_to_commit_p99_s", "baseline_rows_per_s", "ratio"}``.
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
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

TOPIC_PREFIX = "bench-load"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument("--trades", type=int, default=1_000_000, help="trades to load (1,000,000)")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions (4)")
    parser.add_argument(
        "--processes",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="loader processes, one partition each at a time (CPU count, max 4)",
    )
    parser.add_argument(
        "--max-records", type=int, default=200_000, help="largest batch span (200,000)"
    )
    parser.add_argument("--rate", type=float, default=5_000.0, help="latency phase: trades/s")
    parser.add_argument("--seconds", type=float, default=60.0, help="latency phase: duration")
    parser.add_argument(
        "--interval-s", type=float, default=None, help="sensor interval (the sensor's default)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="throughput runs of each, alternating naive loader and loader (2)",
    )
    parser.add_argument("--skip-latency", action="store_true", help="throughput only")


def _sample_trades(n: int) -> list[Any]:
    """Return ``n`` trades: the shipped sample, replayed under symbols S00, S01, ..."""
    import gzip

    import pandas as pd

    from pipeline.events import Trade

    path = (
        Path(__file__).resolve().parents[1] / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
    )
    with gzip.open(path, "rt") as f:
        frame = pd.read_csv(f, dtype={"exchange": "str"}, keep_default_na=False)
    letters = sorted(frame["exchange"].unique())
    base = [
        Trade(
            symbol="XXX",
            sip_timestamp_ns=int(ts),
            price=float(p),
            size=int(s),
            exchange=letters.index(x) + 1,
            trade_id=str(i),
            sequence_number=i,
            receipt_ns=int(ts),
            source="file",
        )
        for i, (ts, p, s, x) in enumerate(
            zip(
                frame["timestamp_ns"], frame["price"], frame["size"], frame["exchange"], strict=True
            )
        )
    ]
    out: list[Any] = []
    copy = 0
    while len(out) < n:
        symbol = f"S{copy:02d}"
        out.extend(replace(t, symbol=symbol) for t in base[: n - len(out)])
        copy += 1
    return out


def _produce(bootstrap: str, topic: str, trades: list[Any]) -> float:
    from pipeline.kafka.producer import EventProducer

    t0 = time.perf_counter()
    with EventProducer(bootstrap, topic) as producer:
        for t in trades:
            producer.send(t)
        producer.flush(120.0)
    return time.perf_counter() - t0


STAGES: tuple[str, ...] = ("plan", "read", "shape", "gates", "load")


def _load_partition(
    args: tuple[str, str, str, int, tuple[int, int], int],
) -> dict[str, float]:
    """Load one partition to its high watermark (in a worker process), as the asset does.

    Returns the wall and CPU seconds of each stage (``<stage>_s``, ``<stage>_cpu_s``; CPU
    is the process's, library threads included) and the rows committed.
    """
    from pipeline.kafka import consumer
    from pipeline.kafka.offsets import OffsetRange
    from pipeline.microbatch import plan_microbatches, shape_batch
    from pipeline.quality import validate_batch
    from pipeline.warehouse import open_warehouse

    bootstrap, topic, url, partition, watermarks, max_records = args
    wh = open_warehouse(url, lock_timeout_s=120.0)
    out = {f"{s}{k}": 0.0 for s in STAGES for k in ("_s", "_cpu_s")} | {"rows": 0.0}
    marks: list[tuple[float, float]] = []

    def mark() -> None:
        marks.append((time.perf_counter(), time.process_time()))

    high = {partition: watermarks}
    while True:
        marks.clear()
        mark()
        planned, _ = plan_microbatches(high, wh.next_offsets(topic), max_records)
        if not planned:
            return out
        b = planned[0]
        rng = OffsetRange(topic, partition, b.start, b.stop)
        mark()
        records = consumer.read_range_columns(bootstrap, rng, 120.0)
        mark()
        batch = shape_batch(records, rng)
        mark()
        report = validate_batch(batch)
        mark()
        loaded = wh.load_batch(
            batch, expected_start=b.start, run_id="bench", quality=report.verdict()
        )
        mark()
        for stage, (w0, c0), (w1, c1) in zip(STAGES, marks[:-1], marks[1:], strict=True):
            out[f"{stage}_s"] += w1 - w0
            out[f"{stage}_cpu_s"] += c1 - c0
        out["rows"] += loaded.n_trades


def _in_pool(
    fn: Callable[[Any], Any], jobs: list[Any], processes: int, warm: Callable[[], None]
) -> tuple[list[Any], float]:
    """Run ``fn`` over ``jobs`` in ``processes`` workers warmed by ``warm``; return results, wall.

    The clock starts once every worker has imported and warmed up, and stops when the
    last job returned (its COMMIT), not after the pool's teardown.
    """
    if processes <= 1:
        warm()
        t0 = time.perf_counter()
        results = [fn(j) for j in jobs]
        return results, time.perf_counter() - t0
    ctx = multiprocessing.get_context("spawn")
    # The barrier holds each worker's initializer until all are warm (a map of no-ops alone
    # can be served by the first worker ready while another is still importing).
    ready = ctx.Barrier(processes)
    pool = ctx.Pool(processes, initializer=_warm_together, initargs=(ready, warm))
    try:
        pool.map(_noop, range(processes))
        t0 = time.perf_counter()
        results = pool.map(fn, jobs)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
        pool.join()
    return results, wall


def _prepare(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Create the topic, produce ``--trades`` to it, read its watermarks once."""
    from pipeline.kafka import consumer
    from pipeline.kafka.broker import ensure_topic

    topic = f"{TOPIC_PREFIX}-{os.getpid()}-{int(time.time())}"
    ensure_topic(bootstrap, topic, args.partitions, timeout_s=30.0)
    trades = _sample_trades(args.trades)
    produce_s = _produce(bootstrap, topic, trades)
    # Every trade was produced before the load phase, so the watermarks do not move: they
    # are read once, as one sensor tick reads them for all the runs it requests (a Kafka
    # metadata round trip, 60-300 ms here, that no run pays).
    high = consumer.watermarks(bootstrap, topic, 30.0)
    return {"topic": topic, "high": high, "trades": len(trades), "produce_s": round(produce_s, 3)}


def _throughput(
    bootstrap: str, args: argparse.Namespace, topic: str, high: dict[int, tuple[int, int]], db: Path
) -> dict[str, Any]:
    """Load the whole topic into a fresh warehouse ``db`` through the loader's path."""
    from pipeline.warehouse import open_warehouse

    url = f"duckdb:///{db}"
    open_warehouse(url).migrate()
    jobs = [(bootstrap, topic, url, p, high[p], args.max_records) for p in range(args.partitions)]
    results, wall = _in_pool(_load_partition, jobs, args.processes, _warm)
    counts = open_warehouse(url, read_only=True).table_counts()
    rows = counts["market_data"]
    wall_s = {k: round(sum(r[f"{k}_s"] for r in results), 3) for k in STAGES}
    cpu_s = {k: round(sum(r[f"{k}_cpu_s"] for r in results), 3) for k in STAGES}
    return {
        "rows_committed": rows,
        "batches": counts["kafka_offsets"],
        "load_wall_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 1) if wall > 0 else 0.0,
        "stage_wall_s": wall_s,
        "stage_cpu_s": cpu_s,
        "load_only_rows_per_s": round(rows / wall_s["load"], 1) if wall_s["load"] else None,
    }


def _naive_partition(args: tuple[str, str, int, tuple[int, int], Path, int]) -> int:
    from pipeline.bench.naive_load import load_partition

    bootstrap, topic, partition, (low, high), db, max_records = args
    return load_partition(bootstrap, topic, partition, low, high, db, max_records)


def _naive_throughput(
    bootstrap: str, args: argparse.Namespace, topic: str, high: dict[int, tuple[int, int]], db: Path
) -> dict[str, Any]:
    """Load the whole topic into a fresh file ``db`` with the naive loader (the baseline)."""
    import duckdb

    from pipeline.bench.naive_load import create

    create(db)
    jobs = [(bootstrap, topic, p, high[p], db, args.max_records) for p in range(args.partitions)]
    _, wall = _in_pool(_naive_partition, jobs, args.processes, _warm_naive)
    with duckdb.connect(str(db), read_only=True) as conn:
        [(rows,)] = conn.execute("SELECT count(*) FROM trades").fetchall()
        [(batches,)] = conn.execute("SELECT count(*) FROM offsets").fetchall()
    return {
        "rows_committed": int(rows),
        "batches": int(batches),
        "load_wall_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 1) if wall > 0 else 0.0,
    }


def _warm_naive() -> None:
    """Import the naive loader's libraries once (as :func:`_warm` does for the loader)."""
    import orjson
    import pyarrow as pa

    from pipeline.bench.naive_load import SCHEMA

    pa.Table.from_pylist([orjson.loads(b'{"symbol": "W", "size": 1}')], schema=SCHEMA)


def _rounds(bootstrap: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Alternate naive loader and loader on the same topic, ``--rounds`` times each."""
    prep = _prepare(bootstrap, args)
    runs: list[dict[str, Any]] = []
    for k in range(args.rounds):
        for who in ("baseline", "loader"):
            db = workdir / f"{who}-{k}.duckdb"
            load = _naive_throughput if who == "baseline" else _throughput
            runs.append(
                {
                    "who": who,
                    "round": k + 1,
                    **load(bootstrap, args, prep["topic"], prep["high"], db),
                }
            )
            # Each round loads into a fresh file; the last one is not needed any more.
            for leftover in workdir.glob(f"{who}-{k}.duckdb*"):
                leftover.unlink()
    loader = _median([r["rows_per_s"] for r in runs if r["who"] == "loader"])
    baseline = _median([r["rows_per_s"] for r in runs if r["who"] == "baseline"])
    return {
        "trades": prep["trades"],
        "produce_s": prep["produce_s"],
        "processes": args.processes,
        "runs": runs,
        "rows_per_s": loader,
        "baseline_rows_per_s": baseline,
        "ratio": round(loader / baseline, 3) if loader and baseline else None,
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _warm() -> None:
    """Import and initialise the load path once (GX context, pyarrow's JSON reader, tz data)."""
    from pipeline.kafka.codec import encode
    from pipeline.kafka.offsets import KafkaRecord, OffsetRange
    from pipeline.microbatch import shape_batch
    from pipeline.quality import _context, validate_batch

    _context()
    trades = _sample_trades(100)
    records = [
        KafkaRecord("warm-up", 0, i, *encode(t)[:2], tuple(encode(t)[2]), 0)
        for i, t in enumerate(trades)
    ]
    validate_batch(shape_batch(records, OffsetRange("warm-up", 0, 0, len(records))))


def _warm_together(ready: Any, warm: Callable[[], None]) -> None:
    """Warm up (``warm``), then wait until every worker of the pool has."""
    warm()
    ready.wait(timeout=300.0)


def _noop(_: int) -> None:
    return None


def _latency(bootstrap: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import dagster as dg

    from assets.definitions import build_defs
    from assets.resources import KafkaResource, QualityResource, WarehouseResource
    from assets.sensors import SENSOR_INTERVAL_S
    from pipeline.commands.ingest import DAGSTER_YAML
    from pipeline.kafka.broker import ensure_topic
    from pipeline.kafka.producer import EventProducer
    from pipeline.warehouse import open_warehouse

    interval = float(args.interval_s if args.interval_s is not None else SENSOR_INTERVAL_S)
    topic = f"{TOPIC_PREFIX}-lat-{os.getpid()}-{int(time.time())}"
    ensure_topic(bootstrap, topic, args.partitions, timeout_s=30.0)
    url = f"duckdb:///{workdir / 'latency.duckdb'}"
    defs = build_defs(
        kafka=KafkaResource(bootstrap_servers=bootstrap, topic=topic, max_records=args.max_records),
        warehouse=WarehouseResource(url=url),
        quality=QualityResource(),
    )
    sensor = defs.resolve_sensor_def("market_data_sensor")
    job = defs.resolve_job_def("ingest_job")
    n = int(args.rate * args.seconds)
    trades = _sample_trades(n)
    done = threading.Event()

    def produce_steadily() -> None:
        with EventProducer(bootstrap, topic) as producer:
            t0 = time.perf_counter()
            for i, t in enumerate(trades):
                due = t0 + i / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                producer.send(t)
            producer.flush(60.0)
        done.set()

    producer_thread = threading.Thread(target=produce_steadily, daemon=True)
    runs = 0
    with tempfile.TemporaryDirectory() as home:
        # The project's instance settings (queued runs, console log level).
        shutil.copyfile(DAGSTER_YAML, Path(home) / "dagster.yaml")
        instance = dg.DagsterInstance.from_config(home)
        producer_thread.start()
        next_tick = time.perf_counter()
        while True:
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_tick += interval
            context = dg.build_sensor_context(
                instance=instance, definitions=defs, resources=dict(defs.resources or {})
            )
            tick = sensor.evaluate_tick(context)
            for r in tick.run_requests or []:
                job.execute_in_process(run_config=r.run_config, instance=instance, tags=r.tags)
                runs += 1
            if done.is_set() and not tick.run_requests:
                break
        instance.dispose()
    producer_thread.join()
    lat = open_warehouse(url, read_only=True).query_frame("append_to_commit_latency", (0.5, 0.99))
    p50, p99, rows = lat.iloc[0]["q1"], lat.iloc[0]["q2"], lat.iloc[0]["n"]
    return {
        "append_to_commit_p50_s": round(float(p50), 3),
        "append_to_commit_p99_s": round(float(p99), 3),
        "latency_rows": int(rows),
        "latency_runs": runs,
        "sensor_interval_s": interval,
        "rate_per_s": args.rate,
    }


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with ``--json``).

    Parameters
    ----------
    args
        Parsed options.

    Returns
    -------
    int
        Exit code: 1 if a run did not commit every trade produced.
    """
    from pipeline.commands.ingest import quiet_dagster
    from pipeline.settings import Settings

    quiet_dagster(bool(getattr(args, "verbose", False)))
    settings = Settings.from_env()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        workdir = Path(tmp)
        broker = None
        if settings.uses_local_broker:
            from pipeline.kafka.broker import LocalBroker, free_port

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
        else:
            bootstrap = settings.bootstrap_servers
        try:
            result = _rounds(bootstrap, args, workdir)
            if not args.skip_latency:
                result.update(_latency(bootstrap, args, workdir))
        finally:
            if broker is not None:
                broker.down(timeout_s=30.0)
    # The honesty check: every run, the naive loader's too, committed every trade produced.
    short = [r for r in result["runs"] if r["rows_committed"] != result["trades"]]
    if not args.json:
        _print_text(result)
    if short:
        for r in short:
            print(
                f"bench load: {r['who']} run {r['round']} committed {r['rows_committed']:,} "
                f"rows, not {result['trades']:,}: the figures compare unequal work"
            )
        return 1
    if args.json:
        keys = (
            "rows_per_s",
            "append_to_commit_p50_s",
            "append_to_commit_p99_s",
            "baseline_rows_per_s",
            "ratio",
        )
        print(json.dumps({k: result.get(k) for k in keys}))
    return 0


def _print_text(result: dict[str, Any]) -> None:
    print(
        f"bench load: {result['trades']:,} trades produced in {result['produce_s']} s, "
        f"loaded by {result['processes']} processes"
    )
    for r in result["runs"]:
        label = f"{r['who']} run {r['round']}"
        print(
            f"{label:<16} {r['rows_committed']:>9,} rows in {r['batches']} transactions, "
            f"{r['load_wall_s']:>6.2f} s = {r['rows_per_s']:>9,.0f} rows/s"
        )
        if r["who"] == "loader":
            print(f"  stage wall seconds (summed over processes): {r['stage_wall_s']}")
            print(f"  stage CPU seconds (processes and their library threads): {r['stage_cpu_s']}")
            print(
                "  DuckDB load step alone (file lock waits included): "
                f"{r['load_only_rows_per_s'] or 0:,.0f} rows/s"
            )
    print(
        f"median: loader {result['rows_per_s'] or 0:,.0f} rows/s, naive loader "
        f"{result['baseline_rows_per_s'] or 0:,.0f} rows/s: ratio {result['ratio']} "
        "(target >= 1.0)"
    )
    if "append_to_commit_p50_s" in result:
        print(
            f"latency (append -> COMMIT via sensor every {result['sensor_interval_s']} s, "
            f"{result['rate_per_s']:,.0f} trades/s, {result['latency_runs']} runs): "
            f"p50 {result['append_to_commit_p50_s']} s, p99 {result['append_to_commit_p99_s']} s "
            "(target p50 < 30 s)"
        )
