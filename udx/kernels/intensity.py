"""Trade intensity: prints per 1-minute bucket and a trailing z-score (statistics.md 2.7)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from udx.kernels._checks import KernelInputError, as_int64
from udx.kernels._compat_numba import jit
from udx.kernels._typing import Float64Array, Int64Array

_NAN = math.nan


def intensity_counts_py(
    stamp_ns: Int64Array,
    open_ns: int,
    bucket_ns: int,
    counts: Int64Array,
    bucket_out: Int64Array,
) -> None:
    """Match ``intensity.csv`` ``count``: add each print to its bucket (counts updated in place).

    ``b = min(floor((t - open) / bucket), B - 1)``: a print at the close is in the last bucket.
    """
    last = counts.shape[0] - 1
    for i in range(stamp_ns.shape[0]):
        b = (stamp_ns[i] - open_ns) // bucket_ns
        if b > last:
            b = last
        counts[b] += 1
        bucket_out[i] = b


intensity_counts_nb = jit(intensity_counts_py)


def intensity_zscores_py(counts: Int64Array, window: int, out: Float64Array) -> None:
    """Match ``intensity.csv`` ``z``: ``(c_b - mean(c_{b-w..b-1})) / sd(c_{b-w..b-1}, ddof=1)``.

    Two-pass mean and deviations per bucket (w small): exact for integer counts up to
    rounding of the final division. NaN for ``b < w`` or ``sd = 0``.
    """
    for b in range(counts.shape[0]):
        if b < window:
            out[b] = _NAN
            continue
        total = 0.0
        for k in range(b - window, b):
            total += counts[k]
        mean = total / window
        ss = 0.0
        for k in range(b - window, b):
            d = counts[k] - mean
            ss += d * d
        if ss > 0.0:
            out[b] = (counts[b] - mean) / math.sqrt(ss / (window - 1))
        else:
            out[b] = _NAN


intensity_zscores_nb = jit(intensity_zscores_py)


@dataclass(frozen=True)
class IntensityState:
    """Resumable state of :func:`intensity_counts`: the bucket counts so far."""

    counts: Int64Array

    @classmethod
    def initial(cls, n_buckets: int) -> IntensityState:
        """State at the start of a day."""
        return cls(np.zeros(n_buckets, dtype=np.int64))


def intensity_counts(
    timestamp_ns: npt.ArrayLike,
    *,
    open_ns: int,
    close_ns: int,
    bucket_s: int = 60,
    state: IntensityState | None = None,
) -> tuple[Int64Array, IntensityState]:
    """Match ``intensity.csv`` ``count``: bucket of each print and running counts.

    Parameters
    ----------
    timestamp_ns
        Stamps of regular-hours prints, within ``[open_ns, close_ns]``.
    open_ns, close_ns
        Session bounds (UTC ns) of the day.
    bucket_s
        Bucket width in seconds.
    state
        State returned by the previous batch of the same day; ``None`` at the day's start.

    Returns
    -------
    bucket : ndarray
        Bucket index per print.
    state : IntensityState
        Counts so far (pass with the next batch; :func:`intensity_zscores` at the end).
    """
    ts = as_int64(timestamp_ns, "timestamp_ns")
    bucket_ns = bucket_s * 1_000_000_000
    n_buckets = -(-(close_ns - open_ns) // bucket_ns)
    outside = (ts < open_ns) | (ts > close_ns)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise KernelInputError(
            f"timestamp_ns at row {row} is {int(ts[row])}, outside the session "
            f"[{open_ns}, {close_ns}]"
        )
    counts = (state or IntensityState.initial(n_buckets)).counts.copy()
    if counts.shape[0] != n_buckets:
        raise ValueError(f"state has {counts.shape[0]} buckets, the session has {n_buckets}")
    bucket = np.empty(ts.shape[0], dtype=np.int64)
    intensity_counts_nb(ts, open_ns, bucket_ns, counts, bucket)
    return bucket, IntensityState(counts)


def intensity_zscores(counts: npt.ArrayLike, window: int = 30) -> Float64Array:
    r"""Match ``intensity.csv`` ``z``: trailing z-score of each bucket's count.

    .. math:: z_b = \frac{c_b - \bar c_{b-w..b-1}}{s_{b-w..b-1}}

    Parameters
    ----------
    counts
        Prints per bucket (all buckets of the day, empty ones included).
    window
        Trailing buckets ``w``, at least 2.

    Returns
    -------
    ndarray
        z per bucket (NaN for ``b < w`` or zero trailing sd).
    """
    if window < 2:
        raise ValueError(f"window is {window} and must be at least 2")
    c = as_int64(counts, "counts")
    out = np.empty(c.shape[0])
    intensity_zscores_nb(c, window, out)
    return out
