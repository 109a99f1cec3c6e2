"""``microstructure signals run DAY`` and ``signals backfill --start DAY --end DAY``.

Materialises the signal assets (``trading_signals``, ``symbol_day_metrics``,
``trade_intensity``) for New York trading-day partitions, in-process on the real Dagster
instance, so each day's run shows in the Dagster UI. Weekends and NYSE holidays have no
partition and are skipped; each day replaces itself atomically, so a repeated backfill
changes nothing but the run history.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings

Echo = Callable[[str], None]


@dataclass
class SignalsSummary:
    """What one ``signals`` invocation did."""

    days: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    trades: int = 0
    jumps: int = 0
    empty: list[str] = field(default_factory=list)
    seconds: float = 0.0


def register(sub: Any) -> None:
    """Add the ``signals`` subcommand."""
    p = sub.add_parser("signals", help="compute and publish signals for trading days (Dagster)")
    ssub = p.add_subparsers(dest="signals_action", metavar="ACTION")
    r = ssub.add_parser("run", help="materialise one trading day")
    r.add_argument("day", type=_day, help="New York trading day, YYYY-MM-DD")
    r.set_defaults(func=_run)
    b = ssub.add_parser("backfill", help="materialise every trading day of a range")
    b.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    b.add_argument("--end", type=_day, required=True, help="last day (inclusive), YYYY-MM-DD")
    b.set_defaults(func=_backfill)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def trading_days_between(start: date, end: date) -> list[str]:
    """Return the partition keys of the trading days in ``[start, end]``.

    Parameters
    ----------
    start, end
        Inclusive bounds.

    Returns
    -------
    list[str]
        ``YYYY-MM-DD`` keys that exist (weekends, holidays and future days excluded).

    Raises
    ------
    ConfigError
        If ``end`` is before ``start``.
    """
    from assets.partitions import trading_days

    if end < start:
        raise ConfigError(f"--end {end} is before --start {start}")
    lo, hi = start.isoformat(), end.isoformat()
    return [k for k in trading_days.get_partition_keys() if lo <= k <= hi]


def run_signals(settings: Settings, days: Sequence[str], echo: Echo = print) -> SignalsSummary:
    """Materialise the signal assets for each partition key, one run per day.

    Parameters
    ----------
    settings
        Platform settings (warehouse, state directory).
    days
        Partition keys (``YYYY-MM-DD`` trading days).
    echo
        Progress sink.

    Returns
    -------
    SignalsSummary
        Days done and failed, trades and jumps published.
    """
    import dagster as dg

    from assets.definitions import build_defs
    from pipeline.commands.ingest import dagster_home

    summary = SignalsSummary()
    started = time.perf_counter()
    job = build_defs(settings=settings).resolve_job_def("signals_job")
    with dg.DagsterInstance.from_config(str(dagster_home(settings))) as instance:
        for i, day in enumerate(days, 1):
            t0 = time.perf_counter()
            result = job.execute_in_process(
                partition_key=day,
                instance=instance,
                tags={"signals/kind": "cli"},
                raise_on_error=False,
            )
            dt = time.perf_counter() - t0
            if not result.success:
                failures = [e for e in result.all_events if e.is_step_failure]
                error = failures[0].step_failure_data.error if failures else None
                msg = error.message.strip() if error is not None else "failed"
                summary.failed.append(day)
                echo(f"[{i}/{len(days)}] {day}: FAILED (run {result.run_id[:8]}): {msg}")
                continue
            mats = {
                m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
                for m in result.asset_materializations_for_node("signal_tables")
            }
            ts = mats["trading_signals"]
            n, jumps = int(str(ts["dagster/row_count"])), int(str(ts["n_jumps"]))
            summary.days.append(day)
            summary.trades += n
            summary.jumps += jumps
            if not ts["published"]:
                summary.empty.append(day)
                echo(f"[{i}/{len(days)}] {day}: no trades loaded, nothing published ({dt:.1f} s)")
                continue
            state = "final" if ts["final"] else "provisional"
            echo(
                f"[{i}/{len(days)}] {day}: {n:,} trades, {jumps} jumps, {state} "
                f"(run {result.run_id[:8]}, {dt:.1f} s)"
            )
    summary.seconds = time.perf_counter() - started
    return summary


def _report(summary: SignalsSummary) -> int:
    days = len(summary.days) + len(summary.failed)
    rate = (
        f" ({days / summary.seconds * 60:,.1f} days/min, {summary.trades / summary.seconds:,.0f} "
        "trades/s)"
        if summary.seconds > 0
        else ""
    )
    print(
        f"{len(summary.days)} days published ({len(summary.empty)} without trades), "
        f"{len(summary.failed)} failed, in {summary.seconds:.1f} s{rate}: "
        f"{summary.trades:,} trade signals, {summary.jumps} jumps"
    )
    if summary.failed:
        print(f"failed days: {', '.join(summary.failed)}")
    return 1 if summary.failed else 0


def _run(args: argparse.Namespace) -> int:
    from pipeline.commands.ingest import quiet_dagster

    quiet_dagster(bool(getattr(args, "verbose", False)))
    days = trading_days_between(args.day, args.day)
    if not days:
        raise ConfigError(f"{args.day} is not an NYSE trading day (or not yet a partition)")
    return _report(run_signals(Settings.from_env(), days))


def _backfill(args: argparse.Namespace) -> int:
    from pipeline.commands.ingest import quiet_dagster

    quiet_dagster(bool(getattr(args, "verbose", False)))
    days = trading_days_between(args.start, args.end)
    print(f"backfill {args.start} .. {args.end}: {len(days)} trading days")
    with _progress_echo(len(days)) as echo:
        summary = run_signals(Settings.from_env(), days, echo=echo)
    return _report(summary)


@contextlib.contextmanager
def _progress_echo(total: int) -> Iterator[Echo]:
    """Yield an echo that prints each day's line above a progress bar (one call per day)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]signals backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    with progress:
        task = progress.add_task("days", total=total)

        def echo(line: str) -> None:
            progress.console.print(line, highlight=False, markup=False)
            progress.advance(task)

        yield echo
