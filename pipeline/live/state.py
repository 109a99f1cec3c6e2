"""One symbol-day's online state: each trade's provisional statistics in O(1) (pure).

The batch kernels are resumable filters (state in, state out, any batch split gives the
same output); this module owns their state arrays and feeds them one print at a time,
calling the compiled kernels in place. So every causal column is computed by the batch's
own code and equals it exactly (statistics.md 2.1-2.3 and 2.7; 2.4-2.6 given the same
parameters), and nothing here restates a formula:

- ``log_return``, ``lee_mykland_stat`` (the K-1 returns strictly before the print) and
  ``bns_stat`` (last W returns) are identical to the batch's. Their window sums are the
  kernels' block sums: amortised O(1) per print, exact recomputation once per block.
- ``lm_xi``, ``jump_detected`` and ``trading_signal`` need ``n``, the day's return count,
  which is unknown before the close: a provisional ``n`` is used and stored with the
  result (:class:`Priors`: a given count, e.g. the symbol's previous day, else the returns
  seen so far, ``running``). With the day's true ``n`` they equal the batch's.
- ``garch_sigma2``, ``standardized_return``, ``conditional_duration`` and ``acd_surprise``
  need fitted parameters (and ACD a diurnal curve), which only a whole day gives: they are
  filtered with the parameters of :class:`Priors` (null, with the reason, without them).
- ``trade_intensity_zscore``: the current bucket's count is the count so far (the trailing
  buckets are complete), so it equals the batch's at the bucket's last print.

Memory per symbol-day: ``K - 2`` + ``6 W`` floats of window blocks, one int per intensity
bucket (390) and a few scalars, whatever the day's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline._typing import BoolArray, Float64Array, Int64Array
from udx.kernels._compat_numba import jit
from udx.kernels.acd import AcdDay, Diurnal, acd_filter_nb, diurnal_phi_nb
from udx.kernels.config import NS_PER_S, Params
from udx.kernels.garch import GarchFit, garch_filter_nb
from udx.kernels.intensity import intensity_zscores_nb
from udx.kernels.jumps import (
    BnsRollingState,
    LeeMyklandState,
    bns_rolling_nb,
    gumbel_beta_star,
    lee_mykland_nb,
    lm_threshold_constants,
)
from udx.kernels.returns import log_returns_nb
from udx.kernels.schema import SIGNAL_LABELS

_NAN = math.nan

N_RULE_PRIOR = "prior"
N_RULE_RUNNING = "running"


@dataclass(frozen=True)
class GarchPrior:
    """GARCH(1,1) parameters to filter a day with, in the fit's scaled units (statistics.md 3).

    ``backcast_scaled`` starts the recursion: ``h_1 = omega + (alpha + beta) backcast``.
    """

    scale: float
    omega_scaled: float
    alpha: float
    beta: float
    backcast_scaled: float
    source: str

    @classmethod
    def from_fit(cls, fit: GarchFit, source: str) -> GarchPrior | None:
        """Return the parameters of a batch fit (None when it has none)."""
        if not fit.fitted:
            return None
        return cls(fit.scale, fit.omega_scaled, fit.alpha, fit.beta, fit.backcast_scaled, source)


@dataclass(frozen=True)
class AcdPrior:
    """Exponential ACD(1,1) parameters, ``psi_1`` and the diurnal curve to filter a day with."""

    omega: float
    alpha: float
    beta: float
    psi1: float
    diurnal: Diurnal
    source: str

    @classmethod
    def from_day(cls, day: AcdDay, source: str) -> AcdPrior | None:
        """Return the exponential fit and diurnal curve of a batch day (None without them)."""
        if day.diurnal is None or not day.exp.fitted:
            return None
        e = day.exp
        return cls(e.omega, e.alpha, e.beta, e.psi1, day.diurnal, source)


@dataclass(frozen=True)
class Priors:
    """What a symbol-day's live statistics take from outside the day.

    Attributes
    ----------
    lm_n
        Provisional ``n`` of the Lee-Mykland threshold (rule ``prior``); ``None`` uses the
        returns seen so far, this one included (rule ``running``).
    garch, acd
        Parameters to filter with; ``None`` leaves those columns null with the reason.
    """

    lm_n: int | None = None
    garch: GarchPrior | None = None
    acd: AcdPrior | None = None


NO_PRIORS = Priors()


@dataclass(frozen=True, slots=True)
class LiveStats:
    """One print's provisional statistics (NaN = null); names as statistics.md 5.1."""

    seq: int
    log_return: float
    lee_mykland_stat: float
    lm_xi: float
    lm_n: int
    lm_n_rule: str
    jump_detected: bool
    bns_stat: float
    garch_sigma2: float
    standardized_return: float
    conditional_duration: float
    acd_surprise: float
    trade_intensity_zscore: float
    trading_signal: str
    in_order: bool


@dataclass(frozen=True, slots=True)
class LiveColumns:
    """The provisional statistics of consecutive prints of one symbol-day, one array each.

    Row ``i`` is the ``i``-th print given to :meth:`SymbolDayState.update_many`; the names
    and meanings are those of :class:`LiveStats` (NaN = null). ``lm_n_rule`` is the same
    for every row of a symbol-day.
    """

    seq: Int64Array
    log_return: Float64Array
    lee_mykland_stat: Float64Array
    lm_xi: Float64Array
    lm_n: Int64Array
    lm_n_rule: str
    jump_detected: BoolArray
    bns_stat: Float64Array
    garch_sigma2: Float64Array
    standardized_return: Float64Array
    conditional_duration: Float64Array
    acd_surprise: Float64Array
    trade_intensity_zscore: Float64Array
    signal_code: Int64Array
    in_order: BoolArray

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def row(self, i: int) -> LiveStats:
        """Return row ``i`` as one print's :class:`LiveStats`."""
        return LiveStats(
            seq=int(self.seq[i]), log_return=float(self.log_return[i]),
            lee_mykland_stat=float(self.lee_mykland_stat[i]), lm_xi=float(self.lm_xi[i]),
            lm_n=int(self.lm_n[i]), lm_n_rule=self.lm_n_rule,
            jump_detected=bool(self.jump_detected[i]), bns_stat=float(self.bns_stat[i]),
            garch_sigma2=float(self.garch_sigma2[i]),
            standardized_return=float(self.standardized_return[i]),
            conditional_duration=float(self.conditional_duration[i]),
            acd_surprise=float(self.acd_surprise[i]),
            trade_intensity_zscore=float(self.trade_intensity_zscore[i]),
            trading_signal=SIGNAL_LABELS[int(self.signal_code[i])],
            in_order=bool(self.in_order[i]),
        )  # fmt: skip


def _core_py(
    ts: Int64Array,
    px: Float64Array,
    ret_state: Float64Array,
    lm_w: int,
    lm_counts: Int64Array,
    lm_vals: Float64Array,
    lm_blk: Float64Array,
    lm_suf: Float64Array,
    bns_w: int,
    bns_counts: Int64Array,
    bns_vals: Float64Array,
    bns_blk: Float64Array,
    bns_suf: Float64Array,
    open_ns: int,
    bucket_ns: int,
    iwin: int,
    icounts: Int64Array,
    zbuf: Float64Array,
    scal: Int64Array,
    n_prior: int,
    c_tab: Float64Array,
    s_tab: Float64Array,
    beta_star: float,
    f_out: Float64Array,
    i_out: Int64Array,
    in_order: BoolArray,
) -> None:
    """One compiled call for a run of prints: the kernels, then per print n, xi, flag, z.

    Calls the batch kernels (returns, Lee-Mykland, rolling BNS) on the whole run, then per
    print: in order or late (``scal = [returns seen, last in-order stamp, has one]``), the
    provisional ``n`` (``n_prior`` when >= 3, else the running count), ``xi`` with the
    ``(C_n, S_n)`` of :func:`lm_threshold_constants` (tabulated in ``c_tab``/``s_tab``),
    the flag and rule-v1 code, and the intensity z of the print's bucket count so far:
    ``intensity_zscores`` on ``counts[b - iwin : b + 1]`` (O(iwin), the kernel's own code;
    ``b = min(floor((t - open) / bucket), B - 1)`` as ``intensity_counts``).

    Outputs: ``f_out`` rows = log return, L, xi, BNS, z; ``i_out`` rows = n, code.
    """
    r = f_out[0]
    lm = f_out[1]
    xi = f_out[2]
    bns = f_out[3]
    z = f_out[4]
    log_returns_nb(px, r, ret_state)
    lee_mykland_nb(r, lm_w, lm, lm_counts, lm_vals, lm_blk, lm_suf)
    bns_rolling_nb(r, bns_w, bns, bns_counts, bns_vals, bns_blk, bns_suf)
    returns = scal[0]
    last = scal[1]
    has_last = scal[2]
    last_bucket = icounts.shape[0] - 1
    for i in range(ts.shape[0]):
        t = ts[i]
        if has_last == 0 or t >= last:
            in_order[i] = True
            last = t
            has_last = 1
        else:
            in_order[i] = False
        x = r[i]
        if x == x:
            returns += 1
        n = n_prior if n_prior >= 3 else returns
        i_out[0, i] = n
        v = (abs(lm[i]) - c_tab[n]) / s_tab[n]  # NaN where L is null or n < 3
        xi[i] = v
        if v > beta_star:  # False where xi is null
            i_out[1, i] = 1 if x > 0.0 else 2
        else:
            i_out[1, i] = 0
        b = (t - open_ns) // bucket_ns
        if b > last_bucket:
            b = last_bucket
        icounts[b] += 1
        if b < iwin:
            z[i] = _NAN
        else:
            intensity_zscores_nb(icounts[b - iwin : b + 1], iwin, zbuf)
            z[i] = zbuf[iwin]
    scal[0] = returns
    scal[1] = last
    scal[2] = has_last


_core_nb = jit(_core_py)


class _Thresholds:
    """``lm_threshold_constants(n)`` for n = 0, 1, ..., computed once each per process."""

    def __init__(self) -> None:
        self.c = np.full(3, _NAN)
        self.s = np.full(3, _NAN)

    def upto(self, n: int) -> tuple[Float64Array, Float64Array]:
        """Return arrays ``(C, S)`` indexed by n, covering ``0..n`` (NaN below 3)."""
        have = self.c.shape[0]
        if n >= have:
            size = max(n + 1, 2 * have)
            c = np.full(size, _NAN)
            s = np.full(size, _NAN)
            c[:have], s[:have] = self.c, self.s
            for k in range(max(3, have), size):
                c[k], s[k] = lm_threshold_constants(k)
            self.c, self.s = c, s
        return self.c, self.s


_THRESHOLDS = _Thresholds()


class SymbolDayState:
    """Online state of one (symbol, New York date) partition.

    Parameters
    ----------
    open_ns, close_ns
        Session bounds of the date (UTC ns); :meth:`update_many` takes only prints inside them.
    params
        Parameters of the statistics (K, W, alpha, intensity bucket and window).
    priors
        Provisional ``n`` and fitted parameters (:class:`Priors`).

    Notes
    -----
    :meth:`update_many` feeds a run of consecutive prints to each kernel in one call (the
    kernels are resumable filters: any split of the day gives the same output, to the
    bit), so the per-call cost of a compiled kernel is paid once per run, not per print.
    :meth:`update` is the same on a run of one.
    """

    def __init__(self, open_ns: int, close_ns: int, params: Params, priors: Priors) -> None:
        self.open_ns = open_ns
        self.close_ns = close_ns
        self.params = params
        self.priors = priors
        self._beta_star = gumbel_beta_star(params.alpha)
        self._n_prior = priors.lm_n if priors.lm_n is not None and priors.lm_n >= 3 else None
        self._rule = N_RULE_PRIOR if self._n_prior is not None else N_RULE_RUNNING
        self._ret = np.array([_NAN])
        lm = LeeMyklandState.initial(params.lm_window)
        self._lm = (lm.counts, lm.vals, lm.blk, lm.suf)
        bns = BnsRollingState.initial(params.bns_window)
        self._bns = (bns.counts, bns.vals, bns.blk, bns.suf)
        g = priors.garch
        self._garch = np.array([g.backcast_scaled, g.backcast_scaled]) if g else None
        self._acd_i = np.zeros(2, dtype=np.int64)
        self._acd_f = np.full(5, _NAN)
        self._bucket_ns = params.intensity_bucket_s * NS_PER_S
        self._counts = np.zeros(params.n_buckets, dtype=np.int64)
        self._z = np.empty(params.intensity_window + 1)
        self._midnight_ns = open_ns - params.open_s * NS_PER_S
        # [returns seen, last in-order stamp, whether there is one]: the compiled core's.
        self._scal = np.zeros(3, dtype=np.int64)
        self.seq = 0

    @property
    def returns(self) -> int:
        """Return the number of returns seen so far (the running ``n``)."""
        return int(self._scal[0])

    @property
    def last_ns(self) -> int | None:
        """Return the stamp of the latest in-order print (None before the first)."""
        return int(self._scal[1]) if self._scal[2] else None

    def update(self, timestamp_ns: int, price: float) -> LiveStats:
        """Add one regular-hours print and return its statistics.

        Parameters
        ----------
        timestamp_ns
            The print's SIP time (UTC ns), within the session.
        price
            Finite and > 0 (the caller rejects other prints first).

        Returns
        -------
        LiveStats
            The print's provisional statistics.
        """
        cols = self.update_many(
            np.array([timestamp_ns], dtype=np.int64), np.array([price], dtype=np.float64)
        )
        return cols.row(0)

    def update_many(self, timestamp_ns: Int64Array, price: Float64Array) -> LiveColumns:
        """Add consecutive regular-hours prints (offset order) and return their statistics.

        Parameters
        ----------
        timestamp_ns
            The prints' SIP times (UTC ns, int64), within the session, in arrival order.
        price
            Their prices (float64), finite and > 0 (the caller rejects other prints first).

        Returns
        -------
        LiveColumns
            One row per print, equal to what :meth:`update` returns print by print.
        """
        p = self.params
        ts = np.ascontiguousarray(timestamp_ns, dtype=np.int64)
        px = np.ascontiguousarray(price, dtype=np.float64)
        m = ts.shape[0]
        c_tab, s_tab = _THRESHOLDS.upto(max(self._n_prior or 0, int(self._scal[0]) + m))
        f = np.empty((5, m))
        i = np.empty((2, m), dtype=np.int64)
        in_order = np.empty(m, dtype=np.bool_)
        _core_nb(
            ts, px, self._ret, p.lm_window - 2, *self._lm, p.bns_window, *self._bns,
            self.open_ns, self._bucket_ns, p.intensity_window, self._counts, self._z,
            self._scal, self._n_prior or 0, c_tab, s_tab, self._beta_star, f, i, in_order,
        )  # fmt: skip
        r = f[0]
        null = np.full(m, _NAN)
        sigma2 = std = cond = surp = null  # read-only: null unless priors fill them below
        g = self.priors.garch
        if g is not None and self._garch is not None:
            sigma2 = np.empty(m)
            garch_filter_nb(r, g.scale, g.omega_scaled, g.alpha, g.beta, sigma2, self._garch)
            std = np.full(m, _NAN)
            ok = (r == r) & (sigma2 > 0.0)
            std[ok] = r[ok] / np.sqrt(sigma2[ok])
        a = self.priors.acd
        if a is not None:  # a late print would make a negative duration: left out
            cond, surp = np.full(m, _NAN), np.full(m, _NAN)
            t = ts if in_order.all() else ts[in_order]
            if t.shape[0]:
                d = a.diurnal
                # Seconds after local midnight exactly as udx.kernels.acd.tod_seconds does.
                tod = (t - self._midnight_ns) / 1e9
                phi = np.empty(t.shape[0])
                diurnal_phi_nb(
                    tod, d.knots_s, d.knot_means_s, d.second_derivs, d.slope_left,
                    d.slope_right, d.floor, phi,
                )  # fmt: skip
                c_out = np.empty(t.shape[0])
                s_out = np.empty(t.shape[0])
                acd_filter_nb(
                    t, phi, a.omega, a.alpha, a.beta, a.psi1, c_out, s_out, self._acd_i,
                    self._acd_f,
                )  # fmt: skip
                cond[in_order] = c_out
                surp[in_order] = s_out
        code = i[1]
        seq = np.arange(self.seq, self.seq + m, dtype=np.int64)
        self.seq += m
        return LiveColumns(
            seq=seq, log_return=r, lee_mykland_stat=f[1], lm_xi=f[2], lm_n=i[0],
            lm_n_rule=self._rule, jump_detected=code != 0, bns_stat=f[3], garch_sigma2=sigma2,
            standardized_return=std, conditional_duration=cond, acd_surprise=surp,
            trade_intensity_zscore=f[4], signal_code=code, in_order=in_order,
        )  # fmt: skip
