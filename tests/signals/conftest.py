"""Fixtures of the signals tests: the shipped XXX sample."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from pipeline.signals.assemble import SignalFrames, compute_frames

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"


@cache
def sample() -> pd.DataFrame:
    """The shipped sample as read by pandas (all columns)."""
    return pd.read_csv(SAMPLE)


@cache
def sample_frames() -> SignalFrames:
    """``compute_frames`` of the whole sample (computed once per session)."""
    return compute_frames(sample())
