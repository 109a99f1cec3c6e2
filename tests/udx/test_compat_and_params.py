"""The numba switch and the parameter record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from udx.kernels import KERNEL_VERSION, NUMBA_ENABLED, Params

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import json, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import udx.kernels as k
    from udx.kernels import symbol_day, session_bounds
open_ns, _ = session_bounds("2018-01-03")
rng = np.random.default_rng(0)
ts = open_ns + np.cumsum(rng.integers(1, 400, 3000)) * 7_000_000
px = 100 * np.exp(np.cumsum(1e-4 * rng.integers(-2, 3, 3000)))
res = symbol_day(ts, px, np.full(3000, 100))
print(json.dumps({
    "enabled": k.NUMBA_ENABLED,
    "warnings": [str(w.category.__name__) for w in caught],
    "L": res.trades["lee_mykland_stat"].tolist(),
    "bns": res.trades["bns_stat"].tolist(),
    "h": res.trades["garch_sigma2"].tolist(),
    "garch_ll": res.metrics["garch_loglik"],
    "acd_ll": res.metrics["acd_exp_loglik"],
    "weibull_ll": res.metrics["acd_weibull_loglik"],
}))
"""


def _run(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MICRO_DISABLE_NUMBA", "MICRO_QUIET")}
    env.update(env_extra)
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        check=True, timeout=240,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not NUMBA_ENABLED, reason="compares compiled with pure Python")
def test_disabling_numba_warns_once_and_gives_the_same_numbers() -> None:
    off = _run({"MICRO_DISABLE_NUMBA": "1"})
    on = _run({})
    assert off["enabled"] is False
    assert on["enabled"] is True
    assert off["warnings"].count("PerformanceWarning") == 1
    assert "PerformanceWarning" not in on["warnings"]
    for key in ("L", "bns", "h"):  # NaN survives as NaN through json
        np.testing.assert_allclose(off[key], on[key], rtol=1e-12, err_msg=key)
        assert np.isfinite(on[key]).sum() > 1000, key
    for key in ("garch_ll", "acd_ll", "weibull_ll"):
        assert off[key] == pytest.approx(on[key], rel=1e-12), key


def test_params_record_every_default_and_round_trip() -> None:
    p = Params()
    d = p.to_dict()
    assert d["lm_window"] == 270
    assert d["alpha"] == 0.01
    assert d["bns_window"] == 500
    assert (d["bns_grid_s"], d["diurnal_bin_s"], d["intensity_bucket_s"]) == (300, 1800, 60)
    assert (d["intensity_window"], d["tz"]) == (30, "America/New_York")
    assert (d["session_open"], d["session_close"], d["signal_rule"]) == (
        "09:30:00",
        "16:00:00",
        "v1",
    )
    assert Params.from_dict(json.loads(json.dumps(d))) == p
    assert p.n_buckets == 390
    assert (p.open_s, p.close_s) == (34_200, 57_600)
    assert KERNEL_VERSION


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lm_window": 2}, "lm_window is 2 and must be an integer of at least 3"),
        ({"bns_window": 3}, "bns_window is 3"),
        ({"alpha": 1.5}, "alpha is 1.5"),
        ({"session_open": "9:30"}, "time of day is '9:30'"),
        ({"session_close": "09:00:00"}, "session_close is 09:00:00 and must be after"),
        ({"signal_rule": "v2"}, "only 'v1' exists"),
        ({"acd_phi_floor": 1.0}, "acd_phi_floor is 1.0"),
    ],
)
def test_invalid_params_are_refused_with_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Params(**kwargs)
    with pytest.raises(ValueError, match="unknown parameters"):
        Params.from_dict({"K": 3})
