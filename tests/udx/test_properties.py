"""Invariants of the kernels under hypothesis (derandomized: same examples every run)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.udx.conftest import KERNEL_PROPERTIES, day_result
from udx.kernels import bns_rolling, bns_test, fit_garch, lee_mykland, log_returns

pytestmark = pytest.mark.property

# Tick-like returns: multiples of 1 bp with many zeros; NaN first (the day's first print).
tick_returns = st.lists(
    st.sampled_from([0, 0, 0, 1, -1, 2, -2, 3, -5, 8]), min_size=30, max_size=250
).map(lambda ks: np.concatenate(([np.nan], 1e-4 * np.array(ks[1:], dtype=float))))
scales = st.sampled_from([1e-3, 0.37, 3.0, 1e4]) | st.floats(0.01, 100.0)


@KERNEL_PROPERTIES
@given(r=tick_returns, c=scales, k=st.integers(3, 25))
def test_lee_mykland_is_scale_invariant_and_odd(r: np.ndarray, c: float, k: int) -> None:
    base, _ = lee_mykland(r, window=k)
    scaled, _ = lee_mykland(c * r, window=k)
    np.testing.assert_allclose(scaled, base, rtol=1e-12)
    flipped, _ = lee_mykland(-r, window=k)
    np.testing.assert_array_equal(flipped, -base)


@KERNEL_PROPERTIES
@given(r=tick_returns, c=scales, w=st.integers(4, 40))
def test_rolling_bns_is_scale_and_sign_invariant(r: np.ndarray, c: float, w: int) -> None:
    base, _ = bns_rolling(r, window=w)
    np.testing.assert_allclose(bns_rolling(c * r, window=w)[0], base, rtol=1e-10)
    np.testing.assert_array_equal(bns_rolling(-r, window=w)[0], base)


@KERNEL_PROPERTIES
@given(r=tick_returns, w=st.integers(4, 40))
def test_rolling_bns_equals_the_block_statistic_on_each_window(r: np.ndarray, w: int) -> None:
    z, _ = bns_rolling(r, window=w)
    for j in range(w, r.shape[0], max(1, w // 3)):
        expected = bns_test(r[j - w + 1 : j + 1]).z
        if math.isnan(expected):
            assert math.isnan(z[j])
        else:
            assert math.isclose(z[j], expected, rel_tol=1e-9)


@KERNEL_PROPERTIES
@given(r=tick_returns, k=st.integers(3, 25))
def test_lee_mykland_equals_the_definition_with_exact_window_sums(r: np.ndarray, k: int) -> None:
    L, _ = lee_mykland(r, window=k)
    ret = r[1:]
    for j in range(ret.shape[0]):
        if j < k - 1:
            assert math.isnan(L[j + 1])
            continue
        window = ret[j - k + 1 : j]
        s = float(np.sum(np.abs(window[1:]) * np.abs(window[:-1])))
        if s == 0.0:
            assert math.isnan(L[j + 1])
        else:
            assert math.isclose(L[j + 1], ret[j] / math.sqrt(s / (k - 2)), rel_tol=1e-12)


@KERNEL_PROPERTIES
@given(
    ticks=st.lists(st.integers(-3, 3), min_size=50, max_size=300),
    c=st.sampled_from([0.01, 0.5, 7.0, 1234.5]),
)
def test_lee_mykland_on_prices_is_invariant_to_the_price_unit(ticks: list[int], c: float) -> None:
    cents = 10_000 + np.cumsum(ticks)
    r1, _ = log_returns(cents * 0.01)
    r2, _ = log_returns(cents * 0.01 * c)
    np.testing.assert_allclose(r2, r1, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(
        lee_mykland(r2, window=10)[0], lee_mykland(r1, window=10)[0], rtol=1e-8
    )


def test_garch_fit_is_equivariant_to_powers_of_ten() -> None:
    y = day_result("2018-01-03").trades["log_return"][1:5001]
    base = fit_garch(y)
    for k in (1, 3):
        fit = fit_garch(y * 10.0**k)
        assert fit.scale == base.scale / 10.0**k
        assert math.isclose(fit.alpha, base.alpha, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(fit.beta, base.beta, rel_tol=1e-9)
        assert math.isclose(fit.omega, base.omega * 10.0 ** (2 * k), rel_tol=1e-8)
        expected_ll = base.loglik - y.shape[0] * k * math.log(10.0)
        assert math.isclose(fit.loglik, expected_ll, rel_tol=1e-9)
