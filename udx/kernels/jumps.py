"""Jump statistics: Lee-Mykland in tick time and the BNS bipower test (statistics.md 2.2, 2.3).

The rolling window sums use fixed blocks instead of add/subtract running sums: each window
sum is a suffix sum of the previous completed block plus a prefix sum of the current one.
All terms are non-negative, so a window sum is zero exactly when all its terms are zero (no
residue from subtraction can fake a tiny sigma), the relative error stays at a few ulps
times the window length, and the result depends only on the term's global position: any
batch split of a day gives bit-identical output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from udx.kernels._checks import as_float64, as_int64
from udx.kernels._compat_numba import jit
from udx.kernels._typing import BoolArray, Float64Array, Int64Array
from udx.kernels.config import MU1, MU43, THETA

_NAN = math.nan


# --- Lee-Mykland (LM08) ------------------------------------------------------------------------


def lee_mykland_py(
    r: Float64Array,
    w: int,
    out: Float64Array,
    counts: Int64Array,
    vals: Float64Array,
    blk: Float64Array,
    suf: Float64Array,
) -> None:
    """Match the reference ``L`` of ``trades_lm.csv.gz``: LM statistic with a K-1 return window.

    ``w = K - 2`` products ``|r_k||r_{k-1}|``; NaN entries of ``r`` (the day's first print)
    are skipped. State, updated in place: ``counts = [returns seen, products pushed, block
    position]``, ``vals = [last |r|, prefix sum of the current block, window sum]``, ``blk``
    the current block's products, ``suf`` the suffix sums of the last completed block.
    """
    j = counts[0]
    q = counts[1]
    pos = counts[2]
    last = vals[0]
    prefix = vals[1]
    win = vals[2]
    for i in range(r.shape[0]):
        x = r[i]
        if x != x:  # the first print of the day carries no return
            out[i] = _NAN
            continue
        # L_j uses the window of products ending at product j-1: strictly before r_j.
        if win > 0.0:
            out[i] = x / math.sqrt(win / w)
        else:  # window not full yet (NaN) or all products zero: sigma = 0, L null
            out[i] = _NAN
        a = abs(x)
        if j >= 1:
            p = a * last
            blk[pos] = p
            if pos == 0:
                prefix = p
            else:
                prefix += p
            q += 1
            if pos == w - 1:
                acc = 0.0
                for m in range(w - 1, -1, -1):
                    acc += blk[m]
                    suf[m] = acc
                win = prefix
                pos = 0
            else:
                win = suf[pos + 1] + prefix if q > w else _NAN
                pos += 1
        last = a
        j += 1
    counts[0] = j
    counts[1] = q
    counts[2] = pos
    vals[0] = last
    vals[1] = prefix
    vals[2] = win


lee_mykland_nb = jit(lee_mykland_py)


@dataclass(frozen=True)
class LeeMyklandState:
    """Resumable state of :func:`lee_mykland` (see :func:`lee_mykland_py`)."""

    counts: Int64Array
    vals: Float64Array
    blk: Float64Array
    suf: Float64Array

    @classmethod
    def initial(cls, window: int) -> LeeMyklandState:
        """State at the start of a day for LM window ``K = window``."""
        w = window - 2
        return cls(
            counts=np.zeros(3, dtype=np.int64),
            vals=np.array([_NAN, 0.0, _NAN]),
            blk=np.zeros(w),
            suf=np.zeros(w),
        )


def lee_mykland(
    returns: npt.ArrayLike, state: LeeMyklandState | None = None, *, window: int = 270
) -> tuple[Float64Array, LeeMyklandState]:
    r"""Match the reference ``L`` (``lee_mykland_stat``): Lee-Mykland (2008) in tick time.

    .. math::
        \hat\sigma^2_j = \frac{1}{K-2}\sum_{k=j-K+2}^{j-1} |r_k||r_{k-1}|, \qquad
        L_j = r_j / \hat\sigma_j

    defined from return index ``K - 1``; null while the window is incomplete or
    :math:`\hat\sigma_j = 0`. No :math:`\mu_1^{-2}` factor: ``c L`` is N(0, 1) under the null.

    Parameters
    ----------
    returns
        Per-print tick log returns of one day in order; NaN marks the day's first print.
    state
        State returned by the previous batch of the same day; ``None`` at the day's start.
    window
        ``K``, at least 3.

    Returns
    -------
    L : ndarray
        Statistic per print (NaN where null).
    state : LeeMyklandState
        State to pass with the next batch.
    """
    if window < 3:
        raise ValueError(f"window is {window} and must be at least 3")
    r = as_float64(returns, "returns")
    st = state or LeeMyklandState.initial(window)
    if st.blk.shape[0] != window - 2:
        raise ValueError(f"state was built for K={st.blk.shape[0] + 2}, not K={window}")
    st = LeeMyklandState(st.counts.copy(), st.vals.copy(), st.blk.copy(), st.suf.copy())
    out = np.empty_like(r)
    lee_mykland_nb(r, window - 2, out, st.counts, st.vals, st.blk, st.suf)
    return out, st


def lm_threshold_constants(n: int) -> tuple[float, float]:
    r"""Return LM08's :math:`(C_n, S_n)` for ``n`` tests (Lemma 1, eq. 12-13).

    .. math::
        C_n = \frac{\sqrt{2\ln n}}{c} - \frac{\ln\pi + \ln\ln n}{2c\sqrt{2\ln n}}, \qquad
        S_n = \frac{1}{c\sqrt{2\ln n}}

    Parameters
    ----------
    n
        Number of returns in the partition, at least 3.

    Returns
    -------
    tuple of float
        ``(C_n, S_n)``.
    """
    if n < 3:
        raise ValueError(f"n is {n} and must be at least 3 (ln ln n)")
    root = math.sqrt(2.0 * math.log(n))
    c_n = root / MU1 - (math.log(math.pi) + math.log(math.log(n))) / (2.0 * MU1 * root)
    s_n = 1.0 / (MU1 * root)
    return c_n, s_n


def gumbel_beta_star(alpha: float) -> float:
    r"""Return the Gumbel critical value :math:`\beta^* = -\ln(-\ln(1-\alpha))`."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha is {alpha} and must be in (0, 1)")
    return -math.log(-math.log(1.0 - alpha))


def lm_xi(stat: npt.ArrayLike, n: int) -> Float64Array:
    r"""Match the reference ``lm_xi``: :math:`\xi_j = (|L_j| - C_n)/S_n` (NaN where L is).

    Parameters
    ----------
    stat
        Lee-Mykland statistics ``L``.
    n
        Number of returns in the partition; below 3 every xi is NaN.

    Returns
    -------
    ndarray
        xi per print.
    """
    L = as_float64(stat, "stat")
    if n < 3:
        return np.full_like(L, _NAN)
    c_n, s_n = lm_threshold_constants(n)
    return (np.abs(L) - c_n) / s_n


def lm_jumps(xi: npt.ArrayLike, alpha: float = 0.01) -> BoolArray:
    """Match the reference ``lm_jump``: ``xi > beta*(alpha)``; false where xi is null."""
    x = as_float64(xi, "xi")
    return np.greater(x, gumbel_beta_star(alpha), where=~np.isnan(x), out=np.zeros(x.shape, bool))


# --- BNS (BNS04, HT05, ABD07) -------------------------------------------------------------------


def bns_rolling_py(
    r: Float64Array,
    window: int,
    out: Float64Array,
    counts: Int64Array,
    vals: Float64Array,
    blk: Float64Array,
    suf: Float64Array,
) -> None:
    """Match ``bns_tick.csv`` ``z_ratiomax_TQ``: BNS z over the last ``window`` tick returns.

    Three block-sliding sums run side by side: ``r^2`` (window W), ``|r_k||r_{k-1}|`` (W-1)
    and ``|r_k r_{k-1} r_{k-2}|^{4/3}`` (W-2). State, updated in place: ``counts = [returns
    seen, pushed_0..2, position_0..2]``, ``vals = [|r_{j-1}|, |r_{j-1}|^{4/3},
    |r_{j-2}|^{4/3}, prefix_0..2, window_0..2]``, ``blk``/``suf`` of shape (3, W).
    """
    m = float(window)
    bv_scale = 1.0 / (MU1 * MU1)
    tq_scale = m * m / (m - 2.0) / (MU43 * MU43 * MU43)
    j = counts[0]
    a1 = vals[0]  # |r_{j-1}|
    c1 = vals[1]  # |r_{j-1}|^{4/3}
    c2 = vals[2]  # |r_{j-2}|^{4/3}
    for i in range(r.shape[0]):
        x = r[i]
        if x != x:
            out[i] = _NAN
            continue
        a = abs(x)
        c = a ** (4.0 / 3.0) if a > 0.0 else 0.0
        for s in range(3):
            if j < s:
                continue
            if s == 0:
                v = x * x
            elif s == 1:
                v = a * a1
            else:
                v = c * c1 * c2
            wl = window - s
            pos = counts[4 + s]
            blk[s, pos] = v
            if pos == 0:
                vals[3 + s] = v
            else:
                vals[3 + s] += v
            counts[1 + s] += 1
            if pos == wl - 1:
                acc = 0.0
                for k in range(wl - 1, -1, -1):
                    acc += blk[s, k]
                    suf[s, k] = acc
                vals[6 + s] = vals[3 + s]
                counts[4 + s] = 0
            else:
                if counts[1 + s] > wl:
                    vals[6 + s] = suf[s, pos + 1] + vals[3 + s]
                else:
                    vals[6 + s] = _NAN
                counts[4 + s] = pos + 1
        rv = vals[6]
        bv = bv_scale * vals[7]
        tq = tq_scale * vals[8]
        if j >= window - 1 and rv > 0.0 and bv > 0.0:
            ratio = tq / (bv * bv)
            out[i] = (1.0 - bv / rv) / math.sqrt(THETA * max(1.0, ratio) / m)
        else:
            out[i] = _NAN
        c2 = c1
        c1 = c
        a1 = a
        j += 1
    counts[0] = j
    vals[0] = a1
    vals[1] = c1
    vals[2] = c2


bns_rolling_nb = jit(bns_rolling_py)


@dataclass(frozen=True)
class BnsRollingState:
    """Resumable state of :func:`bns_rolling` (see :func:`bns_rolling_py`)."""

    counts: Int64Array
    vals: Float64Array
    blk: Float64Array
    suf: Float64Array

    @classmethod
    def initial(cls, window: int) -> BnsRollingState:
        """State at the start of a day for a window of ``window`` returns."""
        vals = np.full(9, _NAN)
        vals[3:6] = 0.0
        return cls(np.zeros(7, dtype=np.int64), vals, np.zeros((3, window)), np.zeros((3, window)))


def bns_rolling(
    returns: npt.ArrayLike, state: BnsRollingState | None = None, *, window: int = 500
) -> tuple[Float64Array, BnsRollingState]:
    r"""Match ``bns_tick.csv`` ``z_ratiomax_TQ`` (``bns_stat``): rolling tick BNS z.

    .. math::
        z = \frac{1 - BV/RV}{\sqrt{\theta \max(1, TQ/BV^2)/M}}

    on the last ``M = window`` tick returns ending at the current one (BV without
    ``M/(M-1)``, TQ with ``M/(M-2)``); null before return index ``window - 1`` and when RV
    or BV is 0. A heuristic on ticks (statistics.md 8.3).

    Parameters
    ----------
    returns
        Per-print tick log returns of one day in order; NaN marks the day's first print.
    state
        State returned by the previous batch of the same day; ``None`` at the day's start.
    window
        ``W``, at least 4.

    Returns
    -------
    z : ndarray
        Statistic per print (NaN where null).
    state : BnsRollingState
        State to pass with the next batch.
    """
    if window < 4:
        raise ValueError(f"window is {window} and must be at least 4")
    r = as_float64(returns, "returns")
    st = state or BnsRollingState.initial(window)
    if st.blk.shape[1] != window:
        raise ValueError(f"state was built for W={st.blk.shape[1]}, not W={window}")
    st = BnsRollingState(st.counts.copy(), st.vals.copy(), st.blk.copy(), st.suf.copy())
    out = np.empty_like(r)
    bns_rolling_nb(r, window, out, st.counts, st.vals, st.blk, st.suf)
    return out, st


@dataclass(frozen=True)
class BnsResult:
    """BNS measures of one window of returns (statistics.md 2.3); NaN/None where null."""

    m: int
    rv: float
    bv: float
    tq: float
    qq: float
    rj: float
    z: float
    p_value: float
    jump: bool


def bns_test(returns: npt.ArrayLike, alpha: float = 0.01) -> BnsResult:
    r"""Match ``bns_sampled.csv`` (``M, RV, BV, TQ, QQ, RJ, z_ratiomax_TQ, p_one_sided, jump``).

    .. math::
        RV = \sum r_i^2, \quad BV = \mu_1^{-2}\sum |r_i||r_{i-1}|, \quad
        TQ = M\tfrac{M}{M-2}\mu_{4/3}^{-3}\sum |r_i r_{i-1} r_{i-2}|^{4/3}, \quad
        QQ = M\tfrac{M}{M-3}\mu_1^{-4}\sum |r_i r_{i-1} r_{i-2} r_{i-3}|

    ``z = z_ratiomax_TQ``, one-sided ``p = 1 - Phi(z)``, ``jump = z > Phi^{-1}(1 - alpha)``.
    ``M < 4``: all null; ``RV = 0`` or ``BV = 0``: z, p null and no jump.

    Parameters
    ----------
    returns
        The M returns of the window (finite).
    alpha
        Significance of the one-sided test.

    Returns
    -------
    BnsResult
        The measures.
    """
    r = as_float64(returns, "returns")
    m = r.shape[0]
    if m < 4:
        return BnsResult(m, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, False)
    a = np.abs(r)
    c = a ** (4.0 / 3.0)
    rv = float(np.sum(r * r))
    bv = float(np.sum(a[1:] * a[:-1])) / (MU1 * MU1)
    tq = m * m / (m - 2.0) / MU43**3 * float(np.sum(c[2:] * c[1:-1] * c[:-2]))
    qq = m * m / (m - 3.0) / MU1**4 * float(np.sum(a[3:] * a[2:-1] * a[1:-2] * a[:-3]))
    rj = (rv - bv) / rv if rv > 0.0 else _NAN
    z = p = _NAN
    jump = False
    if rv > 0.0 and bv > 0.0:
        z = (1.0 - bv / rv) / math.sqrt(THETA * max(1.0, tq / (bv * bv)) / m)
        p = 0.5 * math.erfc(z / math.sqrt(2.0))
        jump = bool(z > NormalDist().inv_cdf(1.0 - alpha))
    return BnsResult(m, rv, bv, tq, qq, rj, z, p, jump)


def previous_tick_returns(
    timestamp_ns: npt.ArrayLike, price: npt.ArrayLike, open_ns: int, step_ns: int, m: int
) -> Float64Array:
    """Match highfrequency ``aggregatePrice(fill = TRUE)``: previous-tick returns on a grid.

    Grid ``t_k = open + k step``, ``k = 0..m``. Point 0 takes the first print (even after
    the open); point ``k >= 1`` the last print (stable order) with stamp ``<= t_k``, else
    the first print. Intervals without prints give zero returns.

    Parameters
    ----------
    timestamp_ns, price
        Prints of one day, sorted by time (stable), at least one.
    open_ns, step_ns
        Grid origin and step (UTC ns).
    m
        Number of returns.

    Returns
    -------
    ndarray
        ``m`` log returns.
    """
    ts = as_int64(timestamp_ns, "timestamp_ns")
    p = as_float64(price, "price")
    if ts.shape[0] == 0:
        raise ValueError("previous-tick sampling needs at least one print")
    grid = open_ns + step_ns * np.arange(1, m + 1, dtype=np.int64)
    idx = np.searchsorted(ts, grid, side="right") - 1
    idx = np.maximum(idx, 0)
    logp = np.log(p)
    sampled = np.concatenate(([logp[0]], logp[idx]))
    return np.diff(sampled)
