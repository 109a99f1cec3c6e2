"""Each compiled kernel against its plain-Python twin on small inputs (explicit rtol).

With numba off (``MICRO_DISABLE_NUMBA=1``) both names are the same function and these
tests pass trivially; the reference and property tests then exercise the Python twins.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from udx.kernels import acd, garch, intensity, jumps, returns

RTOL = 1e-13


def _returns(seed: int, n: int, zero_share: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = 1e-4 * rng.standard_normal(n)
    r[rng.random(n) < zero_share] = 0.0
    r[0] = np.nan
    return r


def test_log_returns_twins_agree() -> None:
    p = 100 * np.exp(np.cumsum(1e-3 * np.random.default_rng(1).standard_normal(200)))
    a, b = np.empty(200), np.empty(200)
    sa, sb = np.array([np.nan]), np.array([np.nan])
    returns.log_returns_py(p, a, sa)
    returns.log_returns_nb(p, b, sb)
    np.testing.assert_allclose(a, b, rtol=RTOL)
    assert sa[0] == sb[0]


def test_lee_mykland_twins_agree() -> None:
    r = _returns(2, 400)
    w = 8
    outs = []
    for f in (jumps.lee_mykland_py, jumps.lee_mykland_nb):
        out = np.empty_like(r)
        counts = np.zeros(3, dtype=np.int64)
        vals = np.array([np.nan, 0.0, np.nan])
        f(r, w, out, counts, vals, np.zeros(w), np.zeros(w))
        outs.append((out, counts, vals))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=RTOL)
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def test_bns_rolling_twins_agree() -> None:
    r = _returns(3, 300)
    outs = []
    for f in (jumps.bns_rolling_py, jumps.bns_rolling_nb):
        st = jumps.BnsRollingState.initial(20)
        out = np.empty_like(r)
        f(r, 20, out, st.counts, st.vals, st.blk, st.suf)
        outs.append(out)
    np.testing.assert_allclose(outs[0], outs[1], rtol=RTOL)
    assert np.isfinite(outs[0][25:]).any()


def test_garch_likelihood_gradient_grid_and_filter_twins_agree() -> None:
    e = np.ascontiguousarray(100 * _returns(4, 500)[1:])
    for exact in (True, False):
        ga, gb = np.zeros(3), np.zeros(3)
        la = garch.garch_loglik_grad_py(e, 0.05, 0.1, 0.85, 1.2, ga, exact)
        lb = garch.garch_loglik_grad_nb(e, 0.05, 0.1, 0.85, 1.2, gb, exact)
        assert math.isclose(la, lb, rel_tol=RTOL)
        np.testing.assert_allclose(ga, gb, rtol=1e-12)
    assert math.isclose(
        garch.garch_loglik_py(e, 0.05, 0.1, 0.85, 1.2),
        garch.garch_loglik_nb(e, 0.05, 0.1, 0.85, 1.2),
        rel_tol=RTOL,
    )
    starts = np.array([[0.5, 0.01, 0.49], [0.02, 0.2, 0.78]])
    oa, ob = np.empty(2), np.empty(2)
    garch.garch_grid_loglik_py(e, starts, 1.2, oa)
    garch.garch_grid_loglik_nb(e, starts, 1.2, ob)
    np.testing.assert_allclose(oa, ob, rtol=RTOL)
    r = _returns(5, 300)
    ha, hb = np.empty_like(r), np.empty_like(r)
    garch.garch_filter_py(r, 1e4, 0.05, 0.1, 0.85, ha, np.array([1.2, 1.2]))
    garch.garch_filter_nb(r, 1e4, 0.05, 0.1, 0.85, hb, np.array([1.2, 1.2]))
    np.testing.assert_allclose(ha, hb, rtol=RTOL)


def test_acd_likelihoods_phi_and_filter_twins_agree() -> None:
    rng = np.random.default_rng(6)
    xt = rng.weibull(0.7, 400) + 1e-3
    for exact in (True, False):
        ga, gb = np.zeros(3), np.zeros(3)
        la = acd.acd_exp_loglik_grad_py(xt, 1.0, 0.05, 0.1, 0.85, ga, exact)
        lb = acd.acd_exp_loglik_grad_nb(xt, 1.0, 0.05, 0.1, 0.85, gb, exact)
        assert math.isclose(la, lb, rel_tol=RTOL)
        np.testing.assert_allclose(ga, gb, rtol=1e-12)
    ga, gb = np.zeros(4), np.zeros(4)
    args = (xt, np.log(xt), 1.0, 0.05, 0.1, 0.85, 0.7, math.lgamma(1 + 1 / 0.7), -0.3)
    la = acd.acd_weibull_loglik_grad_py(*args, ga)
    lb = acd.acd_weibull_loglik_grad_nb(*args, gb)
    assert math.isclose(la, lb, rel_tol=RTOL)
    np.testing.assert_allclose(ga, gb, rtol=1e-12)
    kx = np.array([100.0, 200.0, 300.0, 400.0])
    ky = np.array([1.0, 2.0, 1.5, 0.5])
    km, left, right = acd.natural_spline(kx, ky)
    t = np.linspace(0.0, 500.0, 101)
    pa, pb = np.empty_like(t), np.empty_like(t)
    acd.diurnal_phi_py(t, kx, ky, km, left, right, 0.01, pa)
    acd.diurnal_phi_nb(t, kx, ky, km, left, right, 0.01, pb)
    np.testing.assert_allclose(pa, pb, rtol=RTOL)
    stamps = np.cumsum(rng.integers(0, 3, 300)) * 10**8
    phi = 1.0 + rng.random(300)
    outs = []
    for f in (acd.acd_filter_py, acd.acd_filter_nb):
        st = acd.AcdFilterState.initial()
        c, s = np.empty(300), np.empty(300)
        f(stamps, phi, 0.05, 0.1, 0.85, 1.0, c, s, st.ints, st.floats)
        outs.append((c, s))
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=RTOL)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=RTOL)


@pytest.mark.parametrize("window", [2, 5, 30])
def test_intensity_twins_agree(window: int) -> None:
    rng = np.random.default_rng(7)
    stamps = np.sort(rng.integers(0, 390 * 60 * 10**9 + 1, 2000))
    outs = []
    for f in (intensity.intensity_counts_py, intensity.intensity_counts_nb):
        counts = np.zeros(390, dtype=np.int64)
        b = np.empty(2000, dtype=np.int64)
        f(stamps, 0, 60 * 10**9, counts, b)
        outs.append((counts, b))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    za, zb = np.empty(390), np.empty(390)
    intensity.intensity_zscores_py(outs[0][0], window, za)
    intensity.intensity_zscores_nb(outs[0][0], window, zb)
    np.testing.assert_allclose(za, zb, rtol=RTOL)
