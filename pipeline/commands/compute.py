"""``microstructure compute TRADES.csv[.gz] --out DIR``: CSV trades -> the three signal files.

No services: reads the file, runs ``pipeline.signals.assemble.compute_frames`` (the same
code as the warehouse assets and the Vertica UDx), writes ``trade_signals.parquet``,
``symbol_day_metrics.parquet`` and ``intensity_buckets.parquet`` with the parameters, the
signal rule and the kernel version as parquet key-value metadata, and prints a summary.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pipeline.errors import DataError
from pipeline.signals import OUTPUT_FILES

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.signals.assemble import SignalFrames

_TYPED: dict[str, Any] = {
    "timestamp_ns": "Int64",
    "symbol": "str",
    "price": "float64",
    "size": "Int64",
}


def register(sub: Any) -> None:
    """Add the ``compute`` subcommand."""
    p = sub.add_parser(
        "compute",
        help="compute every signal of a trades CSV into three parquet files (no services)",
        description=(
            "Read TRADES (columns timestamp_ns, symbol, price, size; others ignored; any symbols "
            "and days), compute every statistic per (symbol, New York date) and write "
            "DIR/trade_signals.parquet, DIR/symbol_day_metrics.parquet and "
            "DIR/intensity_buckets.parquet."
        ),
    )
    p.add_argument("trades", type=Path, metavar="TRADES", help="CSV file, optionally .gz")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run)


def read_trades(path: Path) -> pd.DataFrame:
    """Read the four contract columns of a trades CSV (types checked later, row by row).

    Parameters
    ----------
    path
        CSV file, optionally gzip-compressed.

    Returns
    -------
    pandas.DataFrame
        Columns ``timestamp_ns``, ``symbol``, ``price``, ``size``.

    Raises
    ------
    DataError
        The file is missing, unreadable or lacks a column.
    """
    import pandas as pd  # heavy: only when the command runs

    if not path.is_file():
        raise DataError(f"trades file {path} does not exist")
    try:
        header = pd.read_csv(path, nrows=0)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} as CSV: {e}") from e
    missing = [c for c in _TYPED if c not in header.columns]
    if missing:
        raise DataError(
            f"{path} lacks column(s) {missing}; it has {list(header.columns)} "
            "(required: timestamp_ns, symbol, price, size)"
        )
    try:
        return pd.read_csv(path, usecols=list(_TYPED), dtype=_TYPED)  # pyright: ignore[reportCallIssue, reportArgumentType] - the stubs reject the nullable "Int64" names
    except (ValueError, TypeError):
        # Some cell does not parse: read text and let compute_frames reject rows with reasons.
        return pd.read_csv(path, usecols=list(_TYPED), dtype="str", keep_default_na=True)


def write_outputs(frames: SignalFrames, out: Path, provenance_json: str) -> dict[str, Path]:
    """Write the three frames as parquet with the provenance as key-value metadata.

    Parameters
    ----------
    frames
        The computed frames.
    out
        Output directory (created if needed).
    provenance_json
        JSON stored under the ``microstructure.provenance`` metadata key of each file.

    Returns
    -------
    dict
        Frame name -> written path.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.signals.provenance import PARQUET_METADATA_KEY

    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, filename in OUTPUT_FILES.items():
        table = pa.Table.from_pandas(getattr(frames, name), preserve_index=False)
        metadata = dict(table.schema.metadata or {})
        metadata[PARQUET_METADATA_KEY] = provenance_json.encode()
        table = table.replace_schema_metadata(metadata)
        path = out / filename
        pq.write_table(table, path)
        written[name] = path
    return written


def run(args: argparse.Namespace) -> int:
    """Handle ``microstructure compute``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.signals.assemble import compute_frames
    from pipeline.signals.provenance import provenance_json
    from udx.kernels import Params

    console = Console()
    if not console.is_terminal:  # pipes and logs: do not squeeze the table into 80 columns
        console = Console(width=132)
    err_console = Console(stderr=True)
    started = time.perf_counter()
    trades = read_trades(args.trades)
    params = Params()
    progress = Progress(
        TextColumn("[bold]computing[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=args.quiet,
    )
    with progress:
        task = progress.add_task("symbol-days", total=None)

        def on_partition(done: int, total: int, symbol: str, date: str) -> None:
            progress.update(task, completed=done, total=total, description=f"{symbol} {date}")

        frames = compute_frames(trades, params, progress=on_partition)
    written = write_outputs(frames, args.out, provenance_json(params))
    elapsed = time.perf_counter() - started
    if not args.quiet:
        print_summary(console, trades, frames, written, elapsed)
    return 0


def print_summary(
    console: Any,
    trades: pd.DataFrame,
    frames: SignalFrames,
    written: dict[str, Path],
    elapsed_s: float,
) -> None:
    """Print counts and rates per symbol-day and overall."""
    import numpy as np
    from rich.table import Table

    m = frames.symbol_day_metrics
    ts = frames.trade_signals
    table = Table(title="symbol-day summary", show_lines=False)
    for header in ("symbol", "date", "prints", "LM flags", "BUY/SELL", "BNS z (p)", "GARCH a/b",
                   "ACD a/b"):  # fmt: skip
        table.add_column(header, no_wrap=True)
    sizes = cast("pd.Series", ts.groupby(["symbol", "date", "trading_signal"]).size())
    counts: dict[tuple[str, str, str], int] = {
        (str(k[0]), str(k[1]), str(k[2])): int(v)
        for k, v in zip(
            cast("list[tuple[str, str, str]]", sizes.index.tolist()),
            sizes.to_numpy().tolist(),
            strict=True,
        )
    }

    def fmt(value: Any, spec: str) -> str:
        import pandas as pd

        return "-" if value is None or pd.isna(value) else format(value, spec)

    notes: list[str] = []
    for row in m.to_dict(orient="records"):
        n = int(row["n_trades"])
        flags = int(row["lm_jump_count"])
        symbol, date = str(row["symbol"]), str(row["date"])
        buy = counts.get((symbol, date, "BUY"), 0)
        sell = counts.get((symbol, date, "SELL"), 0)
        rate = f"{flags} ({flags / n:.2%})" if n else "0"
        table.add_row(
            symbol,
            date,
            f"{n:,}",
            rate,
            f"{buy}/{sell}",
            f"{fmt(row['bns_z'], '.2f')} ({fmt(row['bns_p_value'], '.2f')})",
            f"{fmt(row['garch_alpha'], '.3f')}/{fmt(row['garch_beta'], '.3f')}",
            f"{fmt(row['acd_exp_alpha'], '.3f')}/{fmt(row['acd_exp_beta'], '.3f')}",
        )
        if isinstance(row["notes"], str) and row["notes"]:
            notes.append(f"{symbol} {date}: {row['notes']}")
    console.print(table)
    for line in notes:
        console.print(f"note: {line}", highlight=False)
    n_rth = len(ts)
    n_rejected = len(frames.rejects)
    n_flags = int(np.count_nonzero(ts["jump_detected"].to_numpy())) if n_rth else 0
    n_buy = int(np.count_nonzero(ts["trading_signal"].to_numpy() == "BUY"))
    n_sell = int(np.count_nonzero(ts["trading_signal"].to_numpy() == "SELL"))
    console.print(
        f"{len(trades):,} input rows: {n_rth:,} regular-hours prints in {len(m)} symbol-day(s), "
        f"{len(trades) - n_rth - n_rejected:,} outside regular hours ignored, "
        f"{n_rejected:,} rejected"
    )
    if n_rejected:
        for reason, count in frames.rejects["reason"].value_counts().items():
            console.print(f"  rejected: {count:,} x {reason}")
    if n_rth:
        console.print(
            f"LM jump flags: {n_flags:,} ({n_flags / n_rth:.3%} of prints); "
            f"BUY {n_buy:,}, SELL {n_sell:,}"
        )
    for name, path in written.items():
        console.print(f"wrote {path} ({len(getattr(frames, name)):,} rows)")
    rate = f" ({len(trades) / elapsed_s:,.0f} rows/s, {len(m) / elapsed_s:,.2f} symbol-days/s)"
    console.print(f"done in {elapsed_s:.2f} s" + (rate if elapsed_s > 0 else ""))
