"""Contract-shaped signal frames for warehouse tests (publish mechanics, not statistics).

The statistics are tested in tests/signals and tests/udx against reference data; these
frames only carry the contract columns with nulls and HOLD, so the warehouse tests do not
depend on the kernels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from pipeline.warehouse.queries import (
    SYMBOL_DAY_METRICS_COLUMNS,
    TRADE_INTENSITY_COLUMNS,
    TRADING_SIGNALS_COLUMNS,
)


@dataclass(frozen=True)
class ContractFrames:
    trade_signals: pd.DataFrame
    symbol_day_metrics: pd.DataFrame
    intensity_buckets: pd.DataFrame


def fake_signal_frames(trades: pd.DataFrame, day: date) -> ContractFrames:
    """Return frames with one row per trade, per symbol and per bucket, statistics null."""
    n = len(trades)
    ts = pd.DataFrame({c: pd.Series([None] * n, dtype="float64") for c in TRADING_SIGNALS_COLUMNS})
    ts["symbol"] = trades["symbol"].to_numpy()
    ts["date"] = pd.Timestamp(day)
    ts["seq"] = trades.groupby("symbol").cumcount().to_numpy()
    for c in ("timestamp_ns", "price", "size", "kafka_partition", "kafka_offset"):
        ts[c] = trades[c].to_numpy()
    ts["jump_detected"] = False
    ts["trading_signal"] = "HOLD"
    symbols = sorted(trades["symbol"].unique())
    sdm = pd.DataFrame(
        {c: pd.Series([None] * len(symbols), dtype="float64") for c in SYMBOL_DAY_METRICS_COLUMNS}
    )
    sdm["symbol"] = symbols
    sdm["date"] = pd.Timestamp(day)
    sdm["n_trades"] = [int((trades["symbol"] == s).sum()) for s in symbols]
    sdm["n_returns"] = sdm["n_trades"] - 1
    sdm["lm_jump_count"] = 0
    sdm["notes"] = "contract frame"
    ib = pd.DataFrame(
        {
            "symbol": np.repeat(symbols, 390),
            "date": pd.Timestamp(day),
            "bucket": np.tile(np.arange(390), len(symbols)),
            "bucket_start_ns": 0,
            "count": 0,
            "z": np.nan,
        }
    )[list(TRADE_INTENSITY_COLUMNS)]
    return ContractFrames(ts, sdm, ib)
