"""Trades frame -> (symbol, New York date) partitions -> ``udx.kernels.symbol_day`` -> frames.

Invalid rows are rejected here with a reason before any statistic (statistics.md 1): null
stamp or symbol, price null, non-finite or <= 0, size null or negative. They are counted
in the affected partition's ``notes`` and listed in :attr:`SignalFrames.rejects`.
Nulls are pandas nullable dtypes (``Float64``, ``Int64``, ``boolean``) so they reach
parquet and the warehouse as NULL, never as NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from pipeline.errors import DataError
from pipeline.signals.fit_state import FIT_STATE_COLUMNS, fit_state_row
from udx.kernels import Params, symbol_day
from udx.kernels.schema import (
    INTENSITY_BUCKET_COLUMNS,
    SYMBOL_DAY_METRIC_COLUMNS,
    TRADE_SIGNAL_COLUMNS,
    Column,
    column_names,
)

REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp_ns", "symbol", "price", "size")
REJECT_COLUMNS: tuple[str, ...] = ("row", "symbol", "timestamp_ns", "reason")

ProgressCallback = Callable[[int, int, str, str], None]


@dataclass(frozen=True)
class SignalFrames:
    """The three contract frames (statistics.md 5) and the rows rejected on the way.

    ``trade_signals`` has the contract columns in order; when ``passthrough`` columns were
    asked for it also has ``seq`` (position of the print in its partition) and those columns.
    """

    trade_signals: pd.DataFrame
    symbol_day_metrics: pd.DataFrame
    intensity_buckets: pd.DataFrame
    rejects: pd.DataFrame
    # Per symbol-day: what the live path needs to filter the next day (fit_state.py).
    fit_states: pd.DataFrame | None = None


def pandas_dtype(column: Column) -> str:
    """Return the pandas dtype of a contract column (nullable types where null is allowed)."""
    if column.dtype in ("string", "date"):
        return "str"
    kinds = {
        "int64": ("int64", "Int64"),
        "float64": ("float64", "Float64"),
        "bool": ("bool", "boolean"),
    }
    plain, nullable = kinds[column.dtype]
    return nullable if column.nullable else plain


def _series(values: Any, column: Column) -> pd.Series:
    dtype = pandas_dtype(column)
    if dtype == "Float64":
        arr = np.asarray(values, dtype=np.float64)
        return pd.Series(pd.arrays.FloatingArray(arr, np.isnan(arr)), name=column.name)
    return pd.Series(values, name=column.name).astype(dtype)


def _empty_frame(columns: tuple[Column, ...]) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series([], dtype=pandas_dtype(c)) for c in columns})


def _stamps(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Return (int64 stamps with 0 where bad, bad-mask), never through a lossy float64."""
    num = column
    if pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column.dtype):
        # Text: only whole integers parse; numpy_nullable keeps them Int64 with NA elsewhere.
        text = column.astype("str")
        whole = text.str.fullmatch(r"\s*-?\d+\s*").fillna(False).astype(bool)
        num = cast(
            "pd.Series",
            pd.to_numeric(text.where(whole), errors="coerce", dtype_backend="numpy_nullable"),
        )
    elif not pd.api.types.is_integer_dtype(column.dtype):
        num = cast("pd.Series", pd.to_numeric(column, errors="coerce"))
    bad = np.array(num.isna().to_numpy(), dtype=bool)
    if pd.api.types.is_integer_dtype(num.dtype) or len(num) == int(bad.sum()):
        return num.fillna(0).to_numpy(dtype=np.int64), bad
    as_float = num.astype("float64").to_numpy()
    with np.errstate(invalid="ignore"):
        bad |= ~np.isfinite(as_float) | (np.round(as_float) != as_float)
    return np.where(bad, 0.0, as_float).astype(np.int64), bad


def _floats(column: pd.Series) -> np.ndarray:
    """Return a column as float64 with NaN where it does not parse."""
    return cast("pd.Series", pd.to_numeric(column, errors="coerce")).astype("float64").to_numpy()


def _reject_reasons(trades: pd.DataFrame) -> tuple[pd.Series, np.ndarray, np.ndarray, np.ndarray]:
    """Return (reason per row or None, stamps, prices, sizes) of the input rows."""
    n = len(trades)
    reason = pd.Series([None] * n, dtype=object, index=trades.index)
    ts, bad_ts = _stamps(cast("pd.Series", trades["timestamp_ns"]))
    price = _floats(cast("pd.Series", trades["price"]))
    size_f = _floats(cast("pd.Series", trades["size"]))
    symbol = cast("pd.Series", trades["symbol"])
    bad_symbol = np.array(symbol.isna().to_numpy(), dtype=bool)
    bad_symbol |= (symbol.astype(object).map(str) == "").to_numpy()
    with np.errstate(invalid="ignore"):
        bad_price = ~(np.isfinite(price) & (price > 0.0))
        bad_size = ~np.isfinite(size_f) | (size_f < 0) | (np.round(size_f) != size_f)
    checks = (
        (bad_size, "size null, negative or not an integer"),
        (bad_price, "price null, non-finite or <= 0"),
        (bad_symbol, "symbol null or empty"),
        (bad_ts, "timestamp_ns null or not an integer"),
    )
    for mask, text in checks:  # the last assignment wins: the most basic reason is reported
        reason[mask] = text
    size = np.where(bad_size, 0.0, size_f).astype(np.int64)
    return reason, ts, price, size


def compute_frames(
    trades: pd.DataFrame,
    params: Params | None = None,
    passthrough: Sequence[str] = (),
    *,
    progress: ProgressCallback | None = None,
) -> SignalFrames:
    """Compute every statistic of every (symbol, New York date) in ``trades``.

    Parameters
    ----------
    trades
        Columns ``timestamp_ns`` (UTC epoch ns), ``symbol``, ``price``, ``size``; other
        columns are ignored unless named in ``passthrough``. Any order, any number of
        symbols and days; prints outside regular hours are ignored.
    params
        Parameters of the statistics; the specification's defaults when omitted.
    passthrough
        Input columns to carry onto each per-trade row (e.g. ``kafka_partition``,
        ``kafka_offset``); when non-empty a ``seq`` column is added too.
    progress
        Called as ``progress(done, total, symbol, date)`` after each partition.

    Returns
    -------
    SignalFrames
        The three contract frames, partitions in (symbol, date) order, and the rejects.

    Raises
    ------
    DataError
        A required or passthrough column is missing.
    """
    p = params or Params()
    missing = [c for c in (*REQUIRED_COLUMNS, *passthrough) if c not in trades.columns]
    if missing:
        raise DataError(
            f"trades frame lacks column(s) {missing}; it has {list(trades.columns)} "
            f"(required: {list(REQUIRED_COLUMNS)})"
        )
    reserved = {c.name for c in TRADE_SIGNAL_COLUMNS} | {"seq"}
    clash = sorted(set(passthrough) & reserved)
    if clash:
        raise DataError(f"passthrough column(s) {clash} collide with output columns")
    frame = trades.reset_index(drop=True)
    reason, ts_all, price_all, sizes_all = _reject_reasons(frame)
    rejected = np.array(reason.notna().to_numpy(), dtype=bool)
    symbols_all = frame["symbol"].astype(object).to_numpy()

    # Local date of every row with a usable stamp (rows with a bad stamp have no partition).
    stamp_ok = ~(reason == "timestamp_ns null or not an integer").to_numpy()
    stamp_ok &= ~(reason == "symbol null or empty").to_numpy()
    local = pd.to_datetime(ts_all, unit="ns", utc=True).tz_convert(p.tz).tz_localize(None)
    day_key = local.normalize().to_numpy().astype("datetime64[D]")

    keyed = pd.DataFrame({"symbol": symbols_all, "day": day_key})[stamp_ok]
    groups = keyed.groupby(["symbol", "day"], sort=True).indices
    keys = list(groups)
    positions_all = np.flatnonzero(stamp_ok)

    trade_parts: list[dict[str, Any]] = []
    seq_parts: list[np.ndarray] = []
    row_parts: list[np.ndarray] = []
    metric_rows: list[dict[str, Any]] = []
    fit_rows: list[dict[str, Any]] = []
    bucket_parts: list[dict[str, Any]] = []
    for done, key in enumerate(keys, start=1):
        symbol, day = cast("tuple[Any, Any]", key)
        date = str(np.datetime64(day, "D"))
        rows = positions_all[groups[key]]
        bad = rejected[rows]
        good = rows[~bad]
        result = symbol_day(ts_all[good], price_all[good], sizes_all[good], p, date=date)
        in_rows = good[result.index]
        n = in_rows.shape[0]
        trade_parts.append({"symbol": symbol, "date": date, "n": n, **result.trades})
        seq_parts.append(np.arange(n, dtype=np.int64))
        row_parts.append(in_rows)
        metrics = {"symbol": symbol, **result.metrics}
        if bad.any():
            counts = cast("pd.Series", reason.iloc[rows[bad]]).value_counts(sort=True)
            text = ", ".join(f"{k}: {v}" for k, v in counts.items())
            note = f"rejected rows: {int(bad.sum())} ({text})"
            metrics["notes"] = f"{metrics['notes']}; {note}" if metrics["notes"] else note
        metric_rows.append(metrics)
        fit_rows.append({"symbol": symbol, "date": date, **fit_state_row(result)})
        bucket_parts.append({"symbol": symbol, "date": date, **result.intensity})
        if progress is not None:
            progress(done, len(keys), str(symbol), date)

    rejects = pd.DataFrame(
        {
            "row": np.flatnonzero(rejected).astype(np.int64),
            "symbol": pd.Series(symbols_all[rejected], dtype=object),
            "timestamp_ns": pd.array(
                np.where(stamp_ok[rejected], ts_all[rejected], 0), dtype="Int64"
            ),
            "reason": pd.Series(reason.to_numpy()[rejected], dtype="str"),
        },
        columns=list(REJECT_COLUMNS),
    )
    rejects.loc[~stamp_ok[rejected], "timestamp_ns"] = pd.NA
    return SignalFrames(
        trade_signals=_trade_frame(trade_parts, seq_parts, row_parts, frame, passthrough),
        symbol_day_metrics=_metrics_frame(metric_rows),
        intensity_buckets=_bucket_frame(bucket_parts),
        rejects=rejects,
        fit_states=pd.DataFrame(fit_rows, columns=["symbol", "date", *FIT_STATE_COLUMNS]),
    )


def _trade_frame(
    parts: list[dict[str, Any]],
    seq_parts: list[np.ndarray],
    row_parts: list[np.ndarray],
    frame: pd.DataFrame,
    passthrough: Sequence[str],
) -> pd.DataFrame:
    if not parts:
        out = _empty_frame(TRADE_SIGNAL_COLUMNS)
        if passthrough:
            out["seq"] = pd.Series([], dtype="int64")
            for col in passthrough:
                out[col] = frame[col].iloc[:0].reset_index(drop=True)
        return out
    lengths = [part["n"] for part in parts]
    data: dict[str, pd.Series] = {}
    for col in TRADE_SIGNAL_COLUMNS:
        if col.name in ("symbol", "date"):
            values: Any = np.repeat(
                np.array([part[col.name] for part in parts], dtype=object), lengths
            )
        else:
            values = np.concatenate([part[col.name] for part in parts])
        data[col.name] = _series(values, col)
    out = pd.DataFrame(data)
    if passthrough:
        out["seq"] = np.concatenate(seq_parts)
        rows = np.concatenate(row_parts)
        for col in passthrough:
            out[col] = frame[col].iloc[rows].reset_index(drop=True)
    return out


def _metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return _empty_frame(SYMBOL_DAY_METRIC_COLUMNS)
    data = {}
    for col in SYMBOL_DAY_METRIC_COLUMNS:
        values = [row[col.name] for row in rows]
        if pandas_dtype(col) == "Float64":
            values = [np.nan if v is None else v for v in values]
        data[col.name] = (
            _series(values, col)
            if col.dtype != "bool"
            else pd.Series(values, name=col.name, dtype=pandas_dtype(col))
        )
    return pd.DataFrame(data)


def _bucket_frame(parts: list[dict[str, Any]]) -> pd.DataFrame:
    if not parts:
        return _empty_frame(INTENSITY_BUCKET_COLUMNS)
    lengths = [part["bucket"].shape[0] for part in parts]
    data: dict[str, pd.Series] = {}
    for col in INTENSITY_BUCKET_COLUMNS:
        if col.name in ("symbol", "date"):
            values: Any = np.repeat(
                np.array([part[col.name] for part in parts], dtype=object), lengths
            )
        else:
            values = np.concatenate([part[col.name] for part in parts])
        data[col.name] = _series(values, col)
    return pd.DataFrame(data)


TRADE_SIGNAL_NAMES: list[str] = column_names(TRADE_SIGNAL_COLUMNS)
SYMBOL_DAY_METRIC_NAMES: list[str] = column_names(SYMBOL_DAY_METRIC_COLUMNS)
INTENSITY_BUCKET_NAMES: list[str] = column_names(INTENSITY_BUCKET_COLUMNS)
