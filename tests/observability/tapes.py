"""Synthetic tapes for the evaluation tests: the ``simulate`` generator, plus planted moves."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.signals.synthetic import SimulationConfig, SyntheticTape, simulate_tape


def plant_continuation(tape: SyntheticTape, drift_bp: float, over_s: float) -> pd.DataFrame:
    """Return the tape's trades with a predictable move after every planted jump.

    After each jump the price keeps moving in the jump's direction, linearly, by
    ``drift_bp`` basis points over ``over_s`` seconds, and stays there: a signal that
    follows the jump can earn it. Prints at or before the jump's stamp are unchanged, so
    the jump is detected exactly as without the move. The drift per print is far below the
    per-print volatility, so it plants no jumps of its own.
    """
    trades = tape.trades.copy()
    ts = trades["timestamp_ns"].to_numpy(dtype=np.int64)
    logp = np.log(trades["price"].to_numpy(dtype=np.float64))
    sym = trades["symbol"].to_numpy(dtype=object)
    over_ns = int(over_s * 1e9)
    truth = tape.truth
    for symbol, t, size in zip(
        truth["symbol"], truth["timestamp_ns"], truth["jump_log_size"], strict=True
    ):
        t0 = int(t)
        sign = 1.0 if float(size) > 0 else -1.0
        after = (sym == symbol) & (ts > t0) & (ts < t0 + 86_400 * 10**9)
        frac = np.clip((ts[after] - t0) / over_ns, 0.0, 1.0)
        logp[after] += sign * drift_bp * 1e-4 * frac
    trades["price"] = np.exp(logp)
    return trades


def jumpy_config(seed: int) -> SimulationConfig:
    """Return a tape with many planted jumps: 2 symbols x 3 days, 12 jumps a day each."""
    return SimulationConfig(trades_per_day=8_000, jumps_per_day=12, seed=seed)


def random_tape(seed: int) -> SyntheticTape:
    """Return a tape whose prices after a signal are a martingale (no planted moves)."""
    return simulate_tape(jumpy_config(seed))
