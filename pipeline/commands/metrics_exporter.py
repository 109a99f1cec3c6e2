"""``microstructure metrics-exporter``: Prometheus metrics of the batch half of the pipeline.

The streamer and the MCP server are long-lived and serve their own ``/metrics``. The
microbatch and signals runs are short-lived Dagster processes: a scrape would rarely find
one alive, and a Pushgateway would keep the last push of a dead run forever. What those
runs did is stored anyway (each trade's SIP, receipt, Kafka-append and commit stamps; the
offset ledger; the signal runs; the quality verdicts; the Dagster run storage), so this
small, read-only service measures it from there:

- per-trade stage histograms (``microstructure_trade_stage_latency_seconds{stage}``),
  grown once per committed microbatch (exactly once: each ledger row is counted once) and
  once per signals run (commit -> signal for the trades that run covered first);
- consumer lag per partition (Kafka high watermark vs the warehouse ledger);
- gap seconds per symbol today, blocked signal days, run counts by status.

It reads the warehouse every ``--interval-s`` (default 15 s) on a short read-only
connection and never writes anything.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from pipeline.errors import ConfigError
from pipeline.metrics import (
    STAGE_BUCKETS_S,
    FastHistogram,
    LagRow,
    PipelineSnapshot,
)
from pipeline.nytime import NEW_YORK
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9109
# A ledger row whose commit stamp precedes one already counted by less than this is still
# looked for (commit stamps are taken before COMMIT, so concurrent loaders can interleave).
OVERLAP_NS = 120 * 1_000_000_000
DAGSTER_JOBS: tuple[str, ...] = ("ingest_job", "signals_job")
DAGSTER_STATUSES: tuple[str, ...] = ("QUEUED", "STARTED", "SUCCESS", "FAILURE", "CANCELED")

_NEW_BATCHES = (
    "SELECT kafka_topic, kafka_partition, start_offset, stop_offset, n_trades, n_rejects, "
    "n_duplicates, n_gaps, quality_passed, committed_ns FROM kafka_offsets "
    "WHERE committed_ns > ? ORDER BY committed_ns"
)
_NEW_RUNS = (
    "SELECT run_id, date, computed_ns, final, quality_passed FROM signal_runs "
    "WHERE computed_ns > ? ORDER BY computed_ns"
)
_LEDGER = (
    "SELECT kafka_partition, max(stop_offset) FROM kafka_offsets WHERE kafka_topic = ? "
    "GROUP BY kafka_partition"
)
_LAST_COMMIT = "SELECT max(committed_ns) FROM kafka_offsets"
_LAST_RUN = "SELECT max(computed_ns) FROM signal_runs"
_GAPS_OF_DAY = (
    "SELECT symbol, gap_seconds, n_gaps FROM day_completeness WHERE trade_date = ? AND n_gaps > 0"
)
# Newest signals audit per day (target = the day) and whether every expectation passed.
_AUDITS = (
    "SELECT target, run_id, max(checked_ns), min(CASE WHEN passed THEN 1 ELSE 0 END) "
    "FROM quality_results WHERE suite = 'signals' AND checked_ns >= ? GROUP BY target, run_id"
)
_RUNS_SINCE = "SELECT date, max(computed_ns) FROM signal_runs WHERE date >= ? GROUP BY date"


def register(sub: Any) -> None:
    """Add the ``metrics-exporter`` subcommand."""
    p = sub.add_parser(
        "metrics-exporter",
        help="serve Prometheus metrics measured from the warehouse, Kafka and Dagster",
        description=(__doc__ or "").split("\n\n")[1],
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    p.add_argument(
        "--interval-s", type=float, default=15.0, help="seconds between refreshes (default 15)"
    )
    p.add_argument(
        "--since-s",
        type=float,
        default=3600.0,
        help="at start, count microbatches and signal runs committed this long ago (default 3600)",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="refresh once, print the exposition text and exit (no server)",
    )
    p.set_defaults(func=_main)


def ny_today(now_ns: int | None = None) -> date:
    """Return today's New York date."""
    ns = time.time_ns() if now_ns is None else now_ns
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).astimezone(NEW_YORK).date()


@dataclass
class Exporter:
    """The exporter's state: what it has counted and the gauges of its last refresh.

    Parameters
    ----------
    settings
        Warehouse URL, topic, broker.
    since_s
        Look-back at start (microbatches and runs committed this long ago are counted).
    dagster_home
        Dagster instance directory to read run counts from (None: not read).
    kafka_timeout_s
        Bound on the watermark query (a down broker costs this much per refresh).
    """

    settings: Settings
    since_s: float = 3600.0
    dagster_home: str | None = None
    kafka_timeout_s: float = 3.0
    clock_ns: Callable[[], int] = time.time_ns
    snapshot: PipelineSnapshot = field(default_factory=PipelineSnapshot)
    _seen_batches: dict[tuple[str, int, int], int] = field(default_factory=lambda: {})
    _seen_runs: dict[tuple[str, str], int] = field(default_factory=lambda: {})
    _floor_ns: int = 0
    _ledger: dict[int, int] = field(default_factory=lambda: {})
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dagster: Any = None

    def __post_init__(self) -> None:
        self._floor_ns = self.clock_ns() - int(self.since_s * 1e9)
        from pipeline.stages import STAGES

        self.snapshot.stage_latency = {s.name: FastHistogram(STAGE_BUCKETS_S) for s in STAGES}
        # sip_to_signal needs every trade's SIP stamp per run; status measures it instead.
        self.snapshot.stage_latency.pop("sip_to_signal", None)

    def current(self) -> PipelineSnapshot:
        """Return the snapshot a scrape reads.

        Dicts are copied under the lock so a scrape never iterates one that a refresh
        grows; histograms are shared (their counts only grow, see :mod:`pipeline.metrics`).
        """
        with self._lock:
            s = self.snapshot
            return replace(
                s,
                stage_latency=dict(s.stage_latency),
                batches=dict(s.batches),
                lag=None if s.lag is None else list(s.lag),
                gap_today_s=dict(s.gap_today_s),
                gaps_today=dict(s.gaps_today),
                signal_runs=dict(s.signal_runs),
                dagster_runs=None if s.dagster_runs is None else dict(s.dagster_runs),
                refresh_errors=dict(s.refresh_errors),
            )

    # --- refresh -----------------------------------------------------------------------

    def refresh(self) -> PipelineSnapshot:
        """Read every source once and update the counters and gauges.

        Returns
        -------
        PipelineSnapshot
            The updated snapshot. A source that cannot be read keeps its previous values
            and counts one ``refresh_errors`` for that source.
        """
        t0 = time.perf_counter()
        for source, step in (
            ("warehouse", self._refresh_warehouse),
            ("kafka", self._refresh_kafka),
            ("dagster", self._refresh_dagster),
        ):
            try:
                step()
            except Exception as e:  # a monitoring loop must outlive its sources
                logger.warning("metrics-exporter: cannot read %s: %s", source, e)
                with self._lock:
                    errs = self.snapshot.refresh_errors
                    errs[source] = errs.get(source, 0.0) + 1.0
                    if source == "warehouse":
                        self.snapshot.warehouse_up = 0.0
                    elif source == "kafka":
                        self.snapshot.broker_up = 0.0
                        self.snapshot.lag = None
                    elif source == "dagster":
                        self.snapshot.dagster_runs = None
        with self._lock:
            self.snapshot.refresh_s = time.perf_counter() - t0
            self.snapshot.last_refresh_s = self.clock_ns() / 1e9
        return self.current()

    def _refresh_warehouse(self) -> None:
        from pipeline.stages import batch_stage_durations, run_stage_durations
        from pipeline.warehouse import open_warehouse

        wh = open_warehouse(self.settings.warehouse_url, read_only=True, lock_timeout_s=5.0)
        today = ny_today(self.clock_ns())
        with wh.transaction() as s:
            newest = max(self._seen_batches.values(), default=self._floor_ns)
            since = max(self._floor_ns, newest - OVERLAP_NS)
            batches = [
                b
                for b in s.execute(_NEW_BATCHES, (since,))
                if (str(b[0]), int(b[1]), int(b[2])) not in self._seen_batches
            ]
            hops = [
                (b, batch_stage_durations(s, str(b[0]), int(b[1]), int(b[2]), int(b[3])))
                for b in batches
            ]
            newest_run = max(self._seen_runs.values(), default=self._floor_ns)
            runs = [
                r
                for r in s.execute(_NEW_RUNS, (max(self._floor_ns, newest_run - OVERLAP_NS),))
                if (str(r[0]), str(r[1])) not in self._seen_runs
            ]
            run_hops = [(r, run_stage_durations(s, r[1], int(r[2]))) for r in runs]
            ledger = {int(p): int(o) for p, o in s.execute(_LEDGER, (self.settings.topic,))}
            last_commit = s.execute(_LAST_COMMIT)[0][0]
            last_run = s.execute(_LAST_RUN)[0][0]
            gaps = s.execute(_GAPS_OF_DAY, (today,))
            week_ns = self.clock_ns() - 7 * 86_400 * 1_000_000_000
            audits = s.execute(_AUDITS, (week_ns,))
            published = s.execute(_RUNS_SINCE, (date.fromordinal(today.toordinal() - 10),))
        with self._lock:
            snap = self.snapshot
            for b, durations in hops:
                key = (str(b[0]), int(b[1]), int(b[2]))
                self._seen_batches[key] = int(b[9])
                for stage, values in durations.items():
                    snap.stage_latency[stage].observe_many_ns(values)
                snap.trades += int(b[4])
                snap.rejects += int(b[5])
                snap.duplicates += int(b[6])
                snap.gap_records += int(b[7])
                verdict = "unchecked" if b[8] is None else ("passed" if b[8] else "failed")
                snap.batches[verdict] = snap.batches.get(verdict, 0.0) + 1.0
            for r, rd in run_hops:
                self._seen_runs[(str(r[0]), str(r[1]))] = int(r[2])
                snap.stage_latency["commit_to_signal"].observe_many_ns(
                    rd.commit_to_signal_ns, rd.weights
                )
                final = "true" if r[3] else "false"
                audit = "unchecked" if r[4] is None else ("passed" if r[4] else "failed")
                snap.signal_runs[(final, audit)] = snap.signal_runs.get((final, audit), 0.0) + 1
            self._prune()
            self._ledger = ledger
            if snap.lag is not None:  # keep lag consistent with the counters just updated
                snap.lag = [
                    LagRow(r.topic, r.partition, r.high_watermark, ledger.get(r.partition, 0))
                    if r.partition in ledger
                    else r
                    for r in snap.lag
                ]
            snap.last_commit_s = None if last_commit is None else int(last_commit) / 1e9
            snap.last_signal_run_s = None if last_run is None else int(last_run) / 1e9
            snap.gap_today_s = {str(sym): float(sec) for sym, sec, _ in gaps}
            snap.gaps_today = {str(sym): float(n) for sym, _, n in gaps}
            snap.blocked_days = float(len(blocked_days(audits, published)))
            snap.warehouse_up = 1.0

    def _prune(self) -> None:
        # Keys older than twice the overlap can no longer come back in a query.
        for seen in (self._seen_batches, self._seen_runs):
            _prune_older(seen, max(seen.values(), default=0) - 2 * OVERLAP_NS)

    def _refresh_kafka(self) -> None:
        from pipeline.errors import KafkaError
        from pipeline.kafka import consumer

        if not broker_reachable(self.settings.bootstrap_servers, min(self.kafka_timeout_s, 1.0)):
            raise KafkaError(f"no broker listens at {self.settings.bootstrap_servers}")
        marks = consumer.watermarks(
            self.settings.bootstrap_servers,
            self.settings.topic,
            self.kafka_timeout_s,
            self.settings.kafka_extra,
        )
        with self._lock:
            self.snapshot.lag = [
                LagRow(self.settings.topic, p, high, self._ledger.get(p, low))
                for p, (low, high) in sorted(marks.items())
            ]
            self.snapshot.broker_up = 1.0

    def _refresh_dagster(self) -> None:
        if self.dagster_home is None:
            return
        import dagster as dg

        if self._dagster is None:
            self._dagster = dg.DagsterInstance.from_config(self.dagster_home)
        counts: dict[tuple[str, str], float] = {}
        for job in DAGSTER_JOBS:
            for status in DAGSTER_STATUSES:
                flt = dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus[status]])
                counts[(job, status)] = float(self._dagster.get_runs_count(filters=flt))
        with self._lock:
            self.snapshot.dagster_runs = counts

    def close(self) -> None:
        """Release the Dagster instance."""
        if self._dagster is not None:
            self._dagster.dispose()
            self._dagster = None


def _prune_older(seen: dict[Any, int], floor_ns: int) -> None:
    for key in [k for k, v in seen.items() if v < floor_ns]:
        del seen[key]


def broker_reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """Return True if a TCP connection to any bootstrap server opens within ``timeout_s``.

    A cheap probe before asking librdkafka, which would retry (and log each retry) until
    its own timeout when nothing listens.

    Parameters
    ----------
    bootstrap
        ``host:port[,host:port...]``.
    timeout_s
        Connect timeout per server.

    Returns
    -------
    bool
        Whether some server accepted a connection.
    """
    import socket

    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]") or "127.0.0.1"
        try:
            with socket.create_connection((host, int(port or 9092)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def blocked_days(audits: list[tuple[Any, ...]], published: list[tuple[Any, ...]]) -> list[str]:
    """Return the days whose newest signals audit failed after their newest publish.

    Parameters
    ----------
    audits
        ``(target day, run_id, checked_ns, all_passed 0/1)`` per audit run.
    published
        ``(day, newest computed_ns)`` of the days with a published run.

    Returns
    -------
    list[str]
        ``YYYY-MM-DD`` days that are blocked: the last good version stays visible, and the
        newest data is not published.
    """
    newest: dict[str, tuple[int, int]] = {}
    for target, _run, checked, ok in audits:
        day = str(target)
        if day not in newest or int(checked) > newest[day][0]:
            newest[day] = (int(checked), int(ok))
    last_publish = {str(d): int(c) for d, c in published}
    return sorted(
        day
        for day, (checked, ok) in newest.items()
        if not ok and last_publish.get(day, -1) < checked
    )


@contextlib.contextmanager
def running_exporter(
    exporter: Exporter, host: str, port: int, interval_s: float
) -> Iterator[tuple[str, threading.Event]]:
    """Serve ``exporter`` on ``host:port`` and refresh it every ``interval_s`` seconds.

    Parameters
    ----------
    exporter
        The state to serve.
    host, port
        Bind address (port 0 = any free port).
    interval_s
        Seconds between refreshes.

    Yields
    ------
    tuple[str, threading.Event]
        The scrape URL and an event set after every refresh (tests wait on it).
    """
    from prometheus_client import CollectorRegistry

    from pipeline.metrics import PipelineMetrics, serve_metrics

    registry = CollectorRegistry(auto_describe=True)
    registry.register(PipelineMetrics(exporter.current))
    refreshed = threading.Event()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            exporter.refresh()
            refreshed.set()
            stop.wait(interval_s)

    server = serve_metrics(port, host=host, registry=registry)
    thread = threading.Thread(target=loop, name="metrics-exporter-refresh", daemon=True)
    thread.start()
    try:
        yield server.url, refreshed
    finally:
        stop.set()
        thread.join(timeout=30.0)
        server.close()
        exporter.close()


def _main(args: argparse.Namespace) -> int:
    import os

    if args.interval_s <= 0:
        raise ConfigError(f"--interval-s is {args.interval_s} and must be positive")
    from pipeline.commands.ingest import quiet_dagster

    quiet_dagster(bool(getattr(args, "verbose", False)))  # no alembic set-up lines per refresh
    settings = Settings.from_env()
    home = os.environ.get("DAGSTER_HOME") or str(settings.dagster_home)
    exporter = Exporter(
        settings,
        since_s=args.since_s,
        dagster_home=home if os.path.isdir(home) else None,
    )
    if args.once:
        from prometheus_client import CollectorRegistry, generate_latest

        from pipeline.metrics import PipelineMetrics

        exporter.refresh()
        registry = CollectorRegistry(auto_describe=True)
        registry.register(PipelineMetrics(exporter.current))
        print(generate_latest(registry).decode(), end="")
        exporter.close()
        return 0
    with running_exporter(exporter, args.host, args.port, args.interval_s) as (url, _):
        print(
            f"metrics-exporter: {url} (warehouse {settings.warehouse_url}, "
            f"topic {settings.topic} @ {settings.bootstrap_servers}, "
            f"Dagster {exporter.dagster_home or 'not found'}; refresh every "
            f"{args.interval_s:g} s)",
            flush=True,
        )
        threading.Event().wait()  # until Ctrl-C / SIGTERM
    return 0
