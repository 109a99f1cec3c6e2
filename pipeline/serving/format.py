"""How served rows look: numbers to 6 significant digits, times as ISO 8601, one shape per row.

Both implementations of the serving port hand raw column values to these functions, so
an answer from DuckDB and one from Vertica are identical for the same data. Statistics are
rounded to 6 significant digits (every digit costs a client tokens), NaN and infinities
become null (JSON has neither), and every function works on whole columns (numpy) so
that a page of a thousand rows costs microseconds per row, not per value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.nytime import iso_utc, iso_utc_array

TRADE_COLUMNS: tuple[str, ...] = (
    "timestamp_ns",
    "price",
    "size",
    "exchange",
    "conditions",
    "in_regular_hours",
    "kafka_partition",
    "kafka_offset",
)
"""Columns of ``market_data`` a trade row shows."""

JOINED_SIGNAL_COLUMNS: tuple[str, ...] = (
    "log_return",
    "lee_mykland_stat",
    "jump_detected",
    "garch_sigma2",
    "standardized_return",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
    "trading_signal",
)
"""Columns of ``trading_signals`` a trade row carries (null when the trade has no signal)."""

SIGNAL_COLUMNS: tuple[str, ...] = (
    "timestamp_ns",
    "seq",
    "price",
    "size",
    "log_return",
    "lee_mykland_stat",
    "lm_xi",
    "jump_detected",
    "garch_sigma2",
    "standardized_return",
    "bns_stat",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
    "trading_signal",
    "kafka_partition",
    "kafka_offset",
)
"""Columns of ``trading_signals`` a signal row shows (besides its date)."""

_ROUNDED = frozenset(
    {
        "price",
        "log_return",
        "lee_mykland_stat",
        "lm_xi",
        "garch_sigma2",
        "standardized_return",
        "bns_stat",
        "conditional_duration",
        "acd_surprise",
        "trade_intensity_zscore",
    }
)

METRICS_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "n_trades",
    "n_returns",
    "first_timestamp_ns",
    "last_timestamp_ns",
    "vwap",
    "bns_m",
    "bns_rv",
    "bns_bv",
    "bns_tq",
    "bns_qq",
    "bns_rj",
    "bns_z",
    "bns_p_value",
    "bns_jump",
    "garch_omega",
    "garch_alpha",
    "garch_beta",
    "garch_loglik",
    "garch_scale",
    "garch_converged",
    "acd_exp_omega",
    "acd_exp_alpha",
    "acd_exp_beta",
    "acd_exp_loglik",
    "acd_weibull_omega",
    "acd_weibull_alpha",
    "acd_weibull_beta",
    "acd_weibull_gamma",
    "acd_weibull_loglik",
    "acd_exp_at_boundary",
    "acd_weibull_at_boundary",
    "lm_jump_count",
    "notes",
    "kernel_version",
    "run_id",
)
"""Columns of ``symbol_day_metrics`` a ``DayMetrics`` row is built from."""


_POW10: tuple[float, ...] = tuple(10.0**k for k in range(300))
"""Powers of ten as doubles, one table for both sig6 functions (so they agree exactly)."""
_POW10_ARRAY = np.array(_POW10)
_EXP_LIMIT = 290
"""Beyond 1e±290 numbers are returned as they are (no statistic gets there)."""


def sig6(values: Any) -> npt.NDArray[np.float64]:
    """Round to 6 significant digits; NaN and infinities become NaN.

    Parameters
    ----------
    values
        Numbers (None allowed: it becomes NaN).

    Returns
    -------
    numpy.ndarray
        ``float64`` values, each the double nearest to its 6-digit decimal; equal, value
        for value, to :func:`sig6_scalar` (same arithmetic, same table of powers).
    """
    x = np.asarray(
        [np.nan if v is None else v for v in values] if isinstance(values, list) else values,
        dtype=np.float64,
    )
    out = np.array(x, dtype=np.float64)
    out[~np.isfinite(x)] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.abs(x)
        e = np.floor(np.log10(a))
    ok = np.isfinite(x) & (x != 0) & (e >= -_EXP_LIMIT) & (e <= _EXP_LIMIT)
    if ok.any():
        v, a_ok = x[ok], a[ok]
        e_ok = e[ok].astype(np.int64)
        # log10 may be an ulp off near powers of ten: settle the exponent exactly, so
        # that 10**e <= |v| < 10**(e + 1) whatever the platform's log10.
        e_ok = np.where(~_at_least_pow10(a_ok, e_ok), e_ok - 1, e_ok)
        e_ok = np.where(_at_least_pow10(a_ok, e_ok + 1), e_ok + 1, e_ok)
        digits = 5 - e_ok
        r = np.empty_like(v)
        up = digits >= 0
        # Scale by an exact power of ten, round half to even, scale back.
        scale = _POW10_ARRAY[digits[up]]
        r[up] = np.round(v[up] * scale) / scale
        down = _POW10_ARRAY[-digits[~up]]
        r[~up] = np.round(v[~up] / down) * down
        out[ok] = r
    return out


def _at_least_pow10(a: npt.NDArray[np.float64], e: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Return ``a >= 10**e`` elementwise, computed as :func:`_ge_pow10` does for one value."""
    pos = _POW10_ARRAY[np.maximum(e, 0)]
    neg = _POW10_ARRAY[np.maximum(-e, 0)]
    return np.where(e >= 0, a >= pos, a * neg >= 1.0)


def _ge_pow10(a: float, e: int) -> bool:
    return a >= _POW10[e] if e >= 0 else a * _POW10[-e] >= 1.0


def sig6_scalar(value: Any) -> float | None:
    """Round one number as :func:`sig6` does (None, NaN and infinities become None).

    Pure Python: a daily-statistics row has 25 numbers, and one numpy round trip each
    would cost more than the whole page of trades.
    """
    if value is None:
        return None
    x = float(value)
    if not math.isfinite(x):
        return None
    if x == 0:
        return x
    a = abs(x)
    e = math.floor(math.log10(a))
    if not -_EXP_LIMIT <= e <= _EXP_LIMIT:
        return x
    if not _ge_pow10(a, e):
        e -= 1
    elif _ge_pow10(a, e + 1):
        e += 1
    digits = 5 - e
    if digits >= 0:
        scale = _POW10[digits]
        return round(x * scale) / scale
    down = _POW10[-digits]
    return round(x / down) * down


def _json_floats(values: Any) -> list[float | None]:
    r = sig6(values)
    return [None if v != v else v for v in r.tolist()]  # NaN != NaN


def _rounded_columns(cols: Mapping[str, Any], names: Sequence[str], n: int) -> dict[str, list[Any]]:
    """Round several float columns with one :func:`sig6` call (a page's numbers at once)."""
    stacked = np.empty((len(names), n), dtype=np.float64)
    for i, name in enumerate(names):
        v = cols.get(name)
        if v is None:
            stacked[i] = np.nan
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            stacked[i] = v
        else:
            stacked[i] = [np.nan if x is None else x for x in v]
    r = sig6(stacked.ravel()).reshape(stacked.shape)
    return {
        name: [None if x != x else x for x in row]  # NaN != NaN
        for name, row in zip(names, r.tolist(), strict=True)
    }


def _ints(values: Any) -> list[int | None]:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return values.tolist()
    return [None if v is None else int(v) for v in values]


def _bools(values: Any) -> list[bool | None]:
    if isinstance(values, np.ndarray) and values.dtype == np.bool_:
        return values.tolist()
    return [None if v is None else bool(v) for v in values]


def _strs(values: Any) -> list[str | None]:
    return [None if v is None else str(v) for v in values]


def _column(cols: Mapping[str, Any], name: str, n: int) -> Any:
    v = cols.get(name)
    return [None] * n if v is None else v


def trade_rows(cols: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Build ``TradeRow`` answers from columns of trades and their joined signals.

    Parameters
    ----------
    cols
        :data:`TRADE_COLUMNS` and, where known, :data:`JOINED_SIGNAL_COLUMNS` (absent or
        None per row: the trade has no signal).

    Returns
    -------
    list[dict]
        One row per trade, in the order given.
    """
    ts = np.asarray(cols["timestamp_ns"], dtype=np.int64)
    n = len(ts)
    if n == 0:
        return []
    f = _rounded_columns(
        cols,
        (
            "price",
            "log_return",
            "lee_mykland_stat",
            "garch_sigma2",
            "standardized_return",
            "conditional_duration",
            "acd_surprise",
            "trade_intensity_zscore",
        ),
        n,
    )
    fields: dict[str, list[Any]] = {
        "time": iso_utc_array(ts),
        "timestamp_ns": ts.tolist(),
        "price": f["price"],
        "size": _ints(cols["size"]),
        "exchange": _ints(cols["exchange"]),
        "conditions": _strs(cols["conditions"]),
        "in_regular_hours": _bools(cols["in_regular_hours"]),
        "log_return": f["log_return"],
        "lee_mykland_stat": f["lee_mykland_stat"],
        "jump_detected": _bools(_column(cols, "jump_detected", n)),
        "garch_sigma2": f["garch_sigma2"],
        "standardized_return": f["standardized_return"],
        "conditional_duration": f["conditional_duration"],
        "acd_surprise": f["acd_surprise"],
        "trade_intensity_zscore": f["trade_intensity_zscore"],
        "trading_signal": _strs(_column(cols, "trading_signal", n)),
        "kafka_partition": _ints(cols["kafka_partition"]),
        "kafka_offset": _ints(cols["kafka_offset"]),
    }
    names = list(fields)
    return [dict(zip(names, row, strict=True)) for row in zip(*fields.values(), strict=True)]


def signal_rows(
    cols: Mapping[str, Any], days: Sequence[date] | date, source: str = "batch"
) -> list[dict[str, Any]]:
    """Build ``SignalRow`` answers from :data:`SIGNAL_COLUMNS`.

    Parameters
    ----------
    cols
        The columns.
    days
        The trading day of every row, or one day for all.
    source
        ``batch`` (a signals run's row) or ``live`` (the live path's provisional row).

    Returns
    -------
    list[dict]
        One row per signal, in the order given.
    """
    ts = np.asarray(cols["timestamp_ns"], dtype=np.int64)
    n = len(ts)
    if n == 0:
        return []
    day_text = [days.isoformat()] * n if isinstance(days, date) else [d.isoformat() for d in days]
    rounded = _rounded_columns(cols, [c for c in SIGNAL_COLUMNS if c in _ROUNDED], n)
    fields: dict[str, list[Any]] = {
        "time": iso_utc_array(ts),
        "timestamp_ns": ts.tolist(),
        "date": day_text,
        "seq": _ints(cols["seq"]),
        "price": rounded["price"],
        "size": _ints(cols["size"]),
    }
    for name in SIGNAL_COLUMNS[4:]:
        if name in _ROUNDED:
            fields[name] = rounded[name]
        elif name == "jump_detected":
            fields[name] = _bools(cols[name])
        elif name == "trading_signal":
            fields[name] = _strs(cols[name])
        else:
            fields[name] = _ints(cols[name])
    fields["source"] = [source] * n
    names = list(fields)
    return [dict(zip(names, row, strict=True)) for row in zip(*fields.values(), strict=True)]


LIVE_PROVENANCE: tuple[str, ...] = (
    "lm_n",
    "lm_n_rule",
    "garch_params",
    "acd_params",
    "kernel_version",
    "emitted_ns",
)
"""What a live row says of how it was computed (``live_signals``), beside its signal columns."""


def live_row(one: Mapping[str, Any], day: date) -> dict[str, Any]:
    """Build one live signal answer: a ``SignalRow`` (source ``live``) and its provenance.

    Parameters
    ----------
    one
        Single-row columns: :data:`SIGNAL_COLUMNS` and :data:`LIVE_PROVENANCE`.
    day
        The row's trading day.

    Returns
    -------
    dict
        The row.
    """
    row = signal_rows({c: one[c] for c in SIGNAL_COLUMNS}, day, source="live")[0]
    for name in LIVE_PROVENANCE:
        v = one[name][0]
        row[name] = None if v is None else (int(v) if name in ("lm_n", "emitted_ns") else str(v))
    return row


def _f(v: Any) -> float | None:
    return sig6_scalar(v)


def _i(v: Any) -> int | None:
    return None if v is None else int(v)


def _b(v: Any) -> bool | None:
    return None if v is None else bool(v)


def metrics_row(m: Mapping[str, Any]) -> dict[str, Any]:
    """Build a ``DayMetrics`` answer from one ``symbol_day_metrics`` row (by column name)."""
    d = m["date"]
    return {
        "date": d.isoformat() if isinstance(d, date) else str(d)[:10],
        "n_trades": int(m["n_trades"]),
        "n_returns": _i(m["n_returns"]),
        "first_trade": iso_utc(_i(m["first_timestamp_ns"])),
        "last_trade": iso_utc(_i(m["last_timestamp_ns"])),
        "vwap": _f(m["vwap"]),
        "bns": {
            "m": _i(m["bns_m"]),
            "rv": _f(m["bns_rv"]),
            "bv": _f(m["bns_bv"]),
            "tq": _f(m["bns_tq"]),
            "qq": _f(m["bns_qq"]),
            "rj": _f(m["bns_rj"]),
            "z": _f(m["bns_z"]),
            "p_value": _f(m["bns_p_value"]),
            "jump": _b(m["bns_jump"]),
        },
        "garch": {
            "omega": _f(m["garch_omega"]),
            "alpha": _f(m["garch_alpha"]),
            "beta": _f(m["garch_beta"]),
            "loglik": _f(m["garch_loglik"]),
            "scale": _f(m["garch_scale"]),
            "converged": _b(m["garch_converged"]),
        },
        "acd_exponential": {
            "omega": _f(m["acd_exp_omega"]),
            "alpha": _f(m["acd_exp_alpha"]),
            "beta": _f(m["acd_exp_beta"]),
            "gamma": None,
            "loglik": _f(m["acd_exp_loglik"]),
            "at_boundary": _b(m["acd_exp_at_boundary"]),
        },
        "acd_weibull": {
            "omega": _f(m["acd_weibull_omega"]),
            "alpha": _f(m["acd_weibull_alpha"]),
            "beta": _f(m["acd_weibull_beta"]),
            "gamma": _f(m["acd_weibull_gamma"]),
            "loglik": _f(m["acd_weibull_loglik"]),
            "at_boundary": _b(m["acd_weibull_at_boundary"]),
        },
        "lm_jump_count": _i(m["lm_jump_count"]),
        "notes": None if m["notes"] is None else str(m["notes"]),
        "kernel_version": str(m["kernel_version"]),
        "run_id": str(m["run_id"]),
    }


def jsonable(v: Any) -> Any:
    """Return a value as a JSON type: dates as ISO text, decimals and numpy numbers as floats."""
    if isinstance(v, date):
        return v.isoformat()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return float(v)


def round_value(v: Any) -> Any:
    """Round one float as answers do (other values unchanged)."""
    return _f(v) if isinstance(v, float) else v


__all__ = [
    "JOINED_SIGNAL_COLUMNS",
    "LIVE_PROVENANCE",
    "METRICS_COLUMNS",
    "SIGNAL_COLUMNS",
    "TRADE_COLUMNS",
    "jsonable",
    "live_row",
    "metrics_row",
    "round_value",
    "sig6",
    "sig6_scalar",
    "signal_rows",
    "trade_rows",
]
