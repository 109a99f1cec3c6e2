"""The live core against the batch on the real sample days: every causal column, every print.

``symbol_day`` is the source of truth. Feeding the same prints one at a time through
:class:`SymbolDayState` must give the batch's columns wherever they are causal, to the
tolerances of statistics.md 7 (tighter where the code path is the same): a change of a
definition on either side fails here.
"""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest

from pipeline.live.state import (
    N_RULE_PRIOR,
    N_RULE_RUNNING,
    AcdPrior,
    GarchPrior,
    LiveColumns,
    LiveStats,
    Priors,
    SymbolDayState,
)
from tests.warehouse.factories import sample_frame
from udx.kernels import Params, SymbolDayResult, lm_threshold_constants, local_date, symbol_day

DAYS = ("2018-01-02", "2018-01-03")


@cache
def _day(date: str) -> tuple[SymbolDayResult, np.ndarray, np.ndarray]:
    frame = sample_frame()
    dates = np.array([local_date(int(t)) for t in frame["timestamp_ns"].to_numpy()])
    day = frame.loc[dates == date]
    ts = np.asarray(day["timestamp_ns"], dtype=np.int64)
    px = np.asarray(day["price"], dtype=np.float64)
    res = symbol_day(ts, px, np.asarray(day["size"], dtype=np.int64), date=date)
    return res, res.trades["timestamp_ns"], res.trades["price"]


def _live(date: str, priors: Priors) -> list[LiveStats]:
    res, ts, px = _day(date)
    state = SymbolDayState(res.open_ns, res.close_ns, Params(), priors)
    return [state.update(int(t), float(p)) for t, p in zip(ts.tolist(), px.tolist(), strict=True)]


def _col(stats: list[LiveStats], name: str) -> np.ndarray:
    return np.array([getattr(s, name) for s in stats], dtype=np.float64)


def _same(live: np.ndarray, batch: np.ndarray, rtol: float) -> None:
    np.testing.assert_array_equal(np.isnan(live), np.isnan(batch))
    ok = ~np.isnan(batch)
    np.testing.assert_allclose(live[ok], batch[ok], rtol=rtol, atol=0.0)


@cache
def _with_day_fits(date: str) -> list[LiveStats]:
    """Live run given the day's own n and fits: must reproduce the batch exactly."""
    res = _day(date)[0]
    assert res.garch is not None
    assert res.acd is not None
    priors = Priors(
        lm_n=res.metrics["n_returns"],
        garch=GarchPrior.from_fit(res.garch, source=f"batch {date}"),
        acd=AcdPrior.from_day(res.acd, source=f"batch {date}"),
    )
    return _live(date, priors)


@pytest.mark.parametrize("date", DAYS)
def test_returns_lee_mykland_and_rolling_bns_equal_the_batch_at_every_print(date: str) -> None:
    res = _day(date)[0]
    live = _with_day_fits(date)
    assert len(live) == res.metrics["n_trades"]
    for name in ("log_return", "lee_mykland_stat", "bns_stat"):
        # Same kernels, same state, same order: equal to the last bit, within 1e-12 stated.
        _same(_col(live, name), res.trades[name], rtol=1e-12)


@pytest.mark.parametrize("date", DAYS)
def test_xi_flag_and_signal_equal_the_batch_given_the_days_n(date: str) -> None:
    res = _day(date)[0]
    live = _with_day_fits(date)
    assert {s.lm_n for s in live} == {res.metrics["n_returns"]}
    assert {s.lm_n_rule for s in live} == {N_RULE_PRIOR}
    _same(_col(live, "lm_xi"), res.trades["lm_xi"], rtol=1e-9)
    assert [s.jump_detected for s in live] == res.trades["jump_detected"].tolist()
    assert [s.trading_signal for s in live] == res.trades["trading_signal"].tolist()
    assert sum(s.trading_signal != "HOLD" for s in live) == res.metrics["lm_jump_count"] > 100


@pytest.mark.parametrize("date", DAYS)
def test_garch_and_acd_filters_equal_the_batch_given_the_days_fits(date: str) -> None:
    res = _day(date)[0]
    live = _with_day_fits(date)
    # statistics.md 7: h_t at given parameters and backcast rel 1e-10; ACD at given
    # parameters rel 1e-9.
    _same(_col(live, "garch_sigma2"), res.trades["garch_sigma2"], rtol=1e-10)
    _same(_col(live, "standardized_return"), res.trades["standardized_return"], rtol=1e-10)
    _same(_col(live, "conditional_duration"), res.trades["conditional_duration"], rtol=1e-9)
    _same(_col(live, "acd_surprise"), res.trades["acd_surprise"], rtol=1e-9)


@pytest.mark.parametrize("date", DAYS)
def test_intensity_z_equals_the_batch_at_each_buckets_last_print(date: str) -> None:
    res, ts, _ = _day(date)
    live = _with_day_fits(date)
    z_live = _col(live, "trade_intensity_zscore")
    bucket = np.minimum((ts - res.open_ns) // (60 * 10**9), 389)
    last = np.flatnonzero(np.r_[bucket[1:] != bucket[:-1], True])
    assert len(last) > 300
    _same(z_live[last], res.trades["trade_intensity_zscore"][last], rtol=1e-12)
    # Before a bucket's last print, the count so far against the same trailing window.
    counts = res.intensity["count"]
    for i in np.flatnonzero(bucket >= 30)[::97]:
        b = int(bucket[i])
        so_far = int(np.sum(bucket[: i + 1] == b))
        window = counts[b - 30 : b].astype(np.float64)
        sd = float(np.std(window, ddof=1))
        expected = (so_far - window.mean()) / sd if sd > 0 else math.nan
        assert z_live[i] == pytest.approx(expected, rel=1e-12, nan_ok=True)


def test_without_a_prior_n_the_running_count_is_used_and_stored() -> None:
    res = _day(DAYS[0])[0]
    live = _live(DAYS[0], Priors())
    assert [s.lm_n for s in live[:3]] == [0, 1, 2]
    assert {s.lm_n_rule for s in live} == {N_RULE_RUNNING}
    for s in live[270::501]:
        c_n, s_n = lm_threshold_constants(s.lm_n)
        assert s.lm_n == s.seq
        assert s.lm_xi == pytest.approx((abs(s.lee_mykland_stat) - c_n) / s_n, rel=1e-12)
    # The statistic itself does not depend on n, nor do the GARCH/ACD columns exist.
    _same(_col(live, "lee_mykland_stat"), res.trades["lee_mykland_stat"], rtol=1e-12)
    assert all(math.isnan(s.garch_sigma2) and math.isnan(s.acd_surprise) for s in live)


def test_a_late_print_is_flagged_and_kept_out_of_the_acd_spell() -> None:
    res = _day(DAYS[0])[0]
    state = SymbolDayState(res.open_ns, res.close_ns, Params(), Priors())
    first = state.update(res.open_ns + 10**9, 10.0)
    late = state.update(res.open_ns, 10.5)
    assert (first.in_order, late.in_order) == (True, False)
    assert late.log_return == pytest.approx(math.log(10.5 / 10.0))


def _rows(cols: LiveColumns) -> list[LiveStats]:
    return [cols.row(i) for i in range(len(cols))]


def _identical(a: list[LiveStats], b: list[LiveStats]) -> None:
    """Field by field, NaN equal to NaN, floats to the bit."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for name in LiveStats.__slots__:
            u, v = getattr(x, name), getattr(y, name)
            if isinstance(u, float) and math.isnan(u):
                assert isinstance(v, float), (x.seq, name)
                assert math.isnan(v), (x.seq, name)
            else:
                assert u == v, (x.seq, name, u, v)


@pytest.mark.parametrize("date", DAYS)
@pytest.mark.parametrize("with_fits", [True, False])
def test_runs_of_prints_give_what_one_print_at_a_time_gives_at_every_print(
    date: str, with_fits: bool
) -> None:
    res, ts, px = _day(date)
    if with_fits:
        assert res.garch is not None
        assert res.acd is not None
        priors = Priors(
            lm_n=res.metrics["n_returns"],
            garch=GarchPrior.from_fit(res.garch, source="batch"),
            acd=AcdPrior.from_day(res.acd, source="batch"),
        )
    else:
        priors = Priors()
    one_by_one = _with_day_fits(date) if with_fits else _live(date, priors)
    rng = np.random.default_rng(17)
    cuts = np.unique(np.r_[0, rng.integers(0, len(ts), 300), len(ts)])
    state = SymbolDayState(res.open_ns, res.close_ns, Params(), priors)
    runs: list[LiveStats] = []
    for lo, hi in itertools.pairwise(cuts):
        runs += _rows(state.update_many(ts[lo:hi], px[lo:hi]))
    assert state.update_many(ts[:0], px[:0]).seq.shape == (0,)  # an empty run changes nothing
    _identical(runs, one_by_one)
    # And so equal to the batch print by print, as above.
    for name in ("log_return", "lee_mykland_stat", "bns_stat"):
        _same(_col(runs, name), res.trades[name], rtol=1e-12)
    if with_fits:
        _same(_col(runs, "lm_xi"), res.trades["lm_xi"], rtol=1e-9)
        _same(_col(runs, "garch_sigma2"), res.trades["garch_sigma2"], rtol=1e-10)
        _same(_col(runs, "acd_surprise"), res.trades["acd_surprise"], rtol=1e-9)
        assert [s.trading_signal for s in runs] == res.trades["trading_signal"].tolist()


def test_late_prints_inside_a_run_are_flagged_and_kept_out_of_the_acd_spell() -> None:
    res = _day(DAYS[0])[0]
    assert res.acd is not None
    assert res.garch is not None
    priors = Priors(
        acd=AcdPrior.from_day(res.acd, "batch"), garch=GarchPrior.from_fit(res.garch, "batch")
    )
    s = 10**9
    ts = np.array([5, 3, 6, 6, 4, 9], dtype=np.int64) * s + res.open_ns
    px = np.array([10.0, 10.5, 10.2, 10.1, 10.0, 10.3])
    one = SymbolDayState(res.open_ns, res.close_ns, Params(), priors)
    expected = [one.update(int(t), float(p)) for t, p in zip(ts, px, strict=True)]
    assert [x.in_order for x in expected] == [True, False, True, True, False, True]
    assert all(math.isnan(x.acd_surprise) for x in expected if not x.in_order)
    for split in (1, 2, 4, 6):
        state = SymbolDayState(res.open_ns, res.close_ns, Params(), priors)
        got: list[LiveStats] = []
        for lo in range(0, len(ts), split):
            got += _rows(state.update_many(ts[lo : lo + split], px[lo : lo + split]))
        _identical(got, expected)
