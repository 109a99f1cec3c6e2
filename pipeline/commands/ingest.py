"""``microstructure ingest [--once|--until-caught-up]``: the Dagster ingest path, from a shell.

Evaluates the real ``market_data_sensor`` tick and executes the runs it requests
in-process on the real Dagster instance (``DAGSTER_HOME``, default
``$MICROSTRUCTURE_HOME/dagster``), so the runs, their metadata and the asset's history show
in the Dagster UI afterwards. Run keys are honoured as the daemon honours them: a
requested key that already has a run is skipped.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.settings import Settings

DAGSTER_YAML = Path(__file__).resolve().parents[2] / "docker" / "dagster.yaml"
Echo = Callable[[str], None]


@dataclass
class IngestSummary:
    """What one ``ingest`` invocation did."""

    ticks: int = 0
    runs: int = 0
    failed: int = 0
    noops: int = 0
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
    p.set_defaults(func=_main)


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

    Returns
    -------
    IngestSummary
        Counts over every run, and partitions still lagging at the end.
    """
    import dagster as dg

    from assets.definitions import build_defs
    from pipeline.kafka import consumer

    summary = IngestSummary()
    started = time.perf_counter()
    defs = build_defs(settings=settings)
    sensor = defs.resolve_sensor_def("market_data_sensor")
    job = defs.resolve_job_def("ingest_job")
    home = dagster_home(settings)
    with dg.DagsterInstance.from_config(str(home)) as instance:
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
    marks = consumer.watermarks(
        settings.bootstrap_servers, settings.topic, 10.0, settings.kafka_extra
    )
    from pipeline.warehouse import open_warehouse

    ledger = open_warehouse(settings.warehouse_url, read_only=True).next_offsets(settings.topic)
    summary.lagging = {
        p: high - ledger.get(p, low)
        for p, (low, high) in marks.items()
        if ledger.get(p, low) < high
    }
    summary.seconds = time.perf_counter() - started
    return summary


def _execute(
    dg: Any, instance: Any, job: Any, request: Any, summary: IngestSummary, echo: Echo
) -> None:
    key = request.run_key or ""
    if instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": key}), limit=1):
        echo(f"skip {key}: a run with this key exists")
        return
    tags = {**request.tags, "dagster/run_key": key, "dagster/sensor_name": "market_data_sensor"}
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
        settings, until_caught_up=not args.once, max_ticks=args.max_ticks, echo=print
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
