"""Pictures of one symbol-day's signals, and of the signal evaluation (matplotlib, Agg).

:func:`render_symbol_day` draws, on one time axis in New York time, the price path with the
Lee-Mykland jumps marked (BUY up, SELL down), the GARCH(1,1) conditional volatility per
trade, the one-minute trade-intensity z-score and the ACD surprise, with the day's BNS test
in the title. It returns the PNG and the coordinates it actually plotted (so a test checks
the markers, not a re-computation). The x axis is seconds since the session open (exact to
the nanosecond for a day), labelled with the New York clock.

Inputs are the three signal frames of the output contract (statistics.md 5): from the
warehouse (``trading_signals``, ``symbol_day_metrics``, ``trade_intensity``), from the
parquet files of ``microstructure compute``, or in memory (the Dagster signals asset).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from pipeline._typing import Float64Array, Int64Array
from pipeline.errors import ConfigError, DataError
from pipeline.nytime import NEW_YORK

NS_PER_S = 1_000_000_000
TRADE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "timestamp_ns",
    "price",
    "log_return",
    "lee_mykland_stat",
    "jump_detected",
    "garch_sigma2",
    "acd_surprise",
    "trade_intensity_zscore",
    "trading_signal",
)
BUCKET_COLUMNS: tuple[str, ...] = ("symbol", "date", "bucket", "bucket_start_ns", "count", "z")
# Prints plotted at most (the price line is thinned evenly above this; jumps are always drawn).
MAX_LINE_POINTS = 20_000


@dataclass
class SymbolDay:
    """What a report draws: one symbol-day's per-trade rows, buckets and daily metrics."""

    symbol: str
    day: str
    trades: pd.DataFrame  # TRADE_COLUMNS, partition order
    buckets: pd.DataFrame  # BUCKET_COLUMNS
    metrics: dict[str, Any] = field(default_factory=lambda: {})


@dataclass
class Rendered:
    """A rendered report: the PNG and the data each panel plotted."""

    png: bytes
    open_ns: int
    markers: dict[str, tuple[Int64Array, Float64Array]]  # BUY/SELL -> (timestamp_ns, price)
    title: str
    panels: list[str]

    def data_uri(self) -> str:
        """Return the PNG as a ``data:image/png;base64,...`` URI."""
        return "data:image/png;base64," + base64.b64encode(self.png).decode()


def _frame(frame: pd.DataFrame, columns: tuple[str, ...], name: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{name} lacks columns {missing}")
    return cast("pd.DataFrame", frame.loc[:, list(columns)])


def select_symbol_day(
    trade_signals: pd.DataFrame,
    intensity: pd.DataFrame,
    metrics: pd.DataFrame,
    symbol: str,
    day: str,
) -> SymbolDay:
    """Cut one symbol-day out of the three signal frames.

    Parameters
    ----------
    trade_signals, intensity, metrics
        Frames of the output contract (any symbols and days).
    symbol, day
        What to draw.

    Returns
    -------
    SymbolDay
        The symbol-day's rows.

    Raises
    ------
    DataError
        If there is no signal row for the symbol-day (with what there is instead).
    """
    ts = _frame(trade_signals, TRADE_COLUMNS, "trade signals")
    mask = (ts["symbol"].astype(str) == symbol) & (ts["date"].astype(str) == day)
    rows = cast("pd.DataFrame", ts[mask])
    if rows.empty:
        have = sorted({f"{s} {d}" for s, d in zip(ts["symbol"], ts["date"], strict=True)})[:10]
        raise DataError(
            f"no signals for {symbol} on {day}; there are signals for: {', '.join(have) or 'none'}"
        )
    b = _frame(intensity, BUCKET_COLUMNS, "intensity buckets")
    bm = (b["symbol"].astype(str) == symbol) & (b["date"].astype(str) == day)
    m = metrics[(metrics["symbol"].astype(str) == symbol) & (metrics["date"].astype(str) == day)]
    md: dict[str, Any] = m.iloc[0].to_dict() if len(m) else {}
    return SymbolDay(
        symbol,
        day,
        rows.reset_index(drop=True),
        cast("pd.DataFrame", b[bm]).reset_index(drop=True),
        md,
    )


def load_from_dir(directory: Path, symbol: str, day: str) -> SymbolDay:
    """Read a symbol-day from the parquet outputs of ``microstructure compute``.

    Parameters
    ----------
    directory
        The ``--out`` directory of ``compute``.
    symbol, day
        What to draw.

    Returns
    -------
    SymbolDay
        The symbol-day's rows.
    """
    from pipeline.signals import OUTPUT_FILES

    paths = {k: directory / v for k, v in OUTPUT_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"{directory} is not a `compute` output: missing {missing}")
    return select_symbol_day(
        pd.read_parquet(paths["trade_signals"], columns=list(TRADE_COLUMNS)),
        pd.read_parquet(paths["intensity_buckets"]),
        pd.read_parquet(paths["symbol_day_metrics"]),
        symbol,
        day,
    )


def load_served(url: str, symbol: str, day: str) -> SymbolDay:
    """Read a symbol-day's published signals through the serving port (read-only).

    The same rows the MCP server's ``chart=true`` draws (:func:`symbol_day_from_rows`).

    Parameters
    ----------
    url
        The warehouse URL.
    symbol, day
        What to draw.

    Returns
    -------
    SymbolDay
        The symbol-day's rows.

    Raises
    ------
    DataError
        If the symbol-day has no published signals (the message lists days that do).
    """
    from datetime import date

    from pipeline.serving import read_view

    d = date.fromisoformat(day)
    with read_view(url) as view:
        rows = view.day_signal_rows(symbol, d)
        metrics = view.metrics(symbol, d, d)
        have = [
            f"{day_.isoformat()} {s}"
            for s, info in view.catalog.symbols.items()
            for day_ in info.signal_days
        ][-10:]
    if not rows:
        raise DataError(
            f"no published signals for {symbol} on {day}; there are: {', '.join(have) or 'none'}"
        )
    return symbol_day_from_rows(symbol, day, rows, metrics[0] if metrics else None)


def _num(frame: pd.DataFrame, col: str) -> Float64Array:
    values = cast("pd.Series", pd.to_numeric(frame[col], errors="coerce"))
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _bns_text(m: Mapping[str, Any]) -> str:
    def num(v: Any) -> float | None:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        return None if math.isnan(x) else x

    z, p, jump = num(m.get("bns_z")), num(m.get("bns_p_value")), m.get("bns_jump")
    if z is None:
        return "daily BNS: not computed" + (f" ({m.get('notes')})" if m.get("notes") else "")
    verdict = "jump day" if bool(jump) else "no jump"
    return f"daily BNS z {z:.2f}, p {p:.3f}: {verdict} at 1%" if p is not None else ""


def render_symbol_day(data: SymbolDay, *, dpi: int = 100) -> Rendered:
    """Draw the report figure of one symbol-day.

    Parameters
    ----------
    data
        The symbol-day (see the loaders).
    dpi
        Resolution of the PNG.

    Returns
    -------
    Rendered
        The PNG bytes and, per marker kind, the exact ``(timestamp_ns, price)`` it plotted.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    from udx.kernels import session_bounds

    open_ns, close_ns = session_bounds(data.day)
    t = data.trades
    ts = t["timestamp_ns"].to_numpy(dtype=np.int64)
    x = (ts - open_ns) / NS_PER_S
    price = _num(t, "price")
    jump = t["jump_detected"].to_numpy(dtype=bool)
    side = t["trading_signal"].astype(str).to_numpy()
    n_buy, n_sell = int(((side == "BUY") & jump).sum()), int(((side == "SELL") & jump).sum())

    fig = Figure(figsize=(11, 8.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(4, 1, sharex=True, height_ratios=(3, 1.4, 1.4, 1.4))
    ax_p, ax_v, ax_i, ax_a = axes
    step = max(1, math.ceil(x.shape[0] / MAX_LINE_POINTS))
    ax_p.plot(x[::step], price[::step], color="#1f3b73", lw=0.7, label="price")
    markers: dict[str, tuple[Int64Array, Float64Array]] = {}
    for kind, mark, color in (("BUY", "^", "#1a9641"), ("SELL", "v", "#d7191c")):
        sel = jump & (side == kind)
        sc = ax_p.scatter(
            x[sel], price[sel], marker=mark, s=36, color=color, zorder=3, label=f"{kind} jump"
        )
        off = np.asarray(sc.get_offsets(), dtype=np.float64).reshape(-1, 2)
        # Back from the plotted coordinates to ns: exact (seconds since open < 2^53 ns).
        markers[kind] = (
            np.round(off[:, 0] * NS_PER_S).astype(np.int64) + open_ns,
            off[:, 1].copy(),
        )
    ax_p.set_ylabel("price")
    ax_p.legend(loc="upper left", fontsize=8, ncols=3)
    ax_p.grid(alpha=0.3)

    sigma_bp = np.sqrt(_num(t, "garch_sigma2")) * 1e4
    ax_v.plot(x[::step], sigma_bp[::step], color="#7b3294", lw=0.7)
    ax_v.set_ylabel("GARCH sd\n(bp / trade)")
    ax_v.grid(alpha=0.3)

    b = data.buckets
    if len(b):
        bx = (b["bucket_start_ns"].to_numpy(dtype=np.int64) - open_ns) / NS_PER_S
        bz = _num(b, "z")
        ax_i.step(bx, bz, where="post", color="#e66101", lw=0.9)
    for level in (-2.0, 2.0):
        ax_i.axhline(level, color="grey", lw=0.6, ls="--")
    ax_i.set_ylabel("intensity z\n(1-min)")
    ax_i.grid(alpha=0.3)

    surprise = _num(t, "acd_surprise")
    ok = np.isfinite(surprise) & (surprise > 0)
    ax_a.scatter(x[ok][::step], surprise[ok][::step], s=2, color="#2c7bb6", alpha=0.4, lw=0)
    ax_a.set_yscale("log")
    ax_a.axhline(1.0, color="grey", lw=0.6, ls="--")
    ax_a.set_ylabel("ACD surprise\n(x / expected)")
    ax_a.grid(alpha=0.3)

    def clock(v: float, _pos: int) -> str:
        ns = open_ns + round(v * NS_PER_S)
        stamp = pd.Timestamp(ns, unit="ns", tz="UTC").tz_convert(NEW_YORK)
        return stamp.strftime("%H:%M")

    ax_a.xaxis.set_major_formatter(FuncFormatter(clock))
    ax_a.set_xlim(0, (close_ns - open_ns) / NS_PER_S)
    ax_a.set_xticks(np.arange(0, (close_ns - open_ns) / NS_PER_S + 1, 1800))
    ax_a.set_xlabel("New York time")
    title = (
        f"{data.symbol} {data.day}: {len(t):,} regular-hours prints, "
        f"{int(jump.sum())} Lee-Mykland jumps ({n_buy} BUY / {n_sell} SELL); "
        f"{_bns_text(data.metrics)}"
    )
    fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    panels = ["price + jumps", "GARCH volatility", "intensity z-score", "ACD surprise"]
    return Rendered(buf.getvalue(), open_ns, markers, title, panels)


def write_report(data: SymbolDay, out: Path) -> Rendered:
    """Render and write ``out`` as ``.png`` or a self-contained ``.html`` (PNG embedded).

    Parameters
    ----------
    data
        The symbol-day.
    out
        Destination; the extension picks the format.

    Returns
    -------
    Rendered
        What was drawn.

    Raises
    ------
    ConfigError
        For another extension.
    """
    suffix = out.suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise ConfigError(f"--out {out}: the extension must be .png or .html")
    rendered = render_symbol_day(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        out.write_bytes(rendered.png)
    else:
        out.write_text(_html(data, rendered), encoding="utf-8")
    return rendered


def _html(data: SymbolDay, r: Rendered) -> str:
    m = data.metrics
    keys = (
        "n_trades",
        "vwap",
        "lm_jump_count",
        "bns_z",
        "bns_p_value",
        "bns_jump",
        "garch_alpha",
        "garch_beta",
        "acd_exp_alpha",
        "acd_exp_beta",
        "kernel_version",
        "run_id",
        "notes",
    )
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(m.get(k)))}</td></tr>"
        for k in keys
        if k in m
    )
    jumps: list[str] = []
    t = data.trades
    for kind in ("BUY", "SELL"):
        for ns, px in zip(*r.markers[kind], strict=True):
            stamp = pd.Timestamp(int(ns), unit="ns", tz="UTC").tz_convert(NEW_YORK)
            jumps.append(f"<tr><td>{stamp.strftime('%H:%M:%S.%f')}</td><td>{kind}</td>"
                         f"<td>{px:g}</td></tr>")  # fmt: skip
    jumps.sort()
    title = html.escape(r.title)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(data.symbol)} {data.day}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head><body>"
        f"<h2>{title}</h2><img alt='report' style='max-width:100%' src='{r.data_uri()}'>"
        f"<h3>Day metrics</h3><table>{rows}</table>"
        f"<h3>Jumps ({len(jumps)} of {len(t):,} prints)</h3>"
        "<table><tr><th>New York time</th><th>signal</th><th>price</th></tr>"
        f"{''.join(jumps)}</table></body></html>"
    )


def most_active_symbol(trade_signals: pd.DataFrame) -> str | None:
    """Return the symbol with the most prints in a day's trade signals (None if empty)."""
    if trade_signals.empty:
        return None
    counts = trade_signals["symbol"].astype(str).value_counts()
    return str(counts.index[0])


def plot_evaluation(result: pd.DataFrame, title: str, *, dpi: int = 100) -> bytes:
    """Draw the signal evaluation: mean signed return after signals vs random entries.

    One panel per horizon; per group (all symbols, then each symbol) a bar for the signals
    and one for the random entries, with 95% intervals, the number of signals and the
    verdict under each group.

    Parameters
    ----------
    result
        ``pipeline.evaluate.evaluate_signals`` output.
    title
        Figure title.
    dpi
        Resolution.

    Returns
    -------
    bytes
        The PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from pipeline.evaluate import ALL_SYMBOLS

    horizons = sorted({int(h) for h in result["horizon_s"]}) if len(result) else [60]
    groups = list(dict.fromkeys(result["symbol"].astype(str))) if len(result) else []
    groups = groups[:12]  # readable; the table holds every symbol
    fig = Figure(figsize=(4.2 * len(horizons), 4.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(horizons), squeeze=False)[0]
    for ax, h in zip(axes, horizons, strict=True):
        sub = result[result["horizon_s"] == h].set_index("symbol")
        xs = np.arange(len(groups))
        for k, (col, sd_col, n_col, color, label) in enumerate(
            (
                ("mean_bp", "t_stat", "n_signals", "#1f3b73", "signals"),
                ("random_mean_bp", "random_t_stat", "random_n", "#bbbbbb", "random entries"),
            )
        ):
            means = np.array([_f(sub, g, col) for g in groups])
            t_stats = np.array([_f(sub, g, sd_col) for g in groups])
            with np.errstate(divide="ignore", invalid="ignore"):
                half = np.where(np.isfinite(t_stats) & (t_stats != 0), 1.96 * means / t_stats, 0)
            ax.bar(
                xs + (k - 0.5) * 0.38,
                np.nan_to_num(means),
                0.38,
                yerr=np.abs(np.nan_to_num(half)),
                color=color,
                label=label,
                capsize=2,
            )
            _ = n_col
        ax.axhline(0, color="black", lw=0.6)
        labels = []
        for g in groups:
            n = int(_f(sub, g, "n_signals") or 0) if g in sub.index else 0
            verdict = str(sub.loc[g, "verdict"]) if g in sub.index else ""
            short = {"too_few_signals": "too few", "no_edge": "no edge", "edge": "EDGE",
                     "negative_edge": "WORSE"}.get(verdict, verdict)  # fmt: skip
            name = "all" if g == ALL_SYMBOLS else g
            labels.append(f"{name}\nn={n}\n{short}")
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_title(f"{h // 60} min after the signal" if h % 60 == 0 else f"{h} s")
        ax.set_ylabel("mean signed return (bp), 95% interval")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _f(sub: pd.DataFrame, g: str, col: str) -> float:
    if g not in sub.index:
        return float("nan")
    v = sub.loc[g, col]
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def render_partition(frames: Any, day: str, *, dpi: int = 72) -> Rendered | None:
    """Render the report of a signals partition's most active symbol (None: no trades).

    Parameters
    ----------
    frames
        ``pipeline.signals.assemble.SignalFrames`` of the day (in memory).
    day
        The partition, ``YYYY-MM-DD``.
    dpi
        Resolution (72 keeps the PNG near 100 KiB for asset metadata).

    Returns
    -------
    Rendered or None
        The picture; None when the day has no regular-hours trade.
    """
    symbol = most_active_symbol(frames.trade_signals)
    if symbol is None:
        return None
    data = select_symbol_day(
        frames.trade_signals, frames.intensity_buckets, frames.symbol_day_metrics, symbol, day
    )
    return render_symbol_day(data, dpi=dpi)


def markdown_image(rendered: Rendered) -> str:
    """Return Markdown showing the PNG inline (a data URI) above its title."""
    return f"![report]({rendered.data_uri()})\n\n{rendered.title}"


def symbol_day_from_rows(
    symbol: str, day: str, rows: list[dict[str, Any]], metrics: Mapping[str, Any] | None
) -> SymbolDay:
    """Build a :class:`SymbolDay` from served rows (the MCP server's ``SignalRow`` JSON).

    The one-minute intensity buckets are not served; each print carries its bucket's
    z-score, so the buckets are rebuilt from the prints (a bucket without prints has none).

    Parameters
    ----------
    symbol, day
        The symbol-day.
    rows
        Per-print rows with ``timestamp_ns``, ``price``, ``jump_detected``,
        ``trading_signal``, ``garch_sigma2``, ``acd_surprise``, ``trade_intensity_zscore``.
    metrics
        The day's statistics (``DayMetrics`` shape: ``bns`` nested) or None.

    Returns
    -------
    SymbolDay
        Ready for :func:`render_symbol_day`.
    """
    from udx.kernels import session_bounds

    if not rows:
        raise DataError(f"no signals for {symbol} on {day}")
    frame = pd.DataFrame(rows)
    frame["symbol"], frame["date"] = symbol, day
    for col in TRADE_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    trades = cast("pd.DataFrame", frame.loc[:, list(TRADE_COLUMNS)])
    open_ns, _ = session_bounds(day)
    ts = trades["timestamp_ns"].to_numpy(dtype=np.int64)
    bucket = (ts - open_ns) // (60 * NS_PER_S)
    first = pd.DataFrame({"bucket": bucket, "z": _num(trades, "trade_intensity_zscore")})
    in_session = cast("pd.DataFrame", first[(first["bucket"] >= 0) & (first["bucket"] < 390)])
    first = in_session.drop_duplicates(subset=["bucket"])
    buckets = pd.DataFrame(
        {
            "symbol": symbol,
            "date": day,
            "bucket": first["bucket"].to_numpy(dtype=np.int64),
            "bucket_start_ns": open_ns + first["bucket"].to_numpy(dtype=np.int64) * 60 * NS_PER_S,
            "count": 0,
            "z": first["z"].to_numpy(),
        }
    )
    flat: dict[str, Any] = {}
    if metrics:
        flat = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
        for k, v in (metrics.get("bns") or {}).items():
            flat[f"bns_{k}"] = v
    return SymbolDay(symbol, day, trades.reset_index(drop=True), buckets, flat)
