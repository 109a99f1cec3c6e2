"""Served numbers: one rounding, whether a value is formatted alone or in a column."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.serving.format import sig6, sig6_scalar


@pytest.mark.property
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=50))
def test_a_value_rounds_the_same_alone_and_in_a_column(values: list[float]) -> None:
    column = sig6(np.array(values, dtype=np.float64)).tolist()
    for x, c in zip(values, column, strict=True):
        s = sig6_scalar(x)
        assert (s is None and math.isnan(c)) or s == c or (s != s and c != c)


@pytest.mark.parametrize(
    ("x", "shown"),
    [
        (0.1234565, 0.123456),  # half to even on the double actually stored
        (123456.5, 123456.0),
        (999999.5, 1000000.0),
        (1000.0, 1000.0),
        (1e-5, 1e-5),
        (-2.5e-8, -2.5e-8),
        (3.141592653589793, 3.14159),
        (0.0, 0.0),
    ],
)
def test_six_significant_digits(x: float, shown: float) -> None:
    assert sig6_scalar(x) == shown
    assert sig6(np.array([x]))[0] == shown


def test_nan_and_infinities_are_null() -> None:
    assert sig6_scalar(float("nan")) is None
    assert sig6_scalar(float("inf")) is None
    assert sig6_scalar(None) is None
    assert np.isnan(sig6([float("-inf"), None])).all()
