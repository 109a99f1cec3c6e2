"""Every guard of the kernels: overflow fallbacks, domain errors, state checks, the shim."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

import udx.kernels._compat_numba as compat
from tests.udx.conftest import day_result
from udx.kernels import (
    KernelInputError,
    Params,
    acd_expected,
    bns_rolling,
    fit_acd,
    intensity_counts,
    lee_mykland,
    previous_tick_returns,
    session_bounds,
    symbol_day,
)
from udx.kernels.acd import (
    AcdFit,
    acd_exp_loglik_grad,
    acd_exp_loglik_grad_py,
    acd_loglik,
    acd_weibull_loglik_grad_py,
    build_diurnal,
    diurnal_phi,
    natural_spline,
)
from udx.kernels.garch import (
    arch_scale,
    garch_grid_loglik_py,
    garch_loglik_grad,
    garch_loglik_grad_py,
    garch_loglik_py,
    garch_start,
)
from udx.kernels.jumps import BnsRollingState, LeeMyklandState

# Values whose running product leaves the float range within 8 steps.
HUGE = np.full(40, 1e45)


def test_garch_kernels_handle_non_positive_variance_overflow_and_infinity() -> None:
    e = np.ones(20)
    g = np.zeros(3)
    assert garch_loglik_py(e, -5.0, 0.1, 0.1, 1.0) == -math.inf
    assert garch_loglik_grad_py(e, -5.0, 0.1, 0.1, 1.0, g, True) == -math.inf
    assert g.tolist() == [0.0, 0.0, 0.0]
    inf_e = np.r_[np.ones(10), np.inf, np.ones(10)]
    with np.errstate(over="ignore", invalid="ignore"):  # the Python twins use numpy scalars
        assert garch_loglik_py(inf_e, 0.1, 0.1, 0.8, 1.0) == -math.inf
        assert garch_loglik_grad_py(inf_e, 0.1, 0.1, 0.8, 1.0, g, True) == -math.inf
        assert math.isnan(garch_loglik_grad_py(HUGE, 1.0, 0.1, 0.8, 1e90, g, False))
    fast_then_exact = garch_loglik_grad(HUGE, 1.0, 0.1, 0.8, 1e90, g)
    assert math.isclose(fast_then_exact, garch_loglik_py(HUGE, 1.0, 0.1, 0.8, 1e90), rel_tol=1e-12)
    out = np.empty(2)
    with np.errstate(over="ignore", invalid="ignore"):
        garch_grid_loglik_py(HUGE, np.array([[1.0, 0.1, 0.8], [1.0, 0.2, 0.7]]), 1e90, out)
    assert np.isnan(out).all()
    best = garch_start(HUGE, 1e90)  # NaN grid rows are re-evaluated exactly
    assert best[1] in (0.01, 0.05, 0.1, 0.2)


def test_arch_scale_moves_both_ways() -> None:
    assert arch_scale(np.array([0.0, 1e-4, -1e-4])) == 1e4
    assert arch_scale(np.array([0.0, 1e4, -1e4])) == 0.01
    assert arch_scale(np.array([0.0, 1.0, -1.0])) == 1.0


def test_acd_kernels_handle_non_positive_psi_overflow_and_infinity() -> None:
    x = np.ones(20)
    g3, g4 = np.zeros(3), np.zeros(4)
    assert acd_exp_loglik_grad_py(x, 1.0, -5.0, 0.1, 0.1, g3, True) == -math.inf
    assert (
        acd_weibull_loglik_grad_py(x, np.log(x), 1.0, -5.0, 0.1, 0.1, 0.8, 0.1, 0.1, g4)
        == -math.inf
    )
    assert g4.tolist() == [0.0] * 4
    with np.errstate(over="ignore", invalid="ignore"):  # the Python twins use numpy scalars
        inf_ll = acd_exp_loglik_grad_py(np.r_[x, np.inf], 1.0, 0.1, 0.1, 0.8, g3, True)
        overflow = acd_exp_loglik_grad_py(HUGE, 1e45, 1e40, 0.1, 0.8, g3, False)
    assert inf_ll == -math.inf
    assert math.isnan(overflow)
    lx = np.r_[np.log(x), np.inf]
    with np.errstate(over="ignore", invalid="ignore"):
        inf_w = acd_weibull_loglik_grad_py(
            np.r_[x, np.inf], lx, 1.0, 0.1, 0.1, 0.8, 0.8, 0.1, 0.1, g4
        )
    assert inf_w == -math.inf
    exact = acd_loglik(HUGE, (1e40, 0.1, 0.8), "exp", psi1=1e45)
    assert math.isclose(acd_exp_loglik_grad(HUGE, 1e45, 1e40, 0.1, 0.8, g3), exact, rel_tol=1e-12)
    with pytest.raises(ValueError, match="dist is 'log'"):
        acd_loglik(x, (1.0, 0.1, 0.1), "log")


def test_exponential_fit_accepts_an_extra_start() -> None:
    xt = day_result("2018-01-03").acd.adjusted  # type: ignore[union-attr]
    plain = fit_acd(xt, "exp")
    with_start = fit_acd(xt, "exp", start=(plain.omega, plain.alpha, plain.beta))
    assert with_start.loglik >= plain.loglik - 1e-6


def test_diurnal_spline_with_one_or_two_knots_and_unsorted_times() -> None:
    m2, left, right = natural_spline(np.array([5.0]), np.array([2.0]))
    assert (m2.tolist(), left, right) == ([0.0], 0.0, 0.0)
    m2, left, right = natural_spline(np.array([1.0, 3.0]), np.array([2.0, 4.0]))
    assert (m2.tolist(), left, right) == ([0.0, 0.0], 0.0, 0.0)
    open_ns, _ = session_bounds("2018-01-03")
    # All durations start in one bin: one knot, constant phi.
    starts = open_ns + np.arange(60) * 10**9
    one = build_diurnal(starts, np.ones(60), open_ns=open_ns, open_s=34_200, close_s=57_600,
                        bin_s=1800, floor_factor=1e-3)  # fmt: skip
    assert diurnal_phi(one, [0.0, 40_000.0, 90_000.0]).tolist() == [1.0, 1.0, 1.0]
    # Two bins: linear between the knots, constant beyond.
    starts2 = np.r_[starts, open_ns + 1800 * 10**9 + np.arange(60) * 10**9]
    two = build_diurnal(starts2, np.r_[np.ones(60), 3 * np.ones(60)], open_ns=open_ns,
                        open_s=34_200, close_s=57_600, bin_s=1800, floor_factor=1e-3)  # fmt: skip
    phi = diurnal_phi(two, [37_800.0, 35_100.0, 0.0, 36_000.0, 99_999.0, 36_900.0])
    assert phi.tolist() == [3.0, 1.0, 1.0, 2.0, 3.0, 3.0]
    # Times out of order restart the knot search.
    full = day_result("2018-01-03").acd.diurnal  # type: ignore[union-attr]
    assert full is not None
    both = diurnal_phi(full, [50_000.0, 40_000.0])
    assert both.tolist() == [diurnal_phi(full, [50_000.0])[0], diurnal_phi(full, [40_000.0])[0]]


def test_filter_wrappers_check_their_state_and_inputs() -> None:
    with pytest.raises(ValueError, match="state was built for K=270, not K=20"):
        lee_mykland([np.nan, 0.1], LeeMyklandState.initial(270), window=20)
    with pytest.raises(ValueError, match="state was built for W=500, not W=50"):
        bns_rolling([np.nan, 0.1], BnsRollingState.initial(500), window=50)
    open_ns, close_ns = session_bounds("2018-01-03")
    _, st = intensity_counts([open_ns], open_ns=open_ns, close_ns=close_ns)
    with pytest.raises(ValueError, match="state has 390 buckets, the session has 78"):
        intensity_counts([open_ns], open_ns=open_ns, close_ns=close_ns, bucket_s=300, state=st)
    with pytest.raises(ValueError, match="at least one print"):
        previous_tick_returns([], [], open_ns, 300 * 10**9, 78)
    fit = AcdFit("exp", 0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, None,
                 None, "", None, "none")  # fmt: skip
    with pytest.raises(ValueError, match="timestamp_ns has 2 rows but phi has 1"):
        acd_expected([1, 2], [1.0], fit)
    cond, surp, _ = acd_expected([1, 2], [1.0, 1.0], fit)
    assert np.isnan(cond).all()
    assert np.isnan(surp).all()
    with pytest.raises(KernelInputError, match="price has shape"):
        symbol_day([1, 2], np.ones((2, 1)), [1, 1])


def test_a_daily_grid_of_fewer_than_four_returns_is_null_with_a_note() -> None:
    open_ns, _ = session_bounds("2018-01-03")
    ts = open_ns + np.arange(200) * 10**10
    res = symbol_day(ts, 100 + np.arange(200) % 3, np.ones(200, dtype=np.int64),
                     Params(bns_grid_s=7000))  # fmt: skip
    assert res.metrics["bns_m"] == 3
    assert res.metrics["bns_rv"] is None
    assert "daily BNS: M = 3 < 4" in res.metrics["notes"]


def test_the_shim_loads_compiles_warns_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []

    def njit(**options: object) -> object:
        calls.append(options)
        return lambda f: f

    fake = types.SimpleNamespace(njit=njit)
    assert compat.compile_with(fake, len) is len
    assert calls == [compat.JIT_OPTIONS]
    assert compat.compile_with(None, len) is len
    monkeypatch.setitem(sys.modules, "numba", fake)
    assert compat.load_numba({}) is fake
    assert compat.load_numba({"MICRO_DISABLE_NUMBA": "1"}) is None
    monkeypatch.setitem(sys.modules, "numba", None)  # import fails
    assert compat.load_numba({}) is None
    with pytest.warns(compat.PerformanceWarning, match="plain Python"):
        compat.warn_if_python(None, {})
    compat.warn_if_python(None, {"MICRO_QUIET": "1"})  # silent (warnings are errors here)
    compat.warn_if_python(fake, {})
