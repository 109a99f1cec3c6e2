"""The numba shim: ``jit`` compiles with numba when it is importable and enabled.

Set ``MICRO_DISABLE_NUMBA=1`` (or run where numba is absent, e.g. a bare Vertica UDx bundle)
and ``jit`` returns the plain-Python function unchanged; one ``PerformanceWarning`` says so
(silenced by ``MICRO_QUIET=1``). Modelled on ``arch.compat.numba``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from udx.kernels.config import JIT_OPTIONS

F = TypeVar("F", bound=Callable[..., Any])


class PerformanceWarning(UserWarning):
    """The kernels run as plain Python (numba absent or disabled): correct but slow."""


def load_numba(environ: Mapping[str, str]) -> Any | None:
    """Return the numba module, or None when it is absent or disabled in ``environ``."""
    if environ.get("MICRO_DISABLE_NUMBA", "").strip() == "1":
        return None
    try:
        import numba  # optional dependency, imported once here
    except ImportError:
        return None
    return numba


def warn_if_python(numba_module: Any | None, environ: Mapping[str, str]) -> None:
    """Emit the one fallback warning unless numba is on or ``MICRO_QUIET=1``."""
    if numba_module is None and environ.get("MICRO_QUIET", "").strip() != "1":
        warnings.warn(
            "numba is unavailable or disabled (MICRO_DISABLE_NUMBA=1): the statistics kernels "
            "run as plain Python, with identical results but 100-1000x slower",
            PerformanceWarning,
            stacklevel=3,
        )


def compile_with(numba_module: Any | None, func: F) -> F:
    """Compile ``func`` with ``numba_module.njit`` (nopython mode), or return it unchanged."""
    if numba_module is None:
        return func
    compiled: F = numba_module.njit(**JIT_OPTIONS)(func)
    return compiled


_numba = load_numba(os.environ)
NUMBA_ENABLED: bool = _numba is not None
warn_if_python(_numba, os.environ)


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
    return compile_with(_numba, func)
