"""``symbol_day``: every statistic of one symbol-day, in a fixed order, and signal rule v1.

Order: validate -> stable sort -> regular hours -> returns -> Lee-Mykland (L, xi, flag) ->
rolling tick BNS -> daily 5-min BNS -> GARCH fit and variance -> standardized return ->
ACD (diurnal factor, exponential and Weibull fits, per-print columns) -> intensity ->
signal -> metrics. The Vertica UDx, the DuckDB signal assets and ``microstructure
compute`` all call this function, so their numbers cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from udx.kernels._checks import KernelInputError, as_float64, as_int64, check_prices, check_sizes
from udx.kernels._typing import Float64Array, Int64Array
from udx.kernels.acd import AcdDay, acd_day
from udx.kernels.config import DEFAULT_TZ, NS_PER_S, Params
from udx.kernels.garch import GarchFit, fit_garch, garch_variance
from udx.kernels.intensity import intensity_counts, intensity_zscores
from udx.kernels.jumps import (
    BnsResult,
    bns_rolling,
    bns_test,
    lee_mykland,
    lm_jumps,
    lm_xi,
    previous_tick_returns,
)
from udx.kernels.returns import log_returns
from udx.kernels.schema import SIGNAL_LABELS, SYMBOL_DAY_METRIC_COLUMNS, column_names

_NAN = math.nan
_LABELS = np.array(SIGNAL_LABELS)


def local_date(timestamp_ns: int, tz: str = DEFAULT_TZ) -> str:
    """Return the local calendar date (``YYYY-MM-DD``) of a UTC ns stamp in zone ``tz``."""
    seconds = int(timestamp_ns) // NS_PER_S
    return dt.datetime.fromtimestamp(seconds, tz=ZoneInfo(tz)).date().isoformat()


def session_bounds(date: str, params: Params | None = None) -> tuple[int, int]:
    """Return the UTC ns of the session open and close on local ``date`` (tz database).

    Parameters
    ----------
    date
        Local date ``YYYY-MM-DD``.
    params
        Clock and session; defaults when omitted.

    Returns
    -------
    tuple of int
        ``(open_ns, close_ns)``.
    """
    p = params or Params()
    day = dt.date.fromisoformat(date)
    zone = ZoneInfo(p.tz)

    def at(seconds: int) -> int:
        h, rest = divmod(seconds, 3600)
        wall = dt.datetime(day.year, day.month, day.day, h, rest // 60, rest % 60, tzinfo=zone)
        return round(wall.timestamp()) * NS_PER_S

    return at(p.open_s), at(p.close_s)


@dataclass(frozen=True)
class SymbolDayResult:
    """Everything ``symbol_day`` computes for one symbol-day.

    Attributes
    ----------
    date
        Local date ``YYYY-MM-DD`` (``None`` only for empty input without a date).
    open_ns, close_ns
        Session bounds in UTC ns (0 when the date is unknown).
    index
        Input row of each regular-hours print, in partition (stable time) order.
    trades
        Per-print contract columns except ``symbol`` and ``date``: ``timestamp_ns``,
        ``price``, ``size``, ``log_return``, ``lee_mykland_stat``, ``lm_xi``,
        ``jump_detected``, ``garch_sigma2``, ``standardized_return``, ``bns_stat``,
        ``conditional_duration``, ``acd_surprise``, ``trade_intensity_zscore``,
        ``trading_signal`` (NaN = null).
    metrics
        Symbol-day contract columns except ``symbol`` (``None`` = null).
    intensity
        ``bucket``, ``bucket_start_ns``, ``count``, ``z`` per bucket.
    garch, acd, bns_daily
        The fits and the daily test, for diagnostics.
    notes
        Why statistics are null or flagged (also joined into ``metrics["notes"]``).
    """

    date: str | None
    open_ns: int
    close_ns: int
    index: Int64Array
    trades: dict[str, npt.NDArray[Any]]
    metrics: dict[str, Any]
    intensity: dict[str, npt.NDArray[Any]]
    garch: GarchFit | None = None
    acd: AcdDay | None = None
    bns_daily: BnsResult | None = None
    notes: tuple[str, ...] = field(default=())


def _opt(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _opt_bool(value: bool | None) -> bool | None:
    return None if value is None else bool(value)


def _null_metrics(date: str | None) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(column_names(SYMBOL_DAY_METRIC_COLUMNS)[1:])
    out.update(date=date, n_trades=0, n_returns=0, bns_jump=False, lm_jump_count=0)
    return out


def _validate(
    timestamp_ns: npt.ArrayLike, price: npt.ArrayLike, size: npt.ArrayLike
) -> tuple[Int64Array, Float64Array, Int64Array]:
    ts = as_int64(timestamp_ns, "timestamp_ns")
    p = as_float64(price, "price")
    sz = as_int64(size, "size")
    if not ts.shape[0] == p.shape[0] == sz.shape[0]:
        raise KernelInputError(
            f"timestamp_ns, price and size have {ts.shape[0]}, {p.shape[0]} and {sz.shape[0]} "
            "rows and must have the same length"
        )
    check_prices(p)
    check_sizes(sz)
    return ts, p, sz


def symbol_day(
    timestamp_ns: npt.ArrayLike,
    price: npt.ArrayLike,
    size: npt.ArrayLike,
    params: Params | None = None,
    *,
    date: str | None = None,
) -> SymbolDayResult:
    """Match every reference file of ``data/xxx/reference/<date>/``: one symbol-day, all statistics.

    Parameters
    ----------
    timestamp_ns
        UTC epoch ns of the prints of ONE symbol on ONE local (New York) date; any order
        (sorted stably, with a note, when unsorted). Prints outside regular hours are
        ignored (not in the outputs).
    price
        Trade prices; every row must be finite and > 0.
    size
        Trade sizes (int); every row must be >= 0. Only VWAP uses them.
    params
        Parameters; the specification's defaults when omitted.
    date
        Local date ``YYYY-MM-DD`` of the partition. When omitted it is derived from the
        stamps, which must then all fall on one local date.

    Returns
    -------
    SymbolDayResult
        Per-print columns (regular hours, partition order), metrics, intensity buckets.

    Raises
    ------
    KernelInputError
        A NaN/inf/non-positive price, a negative size, mismatched lengths, or stamps on
        several local dates without ``date``: the message names the first offending row
        (input position). The pipeline rejects such rows upstream with a reason instead.
    """
    p = params or Params()
    ts_in, px_in, sz_in = _validate(timestamp_ns, price, size)
    notes: list[str] = []
    if date is None:
        if ts_in.shape[0] == 0:
            empty: dict[str, npt.NDArray[Any]] = {}
            metrics = _null_metrics(None)
            metrics["notes"] = "no prints"
            return SymbolDayResult(None, 0, 0, ts_in[:0], empty, metrics, {}, notes=("no prints",))
        first, last = local_date(int(ts_in.min()), p.tz), local_date(int(ts_in.max()), p.tz)
        if first != last:
            row = int(np.argmax(ts_in))
            raise KernelInputError(
                f"timestamp_ns at row {row} is on {last} but other rows are on {first} "
                f"({p.tz}); pass one (symbol, date) partition or give date="
            )
        date = first
    open_ns, close_ns = session_bounds(date, p)

    # Stable sort: equal stamps keep their arrival order.
    if ts_in.shape[0] > 1 and bool((ts_in[1:] < ts_in[:-1]).any()):
        inversions = int((ts_in[1:] < ts_in[:-1]).sum())
        notes.append(f"input not in time order ({inversions} inversions): sorted stably")
        order = np.argsort(ts_in, kind="stable")
    else:
        order = np.arange(ts_in.shape[0], dtype=np.int64)
    ts_sorted = ts_in[order]
    in_rth = (ts_sorted >= open_ns) & (ts_sorted <= close_ns)
    index = order[in_rth] if not in_rth.all() else order
    ts = ts_in[index]
    px = px_in[index]
    sz = sz_in[index]
    n_trades = ts.shape[0]
    n = max(n_trades - 1, 0)

    # 2.1 returns, 2.2 Lee-Mykland
    r, _ = log_returns(px)
    lm_stat, _ = lee_mykland(r, window=p.lm_window)
    xi = lm_xi(lm_stat, n)
    jump = lm_jumps(xi, p.alpha)
    if n_trades == 0:
        notes.append("no regular-hours prints")
    elif n < p.lm_window:
        notes.append(f"Lee-Mykland: {n} returns < K={p.lm_window}; lee_mykland_stat null")
    else:
        zero_sigma = int(np.isnan(lm_stat[p.lm_window :]).sum())
        if zero_sigma:
            notes.append(
                f"Lee-Mykland: sigma = 0 (all window products zero) at {zero_sigma} returns; "
                "L null there"
            )

    # 2.3 rolling tick BNS and daily 5-min BNS
    bns_stat, _ = bns_rolling(r, window=p.bns_window)
    if 0 < n < p.bns_window:
        notes.append(f"rolling BNS: {n} returns < W={p.bns_window}; bns_stat null")
    m_daily = (p.close_s - p.open_s) // p.bns_grid_s
    bns_day: BnsResult | None = None
    if n_trades:
        sampled = previous_tick_returns(ts, px, open_ns, p.bns_grid_s * NS_PER_S, m_daily)
        bns_day = bns_test(sampled, p.alpha)
        if bns_day.m < 4:
            notes.append(f"daily BNS: M = {bns_day.m} < 4; all null")
        elif bns_day.rv == 0.0:
            notes.append("daily BNS: RV = 0 (constant sampled prices); z null")
        elif bns_day.bv == 0.0:
            notes.append("daily BNS: BV = 0; z null")

    # 2.4 GARCH, 2.5 standardized returns
    garch = fit_garch(r[1:], min_returns=p.garch_min_returns, boundary_tol=p.garch_boundary_tol)
    if garch.reason and n_trades:
        notes.append(garch.reason)
    sigma2, _ = garch_variance(r, garch)
    with np.errstate(invalid="ignore", divide="ignore"):
        std_ret = r / np.sqrt(sigma2)

    # 2.6 ACD
    acd = acd_day(
        ts, open_ns=open_ns, open_s=p.open_s, close_s=p.close_s, bin_s=p.diurnal_bin_s,
        floor_factor=p.acd_phi_floor, min_durations=p.acd_min_durations,
        boundary_tol=p.acd_boundary_tol,
    )  # fmt: skip
    if n_trades:
        acd_notes = [acd.exp.reason, acd.weibull.reason]
        if acd.exp.reason is not None and acd.exp.reason == acd.weibull.reason:
            acd_notes = [acd.exp.reason]
        notes.extend(x for x in acd_notes if x)

    # 2.7 intensity
    bucket, ist = intensity_counts(
        ts, open_ns=open_ns, close_ns=close_ns, bucket_s=p.intensity_bucket_s
    )
    z_bucket = intensity_zscores(ist.counts, p.intensity_window)
    z_trade = z_bucket[bucket]
    n_buckets = ist.counts.shape[0]

    # 6 signal rule v1
    code = np.zeros(n_trades, dtype=np.int8)
    code[jump & (r > 0.0)] = 1
    code[jump & (r < 0.0)] = 2
    signal = _LABELS[code]

    trades: dict[str, npt.NDArray[Any]] = {
        "timestamp_ns": ts,
        "price": px,
        "size": sz,
        "log_return": r,
        "lee_mykland_stat": lm_stat,
        "lm_xi": xi,
        "jump_detected": jump,
        "garch_sigma2": sigma2,
        "standardized_return": std_ret,
        "bns_stat": bns_stat,
        "conditional_duration": acd.conditional_duration,
        "acd_surprise": acd.surprise,
        "trade_intensity_zscore": z_trade,
        "trading_signal": signal,
    }
    intensity = {
        "bucket": np.arange(n_buckets, dtype=np.int64),
        "bucket_start_ns": open_ns + p.intensity_bucket_s * NS_PER_S * np.arange(n_buckets),
        "count": ist.counts,
        "z": z_bucket,
    }

    metrics = _null_metrics(date)
    metrics.update(n_trades=n_trades, n_returns=n, lm_jump_count=int(jump.sum()))
    if n_trades:
        total_size = int(sz.sum())
        if total_size > 0:
            metrics["vwap"] = float(np.dot(px, sz.astype(np.float64)) / total_size)
        else:
            notes.append("vwap: total size 0; vwap null")
        metrics.update(first_timestamp_ns=int(ts[0]), last_timestamp_ns=int(ts[-1]))
    if bns_day is not None:
        metrics.update(
            bns_m=bns_day.m, bns_rv=_opt(bns_day.rv), bns_bv=_opt(bns_day.bv),
            bns_tq=_opt(bns_day.tq), bns_qq=_opt(bns_day.qq), bns_rj=_opt(bns_day.rj),
            bns_z=_opt(bns_day.z), bns_p_value=_opt(bns_day.p_value), bns_jump=bns_day.jump,
        )  # fmt: skip
    if garch.fitted:
        metrics.update(
            garch_omega=garch.omega, garch_alpha=garch.alpha, garch_beta=garch.beta,
            garch_loglik=garch.loglik, garch_scale=garch.scale,
            garch_converged=garch.converged,
        )  # fmt: skip
    for prefix, fit in (("acd_exp", acd.exp), ("acd_weibull", acd.weibull)):
        if fit.fitted:
            metrics[f"{prefix}_omega"] = fit.omega
            metrics[f"{prefix}_alpha"] = fit.alpha
            metrics[f"{prefix}_beta"] = fit.beta
            metrics[f"{prefix}_loglik"] = fit.loglik
            metrics[f"{prefix}_at_boundary"] = _opt_bool(fit.at_boundary)
    if acd.weibull.fitted:
        metrics["acd_weibull_gamma"] = acd.weibull.gamma
    metrics["notes"] = "; ".join(notes) or None
    return SymbolDayResult(
        date=date,
        open_ns=open_ns,
        close_ns=close_ns,
        index=index,
        trades=trades,
        metrics=metrics,
        intensity=intensity,
        garch=garch,
        acd=acd,
        bns_daily=bns_day,
        notes=tuple(notes),
    )
