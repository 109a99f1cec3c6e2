"""``microstructure ingest [--once|--until-caught-up]``: the Dagster ingest path, from a shell.

Evaluates the real ``market_data_sensor`` tick and executes the runs it requests
in-process on the real Dagster instance (``DAGSTER_HOME``, default
``$MICROSTRUCTURE_HOME/dagster``), so the runs, their metadata and the asset's history show
in the Dagster UI afterwards. Run keys are honoured as the daemon honours them: a
requested key that already has a run is skipped.

Runs execute inside this process, so a ``kill -9`` of it leaves its run STARTED in the
instance, which would keep the sensor from ever asking for that partition again. Runs
are tagged with the host and pid that execute them, and each invocation first marks
failed the in-progress runs of processes that no longer exist (what Dagster's run
monitoring does for a daemon with a run launcher that checks worker health).

``--rerun PARTITION:STOP`` executes one microbatch run with that config, as the UI's
re-execute does (an already loaded range is a no-op); ``--fault-at`` and
``--fault-kill`` inject a failure or a ``kill -9`` at a step of the run
(``microstructure faults load``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import processes
from pipeline.settings import Settings

DAGSTER_YAML = Path(__file__).resolve().parents[2] / "docker" / "dagster.yaml"
Echo = Callable[[str], None]
HOST_TAG = "ingest/host"
PID_TAG = "ingest/pid"
# Where a fault can be injected: in the asset after reading, or in the load transaction.
FAULT_STEPS: tuple[str, ...] = ("after_read", "after_insert", "before_commit", "after_commit")


@dataclass
class IngestSummary:
    """What one ``ingest`` invocation did."""

    ticks: int = 0
    runs: int = 0
    failed: int = 0
    noops: int = 0
    orphans: int = 0  # runs of dead processes marked failed
    trades: int = 0
    duplicates: int = 0
    rejects: int = 0
    gaps: int = 0
    messages: int = 0
    seconds: float = 0.0
    run_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lagging: dict[int, int] = field(default_factory=dict)  # partition -> offsets still to load

    @property
    def rows_per_s(self) -> float:
        """Return trades committed per wall-clock second."""
        return self.trades / self.seconds if self.seconds > 0 else 0.0


def register(sub: Any) -> None:
    """Add the ``ingest`` subcommand."""
    p = sub.add_parser(
        "ingest",
        help="evaluate the Dagster ingest sensor and run the microbatches it asks for",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one sensor tick and its runs")
    mode.add_argument(
        "--until-caught-up",
        action="store_true",
        help="tick and run until every partition is loaded to its high watermark (default)",
    )
    p.add_argument(
        "--max-ticks", type=int, default=10_000, help="bound on sensor ticks (default 10000)"
    )
    p.add_argument(
        "--retry-backoff-s",
        type=float,
        default=None,
        metavar="S",
        help="wait before re-requesting a range whose run failed (default: the sensor's, 30)",
    )
    p.add_argument(
        "--rerun",
        type=_rerun,
        action="append",
        default=[],
        metavar="PARTITION:STOP",
        help="then execute one microbatch run with this config, as the UI's re-execute "
        "does (a loaded range is a no-op); repeatable",
    )
    faults = p.add_argument_group("fault injection (microstructure faults load, tests)")
    faults.add_argument(
        "--fault-at", choices=FAULT_STEPS, default="", help="fail every run at this step"
    )
    faults.add_argument(
        "--fault-kill",
        action="store_true",
        help="make the fault a kill -9 of this process (so: the first run)",
    )
    p.set_defaults(func=_main)


def _rerun(text: str) -> tuple[int, int]:
    try:
        partition, stop = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PARTITION:STOP") from None
    if partition < 0 or stop < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: partition and stop must be >= 0")
    return partition, stop


def dagster_home(settings: Settings) -> Path:
    """Return the Dagster instance directory, with ``dagster.yaml`` installed if missing.

    Parameters
    ----------
    settings
        Platform settings; ``DAGSTER_HOME`` wins over ``$MICROSTRUCTURE_HOME/dagster``.

    Returns
    -------
    pathlib.Path
        The instance directory (created).
    """
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and DAGSTER_YAML.exists():
        shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    return home


def run_ingest(
    settings: Settings,
    *,
    until_caught_up: bool = True,
    max_ticks: int = 10_000,
    echo: Echo = print,
    retry_backoff_s: float | None = None,
    reruns: Sequence[tuple[int, int]] = (),
    fault_at: str = "",
    fault_kill: bool = False,
) -> IngestSummary:
    """Tick the sensor and execute its runs on the persistent Dagster instance.

    Parameters
    ----------
    settings
        Platform settings (broker, topic, warehouse, state directory).
    until_caught_up
        Keep ticking until a tick asks for nothing; else one tick.
    max_ticks
        Bound on ticks.
    echo
        Progress sink (one line per run).
    retry_backoff_s
        Backoff base of the sensor's re-requests of a failed range (None: the sensor's).
    reruns
        ``(partition, stop)`` microbatch runs to execute after the sensor's, without a run
        key (as a re-execution from the UI).
    fault_at, fault_kill
        Inject a failure (or a ``kill -9`` of this process) at this step of a run.

    Returns
    -------
    IngestSummary
        Counts over every run, and partitions still lagging at the end.

    Raises
    ------
    TopicRecreatedError
        If the topic's Kafka id is not the ledger's (after the runs: the sensor planned none
        for it); ``microstructure kafka acknowledge-topic`` is the way on.
    """
    import dagster as dg

    from assets.definitions import build_defs
    from assets.resources import WarehouseResource
    from assets.sensors import microbatch_request
    from pipeline.kafka import consumer

    summary = IngestSummary()
    started = time.perf_counter()
    faulty = (
        WarehouseResource(url=settings.warehouse_url, fault_at=fault_at, fault_kill=fault_kill)
        if fault_at
        else None
    )
    defs = build_defs(settings=settings, warehouse=faulty, sensor_retry_base_s=retry_backoff_s)
    sensor = defs.resolve_sensor_def("market_data_sensor")
    job = defs.resolve_job_def("ingest_job")
    home = dagster_home(settings)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        summary.orphans = fail_orphaned_runs(instance, echo)
        for _ in range(max_ticks):
            context = dg.build_sensor_context(
                instance=instance, definitions=defs, resources=dict(defs.resources or {})
            )
            tick = sensor.evaluate_tick(context)
            summary.ticks += 1
            requests = list(tick.run_requests or [])
            if not requests:
                if tick.skip_message:
                    echo(f"sensor: {tick.skip_message}")
                break
            for request in requests:
                _execute(dg, instance, job, request, summary, echo)
            if not until_caught_up:
                break
        for partition, stop in reruns:
            request = microbatch_request(settings.topic, partition, stop)
            _execute(dg, instance, job, request, summary, echo, keyed=False)
    marks = consumer.watermarks(
        settings.bootstrap_servers, settings.topic, 10.0, settings.kafka_extra
    )
    from pipeline.kafka.broker import topic_id
    from pipeline.warehouse import open_warehouse
    from pipeline.warehouse.topic_identity import check_topic_identity

    wh = open_warehouse(settings.warehouse_url, read_only=True)
    # A recreated topic is not "caught up" and not merely lagging: the sensor planned
    # nothing for it, and the shell must see the failure (TopicRecreatedError, exit 1).
    check_topic_identity(
        wh.topic_incarnation(settings.topic),
        topic_id(settings.bootstrap_servers, settings.topic, extra_conf=settings.kafka_extra),
    )
    ledger = wh.next_offsets(settings.topic)
    summary.lagging = {
        p: high - ledger.get(p, low)
        for p, (low, high) in marks.items()
        if ledger.get(p, low) < high
    }
    summary.seconds = time.perf_counter() - started
    return summary


def fail_orphaned_runs(instance: Any, echo: Echo = print) -> int:
    """Mark failed the in-progress ingest runs whose executing process on this host is gone.

    Parameters
    ----------
    instance
        The Dagster instance.
    echo
        Progress sink (one line per run marked).

    Returns
    -------
    int
        Runs marked failed.
    """
    import dagster as dg

    from assets.sensors import IN_PROGRESS

    host = socket.gethostname()
    n = 0
    for run in instance.get_runs(
        dg.RunsFilter(job_name="ingest_job", statuses=IN_PROGRESS, tags={HOST_TAG: host})
    ):
        pid = int(run.tags.get(PID_TAG) or 0)
        if pid <= 0 or pid == os.getpid() or processes.alive(pid):
            continue
        instance.report_run_failed(
            run,
            message=f"the process that executed this run (pid {pid} on {host}) is gone "
            "(killed or crashed); marked failed so that the sensor asks for its range again",
        )
        echo(f"run {run.run_id[:8]} of dead process {pid}: marked failed")
        n += 1
    return n


def _execute(
    dg: Any,
    instance: Any,
    job: Any,
    request: Any,
    summary: IngestSummary,
    echo: Echo,
    *,
    keyed: bool = True,
) -> None:
    key = request.run_key or ""
    if keyed and instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": key}), limit=1):
        echo(f"skip {key}: a run with this key exists")
        return
    tags = {**request.tags, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    if keyed:
        tags |= {"dagster/run_key": key, "dagster/sensor_name": "market_data_sensor"}
    else:
        key = f"rerun {key}"
    t0 = time.perf_counter()
    result = job.execute_in_process(
        run_config=request.run_config, instance=instance, tags=tags, raise_on_error=False
    )
    dt = time.perf_counter() - t0
    summary.runs += 1
    summary.run_ids.append(result.run_id)
    if not result.success:
        summary.failed += 1
        failures = [e for e in result.all_events if e.is_step_failure]
        error = failures[0].step_failure_data.error if failures else None
        # Dagster wraps what the asset raised: report the innermost cause (e.g. OffsetConflict).
        while error is not None and error.cause is not None:
            error = error.cause
        message = error.message.strip() if error is not None else "run failed"
        summary.errors.append(f"{key}: {message}")
        echo(f"FAILED {key} (run {result.run_id[:8]}): {message}")
        return
    [mat] = result.asset_materializations_for_node("market_data")
    meta = {k: v.value for k, v in mat.metadata.items()}
    if meta.get("noop"):
        summary.noops += 1
        echo(f"run {result.run_id[:8]} {key}: already loaded (no-op)")
        return
    summary.trades += int(meta["n_trades"])
    summary.duplicates += int(meta["n_duplicates"])
    summary.rejects += int(meta["n_rejects"])
    summary.gaps += int(meta["n_gaps"])
    summary.messages += int(meta["n_messages"])
    echo(
        f"run {result.run_id[:8]} {meta['offsets']}: {meta['n_trades']:,} trades, "
        f"{meta['n_duplicates']:,} duplicates, {meta['n_rejects']:,} rejects in {dt:.1f} s"
    )


def quiet_dagster(verbose: bool) -> None:
    """Keep Dagster's per-event lines, alembic's and GX's set-up lines off the console.

    Parameters
    ----------
    verbose
        Leave them on (``microstructure -v``).
    """
    if verbose:
        return
    for name in ("dagster", "alembic", "great_expectations"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _main(args: argparse.Namespace) -> int:
    quiet_dagster(bool(getattr(args, "verbose", False)))
    settings = Settings.from_env()
    print(f"ingest {settings.topic} @ {settings.bootstrap_servers} -> {settings.warehouse_url}")
    summary = run_ingest(
        settings,
        until_caught_up=not args.once,
        max_ticks=args.max_ticks,
        echo=print,
        retry_backoff_s=args.retry_backoff_s,
        reruns=args.rerun,
        fault_at=args.fault_at,
        fault_kill=args.fault_kill,
    )
    print(
        f"{summary.runs} runs ({summary.failed} failed, {summary.noops} no-op) in "
        f"{summary.seconds:.1f} s: {summary.trades:,} trades committed "
        f"({summary.rows_per_s:,.0f}/s), {summary.duplicates:,} duplicates, "
        f"{summary.rejects:,} rejects, {summary.gaps:,} gaps"
    )
    if summary.lagging:
        left = ", ".join(f"partition {p}: {n:,}" for p, n in sorted(summary.lagging.items()))
        print(f"still to load: {left}")
    else:
        print("caught up: every partition is loaded to its high watermark")
    print(f"Dagster runs are in {dagster_home(settings)} (open with `make dev`)")
    return 1 if summary.failed else 0
