"""Column lists of warehouse tables that writers and readers share (no imports, loads fast).

The readers (the serving side) must not pay for the writers' imports (pandas, the kernels)
to know a table's columns.
"""

from __future__ import annotations

EVALUATION_COLUMNS: tuple[str, ...] = (
    "evaluation_id",
    "computed_ns",
    "start_date",
    "end_date",
    "symbol",
    "horizon_s",
    "n_signals",
    "n_buy",
    "n_sell",
    "n_effective",
    "n_days",
    "hit_rate",
    "mean_bp",
    "sd_bp",
    "t_stat",
    "random_n",
    "random_hit_rate",
    "random_mean_bp",
    "random_sd_bp",
    "random_t_stat",
    "edge_bp",
    "edge_t_stat",
    "edge_p_value",
    "edge_p_adjusted",
    "verdict",
    "min_signals",
    "random_per_signal",
    "seed",
    "kernel_version",
    "signal_runs",
)
"""Columns of ``signal_evaluation`` (``microstructure evaluate``), in order."""

__all__ = ["EVALUATION_COLUMNS"]
