"""Signal evaluation: planted predictable moves are found, a random tape shows nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from mcp import Client

from mcp_server.server import build_server
from mcp_server.settings import McpSettings
from pipeline.cli import main
from pipeline.evaluate import (
    ALL_SYMBOLS,
    EvaluationConfig,
    evaluate_signals,
    previous_tick_returns,
    significant,
    summary_lines,
)
from pipeline.signals.assemble import compute_frames
from pipeline.signals.synthetic import simulate_tape
from tests.observability.tapes import jumpy_config, plant_continuation, random_tape
from udx.kernels import session_bounds

SEED = 2


def _pooled(result: pd.DataFrame, horizon_s: int) -> dict[str, Any]:
    row = result[(result["symbol"] == ALL_SYMBOLS) & (result["horizon_s"] == horizon_s)]
    return row.iloc[0].to_dict()


def test_moves_planted_after_the_jumps_are_found() -> None:
    tape = simulate_tape(jumpy_config(SEED))
    trades = plant_continuation(tape, drift_bp=40.0, over_s=300.0)
    result = evaluate_signals(compute_frames(trades).trade_signals)
    five = _pooled(result, 300)
    assert five["verdict"] == "edge"
    assert float(five["edge_bp"]) > 3.0  # the planted move, diluted by false flags
    assert float(five["edge_p_adjusted"]) < 0.01
    assert float(five["hit_rate"]) > float(five["random_hit_rate"])
    lines = summary_lines(result)
    assert any(line.startswith("all symbols, 5 min: signals beat random entries") for line in lines)


def test_a_random_tape_shows_nothing_significant() -> None:
    result = evaluate_signals(compute_frames(random_tape(SEED).trades).trade_signals)
    assert len(result) == 9  # (2 symbols + pooled) x 3 horizons
    assert len(significant(result)) == 0, result[["symbol", "horizon_s", "edge_p_adjusted"]]
    assert set(result["verdict"]) == {"no_edge"}
    assert bool((result["random_n"] >= 20 * result["n_signals"] * 0.9).all())


def test_forward_returns_use_the_previous_tick_and_never_cross_the_close() -> None:
    day = "2024-03-04"
    open_ns, close_ns = session_bounds(day)
    s = 1_000_000_000
    t0 = open_ns + 30 * 60 * s  # 10:00
    ts = np.array([t0, t0 + 30 * s, t0 + 60 * s, t0 + 90 * s, close_ns - 30 * s], dtype=np.int64)
    logp = np.log(np.array([100.0, 101.0, 102.0, 103.0, 104.0]))
    r = previous_tick_returns(ts, logp, ts[[0, 1, 4]], logp[[0, 1, 4]], 60 * s, close_ns)
    assert r[0] == pytest.approx(math.log(102 / 100))  # the print at exactly t + h counts
    assert r[1] == pytest.approx(math.log(103 / 101))  # last print at or before t + h
    assert math.isnan(r[2])  # t + h is after the close: not measured
    frame = pd.DataFrame(
        {
            "symbol": "T",
            "date": day,
            "timestamp_ns": ts,
            "price": np.exp(logp),
            "trading_signal": ["SELL", "HOLD", "HOLD", "HOLD", "BUY"],
        }
    )
    result = evaluate_signals(frame, EvaluationConfig(horizons_s=(60,)))
    row = _pooled(result, 60)
    assert row["n_signals"] == 1  # the BUY 30 s before the close has no 1-minute return
    assert float(row["mean_bp"]) == pytest.approx(-1e4 * math.log(102 / 100))  # SELL: negated
    assert row["verdict"] == "too_few_signals"


def test_a_small_sample_says_it_cannot_say_anything() -> None:
    tape = simulate_tape(jumpy_config(SEED))
    ts = compute_frames(tape.trades).trade_signals
    first = ts[ts["trading_signal"] != "HOLD"].head(12).index
    ts = ts.assign(trading_signal=np.where(ts.index.isin(first), ts["trading_signal"], "HOLD"))
    result = evaluate_signals(ts)
    assert set(result["verdict"]) == {"too_few_signals"}
    assert bool(result["edge_p_adjusted"].isna().all())
    assert all("too few signals to say anything" in line for line in summary_lines(result))


def test_the_command_stores_plots_and_serves_the_evaluation(
    warehouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    anyio_backend: str,
) -> None:
    import anyio

    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    monkeypatch.setenv("MICROSTRUCTURE_HOME", str(tmp_path))
    plot = tmp_path / "eval.png"
    assert (
        main(["evaluate", "--start", "2018-01-02", "--end", "2018-01-03", "--out", str(plot)]) == 0
    )
    printed = capsys.readouterr().out
    assert "stored 9 rows in table signal_evaluation" in printed
    assert "all symbols, 1 min:" in printed
    assert plot.read_bytes().startswith(b"\x89PNG")
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute(
            "SELECT symbol, horizon_s, n_signals, verdict, signal_runs FROM signal_evaluation "
            "ORDER BY symbol, horizon_s"
        ).fetchall()
    assert {(r[0], r[1]) for r in rows} == {
        (s, h) for s in ("*", "AAA", "XXX") for h in (60, 300, 1800)
    }
    assert sorted(json.loads(rows[0][4])) == ["2018-01-02", "2018-01-03"]

    async def ask() -> tuple[dict[str, object], bool]:
        settings = McpSettings(
            warehouse_url=f"duckdb:///{warehouse}",
            allow_unauthenticated=True,
            materialize="inline",
        )
        async with Client(build_server(settings)) as client:
            ok = await client.call_tool("get_signal_evaluation", {"symbol": "XXX"})
            bad = await client.call_tool("get_signal_evaluation", {"symbol": "NOPE"})
        assert ok.structured_content is not None
        return ok.structured_content, bad.is_error

    del anyio_backend
    answer, refused = anyio.run(ask)
    assert refused
    served = answer["rows"]
    assert isinstance(served, list)
    assert [(r["symbol"], r["horizon_s"]) for r in served] == [
        ("*", 60),
        ("*", 300),
        ("*", 1800),
        ("XXX", 60),
        ("XXX", 300),
        ("XXX", 1800),
    ]
    stored = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    for r in served:
        assert (r["n_signals"], r["verdict"]) == stored[(r["symbol"], r["horizon_s"])]
        assert r["verdict_text"]
    assert answer["start_date"] == "2018-01-02"
    assert "random entry times" in str(answer["method"])


def test_an_empty_warehouse_has_no_evaluation_to_serve(warehouse: Path, anyio_backend: str) -> None:
    import anyio

    del anyio_backend

    async def ask() -> str:
        settings = McpSettings(
            warehouse_url=f"duckdb:///{warehouse}",
            allow_unauthenticated=True,
            materialize="inline",
        )
        async with Client(build_server(settings)) as client:
            res = await client.call_tool("get_signal_evaluation", {})
        assert res.is_error
        return " ".join(getattr(c, "text", "") for c in res.content)

    assert "microstructure evaluate" in anyio.run(ask)


def test_compute_outputs_can_be_evaluated_without_a_warehouse(
    compute_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    work = tmp_path / "out"
    shutil.copytree(compute_dir, work)
    monkeypatch.setenv("MICROSTRUCTURE_HOME", str(tmp_path))
    argv = ["evaluate", "--start", "2018-01-02", "--end", "2018-01-03", "--from-dir", str(work)]
    assert main([*argv, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 6  # XXX and pooled x 3 horizons
    stored = pd.read_parquet(work / "signal_evaluation.parquet")
    assert len(stored) == 6
    assert (tmp_path / "reports" / "evaluation_2018-01-02_2018-01-03.png").is_file()
