"""``microstructure bench serve``: the MCP server at real volume, and what it costs ingest.

What it measures, on DuckDB (the embedded default; Vertica serves from the database):

1. Two warehouses, built once and cached under ``var/bench/serve``
   (:mod:`pipeline.bench.serve_data`): 25 symbols x 20 trading days (20,000,000 trades
   with signals) and the half-size history, 25 x 10 days. Each gets its serving store
   once (the materializer's first build, timed: ``index_build_s``, one-time and
   proportional to history). Runs use a working copy (the warehouse copied, the store's
   immutable files hard-linked), so the cache is never changed.
2. **Start-up**: ``microstructure serve-mcp --http`` started on a working copy;
   ``start_s`` is from the process start to the first tool answer.
3. **Latency and memory**: 100 clients at an open-loop 200 requests/s
   (``--rate``/``--clients``; the load generator of ``bench mcp``, a separate process)
   with a mix of every tool over the whole history (newest windows, explicit windows on
   older days, daily statistics, data quality of any day); p50/p99 per tool, latency
   counted from each request's scheduled time. ``rss_mb``: the peak of the summed
   resident memory of every server process (supervisor, workers, materializer), sampled
   every 0.2 s; the same on the half-size warehouse gives ``rss_mb_half``.
4. **Freshness and ingest**: a loader process commits microbatches at full speed with
   the real ``load_batch`` (one transaction per batch with its ledger row;
   :func:`pipeline.bench.serve_data.run_loader`) without the server, with it idle and
   with it under the same query load, in the order none, idle, load, load, idle, none
   (the working copy grows with every run and the loader's rate drifts with it: a mirrored
   order gives each mode the same mean position, so that drift cancels).
   ``ingest_ratio`` is the loader's rows/s with the server under load over without it
   (same program, same batches' sizes, same minutes); ``freshness_p99_s``: per batch,
   the time from its COMMIT returning in the loader to the first answer of
   ``get_real_time_data`` (polled every 0.1 s by another client, so a figure is late by
   up to 0.1 s, never early) that shows its newest trade.

With ``--json`` one object: ``{"trades", "start_s", "rss_mb", "rss_mb_half", "p99_ms",
"freshness_p99_s", "ingest_ratio"}`` and the details. Targets (issue 13): start_s < 5,
rss_mb < 1024, rss_mb / rss_mb_half < 1.3, p99_ms < 20, freshness_p99_s < 5,
ingest_ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGETS = {
    "start_s": ("<", 5.0),
    "rss_mb": ("<", 1024.0),
    "rss_ratio": ("<", 1.3),
    "p99_ms": ("<", 20.0),
    "freshness_p99_s": ("<", 5.0),
    "ingest_ratio": (">=", 0.9),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of query load")
    parser.add_argument("--clients", type=int, default=100, help="concurrent clients (100)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s (200)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn workers (1, the server's default; 2 serve 200 requests/s no better here)",
    )
    parser.add_argument(
        "--ingest-s", type=float, default=20.0, help="seconds of each loader run (20)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where the warehouses are cached (default $MICROSTRUCTURE_HOME/bench/serve)",
    )
    parser.add_argument("--days", type=int, default=20, help="trading days of history (20)")


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- processes and their memory ----------------------------------------------------------------


def _rss_mb(pid: int) -> float:
    from pipeline import processes

    return processes.rss_mb(processes.tree(pid))


class RssSampler:
    """The peak of a process tree's summed resident memory, sampled every ``every_s``."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid = pid
        self.every_s = every_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb(self.pid))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Server:
    """A started ``serve-mcp --http`` process."""

    proc: subprocess.Popen[bytes]
    port: int
    tokens: list[str]
    start_s: float
    log: Path


def _post(port: int, token: str, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.post(
            f"http://127.0.0.1:{port}/mcp",
            json={"method": method, "params": params, "id": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    return r.json().get("result")


@contextmanager
def serve(warehouse: Path, workdir: Path, clients: int, workers: int) -> Iterator[Server]:
    """Start the server on ``warehouse``; ``start_s`` runs until its first tool answer."""
    from pipeline.bench.mcp_http import start_server, stop_server, wait_port

    t0 = time.perf_counter()
    proc, tokens, log = start_server(warehouse, workdir, clients, workers, log_level="WARNING")
    try:
        # Polled finely: start_s is measured from here to the first answer.
        port = wait_port(log, proc, timeout_s=120, poll_s=0.02)
        while time.perf_counter() - t0 < 300:
            if _post(port, tokens[0], "list_symbols", {"limit": 1}) is not None:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
            time.sleep(0.02)
        else:
            raise TimeoutError("the server gave no answer in 300 s")
        yield Server(proc, port, tokens, time.perf_counter() - t0, log)
    finally:
        stop_server(proc)


# --- the query mix and the load generator -------------------------------------------------------


def serve_mix(
    symbols: Sequence[str], days: Sequence[str], seed: int = 5
) -> list[tuple[str, dict[str, Any]]]:
    """Return a shuffled mix of every tool over the whole history (weights as ``bench mcp``)."""
    import random

    rng = random.Random(seed)  # noqa: S311 - a reproducible mix, not a secret
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(2 * len(symbols)):
        s, d = symbols[i % len(symbols)], rng.choice(days)
        hour = rng.randint(10, 15)
        calls += [
            ("get_real_time_data", {"symbols": rng.sample(list(symbols), 3)}),
            ("get_enriched_data", {"symbol": s, "limit": 50}),
            (
                "get_enriched_data",
                {"symbol": s, "limit": 50, "start": f"{d}T{hour}:00", "end": f"{d}T{hour}:15"},
            ),
            ("get_trading_signals", {"symbol": s, "limit": 50}),
            ("get_trading_signals", {"symbol": s, "signal_type": "BUY", "start": d, "end": d}),
            ("get_jump_events", {"symbol": s, "limit": 20}),
            ("get_symbol_metrics", {"symbol": s, "days": rng.choice((1, 5, 20))}),
            ("get_data_quality", {"symbol": s, "day": d}),
            ("list_symbols", {}),
        ]
    rng.shuffle(calls)
    return calls


def run_loadgen(
    server: Server,
    calls: list[tuple[str, dict[str, Any]]],
    *,
    clients: int,
    rate: float,
    duration_s: float,
    workdir: Path,
    warmup_s: float = 5.0,
) -> dict[str, Any]:
    """Drive ``server`` at an open-loop ``rate`` and return the load generator's figures."""
    spec = {
        "host": "127.0.0.1",
        "port": server.port,
        "clients": clients,
        "tokens": server.tokens,
        "calls": calls,
        "protocol": "2026-07-28",
        "phases": [
            # Each worker maps its files and derives their positions on first use: warm
            # them as a running server is, then measure (as bench mcp does).
            {"name": "warmup", "mode": "open", "duration_s": warmup_s, "rate": rate},
            {"name": "latency", "mode": "open", "duration_s": duration_s, "rate": rate},
        ],
    }
    path = workdir / f"spec-{secrets.token_hex(4)}.json"
    path.write_text(json.dumps(spec))
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.bench.mcp_http", "loadgen", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["latency"]


def _latency_report(lat: dict[str, Any]) -> dict[str, Any]:
    from pipeline.metrics import sample_quantile

    every = [v / 1e6 for vs in lat["latency_ns"].values() for v in vs]
    return {
        "requests_per_s": round(lat["requests"] / lat["wall_s"], 1),
        "p50_ms": round(sample_quantile(every, 0.5), 3),
        "p99_ms": round(sample_quantile(every, 0.99), 3),
        "max_ms": round(max(every), 3) if every else None,
        "errors": lat["errors"],
        "per_tool": {
            t: {
                "p50_ms": round(sample_quantile([x / 1e6 for x in v], 0.5), 3),
                "p99_ms": round(sample_quantile([x / 1e6 for x in v], 0.99), 3),
                "n": len(v),
            }
            for t, v in sorted(lat["latency_ns"].items())
        },
    }


# --- working copies --------------------------------------------------------------------------


def ensure_store(warehouse: Path) -> dict[str, Any]:
    """Build the cached warehouse's serving store once (timed); return what it cost."""
    from pipeline.serving.materialize import Materializer
    from pipeline.serving.store_view import default_store

    store = default_store(warehouse)
    facts = store.with_name(store.name + ".bench.json")
    if facts.exists() and (store / "CURRENT").exists():
        return json.loads(facts.read_text())
    shutil.rmtree(store, ignore_errors=True)
    _note(f"building the serving store of {warehouse.name} (once) ...")
    m = Materializer(warehouse, store, grace_s=0)
    t0 = time.perf_counter()
    steps = 0
    while m.step().outcome == "progress":
        steps += 1
    built = time.perf_counter() - t0
    m.seal_after_s = 0
    while m.maintain():
        pass
    m.maintain()
    doc = {
        "index_build_s": round(built, 1),
        "index_rows": m.stats.rows,
        "index_rows_per_s": round(m.stats.rows / built),
        "index_hold_s_max": round(m.stats.hold_s_max, 3),
        "index_readings": steps + 1,
        "seal_s": round(time.perf_counter() - t0 - built, 1),
    }
    m.close()
    facts.write_text(json.dumps(doc))
    return doc


def working_copy(warehouse: Path, into: Path) -> Path:
    """Copy a warehouse (its file) with its serving store (hard links: files never change)."""
    from pipeline.serving.store_view import default_store

    into.mkdir(parents=True, exist_ok=True)
    target = into / "warehouse.duckdb"
    shutil.copyfile(warehouse, target)
    store = default_store(warehouse)
    shutil.copytree(store, default_store(target), copy_function=os.link)
    # Write the copy out now: its 1-2 GB of dirty pages would otherwise be written back
    # while the server is measured, and count against it.
    os.sync()
    return target


# --- freshness under ingest ---------------------------------------------------------------------


class Prober:
    """Polls the marker symbol's newest trade and records when each time first appears."""

    def __init__(self, server: Server, marker: str, every_s: float = 0.1) -> None:
        self.server = server
        self.marker = marker
        self.every_s = every_s
        self.seen: list[tuple[int, int]] = []  # (wall ns, newest marker trade ns)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        token = self.server.tokens[-1]
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.post(
                        f"http://127.0.0.1:{self.server.port}/mcp",
                        json={
                            "method": "get_real_time_data",
                            "params": {"symbols": [self.marker]},
                            "id": 1,
                        },
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    now = time.time_ns()
                    if r.status_code == 200:
                        rows = r.json()["result"]["rows"]
                        last = rows[0]["last_trade"] if rows else None
                        if last is not None:
                            self.seen.append((now, int(last["timestamp_ns"])))
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                self._stop.wait(self.every_s)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def freshness_s(self, batches: Sequence[Any]) -> list[float]:
        """Per batch: first answer showing its marker trade minus its commit (seconds)."""
        out = []
        for b in batches:
            for wall, ts in self.seen:
                if wall >= b.committed_wall_ns and ts >= b.marker_ts_ns:
                    out.append((wall - b.committed_wall_ns) / 1e9)
                    break
        return out


def wait_caught_up(warehouse: Path, since_ns: int, timeout_s: float = 300.0) -> float:
    """Wait until the server's store shows the warehouse unchanged after ``since_ns``.

    A loader run without the server leaves rows the store has not followed yet; the next
    run with the server must not be measured while the materializer catches up on them.
    Returns the seconds waited.
    """
    from pipeline.serving.store import StoreLayout
    from pipeline.serving.store_view import default_store

    layout = StoreLayout(default_store(warehouse))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        name = layout.current_name()
        verified = layout.read_verified()
        if name and verified and name == f"gens/g{verified[0]}.json" and verified[1] > since_ns:
            return time.perf_counter() - t0
        time.sleep(0.1)
    raise TimeoutError("the serving store did not catch up with the warehouse")


def loader_run(warehouse: Path, batches_file: Path, duration_s: float, out: Path) -> Any:
    """Run the full-speed loader in its own process; return its report."""
    from pipeline.bench.serve_data import LoaderReport

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.bench.serve_data",
            "load",
            "--warehouse",
            str(warehouse),
            "--batches",
            str(batches_file),
            "--duration",
            str(duration_s),
            "--out",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return LoaderReport.from_json(out.read_text())


def _rate(runs: Sequence[dict[str, Any]], mode: str) -> float:
    mine = [r for r in runs if r["server"] == mode]
    return sum(r["rows"] for r in mine) / sum(r["seconds"] for r in mine)


def _tree_cpu_s(pid: int) -> float:
    from pipeline import processes

    return processes.cpu_s(processes.tree(pid), reaped_children=True)


def ingest_phase(
    args: argparse.Namespace,
    warehouse: Path,
    tmp: Path,
    calls: list[tuple[str, dict[str, Any]]],
    report: dict[str, Any],
) -> tuple[list[dict[str, Any]], list[float]]:
    """Run the loader without the server, with it idle, and with it under query load.

    Mirrored (none, idle, load, load, idle, none) on the same working copy, which grows
    with every run: each mode's mean position is the same, so a drift with the copy's
    size cancels in the ratios. Each run's batches are prepared from the warehouse as it
    then is (new trading days, continuing the ledger), before its clock starts. Returns
    the runs and the freshness of every batch loaded while the server ran.
    """
    from pipeline.bench.serve_data import MARKER_SYMBOL, prepare_batches, save_batches

    runs: list[dict[str, Any]] = []
    fresh: list[float] = []
    n_batches = max(40, int(args.ingest_s * 12))  # ~240,000 rows/s at most: never short
    for k, mode in enumerate(("none", "idle", "load", "load", "idle", "none")):
        part = tmp / f"batches-{k}.pkl"
        save_batches(
            prepare_batches(warehouse, n_batches=n_batches, batch_records=20_000, day_offset=k * 3),
            part,
        )
        out = tmp / f"load-{k}.json"
        server_cpu = None
        caught_up_s = 0.0
        if mode == "none":
            rep = loader_run(warehouse, part, args.ingest_s, out)
        else:
            with (
                serve(warehouse, tmp / "full", args.clients, args.workers) as srv,
                Prober(srv, MARKER_SYMBOL) as probe,
            ):
                box: dict[str, Any] = {}

                def query_load(srv: Server = srv, box: dict[str, Any] = box) -> None:
                    box["lat"] = run_loadgen(
                        srv,
                        calls,
                        clients=args.clients,
                        rate=args.rate,
                        duration_s=args.ingest_s + 3,
                        workdir=tmp,
                    )

                load_thread = threading.Thread(target=query_load)
                caught_up_s = wait_caught_up(warehouse, time.time_ns())
                cpu0, t0 = _tree_cpu_s(srv.proc.pid), time.perf_counter()
                if mode == "load":
                    load_thread.start()
                rep = loader_run(warehouse, part, args.ingest_s, out)
                server_cpu = (_tree_cpu_s(srv.proc.pid) - cpu0) / (time.perf_counter() - t0)
                # Let the last commits become visible before the prober stops.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and len(probe.freshness_s(rep.batches)) < len(
                    rep.batches
                ):
                    time.sleep(0.1)
                if mode == "load":
                    load_thread.join()
                    report.setdefault("latency_under_ingest", _latency_report(box["lat"]))
                found = probe.freshness_s(rep.batches)
                fresh.extend(found)
                report["batches_never_seen"] = (
                    report.get("batches_never_seen", 0) + len(rep.batches) - len(found)
                )
        runs.append(
            {
                "server": mode,
                "rows": rep.rows,
                "seconds": rep.seconds,
                "rows_per_s": round(rep.rows_per_s),
                "loader_cpu_pct": round(100 * rep.cpu_s / rep.seconds, 1),
                "server_cpu_pct": None if server_cpu is None else round(100 * server_cpu, 1),
                "load_s_p50": rep.load_s_p50,
                "load_s_p99": rep.load_s_p99,
                "store_caught_up_s": None if mode == "none" else round(caught_up_s, 1),
            }
        )
        _note(
            f"loader, server {mode}: {rep.rows_per_s:,.0f} rows/s (loader CPU "
            f"{runs[-1]['loader_cpu_pct']}%, server CPU {runs[-1]['server_cpu_pct']}%)"
        )
    return runs, fresh


# --- the benchmark ------------------------------------------------------------------------------


def measure_history(
    args: argparse.Namespace,
    warehouse: Path,
    tmp: Path,
    calls: list[tuple[str, dict[str, Any]]],
    label: str,
    suffix: str,
) -> dict[str, Any]:
    """Serve ``warehouse`` under the query load; return its start, peak memory and latency.

    The keys are ``start_s``, ``rss_mb`` and ``latency``, each followed by ``suffix``.
    """
    with serve(warehouse, warehouse.parent, args.clients, args.workers) as srv:
        _note(f"{label} history: server answered in {srv.start_s:.2f} s; query load ...")
        with RssSampler(srv.proc.pid) as rss:
            lat = run_loadgen(
                srv,
                calls,
                clients=args.clients,
                rate=args.rate,
                duration_s=args.duration,
                workdir=tmp,
            )
        return {
            f"start_s{suffix}": round(srv.start_s, 3),
            f"rss_mb{suffix}": round(rss.peak_mb, 1),
            f"latency{suffix}": _latency_report(lat),
        }


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures (one JSON object with --json)."""
    import logging

    from pipeline.bench.serve_data import (
        cached_serve_warehouse,
    )
    from pipeline.metrics import sample_quantile
    from pipeline.settings import Settings

    logging.getLogger("httpx").setLevel(logging.WARNING)
    cache = args.cache_dir or (Settings.from_env().home / "bench" / "serve")
    cache = Path(cache).resolve()
    full = cached_serve_warehouse(cache, n_days=args.days, progress=_note)
    half = cached_serve_warehouse(cache, n_days=args.days // 2, progress=_note)
    index_full, index_half = ensure_store(full.path), ensure_store(half.path)
    calls_full = serve_mix(full.symbols, full.days)
    calls_half = serve_mix(half.symbols, half.days)
    report: dict[str, Any] = {"trades": full.n_trades, "trades_half": half.n_trades}
    with tempfile.TemporaryDirectory(prefix="bench-serve-", dir=cache) as tmp_s:
        tmp = Path(tmp_s)
        # Each history in turn: start, memory, latency (the full one's copy is kept for ingest).
        wh_half = working_copy(half.path, tmp / "half")
        report.update(measure_history(args, wh_half, tmp, calls_half, "half-size", "_half"))
        shutil.rmtree(tmp / "half")
        wh_full = working_copy(full.path, tmp / "full")
        report.update(measure_history(args, wh_full, tmp, calls_full, "full", ""))
        # Ingest without and with the server under the same query load, alternated.
        runs, fresh = ingest_phase(args, wh_full, tmp, calls_full, report)
    base = _rate(runs, "none")
    idle = _rate(runs, "idle")
    withs = _rate(runs, "load")
    report.update(
        {
            "p99_ms": report["latency"]["p99_ms"],
            "freshness_p50_s": round(sample_quantile(fresh, 0.5), 3),
            "freshness_p99_s": round(sample_quantile(fresh, 0.99), 3),
            "freshness_max_s": round(max(fresh), 3) if fresh else None,
            "ingest_rows_per_s_without": round(base),
            "ingest_rows_per_s_server_idle": round(idle),
            "ingest_rows_per_s_with": round(withs),
            "ingest_ratio": round(withs / base, 3),
            "ingest_ratio_server_idle": round(idle / base, 3),
            "ingest_runs": runs,
            "index_full": index_full,
            "index_half": index_half,
            "setup": {
                "clients": args.clients,
                "rate": args.rate,
                "duration_s": args.duration,
                "workers": args.workers,
                "ingest_s": args.ingest_s,
                "cores": os.cpu_count(),
                "loadavg_at_end": os.getloadavg(),
            },
        }
    )
    report["rss_ratio"] = round(report["rss_mb"] / report["rss_mb_half"], 3)
    report["targets"] = {
        k: {
            "value": report[k],
            "target": f"{op} {v:g}",
            "met": report[k] < v if op == "<" else report[k] >= v,
        }
        for k, (op, v) in TARGETS.items()
    }
    if args.json:
        print(json.dumps(report))
    else:
        _print(report)
    return 0


def _print(r: dict[str, Any]) -> None:
    s = r["setup"]
    print(
        f"MCP serving at volume (DuckDB): {r['trades']:,} trades (half: {r['trades_half']:,}), "
        f"{s['workers']} worker(s), {s['clients']} clients at {s['rate']:g} requests/s, "
        f"{s['cores']} cores"
    )
    i = r["index_full"]
    print(
        f"  serving store, built once: {i['index_build_s']} s for {i['index_rows']:,} rows "
        f"({i['index_rows_per_s']:,} rows/s), longest hold of the warehouse "
        f"{i['index_hold_s_max']} s"
    )
    print(f"  start to first answer: {r['start_s']} s (half-size history {r['start_s_half']} s)")
    print(
        f"  peak server memory: {r['rss_mb']} MB (half-size history {r['rss_mb_half']} MB, "
        f"ratio {r['rss_ratio']})"
    )
    lat = r["latency"]
    print(
        f"  latency: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms at "
        f"{lat['requests_per_s']} requests/s; errors {lat['errors']}"
    )
    for tool, v in lat["per_tool"].items():
        print(f"    {tool:22s} p50 {v['p50_ms']:7.3f} ms  p99 {v['p99_ms']:7.3f} ms  (n={v['n']})")
    print(
        f"  freshness (commit -> visible over MCP): p50 {r['freshness_p50_s']} s, p99 "
        f"{r['freshness_p99_s']} s, max {r['freshness_max_s']} s; batches never seen "
        f"{r.get('batches_never_seen', 0)}"
    )
    print(
        f"  ingest: {r['ingest_rows_per_s_without']:,} rows/s without the server, "
        f"{r['ingest_rows_per_s_server_idle']:,} with it idle (ratio "
        f"{r['ingest_ratio_server_idle']}), {r['ingest_rows_per_s_with']:,} with it under "
        f"query load: ratio {r['ingest_ratio']}"
    )
    for k, t in r["targets"].items():
        print(f"  target {k} {t['target']}: {t['value']} -> {'met' if t['met'] else 'NOT met'}")
