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


class SymbolDayState:
    """Online state of one (symbol, New York date) partition.

    Parameters
    ----------
    open_ns, close_ns
        Session bounds of the date (UTC ns); :meth:`update` takes only prints inside them.
    params
        Parameters of the statistics (K, W, alpha, intensity bucket and window).
    priors
        Provisional ``n`` and fitted parameters (:class:`Priors`).
    """

    def __init__(self, open_ns: int, close_ns: int, params: Params, priors: Priors) -> None:
        self.open_ns = open_ns
        self.close_ns = close_ns
        self.params = params
        self.priors = priors
        self._beta_star = gumbel_beta_star(params.alpha)
        self._n_prior = priors.lm_n if priors.lm_n is not None and priors.lm_n >= 3 else None
        self._cs_prior = lm_threshold_constants(self._n_prior) if self._n_prior else None
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
        # One-element buffers: the kernels take arrays and write their outputs in place.
        self._p = np.empty(1)
        self._r = np.empty(1)
        self._t = np.empty(1, dtype=np.int64)
        self._tod = np.empty(1)
        self._phi = np.empty(1)
        self._midnight_ns = open_ns - params.open_s * NS_PER_S
        self._o1 = np.empty(1)
        self._o2 = np.empty(1)
        self.seq = 0
        self.returns = 0
        self.last_ns: int | None = None

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
        p = self.params
        in_order = self.last_ns is None or timestamp_ns >= self.last_ns
        self._p[0] = price
        log_returns_nb(self._p, self._r, self._ret)
        r = float(self._r[0])
        if r == r:
            self.returns += 1
        lm_stat = self._one(lee_mykland_nb, p.lm_window - 2, *self._lm)
        n, rule, xi = self._xi(lm_stat)
        jump = xi == xi and xi > self._beta_star
        bns = self._one(bns_rolling_nb, p.bns_window, *self._bns)
        sigma2 = std = _NAN
        g = self.priors.garch
        if g is not None and self._garch is not None:
            garch_filter_nb(
                self._r, g.scale, g.omega_scaled, g.alpha, g.beta, self._o1, self._garch
            )
            sigma2 = float(self._o1[0])
            std = r / math.sqrt(sigma2) if r == r and sigma2 > 0.0 else _NAN
        cond = surp = _NAN
        a = self.priors.acd
        if a is not None and in_order:  # a late print would make a negative duration
            self._t[0] = timestamp_ns
            d = a.diurnal
            # Seconds after local midnight exactly as udx.kernels.acd.tod_seconds computes them.
            self._tod[0] = (timestamp_ns - self._midnight_ns) / 1e9
            diurnal_phi_nb(
                self._tod, d.knots_s, d.knot_means_s, d.second_derivs, d.slope_left,
                d.slope_right, d.floor, self._phi,
            )  # fmt: skip
            acd_filter_nb(
                self._t, self._phi, a.omega, a.alpha, a.beta, a.psi1, self._o1, self._o2,
                self._acd_i, self._acd_f,
            )  # fmt: skip
            cond, surp = float(self._o1[0]), float(self._o2[0])
        z = self._intensity(timestamp_ns)
        code = (1 if r > 0.0 else 2) if jump else 0
        stats = LiveStats(
            seq=self.seq, log_return=r, lee_mykland_stat=lm_stat, lm_xi=xi, lm_n=n,
            lm_n_rule=rule, jump_detected=jump, bns_stat=bns, garch_sigma2=sigma2,
            standardized_return=std, conditional_duration=cond, acd_surprise=surp,
            trade_intensity_zscore=z, trading_signal=SIGNAL_LABELS[code], in_order=in_order,
        )  # fmt: skip
        self.seq += 1
        if in_order:
            self.last_ns = timestamp_ns
        return stats

    def _one(self, kernel: object, window: int, *state: np.ndarray) -> float:
        kernel(self._r, window, self._o1, *state)  # type: ignore[operator] # a numba dispatcher
        return float(self._o1[0])

    def _xi(self, lm_stat: float) -> tuple[int, str, float]:
        """Return ``(n, rule, xi)`` with the provisional ``n`` (statistics.md 2.2, eq. 12-13)."""
        if self._cs_prior is not None and self._n_prior is not None:
            n, rule, (c_n, s_n) = self._n_prior, N_RULE_PRIOR, self._cs_prior
        else:
            n, rule = self.returns, N_RULE_RUNNING
            if lm_stat != lm_stat or n < 3:
                return n, rule, _NAN
            c_n, s_n = lm_threshold_constants(n)
        if lm_stat != lm_stat:
            return n, rule, _NAN
        return n, rule, (abs(lm_stat) - c_n) / s_n

    def _intensity(self, timestamp_ns: int) -> float:
        """Count the print in its bucket; z of that bucket's count so far (statistics.md 2.7)."""
        w = self.params.intensity_window
        b = min((timestamp_ns - self.open_ns) // self._bucket_ns, self._counts.shape[0] - 1)
        self._counts[b] += 1
        if b < w:
            return _NAN
        # The kernel's own z over the w trailing buckets and this one: O(w), not O(day).
        intensity_zscores_nb(self._counts[b - w : b + 1], w, self._z)
        return float(self._z[w])
