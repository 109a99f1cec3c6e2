"""Per-trade stage latency measured from the stamps the warehouse stores."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.kafka.offsets import OffsetRange
from pipeline.metrics import FastHistogram, histogram_quantile, parse_histograms
from pipeline.microbatch import shape_batch
from pipeline.signals.assemble import compute_frames
from pipeline.stages import STAGES, batch_stage_durations, measure_window, run_stage_durations
from pipeline.warehouse.base import SignalRun
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.observability.conftest import DAY1
from tests.warehouse.factories import as_records, sample_trades

MS = 1_000_000


def test_many_at_once_fills_the_buckets_as_one_by_one() -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(-1000, 400 * 10**9, size=5000).astype(np.int64)
    values[:5] = [0, 100_000, 250_000, 60 * 10**9, 10**18]  # bounds exactly, and +Inf
    weights = rng.integers(1, 5, size=5000).astype(np.int64)
    one, many = FastHistogram(), FastHistogram()
    for v, w in zip(values.tolist(), weights.tolist(), strict=True):
        for _ in range(w):
            one.observe_ns(v)
    many.observe_many_ns(values, weights)
    assert many.counts == one.counts
    assert many.count == one.count == int(weights.sum())
    assert many.sum_ns == pytest.approx(one.sum_ns, rel=1e-12)


def test_quantiles_from_buckets_interpolate_like_promql() -> None:
    buckets = [(0.1, 10.0), (0.2, 30.0), (0.4, 40.0), (float("inf"), 40.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.15)
    assert histogram_quantile(0.625, buckets) == pytest.approx(0.1 + 0.1 * 15 / 20)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.5, [(float("inf"), 0.0)]) is None
    text = (
        "# TYPE x histogram\n"
        'x_bucket{stage="a",le="0.1"} 1\nx_bucket{stage="a",le="+Inf"} 2\n'
        'x_count{stage="a"} 2\nx_sum{stage="a"} 1\n'
    )
    assert parse_histograms(text, "x") == {(("stage", "a"),): [(0.1, 1.0), (float("inf"), 2.0)]}


def _load_day(path: Path) -> tuple[DuckDBWarehouse, int]:
    wh = DuckDBWarehouse(path)
    wh.migrate()
    records = as_records(sample_trades(day=DAY1))
    result = wh.load_batch(
        shape_batch(records, OffsetRange("polygon-market-data", 0, 0, len(records))),
        expected_start=0,
        run_id="load",
    )
    return wh, result.n_trades


def test_every_stage_is_measured_per_trade_from_the_stored_stamps(duckdb_file: Path) -> None:
    wh, n = _load_day(duckdb_file)
    with wh.transaction() as s:
        before = measure_window(s, window_s=900)
        durations = batch_stage_durations(s, "polygon-market-data", 0, 0, n)
    assert before.n_trades == n == 39_470
    assert list(before.stages) == [st.name for st in STAGES]
    # The factory stamps receipt 1 ms after SIP time: measured exactly, per trade.
    receipt = before.stages["sip_to_receipt"]
    assert receipt.n == n
    assert receipt.quantile_s(0.5) == receipt.quantile_s(0.99) == pytest.approx(0.001)
    np.testing.assert_array_equal(durations["sip_to_receipt"], np.full(n, MS))
    # Nothing is signalled yet: every regular-hours trade is pending, none measured.
    n_rth = len(wh.read_day_trades(DAY1))
    assert before.stages["commit_to_signal"].n == 0
    assert before.stages["commit_to_signal"].pending == n_rth

    trades = wh.read_day_trades(DAY1)
    frames = compute_frames(trades, passthrough=("kafka_partition", "kafka_offset"))
    computed_ns = time.time_ns()
    run = SignalRun(
        run_id="r1",
        day=DAY1,
        n_symbols=1,
        n_trades=len(trades),
        n_buckets=390,
        kernel_version="test",
        params_json="{}",
        input_offsets_json="{}",
        content_hash="h",
        final=True,
        computed_ns=computed_ns,
    )
    wh.publish_signals(DAY1, frames, run)
    with wh.transaction() as s:
        after = measure_window(s, window_s=900)
        loaded = int(s.execute("SELECT max(loaded_ns) FROM market_data")[0][0])
        per_run = run_stage_durations(s, DAY1, computed_ns)
    c2s = after.stages["commit_to_signal"]
    assert (c2s.n, c2s.pending) == (n_rth, 0)
    assert c2s.quantile_s(0.5) == pytest.approx((computed_ns - loaded) / 1e9)
    np.testing.assert_array_equal(per_run.commit_to_signal_ns, [computed_ns - loaded])
    assert per_run.weights.tolist() == [n_rth]
    assert after.stages["sip_to_signal"].n == n_rth
