"""The fit-state columns of ``symbol_day_metrics`` (migration 0016) beside the contract's.

A signals run's frames carry them apart from the contract frame (``SignalFrames.fit_states``,
built by :mod:`pipeline.signals.fit_state`); both backends' ``publish_signals`` append them to
the metrics rows with :func:`with_fit_states`. Frames without them publish nulls.
"""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

from pipeline.warehouse.queries import FIT_STATE_COLUMNS


def with_fit_states(metrics: pd.DataFrame, fit_states: pd.DataFrame | None) -> pd.DataFrame:
    """Return ``metrics`` with the fit-state columns of each symbol (null where unknown).

    Parameters
    ----------
    metrics
        Contract rows of ``symbol_day_metrics`` (one day).
    fit_states
        ``symbol`` and :data:`FIT_STATE_COLUMNS` per symbol, or None (all null).

    Returns
    -------
    pandas.DataFrame
        ``metrics`` with the four columns appended, same rows and order.
    """
    out = metrics.copy()
    by_symbol = (
        fit_states.set_index("symbol") if fit_states is not None and len(fit_states) else None
    )
    for col in FIT_STATE_COLUMNS:
        if by_symbol is None:
            values: Any = [None] * len(out)
        else:
            mapping = cast("pd.Series", by_symbol[col])
            values = cast("pd.Series", out["symbol"]).map(mapping).astype(object).tolist()
            values = [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
        dtype = "str" if col == "acd_diurnal" else "Float64"
        out[col] = pd.Series(values, index=out.index, dtype=object if dtype == "str" else dtype)
    return out
