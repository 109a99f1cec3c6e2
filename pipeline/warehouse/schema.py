"""Column lists of warehouse tables that writers and readers share (no imports, loads fast).

The readers (the serving side) must not pay for the writers' imports (pandas, the kernels)
to know a table's columns.
"""

from __future__ import annotations

# UTF-8 bytes each sized text column holds on Vertica (sql/migrations/*.vertica.sql). The
# loader's COPY runs with ENFORCELENGTH ABORT ON ERROR, so one longer value would abort the
# whole batch on every retry: shaping turns such records into rejects (and shortens what a
# reject itself carries) from these sizes, on both backends alike. tests/vertica checks
# them against the DDL.
VARCHAR_BYTES: dict[str, dict[str, int]] = {
    "market_data": {"symbol": 16, "trade_id": 64, "conditions": 256, "source": 16},
    "market_data_rejects": {"stage": 16, "reason": 1024, "symbol": 16},
    "feed_gaps": {"subscription": 64, "reason": 1024},
    "market_quotes": {"symbol": 16, "indicators": 256, "source": 16},
    "market_aggregates": {"symbol": 16},
    "live_signals": {
        "symbol": 16,
        "lm_n_rule": 16,
        "trading_signal": 4,
        "garch_params": 256,
        "acd_params": 256,
        "kernel_version": 64,
        "params": 65000,
        "input_topic": 249,
        "kafka_topic": 249,
    },
    "live_signal_rejects": {
        "stage": 16,
        "reason": 1024,
        "input_topic": 249,
        "kernel_version": 64,
        "kafka_topic": 249,
    },
}

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
