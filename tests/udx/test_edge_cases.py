"""Defined answers for bad, small and odd inputs: errors naming the row, nulls with notes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import udx.kernels.acd as acd_module
import udx.kernels.garch as garch_module
from tests.udx.conftest import day_arrays, day_result
from udx.kernels import (
    KernelInputError,
    Params,
    bns_rolling,
    bns_test,
    fit_acd,
    fit_garch,
    gumbel_beta_star,
    intensity_counts,
    intensity_zscores,
    lee_mykland,
    lm_threshold_constants,
    lm_xi,
    local_date,
    log_returns,
    session_bounds,
    symbol_day,
)
from udx.kernels.config import MU1, MU43, THETA

DAY = "2018-01-03"
OPEN_NS, CLOSE_NS = session_bounds(DAY)


def _day(n: int, *, seed: int = 0, constant: bool = False, step_ms: int = 500) -> tuple:
    rng = np.random.default_rng(seed)
    ts = OPEN_NS + np.cumsum(rng.integers(1, 2 * step_ms, n)) * 1_000_000
    ts = np.minimum(ts, CLOSE_NS)
    px = np.full(n, 100.0) if constant else 100 + 0.01 * np.cumsum(rng.integers(-1, 2, n))
    sz = np.full(n, 100)
    return ts, px, sz


def test_constants_equal_the_specification() -> None:
    assert pytest.approx(0.7978845608028654, rel=1e-15) == MU1
    assert pytest.approx(0.8308609250295592, rel=1e-15) == MU43
    assert pytest.approx(0.6089937538621326, rel=1e-15) == THETA
    assert gumbel_beta_star(0.01) == pytest.approx(4.600149226776579, rel=1e-15)
    assert gumbel_beta_star(0.05) == pytest.approx(2.970195249042164, rel=1e-15)
    c_n, s_n = lm_threshold_constants(39194)
    assert (c_n, s_n) == (
        pytest.approx(5.286887376, rel=1e-9),
        pytest.approx(0.2725075205, rel=1e-9),
    )
    assert c_n + s_n * gumbel_beta_star(0.01) == pytest.approx(6.540462636, rel=1e-9)
    c78, s78 = lm_threshold_constants(78)
    assert MU1 * (c78 + s78 * gumbel_beta_star(0.01)) == pytest.approx(4.067057611, rel=1e-9)
    with pytest.raises(ValueError, match="n is 2"):
        lm_threshold_constants(2)
    with pytest.raises(ValueError, match="alpha is 1"):
        gumbel_beta_star(1.0)


@pytest.mark.parametrize("where", [0, 5, -1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0, -1.0])
def test_a_bad_price_first_middle_or_last_raises_naming_the_row(where: int, bad: float) -> None:
    ts, px, sz = _day(20)
    px = px.copy()
    px[where] = bad
    row = where % 20
    with pytest.raises(KernelInputError, match=rf"price at row {row} is .* must be finite and > 0"):
        symbol_day(ts, px, sz)
    with pytest.raises(KernelInputError, match=f"row {row}"):
        log_returns(px)


def test_a_negative_size_raises_naming_the_row() -> None:
    ts, px, sz = _day(20)
    sz = sz.copy()
    sz[7] = -5
    with pytest.raises(KernelInputError, match="size at row 7 is -5 and must be >= 0"):
        symbol_day(ts, px, sz)


def test_malformed_arrays_raise_clear_errors() -> None:
    ts, px, sz = _day(20)
    with pytest.raises(KernelInputError, match="same length"):
        symbol_day(ts, px[:-1], sz)
    with pytest.raises(KernelInputError, match="1-dimensional"):
        symbol_day(ts.reshape(4, 5), px, sz)
    with pytest.raises(
        KernelInputError, match=r"timestamp_ns at row 3 is 1\.5 and must be an integer"
    ):
        symbol_day(np.array([1.0, 2.0, 3.0, 1.5]), px[:4], sz[:4])
    with pytest.raises(KernelInputError, match="must be finite"):
        symbol_day(np.array([1.0, np.nan]), px[:2], sz[:2])
    with pytest.raises(KernelInputError, match="dtype"):
        symbol_day(np.array(["a", "b"]), px[:2], sz[:2])


def test_stamps_on_two_local_dates_need_an_explicit_date() -> None:
    ts, px, sz = _day(20)
    ts = ts.copy()
    ts[-1] += 86_400 * 10**9
    with pytest.raises(KernelInputError, match="on 2018-01-04 but other rows are on 2018-01-03"):
        symbol_day(ts, px, sz)
    res = symbol_day(ts, px, sz, date=DAY)
    assert res.metrics["n_trades"] == 19  # the next day's print is outside this session


def test_empty_input_gives_an_empty_result_with_a_reason() -> None:
    res = symbol_day(np.array([], dtype=np.int64), np.array([]), np.array([], dtype=np.int64))
    assert res.date is None
    assert res.metrics["notes"] == "no prints"
    assert res.metrics["n_trades"] == 0
    res = symbol_day([], [], [], date=DAY)
    assert res.metrics["n_trades"] == 0
    assert res.metrics["n_returns"] == 0
    assert res.metrics["notes"] == "no regular-hours prints"
    assert res.intensity["count"].sum() == 0
    assert res.intensity["count"].shape == (390,)
    assert np.isnan(res.intensity["z"]).all()
    assert all(v.shape == (0,) for v in res.trades.values())
    assert res.metrics["bns_z"] is None
    assert res.metrics["bns_jump"] is False
    assert res.metrics["garch_alpha"] is None
    assert res.metrics["acd_exp_alpha"] is None


def test_one_print_gives_nulls_and_reasons() -> None:
    res = symbol_day([OPEN_NS + 5], [10.0], [3])
    t, m = res.trades, res.metrics
    assert np.isnan(t["log_return"]).all()
    assert not t["jump_detected"].any()
    assert m["n_trades"] == 1
    assert m["n_returns"] == 0
    assert m["vwap"] == 10.0
    assert m["bns_m"] == 78
    assert m["bns_rv"] == 0.0
    assert m["bns_z"] is None
    assert m["bns_rj"] is None
    notes = m["notes"]
    assert "daily BNS: RV = 0" in notes
    assert "GARCH: 0 returns < 100" in notes
    assert "ACD: 0 durations < 50" in notes
    assert t["trading_signal"].tolist() == ["HOLD"]


def test_constant_prices_give_zero_sigma_null_statistics_and_no_jump() -> None:
    ts, px, sz = _day(1500, constant=True)
    res = symbol_day(ts, px, sz)
    t, m = res.trades, res.metrics
    np.testing.assert_array_equal(t["log_return"][1:], 0.0)
    assert np.isnan(t["lee_mykland_stat"]).all()
    assert np.isnan(t["lm_xi"]).all()
    assert not t["jump_detected"].any()
    assert m["lm_jump_count"] == 0
    assert np.isnan(t["bns_stat"]).all()
    assert m["bns_z"] is None
    assert m["garch_alpha"] is None
    assert np.isnan(t["garch_sigma2"]).all()
    assert np.isnan(t["standardized_return"]).all()
    assert "constant prices" in m["notes"]
    assert "sigma = 0" in m["notes"]
    assert m["acd_exp_alpha"] is not None  # durations still exist


def test_too_few_trades_null_each_statistic_with_its_reason() -> None:
    ts, px, sz = _day(80, step_ms=280_000)  # spread over the session
    res = symbol_day(ts, px, sz)
    notes = res.metrics["notes"]
    assert "Lee-Mykland: 79 returns < K=270" in notes
    assert "rolling BNS: 79 returns < W=500" in notes
    assert "GARCH: 79 returns < 100" in notes
    assert np.isnan(res.trades["lee_mykland_stat"]).all()
    assert np.isnan(res.trades["bns_stat"]).all()
    assert res.metrics["acd_exp_alpha"] is not None  # 79 durations >= 50
    assert res.metrics["bns_z"] is not None


def test_unsorted_input_is_sorted_stably_with_a_note() -> None:
    ts, px, sz = day_arrays(DAY)
    rng = np.random.default_rng(3)
    perm = rng.permutation(ts.shape[0])
    # Equal stamps must keep input order: permute, then restore order within each stamp.
    perm = perm[np.lexsort((perm, ts[perm]))]
    shuffled = rng.permutation(perm)
    res = symbol_day(ts[shuffled], px[shuffled], sz[shuffled])
    assert "sorted stably" in res.metrics["notes"]
    whole = day_result(DAY)
    # Same prints after sorting: the stable order of the shuffled input may differ only
    # within equal stamps, so compare stamps exactly and the multiset of prices per stamp.
    np.testing.assert_array_equal(res.trades["timestamp_ns"], whole.trades["timestamp_ns"])
    np.testing.assert_array_equal(ts[shuffled][res.index], res.trades["timestamp_ns"])
    assert res.metrics["n_trades"] == whole.metrics["n_trades"]
    assert res.intensity["count"].tolist() == whole.intensity["count"].tolist()


def test_sorted_input_with_equal_stamps_keeps_arrival_order() -> None:
    ts = np.array([OPEN_NS + 10, OPEN_NS + 5, OPEN_NS + 10, OPEN_NS + 5])
    px = np.array([1.0, 2.0, 3.0, 4.0])
    res = symbol_day(ts, px, [1, 1, 1, 1])
    assert res.trades["price"].tolist() == [2.0, 4.0, 1.0, 3.0]
    assert res.index.tolist() == [1, 3, 0, 2]


def test_regular_hours_are_inclusive_at_ns_resolution_and_the_close_is_in_the_last_bucket() -> None:
    ts = np.array([OPEN_NS - 1, OPEN_NS, OPEN_NS + 60 * 10**9, CLOSE_NS, CLOSE_NS + 1])
    res = symbol_day(ts, np.full(5, 10.0), np.ones(5, dtype=np.int64))
    assert res.trades["timestamp_ns"].tolist() == [OPEN_NS, OPEN_NS + 60 * 10**9, CLOSE_NS]
    assert res.index.tolist() == [1, 2, 3]
    counts = res.intensity["count"]
    assert (counts[0], counts[1], counts[389]) == (1, 1, 1)
    b, _ = intensity_counts([CLOSE_NS], open_ns=OPEN_NS, close_ns=CLOSE_NS)
    assert b.tolist() == [389]
    with pytest.raises(KernelInputError, match="outside the session"):
        intensity_counts([CLOSE_NS + 1], open_ns=OPEN_NS, close_ns=CLOSE_NS)


@pytest.mark.parametrize(
    ("date", "open_utc_hour"),
    [("2024-03-08", 14), ("2024-03-11", 13), ("2024-11-01", 13), ("2024-11-04", 14)],
)
def test_the_session_follows_new_york_daylight_saving(date: str, open_utc_hour: int) -> None:
    open_ns, close_ns = session_bounds(date)
    assert (open_ns // 10**9) % 86_400 == open_utc_hour * 3600 + 1800
    assert close_ns - open_ns == 23_400 * 10**9
    assert local_date(open_ns) == local_date(close_ns) == date


def test_zero_total_size_gives_a_null_vwap_with_a_note() -> None:
    ts, px, _ = _day(30)
    res = symbol_day(ts, px, np.zeros(30, dtype=np.int64))
    assert res.metrics["vwap"] is None
    assert "vwap: total size 0" in res.metrics["notes"]


def test_bns_edge_cases_follow_the_specification() -> None:
    short = bns_test([0.1, 0.2, 0.3])
    assert short.m == 3
    assert math.isnan(short.rv)
    assert math.isnan(short.z)
    assert not short.jump
    flat = bns_test(np.zeros(10))
    assert flat.rv == 0.0
    assert math.isnan(flat.rj)
    assert math.isnan(flat.z)
    assert not flat.jump
    alternating = bns_test(np.array([1e-3, 0.0] * 10))
    assert alternating.bv == 0.0
    assert alternating.rj == 1.0
    assert math.isnan(alternating.p_value)
    with pytest.raises(ValueError, match="window is 3 and must be at least 4"):
        bns_rolling([np.nan, 0.1], window=3)
    with pytest.raises(ValueError, match="window is 2 and must be at least 3"):
        lee_mykland([np.nan, 0.1], window=2)


def test_xi_is_null_without_enough_returns() -> None:
    assert np.isnan(lm_xi(np.array([1.0, 2.0]), 2)).all()


def test_a_garch_fit_that_does_not_converge_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    y = day_result(DAY).trades["log_return"][1:3000]
    monkeypatch.setattr(garch_module, "GARCH_SLSQP_MAXITER", 1)
    fit = fit_garch(y)
    assert fit.converged is False
    assert fit.status == 9
    assert fit.reason is not None
    assert "did not converge" in fit.reason
    assert math.isfinite(fit.loglik)  # the constrained point is still reported


def test_an_acd_fit_that_does_not_converge_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    xt = day_result(DAY).acd.adjusted[:2000]  # type: ignore[union-attr]
    monkeypatch.setattr(acd_module, "ACD_SLSQP_MAXITER", 1)
    fit = fit_acd(xt, "weibull")
    assert fit.converged is False
    assert fit.reason is not None
    assert "did not converge" in fit.reason


def test_boundary_fits_are_flagged_in_metrics_and_notes() -> None:
    ts, px, sz = day_arrays(DAY)
    res = symbol_day(ts, px, sz, Params(acd_boundary_tol=0.5, garch_boundary_tol=0.5))
    m = res.metrics
    assert m["acd_exp_at_boundary"] is True
    assert m["acd_weibull_at_boundary"] is True
    assert "ACD exp: alpha + beta" in m["notes"]
    assert "not to be used" in m["notes"]
    assert "GARCH: alpha + beta" in m["notes"]
    # The exponential fit still drives the per-trade columns.
    assert np.isfinite(res.trades["conditional_duration"][-1])


def test_too_few_durations_give_no_acd_fit() -> None:
    fit = fit_acd(np.ones(10), "exp")
    assert not fit.fitted
    assert fit.reason == "ACD exp: 10 durations < 50"
    assert math.isnan(fit.uncond_mean)
    assert fit.second_moment_exists is None
    bad = fit_acd(np.r_[np.ones(60), 0.0], "exp")
    assert not bad.fitted
    assert "non-positive" in (bad.reason or "")
    with pytest.raises(ValueError, match="dist is 'gamma'"):
        fit_acd(np.ones(60), "gamma")


def test_garch_needs_finite_varying_returns() -> None:
    assert fit_garch(np.zeros(500)).reason == "GARCH: constant prices, var(returns) = 0"
    assert fit_garch(np.r_[np.ones(200), np.nan]).reason == "GARCH: non-finite returns"


def test_intensity_z_needs_a_window_of_two() -> None:
    with pytest.raises(ValueError, match="window is 1"):
        intensity_zscores(np.ones(40, dtype=np.int64), 1)
    z = intensity_zscores(np.r_[np.ones(30, dtype=np.int64), [5]], 30)
    assert np.isnan(z).all()  # sd = 0
