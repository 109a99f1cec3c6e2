"""Rebuild this folder from the full reference outputs (run by hand, never by the tests).

    uv run --frozen python tests/data/reference/xxx/extract.py ../shared/data/xxx/reference

Keeps every aggregate file whole and subsamples the per-print and per-duration files at
fixed positions (every STEP-th row) plus every row the tests need in full (LM flags and the
rows whose xi is within 0.05 of the threshold), so the folder stays small.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

STEP = 10
DAYS = ("2018-01-02", "2018-01-03")
BETA_STAR = 4.600149226776579
WHOLE = ("acd.json", "garch.json", "summary.json", "bns_sampled.csv", "bns_tick.csv")
WHOLE += ("intensity.csv", "lm_sampled.csv")


def main(source: Path) -> None:
    """Copy and subsample the reference files of both days from ``source``."""
    here = Path(__file__).resolve().parent
    for day in DAYS:
        src, dst = source / day, here / day
        dst.mkdir(exist_ok=True)
        for name in WHOLE:
            shutil.copyfile(src / name, dst / name)
        lm = pd.read_csv(src / "trades_lm.csv.gz", dtype={"r": str, "L": str, "lm_xi": str})
        xi = pd.to_numeric(lm["lm_xi"])
        keep = (np.arange(len(lm)) % STEP == 0) | lm["lm_jump"] | ((xi - BETA_STAR).abs() < 0.05)
        cols = ["r", "L", "lm_xi", "lm_jump", "garch_sigma2", "std_ret_garch"]
        sub = lm.loc[keep, cols].copy()
        sub.insert(0, "position", np.flatnonzero(keep))
        sub.to_csv(dst / "trades_lm_sub.csv.gz", index=False)
        pd.DataFrame({"position": np.flatnonzero(lm["lm_jump"].to_numpy())}).to_csv(
            dst / "lm_jump_positions.csv", index=False
        )
        acd = pd.read_csv(src / "acd_durations.csv.gz", dtype=str)
        keep = np.arange(len(acd)) % STEP == 0
        cols = ["timestamp_ns", "duration_s", "phi", "adj_dur", "psi_exp"]
        cols += ["expected_duration_s_exp", "surprise_exp"]
        sub = acd.loc[keep, cols].copy()
        sub.insert(0, "duration_index", np.flatnonzero(keep))
        sub.to_csv(dst / "acd_durations_sub.csv.gz", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
