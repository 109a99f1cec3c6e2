"""``microstructure evaluate --start DAY --end DAY``: whether the BUY/SELL signals pay.

For every BUY/SELL signal of the published days in the range, the forward log returns at
1, 5 and 30 minutes (previous-tick price, never across the close), hit rate, mean and
t-statistic per horizon and per symbol, against the same statistics for seeded random
entry times on the same days (pipeline/evaluate.py says exactly how). Stores the result in
table ``signal_evaluation`` (or ``DIR/signal_evaluation.parquet`` with ``--from-dir``),
draws it, and says plainly when the sample is too small to say anything.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any, cast

from pipeline.errors import ConfigError, DataError
from pipeline.settings import Settings


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(sub: Any) -> None:
    """Add the ``evaluate`` subcommand."""
    from pipeline.evaluate import DEFAULT_SEED, MIN_SIGNALS

    p = sub.add_parser(
        "evaluate",
        help="forward returns after BUY/SELL signals vs random entries (stored, plotted)",
        description=(__doc__ or "").split("\n\n")[1],
    )
    p.add_argument("--start", type=_day, required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--end", type=_day, required=True, help="last day (inclusive), YYYY-MM-DD")
    p.add_argument(
        "--from-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="evaluate DIR/trade_signals.parquet (from `compute`) instead of the warehouse",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="the plot (.png); default $MICROSTRUCTURE_HOME/reports/evaluation_START_END.png",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random entries' seed")
    p.add_argument(
        "--min-signals",
        type=int,
        default=MIN_SIGNALS,
        help=f"below this many signals a group is 'too few to say anything' ({MIN_SIGNALS})",
    )
    p.add_argument("--no-store", action="store_true", help="do not write the table")
    p.add_argument("--json", action="store_true", help="print the rows as JSON, no tables")
    p.set_defaults(func=_main)


def read_signals(
    settings: Settings, start: date, end: date, progress: Any
) -> tuple[Any, dict[str, str], str | None]:
    """Read every published trading-signal row of the days in ``[start, end]``.

    Through the serving port (:func:`pipeline.serving.read_view`), the same read side the
    MCP server uses: on DuckDB the serving store's files, on Vertica one epoch.

    Parameters
    ----------
    settings
        Warehouse URL.
    start, end
        Inclusive range.
    progress
        A ``rich.progress.Progress`` (one task: the days read).

    Returns
    -------
    tuple
        The rows (pandas), ``{day: run_id}`` and the kernel version (None if mixed).
    """
    from pipeline.serving import read_view

    task = progress.add_task("reading days", total=None)
    with read_view(settings.warehouse_url) as view:
        runs = {d: r for d, r in view.catalog.runs.items() if start <= d <= end}
        data = view.signal_frame(start, end)
    progress.update(task, total=len(runs), completed=len(runs), description="read days")
    if data.empty:
        raise DataError(
            f"no published signals between {start} and {end}; publish days with "
            "`microstructure signals run DAY` (or evaluate `compute` output with --from-dir)"
        )
    versions = {r.kernel_version for r in runs.values()}
    return (
        data,
        {d.isoformat(): r.run_id for d, r in sorted(runs.items())},
        versions.pop() if len(versions) == 1 else None,
    )


def store(settings: Settings, rows: Any) -> int:
    """Insert the evaluation rows into ``signal_evaluation`` in one transaction.

    Parameters
    ----------
    settings
        Warehouse URL (migrated to the current schema first).
    rows
        :func:`pipeline.evaluate.stamp_evaluation` output.

    Returns
    -------
    int
        Rows written.
    """
    from pipeline.evaluate import EVALUATION_COLUMNS
    from pipeline.warehouse import open_warehouse

    wh = open_warehouse(settings.warehouse_url)
    wh.migrate()
    sql = (
        f"INSERT INTO signal_evaluation ({', '.join(EVALUATION_COLUMNS)}) "  # noqa: S608 - constants
        f"VALUES ({', '.join('?' * len(EVALUATION_COLUMNS))})"
    )
    records = cast("list[dict[str, Any]]", rows.to_dict(orient="records"))
    with wh.transaction() as s:
        for r in records:
            values = [_plain(r[c]) for c in EVALUATION_COLUMNS]
            s.execute(sql, values)
    return len(records)


def _plain(v: Any) -> Any:
    """Return a value the database drivers bind: Python scalars, None for NaN."""
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _main(args: argparse.Namespace) -> int:
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from pipeline.evaluate import (
        EvaluationConfig,
        evaluate_signals,
        horizons_text,
        stamp_evaluation,
        summary_lines,
    )
    from pipeline.report import plot_evaluation

    if args.end < args.start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    if args.min_signals < 2:
        raise ConfigError(f"--min-signals is {args.min_signals} and must be at least 2")
    settings = Settings.from_env()
    cfg = EvaluationConfig(seed=args.seed, min_signals=args.min_signals)
    console = Console()
    if not console.is_terminal:
        console = Console(width=140)
    err = Console(stderr=True)
    t0 = time.perf_counter()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=args.json,
    )
    with progress:
        if args.from_dir is not None:
            path = args.from_dir / "trade_signals.parquet"
            if not path.is_file():
                raise DataError(f"{path} does not exist (run `microstructure compute` first)")
            cols = ["symbol", "date", "timestamp_ns", "price", "trading_signal"]
            data = pd.read_parquet(path, columns=cols)
            data["date"] = data["date"].astype(str)
            data = cast(
                "pd.DataFrame",
                data[(data["date"] >= str(args.start)) & (data["date"] <= str(args.end))],
            )
            runs: dict[str, str] = {}
            version: str | None = None
            if data.empty:
                raise DataError(f"{path} has no rows between {args.start} and {args.end}")
        else:
            data, runs, version = read_signals(settings, args.start, args.end, progress)
        task = progress.add_task("evaluating symbol-days", total=None)

        def on_partition(done: int, total: int, symbol: str, day: str) -> None:
            progress.update(task, completed=done, total=total, description=f"{symbol} {day}")

        result = evaluate_signals(data, cfg, progress=on_partition)
    elapsed = time.perf_counter() - t0
    evaluation_id = uuid.uuid4().hex[:16]
    rows = stamp_evaluation(
        result,
        evaluation_id=evaluation_id,
        computed_ns=time.time_ns(),
        start_date=str(args.start),
        end_date=str(args.end),
        config=cfg,
        kernel_version=version,
        signal_runs=runs,
    )
    n_signals = int(cast("pd.Series", data["trading_signal"]).isin(["BUY", "SELL"]).sum())
    n_sd = int(data.groupby(["symbol", "date"]).ngroups)
    out = args.out or settings.home / "reports" / f"evaluation_{args.start}_{args.end}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    title = (
        f"signals {args.start} .. {args.end}: {n_signals:,} BUY/SELL of {len(data):,} prints, "
        f"{n_sd} symbol-days; signed forward returns vs random entries (seed {cfg.seed})"
    )
    out.write_bytes(plot_evaluation(result, title))
    where = "not stored (--no-store)"
    if not args.no_store:
        if args.from_dir is not None:
            target = args.from_dir / "signal_evaluation.parquet"
            rows.to_parquet(target, index=False)
            where = f"stored in {target}"
        else:
            n = store(settings, rows)
            where = f"stored {n} rows in table signal_evaluation (evaluation_id {evaluation_id})"
    if args.json:
        print(json.dumps(rows.to_dict(orient="records"), default=str))
        return 0
    table = Table(
        title=f"signal evaluation: signed forward returns ({horizons_text(cfg.horizons_s)})"
    )
    for col in ("symbol", "horizon", "signals", "eff. n", "hit", "mean bp", "t", "random bp",
                "random hit", "edge bp", "p adj.", "verdict"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("symbol", "verdict") else "right")
    for r in cast("list[dict[str, Any]]", result.to_dict(orient="records")):
        table.add_row(
            "all" if r["symbol"] == "*" else str(r["symbol"]),
            f"{int(r['horizon_s']) // 60} min",
            f"{int(r['n_signals']):,}",
            f"{float(r['n_effective']):,.0f}",
            _pct(r["hit_rate"]),
            _num(r["mean_bp"]),
            _num(r["t_stat"]),
            _num(r["random_mean_bp"]),
            _pct(r["random_hit_rate"]),
            _num(r["edge_bp"]),
            _num(r["edge_p_adjusted"], ".3f"),
            str(r["verdict"]).replace("_", " "),
        )
    console.print(table)
    for line in summary_lines(result, cfg):
        console.print(line, highlight=False)
    rate = len(data) / elapsed if elapsed > 0 else 0.0
    console.print(
        f"{n_signals:,} signals and {len(data):,} prints in {n_sd} symbol-days evaluated in "
        f"{elapsed:.1f} s ({rate:,.0f} prints/s); random entries: max({cfg.random_min_per_day}, "
        f"{cfg.random_per_signal} x signals) per symbol-day, seed {cfg.seed}; "
        f"p-values Bonferroni-adjusted over the tested rows; 'too few' below "
        f"{cfg.min_signals} signals or {cfg.min_effective:g} effective observations",
        highlight=False,
    )
    console.print(f"{where}; plot {out.resolve()}", highlight=False)
    return 0


def _num(v: Any, spec: str = "+.2f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(float(v), spec)


def _pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{float(v):.0%}"
