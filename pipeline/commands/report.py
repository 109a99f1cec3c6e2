"""``microstructure report SYMBOL DAY --out report.html|png``: one symbol-day in pictures.

Draws the price path with the Lee-Mykland jumps marked, the GARCH volatility, the
trade-intensity z-score and the ACD surprise on one New York time axis, with the day's BNS
test in the title. Reads the published signals from the warehouse (read-only), or the
parquet files of ``microstructure compute`` with ``--from-dir``. ``.png`` writes the
picture; ``.html`` writes one self-contained page (picture embedded, day metrics, jumps).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(sub: Any) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="draw a symbol-day: price with jumps, GARCH volatility, intensity, ACD surprise",
        description=(__doc__ or "").split("\n\n")[1],
    )
    p.add_argument("symbol", metavar="SYMBOL", help="ticker, e.g. XXX")
    p.add_argument("day", metavar="DAY", type=_day, help="New York trading day, YYYY-MM-DD")
    p.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="report.png or report.html"
    )
    p.add_argument(
        "--from-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="read the parquet outputs of `microstructure compute --out DIR` instead",
    )
    p.set_defaults(func=_main)


def make_report(settings: Settings, symbol: str, day: str, out: Path, from_dir: Path | None) -> Any:
    """Load a symbol-day and write its report.

    Parameters
    ----------
    settings
        Warehouse URL (used unless ``from_dir``).
    symbol, day
        What to draw.
    out
        ``.png`` or ``.html``.
    from_dir
        A ``compute`` output directory instead of the warehouse.

    Returns
    -------
    pipeline.report.Rendered
        What was drawn (PNG bytes, marker coordinates, title).
    """
    from pipeline.report import load_from_dir, load_served, write_report

    if out.suffix.lower() not in (".png", ".html", ".htm"):
        raise ConfigError(f"--out {out}: the extension must be .png or .html")
    if from_dir is not None:
        data = load_from_dir(from_dir, symbol.upper(), day)
    else:
        data = load_served(settings.warehouse_url, symbol.upper(), day)
    return write_report(data, out)


def _main(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    rendered = make_report(Settings.from_env(), args.symbol, args.day, args.out, args.from_dir)
    n_jumps = sum(len(v[0]) for v in rendered.markers.values())
    print(rendered.title)
    print(
        f"wrote {args.out.resolve()} ({args.out.stat().st_size / 1024:,.0f} KiB: "
        f"{', '.join(rendered.panels)}; {n_jumps} jump markers) in {time.perf_counter() - t0:.1f} s"
    )
    return 0
