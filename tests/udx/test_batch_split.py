"""Resumable filters: any split of a day into batches gives exactly the whole-day output."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.udx.conftest import day_result
from udx.kernels import (
    acd_expected,
    bns_rolling,
    diurnal_phi,
    garch_variance,
    intensity_counts,
    lee_mykland,
    log_returns,
    session_bounds,
)
from udx.kernels.acd import tod_seconds

DAY = "2018-01-03"


def _random_splits(n: int, seed: int, parts: int) -> list[slice]:
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, n), size=parts - 1, replace=False))
    # Include empty and one-element batches among the random ones.
    edges = np.concatenate(([0], cuts, [cuts[-1]], [n]))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_per_trade_filter_is_split_invariant(seed: int) -> None:
    res = day_result(DAY)
    t = res.trades
    ts, px = t["timestamp_ns"], t["price"]
    n = ts.shape[0]
    splits = _random_splits(n, seed, parts=[7, 40, 300][seed])
    open_ns, close_ns = session_bounds(DAY)
    acd = res.acd
    assert acd is not None
    assert acd.diurnal is not None
    assert res.garch is not None
    phi = diurnal_phi(acd.diurnal, tod_seconds(ts, open_ns, 34_200))

    r_state = lm_state = bns_state = g_state = a_state = i_state = None
    pieces: dict[str, list[np.ndarray]] = {
        k: [] for k in ["r", "lm", "bns", "h", "cond", "surp", "bucket"]
    }
    for sl in splits:
        r, r_state = log_returns(px[sl], r_state)
        lm, lm_state = lee_mykland(r, lm_state)
        z, bns_state = bns_rolling(r, bns_state)
        h, g_state = garch_variance(r, res.garch, g_state)
        cond, surp, a_state = acd_expected(ts[sl], phi[sl], acd.exp, a_state)
        bucket, i_state = intensity_counts(
            ts[sl], open_ns=open_ns, close_ns=close_ns, state=i_state
        )
        for key, value in zip(pieces, (r, lm, z, h, cond, surp, bucket), strict=True):
            pieces[key].append(value)
    joined = {k: np.concatenate(v) for k, v in pieces.items()}
    # Bit-identical, not merely close.
    np.testing.assert_array_equal(joined["r"], t["log_return"])
    np.testing.assert_array_equal(joined["lm"], t["lee_mykland_stat"])
    np.testing.assert_array_equal(joined["bns"], t["bns_stat"])
    np.testing.assert_array_equal(joined["h"], t["garch_sigma2"])
    np.testing.assert_array_equal(joined["cond"], t["conditional_duration"])
    np.testing.assert_array_equal(joined["surp"], t["acd_surprise"])
    assert i_state is not None
    np.testing.assert_array_equal(i_state.counts, res.intensity["count"])


def test_passing_a_state_does_not_mutate_it() -> None:
    r = day_result(DAY).trades["log_return"][:1000]
    _, st = lee_mykland(r[:600])
    before = [a.copy() for a in (st.counts, st.vals, st.blk, st.suf)]
    lee_mykland(r[600:], st)
    lee_mykland(r[600:], st)
    for a, b in zip(before, (st.counts, st.vals, st.blk, st.suf), strict=True):
        np.testing.assert_array_equal(a, b)
