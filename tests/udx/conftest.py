"""Fixtures of the kernel tests: the shipped XXX sample, its reference outputs, hypothesis."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

from udx.kernels import SymbolDayResult, symbol_day

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
REFERENCE = ROOT / "tests" / "data" / "reference" / "xxx"
DAYS = ("2018-01-02", "2018-01-03")

# Property tests are derandomized: the same examples on every run and machine.
KERNEL_PROPERTIES = settings(
    derandomize=True,
    deadline=None,
    max_examples=40,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@cache
def sample_trades() -> pd.DataFrame:
    """The shipped sample with a local-date column."""
    df = pd.read_csv(SAMPLE)
    local = pd.to_datetime(df["timestamp_ns"], unit="ns", utc=True).dt.tz_convert(
        "America/New_York"
    )
    df["date"] = local.dt.strftime("%Y-%m-%d")
    return df


@cache
def day_arrays(day: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every row of the sample on local ``day`` (regular hours or not): stamps, prices, sizes."""
    df = sample_trades()
    d = df[df["date"] == day]
    return (
        d["timestamp_ns"].to_numpy(),
        d["price"].to_numpy(),
        d["size"].to_numpy(),
    )


@cache
def day_result(day: str) -> SymbolDayResult:
    """``symbol_day`` of the sample's ``day`` (computed once per session)."""
    ts, px, sz = day_arrays(day)
    return symbol_day(ts, px, sz)


def ref_csv(day: str, name: str, **kwargs: Any) -> pd.DataFrame:
    """A reference CSV of ``day``."""
    return pd.read_csv(REFERENCE / day / name, **kwargs)


def ref_json(day: str, name: str) -> dict[str, Any]:
    """A reference JSON of ``day`` (the XXX entry)."""
    data = json.loads((REFERENCE / day / name).read_text())
    return data.get("XXX", data)


@pytest.fixture(params=DAYS)
def day(request: pytest.FixtureRequest) -> str:
    """Each reference day."""
    return str(request.param)


def assert_rel(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float = 0.0) -> float:
    """Assert equal null patterns and ``|a - e| <= rtol |e| + atol``; return the max rel diff."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(actual[ok], expected[ok], rtol=rtol, atol=atol)
    denom = np.maximum(np.abs(expected[ok]), 1e-300)
    return float(np.max(np.abs(actual[ok] - expected[ok]) / denom, initial=0.0))
