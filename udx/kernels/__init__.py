"""Microstructure statistics kernels: pure numpy/scipy (+ numba when available).

Ships alone into Vertica's bundled Python: nothing here imports pandas or ``pipeline``.
The entry point is :func:`symbol_day`; the single-statistic kernels are resumable
filters (state in, state out) so any batch split of a day gives the same output.
Specification: statistics.md v1 (LM08, BNS04/HT05/ABD07, Bol86 with arch 8.0.0's
conventions, ER98 with ACDm's likelihoods).
"""

from __future__ import annotations

from udx.kernels._checks import KernelInputError
from udx.kernels._compat_numba import NUMBA_ENABLED, PerformanceWarning
from udx.kernels.acd import AcdDay, AcdFit, Diurnal, acd_day, acd_expected, diurnal_phi, fit_acd
from udx.kernels.config import SIGNAL_RULE, SIGNAL_RULE_TEXT, Params
from udx.kernels.day import SymbolDayResult, local_date, session_bounds, symbol_day
from udx.kernels.garch import GarchFit, fit_garch, garch_variance
from udx.kernels.intensity import intensity_counts, intensity_zscores
from udx.kernels.jumps import (
    BnsResult,
    bns_rolling,
    bns_test,
    gumbel_beta_star,
    lee_mykland,
    lm_jumps,
    lm_threshold_constants,
    lm_xi,
    previous_tick_returns,
)
from udx.kernels.returns import log_returns

KERNEL_VERSION = "1.0.0"

__all__ = [
    "KERNEL_VERSION",
    "NUMBA_ENABLED",
    "SIGNAL_RULE",
    "SIGNAL_RULE_TEXT",
    "AcdDay",
    "AcdFit",
    "BnsResult",
    "Diurnal",
    "GarchFit",
    "KernelInputError",
    "Params",
    "PerformanceWarning",
    "SymbolDayResult",
    "acd_day",
    "acd_expected",
    "bns_rolling",
    "bns_test",
    "diurnal_phi",
    "fit_acd",
    "fit_garch",
    "garch_variance",
    "gumbel_beta_star",
    "intensity_counts",
    "intensity_zscores",
    "lee_mykland",
    "lm_jumps",
    "lm_threshold_constants",
    "lm_xi",
    "local_date",
    "log_returns",
    "previous_tick_returns",
    "session_bounds",
    "symbol_day",
]
