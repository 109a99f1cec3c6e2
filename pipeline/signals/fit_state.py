"""What the batch stores of a symbol-day's fits so that the live path can filter the next day.

``symbol_day_metrics`` holds the fitted parameters (statistics.md 5.2); filtering another day
with them also needs, exactly as the batch's own filters use them, GARCH omega in the fit's
scaled units and its backcast, the exponential ACD fit's ``psi_1`` and the day's diurnal
curve. :func:`fit_state_row` takes them from a :class:`~udx.kernels.day.SymbolDayResult`
(columns :data:`FIT_STATE_COLUMNS`, migration 0016); :func:`diurnal_to_json` and
:func:`diurnal_from_json` carry the curve as JSON with full-precision floats (orjson writes
the shortest text that reads back to the same double), so a curve read back is the stored
one bit for bit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from pipeline.errors import DataError
from pipeline.warehouse.queries import FIT_STATE_COLUMNS
from udx.kernels.acd import Diurnal
from udx.kernels.day import SymbolDayResult


def diurnal_to_json(d: Diurnal) -> str:
    """Return a diurnal curve as JSON (knots, means, second derivatives, end slopes, floor)."""
    return orjson.dumps(
        {
            "knots_s": d.knots_s.tolist(),
            "knot_means_s": d.knot_means_s.tolist(),
            "second_derivs": d.second_derivs.tolist(),
            "slope_left": d.slope_left,
            "slope_right": d.slope_right,
            "floor": d.floor,
        }
    ).decode()


def diurnal_from_json(text: str) -> Diurnal:
    """Read a curve written by :func:`diurnal_to_json`.

    Raises
    ------
    DataError
        If the text is not such a curve (lengths differ, a field is missing or not a number).
    """
    try:
        obj = orjson.loads(text)
        arrays = [np.asarray(obj[k], dtype=np.float64) for k in ("knots_s", "knot_means_s",
                                                                   "second_derivs")]  # fmt: skip
        scalars = [float(obj[k]) for k in ("slope_left", "slope_right", "floor")]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"acd_diurnal {text[:80]!r} is not a diurnal curve: {e}") from e
    n = arrays[0].shape[0]
    if n == 0 or any(a.ndim != 1 or a.shape[0] != n for a in arrays):
        raise DataError(f"acd_diurnal has knot arrays of lengths {[a.shape for a in arrays]}")
    return Diurnal(arrays[0], arrays[1], arrays[2], scalars[0], scalars[1], scalars[2])


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def fit_state_row(result: SymbolDayResult) -> dict[str, Any]:
    """Return the :data:`FIT_STATE_COLUMNS` of one symbol-day (None where there is no fit)."""
    row: dict[str, Any] = dict.fromkeys(FIT_STATE_COLUMNS)
    g = result.garch
    if g is not None and g.fitted:
        row["garch_omega_scaled"] = _finite(g.omega_scaled)
        row["garch_backcast_scaled"] = _finite(g.backcast_scaled)
    a = result.acd
    if a is not None and a.exp.fitted and a.diurnal is not None:
        row["acd_exp_psi1"] = _finite(a.exp.psi1)
        row["acd_diurnal"] = diurnal_to_json(a.diurnal)
    return row
