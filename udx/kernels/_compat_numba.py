"""The numba shim: ``jit`` compiles with numba when it is importable and enabled.

Set ``MICRO_DISABLE_NUMBA=1`` (or run where numba is absent, e.g. a bare Vertica UDx bundle)
and ``jit`` returns the plain-Python function unchanged; one ``PerformanceWarning`` says so
(silenced by ``MICRO_QUIET=1``). Modelled on ``arch.compat.numba``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from udx.kernels.config import JIT_OPTIONS

F = TypeVar("F", bound=Callable[..., Any])


class PerformanceWarning(UserWarning):
    """The kernels run as plain Python (numba absent or disabled): correct but slow."""


def _load_numba() -> Any | None:
    if os.environ.get("MICRO_DISABLE_NUMBA", "").strip() == "1":
        return None
    try:
        import numba  # optional dependency, imported once here
    except ImportError:
        return None
    return numba


_numba = _load_numba()
NUMBA_ENABLED: bool = _numba is not None

if not NUMBA_ENABLED and os.environ.get("MICRO_QUIET", "").strip() != "1":
    warnings.warn(
        "numba is unavailable or disabled (MICRO_DISABLE_NUMBA=1): the statistics kernels run "
        "as plain Python, with identical results but 100-1000x slower",
        PerformanceWarning,
        stacklevel=2,
    )


def jit(func: F) -> F:
    """Compile ``func`` with numba (options of ``config.JIT_OPTIONS``), or return it unchanged.

    Parameters
    ----------
    func
        A kernel written in the numba-compatible subset of Python.

    Returns
    -------
    callable
        The compiled dispatcher, or ``func`` itself when numba is off.
    """
    if _numba is None:
        return func
    compiled: F = _numba.njit(**JIT_OPTIONS)(func)  # njit: nopython mode, never object mode
    return compiled
