"""Tick log returns within one symbol-day (statistics.md 2.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from udx.kernels._checks import as_float64, check_prices
from udx.kernels._compat_numba import jit
from udx.kernels._typing import Float64Array


def log_returns_py(price: Float64Array, out: Float64Array, state: Float64Array) -> None:
    """Match the reference ``r`` column of ``trades_lm.csv.gz``: ``ln p_i - ln p_{i-1}``.

    ``state[0]`` holds the log of the previous print's price (NaN before the first print of
    the day, which therefore gets a NaN return); it is updated in place.
    """
    prev = state[0]
    for i in range(price.shape[0]):
        lp = math.log(price[i])
        out[i] = lp - prev  # NaN on the day's first print: prev is NaN
        prev = lp
    state[0] = prev


log_returns_nb = jit(log_returns_py)


@dataclass(frozen=True)
class ReturnsState:
    """Resumable state of :func:`log_returns`: log of the last price seen (NaN: none yet)."""

    last_log_price: float = math.nan


def log_returns(
    price: npt.ArrayLike, state: ReturnsState | None = None
) -> tuple[Float64Array, ReturnsState]:
    r"""Match the reference ``r`` (``log_return``): tick log returns within the partition.

    .. math:: r_i = \ln p_i - \ln p_{i-1}, \qquad r_0 = \text{null}

    Parameters
    ----------
    price
        Prices of consecutive prints of one symbol-day, finite and > 0.
    state
        State returned by the previous batch of the same day; ``None`` at the day's start.

    Returns
    -------
    returns : ndarray
        One value per print; NaN on the first print of the day.
    state : ReturnsState
        State to pass with the next batch.
    """
    p = as_float64(price, "price")
    check_prices(p)
    st = np.array([(state or ReturnsState()).last_log_price], dtype=np.float64)
    out = np.empty_like(p)
    log_returns_nb(p, out, st)
    return out, ReturnsState(float(st[0]))
