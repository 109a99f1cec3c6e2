"""``microstructure compute``, ``simulate`` and ``bench kernels`` end to end (in process)."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.signals.synthetic import SimulationConfig, evaluate_detection, simulate_tape
from tests.signals.conftest import SAMPLE
from tests.udx.test_reference_xxx import N_RTH
from udx.kernels import KERNEL_VERSION


def test_compute_writes_three_parquet_files_that_reproduce_both_reference_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["compute", str(SAMPLE), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "76,812 regular-hours prints in 2 symbol-day(s)" in printed
    assert "451 outside regular hours ignored" in printed
    assert "LM jump flags: 401" in printed
    tables = {name: pq.read_table(out / f"{name}.parquet") for name in
              ("trade_signals", "symbol_day_metrics", "intensity_buckets")}  # fmt: skip
    for table in tables.values():
        meta = json.loads(table.schema.metadata[b"microstructure.provenance"])
        assert meta["kernel_version"] == KERNEL_VERSION
        assert meta["params"]["lm_window"] == 270
        assert meta["signal_rule"]["name"] == "v1"
    ts = tables["trade_signals"].to_pandas()
    assert len(ts) == sum(N_RTH.values())
    # Nulls are parquet nulls, not NaN.
    col = tables["trade_signals"].column("log_return")
    assert col.null_count == 2
    m = tables["symbol_day_metrics"].to_pandas()
    assert m["lm_jump_count"].tolist() == [232, 169]
    assert m["bns_z"].tolist() == pytest.approx([1.227014507, 0.6646089282], rel=1e-9)
    assert m["garch_loglik"].tolist() == pytest.approx([313616.838, 283572.230], abs=0.5)
    assert tables["intensity_buckets"].num_rows == 780


def test_compute_reports_user_errors_as_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compute", str(tmp_path / "missing.csv"), "--out", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_ns,symbol,price\n1,A,2.0\n")
    assert main(["compute", str(bad), "--out", str(tmp_path / "o")]) == 1
    assert "lacks column(s) ['size']" in capsys.readouterr().err


def test_compute_rejects_unparseable_cells_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = pd.read_csv(SAMPLE).head(3000).astype(str)
    src.loc[200, "price"] = "n/a"
    src.loc[201, "timestamp_ns"] = "yesterday"
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as fh:
        src.to_csv(fh, index=False)
    assert main(["compute", str(path), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "2 rejected" in printed
    assert "timestamp_ns null or not an integer" in printed
    m = pd.read_parquet(tmp_path / "o" / "symbol_day_metrics.parquet")
    assert "rejected rows: 1" in m["notes"].iloc[0]  # the bad stamp has no partition


def test_simulated_tapes_are_deterministic_and_plant_the_truth() -> None:
    cfg = SimulationConfig(symbols=("A",), days=("2024-03-05",), trades_per_day=4000, seed=9)
    a, b = simulate_tape(cfg), simulate_tape(cfg)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    assert len(a.truth) == 3
    assert min(a.truth["seq"].tolist()) >= cfg.min_jump_position
    assert all(8 <= k <= 15 for k in a.truth["jump_local_sd"].tolist())
    # The jump is in the price path: the print's return carries it.
    r = np.diff(np.log(a.trades["price"].to_numpy()))
    for row in a.truth.to_dict(orient="records"):
        assert abs(r[row["seq"] - 1] - row["jump_log_size"]) < 6 * row["local_sd"]
    assert a.trades["timestamp_ns"].is_monotonic_increasing
    # Noise and ticks leave arrivals and jumps unchanged.
    noisy = simulate_tape(SimulationConfig(**{**cfg.to_dict(), "symbols": ("A",),
                                              "days": ("2024-03-05",), "noise_bp": 1.0,
                                              "tick": 0.01}))  # fmt: skip
    np.testing.assert_array_equal(noisy.trades["timestamp_ns"], a.trades["timestamp_ns"])
    pd.testing.assert_frame_equal(noisy.truth, a.truth)
    assert np.allclose(np.round(noisy.trades["price"] / 0.01) * 0.01, noisy.trades["price"])


def test_detection_report_counts_hits_and_false_flags() -> None:
    ts = pd.DataFrame({
        "symbol": ["A"] * 5, "date": ["d"] * 5,
        "jump_detected": [False, True, False, True, False],
        "lee_mykland_stat": [np.nan, 1.0, 1.0, 1.0, np.nan],
    })  # fmt: skip
    truth = pd.DataFrame({"symbol": ["A", "A"], "date": ["d", "d"], "seq": [1, 2]})
    rep = evaluate_detection(ts, truth)
    assert (rep.planted, rep.detected, rep.false_flags, rep.prints, rep.tested) == (2, 1, 1, 5, 3)
    assert rep.power == 0.5
    assert rep.false_flag_rate == 0.2
    assert math.isclose(rep.false_flag_rate_tested, 1 / 3)


def test_simulate_writes_tape_truth_and_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sim"
    args = ["simulate", "--out", str(out), "--symbols", "A", "--days", "2024-03-05",
            "--trades-per-day", "6000", "--seed", "3"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "detection power: " in printed
    assert "false flags: " in printed
    trades = pd.read_csv(out / "trades.csv.gz")
    assert list(trades.columns) == ["timestamp_ns", "symbol", "price", "size"]
    truth = pd.read_csv(out / "truth.csv")
    assert len(truth) == 3
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["detection"]["planted"] == 3
    assert 0 <= ev["detection"]["power"] <= 1
    assert ev["configuration"]["params"]["lm_window"] == 270
    assert main([*args, "--json", "--lm-window", "100", "--alpha", "0.05"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"power", "false_flag_rate", "planted", "false_flags"}
    assert main([*args, "--no-evaluate"]) == 0
    assert main([*args, "--lm-window", "2"]) == 2  # ConfigError
    assert "lm_window is 2" in capsys.readouterr().err


def test_bench_kernels_prints_one_json_object_with_the_contract_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["bench", "kernels", "--json", "--trades", "20000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out.strip()
    data = json.loads(out)
    assert list(data) == [
        "contract_seconds", "trades_per_s", "garch_seconds", "arch_garch_seconds",
        "garch_loglik", "arch_garch_loglik",
    ]  # fmt: skip
    assert {"returns", "lee_mykland", "bns_rolling", "intensity", "garch_fit"} <= set(
        data["trades_per_s"]
    )
    assert data["contract_seconds"] > 0
    assert data["arch_garch_seconds"] > 0
    # arch and ours fit the same model on the same returns: ours is never worse by > 0.5.
    assert data["garch_loglik"] >= data["arch_garch_loglik"] - 0.5
