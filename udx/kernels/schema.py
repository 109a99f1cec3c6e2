"""Output columns of the three results, shared by the Vertica UDx and the pipeline.

Logical types: ``string`` (VARCHAR), ``date`` (local ``YYYY-MM-DD`` text), ``int64``,
``float64``, ``bool``. ``nullable`` says whether the contract allows null (NaN in the
kernels' float arrays, ``None`` in metrics dicts).
"""

from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    """One output column."""

    name: str
    dtype: str
    nullable: bool
    doc: str


TRADE_SIGNAL_COLUMNS: tuple[Column, ...] = (
    Column("symbol", "string", False, "as received"),
    Column("timestamp_ns", "int64", False, "UTC epoch ns, as received"),
    Column("price", "float64", False, "as received"),
    Column("size", "int64", False, "as received"),
    Column("date", "date", False, "partition date, New York, YYYY-MM-DD"),
    Column("log_return", "float64", True, "ln p_i - ln p_{i-1}; null on the first print"),
    Column("lee_mykland_stat", "float64", True, "L (no mu1 factor), K-1 returns before r_j"),
    Column("lm_xi", "float64", True, "(|L| - C_n)/S_n, n = returns in the partition"),
    Column("jump_detected", "bool", False, "lm_xi > beta*(alpha); false where L is null"),
    Column("garch_sigma2", "float64", True, "GARCH(1,1) h_t, original units"),
    Column("standardized_return", "float64", True, "log_return / sqrt(garch_sigma2)"),
    Column("bns_stat", "float64", True, "z_ratiomax_TQ of the last W tick returns (heuristic)"),
    Column("conditional_duration", "float64", True, "phi(t_{i-1}) psi_i, seconds"),
    Column("acd_surprise", "float64", True, "x_i / (phi(t_{i-1}) psi_i)"),
    Column("trade_intensity_zscore", "float64", True, "z of the print's 1-minute bucket"),
    Column("trading_signal", "string", False, "BUY / SELL / HOLD, rule v1"),
)

SYMBOL_DAY_METRIC_COLUMNS: tuple[Column, ...] = (
    Column("symbol", "string", False, "partition symbol"),
    Column("date", "date", False, "partition date, New York, YYYY-MM-DD"),
    Column("n_trades", "int64", False, "regular-hours prints N"),
    Column("n_returns", "int64", False, "N - 1 (0 when N = 0)"),
    Column("first_timestamp_ns", "int64", True, "first regular-hours print"),
    Column("last_timestamp_ns", "int64", True, "last regular-hours print"),
    Column("vwap", "float64", True, "sum(price size)/sum(size)"),
    Column("bns_m", "int64", True, "daily BNS returns (78 on a full session)"),
    Column("bns_rv", "float64", True, "realized variance, 5-min previous tick"),
    Column("bns_bv", "float64", True, "bipower variation, no M/(M-1)"),
    Column("bns_tq", "float64", True, "tri-power quarticity with M/(M-2)"),
    Column("bns_qq", "float64", True, "quad-power quarticity with M/(M-3)"),
    Column("bns_rj", "float64", True, "(RV - BV)/RV"),
    Column("bns_z", "float64", True, "z_ratiomax_TQ"),
    Column("bns_p_value", "float64", True, "1 - Phi(z), one-sided"),
    Column("bns_jump", "bool", False, "z > Phi^-1(1 - alpha); false where z is null"),
    Column("garch_omega", "float64", True, "original units"),
    Column("garch_alpha", "float64", True, ""),
    Column("garch_beta", "float64", True, ""),
    Column("garch_loglik", "float64", True, "original units"),
    Column("garch_scale", "float64", True, "arch's power-of-10 scale s"),
    Column("garch_converged", "bool", True, "SLSQP success; null without a fit"),
    Column("acd_exp_omega", "float64", True, "adjusted-duration units"),
    Column("acd_exp_alpha", "float64", True, ""),
    Column("acd_exp_beta", "float64", True, ""),
    Column("acd_exp_loglik", "float64", True, ""),
    Column("acd_weibull_omega", "float64", True, ""),
    Column("acd_weibull_alpha", "float64", True, ""),
    Column("acd_weibull_beta", "float64", True, ""),
    Column("acd_weibull_gamma", "float64", True, ""),
    Column("acd_weibull_loglik", "float64", True, ""),
    Column("acd_exp_at_boundary", "bool", True, "alpha + beta >= 1 - 1e-4"),
    Column("acd_weibull_at_boundary", "bool", True, "alpha + beta >= 1 - 1e-4"),
    Column("lm_jump_count", "int64", False, "prints with jump_detected"),
    Column("notes", "string", True, "why a statistic is null or flagged; null when none"),
)

INTENSITY_BUCKET_COLUMNS: tuple[Column, ...] = (
    Column("symbol", "string", False, "partition symbol"),
    Column("date", "date", False, "partition date, New York, YYYY-MM-DD"),
    Column("bucket", "int64", False, "0 .. B-1"),
    Column("bucket_start_ns", "int64", False, "UTC ns of open + bucket * width"),
    Column("count", "int64", False, "prints in the bucket"),
    Column("z", "float64", True, "trailing z-score; null for b < 30 or sd = 0"),
)


def column_names(columns: tuple[Column, ...]) -> list[str]:
    """Return the names of ``columns`` in order."""
    return [c.name for c in columns]


SIGNAL_LABELS: tuple[str, str, str] = ("HOLD", "BUY", "SELL")  # index = signal code 0, 1, 2
