"""Input checks shared by the public wrappers: coerce, validate, name the offending row."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from udx.kernels._typing import Float64Array, Int64Array


class KernelInputError(ValueError):
    """Input arrays violate the kernels' contract; the message names the row and the value."""


def as_float64(values: npt.ArrayLike, name: str) -> Float64Array:
    """Return ``values`` as a contiguous 1-d float64 array (copy only when needed)."""
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise KernelInputError(f"{name} has shape {arr.shape} and must be 1-dimensional")
    return arr


def as_int64(values: npt.ArrayLike, name: str) -> Int64Array:
    """Return ``values`` as a contiguous 1-d int64 array; floats must be whole numbers."""
    raw = np.asarray(values)
    if raw.dtype.kind == "f":
        finite = np.isfinite(raw)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise KernelInputError(f"{name} at row {row} is {float(raw[row])!r} and must be finite")
        if (raw != np.round(raw)).any():
            row = int(np.flatnonzero(raw != np.round(raw))[0])
            raise KernelInputError(
                f"{name} at row {row} is {float(raw[row])!r} and must be an integer"
            )
    elif raw.dtype.kind not in "iub" and raw.size:
        raise KernelInputError(f"{name} has dtype {raw.dtype} and must be integer")
    arr = np.ascontiguousarray(raw, dtype=np.int64)
    if arr.ndim != 1:
        raise KernelInputError(f"{name} has shape {arr.shape} and must be 1-dimensional")
    return arr


def check_prices(price: Float64Array) -> None:
    """Raise on the first non-finite or non-positive price, naming its row."""
    bad = ~(np.isfinite(price) & (price > 0.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise KernelInputError(
            f"price at row {row} is {float(price[row])!r} and must be finite and > 0 "
            f"({int(bad.sum())} such rows)"
        )


def check_sizes(size: Int64Array) -> None:
    """Raise on the first negative size, naming its row."""
    bad = size < 0
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise KernelInputError(
            f"size at row {row} is {int(size[row])} and must be >= 0 ({int(bad.sum())} such rows)"
        )
