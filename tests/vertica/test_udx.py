"""The batch_microstructure UDx, driven through the stand-in ``vertica_sdk`` on real trades.

No Vertica server can run here, so the UDx file is loaded by path against
``tests/support/vertica_sdk`` (a strict stand-in following the Python SDK reference) and fed
the shipped sample partitioned as ``OVER (PARTITION BY symbol, trade_date ORDER BY
timestamp_ns)`` would. Its output must equal ``compute_frames`` (what ``microstructure
compute`` writes) on the same trades. What this cannot prove: that the real server's
reader and writer behave as the reference says, and that the DEPENDS bundle imports on
Vertica's interpreter; the opt-in suite (``make test-vertica``) covers those on an instance.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from functools import cache
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

import tests.support.vertica_sdk as sdk
from pipeline.signals.assemble import compute_frames
from tests.vertica.conftest import ROOT
from udx.kernels import KERNEL_VERSION
from udx.kernels.schema import SYMBOL_DAY_METRIC_COLUMNS

SAMPLE = ROOT / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
ARGS = [sdk.INTEGER, sdk.varchar(16), sdk.FLOAT, sdk.INTEGER, sdk.varchar(4)]
LINEAGE_ARGS = [*ARGS, sdk.INTEGER, sdk.INTEGER]


@cache
def sample() -> pd.DataFrame:
    with gzip.open(SAMPLE, "rt") as f:
        frame = pd.read_csv(
            f, dtype={"exchange": "str", "conditions": "str"}, keep_default_na=False
        )
    local = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True).dt.tz_convert(
        "America/New_York"
    )
    # Stand-ins for the lineage a loaded trade carries (one Kafka partition, arrival order).
    return frame.assign(
        trade_date=local.dt.date.astype(str), kafka_partition=0, kafka_offset=np.arange(len(frame))
    )


def partitions(frame: pd.DataFrame, lineage: bool = False) -> list[list[tuple[object, ...]]]:
    cols = ["timestamp_ns", "symbol", "price", "size", "exchange"]
    if lineage:
        cols += ["kafka_partition", "kafka_offset"]
    rows = [
        (*(_py(v) for v in r[:-1]), r[-1])
        for r in frame[[*cols, "trade_date"]].itertuples(index=False, name=None)
    ]
    grouped = sdk.over(rows, partition_by=lambda r: (r[1], r[-1]), order_by=lambda r: r[0])
    return [[r[:-1] for r in part] for part in grouped]


def _py(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


@cache
def reference() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frames = compute_frames(sample(), passthrough=("kafka_partition", "kafka_offset"))
    return frames.trade_signals, frames.symbol_day_metrics, frames.intensity_buckets


def _assert_column_equal(udx_values: list[object], ref: pd.Series, name: str) -> None:
    ref_values = ref.astype(object).where(ref.notna(), None).tolist()
    if ref.dtype.kind == "f" or str(ref.dtype) == "Float64":
        got = np.array([np.nan if v is None else v for v in udx_values], dtype=np.float64)
        want = np.array([np.nan if v is None else v for v in ref_values], dtype=np.float64)
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        assert udx_values == ref_values, name


def test_per_trade_output_equals_compute_frames_on_both_sample_days(udx: ModuleType) -> None:
    result = sdk.run_transform(
        udx.BatchMicrostructureLineageFactory, LINEAGE_ARGS, partitions(sample(), lineage=True)
    )
    ref, _, _ = reference()
    assert len(result.rows) == len(ref) == 76_812  # 77,263 prints less 451 outside RTH
    assert set(result.column("reason")) == {None}
    assert set(result.column("kernel_version")) == {KERNEL_VERSION}
    for name in (
        "symbol",
        "timestamp_ns",
        "price",
        "size",
        "date",
        "seq",
        "log_return",
        "lee_mykland_stat",
        "lm_xi",
        "jump_detected",
        "garch_sigma2",
        "standardized_return",
        "bns_stat",
        "conditional_duration",
        "acd_surprise",
        "trade_intensity_zscore",
        "trading_signal",
        "kafka_partition",
        "kafka_offset",
    ):
        _assert_column_equal(result.column(name), ref[name], name)
    # The day has jumps, so the equality covers BUY/SELL rows, not only HOLD.
    assert {"BUY", "SELL"} <= set(result.column("trading_signal"))


def test_metrics_output_equals_compute_frames(udx: ModuleType) -> None:
    result = sdk.run_transform(udx.BatchMicrostructureMetricsFactory, ARGS, partitions(sample()))
    _, ref, _ = reference()
    assert len(result.rows) == len(ref) == 2
    assert result.column("n_rows_left_out") == [0, 0]
    assert result.column("reason") == [None, None]
    for col in SYMBOL_DAY_METRIC_COLUMNS:
        _assert_column_equal(result.column(col.name), ref[col.name], col.name)


def test_intensity_output_equals_compute_frames(udx: ModuleType) -> None:
    result = sdk.run_transform(udx.BatchMicrostructureIntensityFactory, ARGS, partitions(sample()))
    _, _, ref = reference()
    assert len(result.rows) == len(ref) == 2 * 390
    for name in ("symbol", "date", "bucket", "bucket_start_ns", "count", "z"):
        _assert_column_equal(result.column(name), ref[name], name)


def test_the_five_argument_signature_returns_the_original_columns_first(udx: ModuleType) -> None:
    day = sample()[sample()["trade_date"] == "2018-01-03"]
    result = sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, partitions(day))
    assert result.names[:10] == [
        "timestamp_ns",
        "symbol",
        "standardized_return",
        "lee_mykland_stat",
        "bns_stat",
        "trade_intensity_zscore",
        "acd_surprise",
        "conditional_duration",
        "jump_detected",
        "trading_signal",
    ]
    assert "reason" in result.names
    assert "kafka_offset" not in result.names
    assert len(result.rows) == int((reference()[0]["date"] == "2018-01-03").sum())


def test_bad_rows_get_nulls_and_a_reason_and_the_rest_of_the_partition_is_unchanged(
    udx: ModuleType,
) -> None:
    day = sample()[sample()["trade_date"] == "2018-01-02"].iloc[:3000]
    clean = partitions(day)[0]
    bad_rows = [
        (None, "XXX", 157.8, 10, "P"),
        (1514910000000000000, "XXX", None, 10, "P"),
        (1514910000000000001, "XXX", 0.0, 10, "P"),
        (1514910000000000002, "XXX", -1.5, 10, "P"),
        (1514910000000000003, "XXX", float("nan"), 10, "P"),
        (1514910000000000004, "XXX", 157.8, None, "P"),
    ]
    dirty = [*clean[:1000], *bad_rows, *clean[1000:]]
    want = sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, [clean])
    got = sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, [dirty])
    assert len(got.rows) == len(want.rows) + len(bad_rows)
    flagged = [r for r in got.rows if r[got.names.index("reason")] is not None]
    assert [r[got.names.index("reason")] for r in flagged] == [
        "timestamp_ns is NULL",
        "price is NULL",
        "price is 0.0 and must be > 0",
        "price is -1.5 and must be > 0",
        "price is nan and must be finite",
        "size is NULL",
    ]
    stats = ["standardized_return", "lee_mykland_stat", "jump_detected", "trading_signal", "seq"]
    assert all(r[got.names.index(c)] is None for r in flagged for c in stats)
    good = [r for r in got.rows if r[got.names.index("reason")] is None]
    assert good == want.rows
    assert any("6 rows left out" in line for line in got.logs)

    metrics = sdk.run_transform(udx.BatchMicrostructureMetricsFactory, ARGS, [dirty])
    assert metrics.column("n_rows_left_out") == [6]
    assert metrics.column("reason") == ["6 rows left out: timestamp_ns is NULL"]


def test_a_partition_of_only_bad_rows_is_written_with_reasons_instead_of_failing(
    udx: ModuleType,
) -> None:
    rows = [(1514910000000000000 + i, "XXX", -1.0, 1, "P") for i in range(3)]
    result = sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, [rows])
    assert len(result.rows) == 3
    assert set(result.column("reason")) == {"price is -1.0 and must be > 0"}
    metrics = sdk.run_transform(udx.BatchMicrostructureMetricsFactory, ARGS, [rows])
    assert metrics.column("reason") == ["no valid rows in the partition"]
    assert metrics.column("n_trades") == [None]


def test_a_partition_spanning_two_dates_is_refused_row_by_row_with_the_kernels_message(
    udx: ModuleType,
) -> None:
    both = sample().groupby("trade_date").head(400)
    rows = partitions(both.assign(trade_date="one"))[0]
    result = sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, [rows])
    reasons = set(result.column("reason"))
    assert len(reasons) == 1
    assert next(iter(reasons)).startswith("partition refused by the kernels:")


def test_using_parameters_reach_the_kernels(udx: ModuleType) -> None:
    day = partitions(sample()[sample()["trade_date"] == "2018-01-02"])
    default = sdk.run_transform(udx.BatchMicrostructureMetricsFactory, ARGS, day)
    strict = sdk.run_transform(
        udx.BatchMicrostructureMetricsFactory, ARGS, day, params={"alpha": 1e-6, "lm_window": 100}
    )
    assert strict.column("lm_jump_count")[0] != default.column("lm_jump_count")[0]
    with pytest.raises(sdk.StandInError, match="does not declare"):
        sdk.run_transform(udx.BatchMicrostructureMetricsFactory, ARGS, day, params={"k": 1})


def test_the_function_object_is_reused_across_partitions_without_leaking_state(
    udx: ModuleType,
) -> None:
    both = partitions(sample())
    together = sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, both)
    apart = [sdk.run_transform(udx.BatchMicrostructureFactory, ARGS, [p]).rows for p in both]
    assert together.rows == apart[0] + apart[1]


def test_a_call_with_the_wrong_argument_types_matches_no_prototype(udx: ModuleType) -> None:
    with pytest.raises(sdk.StandInError, match="no function matches"):
        sdk.run_transform(
            udx.BatchMicrostructureFactory,
            [sdk.FLOAT, sdk.varchar(16), sdk.FLOAT, sdk.INTEGER, sdk.varchar(4)],
            [[(1.0, "XXX", 1.0, 1, "P")]],
        )


def test_the_udx_runs_with_numba_disabled_as_on_a_bundle_without_numba() -> None:
    """Same numbers from the kernels' plain-Python twins (MICRO_DISABLE_NUMBA=1)."""
    code = (
        "import sys, json\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import udx.kernels as k\n"
        "assert not k.NUMBA_ENABLED\n"
        "from tests.vertica.conftest import load_udx\n"
        "from tests.vertica.test_udx import ARGS, partitions, sample\n"
        "import tests.support.vertica_sdk as sdk\n"
        "day = sample()[sample()['trade_date'] == '2018-01-03'].iloc[:600]\n"
        "r = sdk.run_transform(load_udx().BatchMicrostructureFactory, ARGS, partitions(day))\n"
        "print(json.dumps([r.column('lee_mykland_stat'), r.column('trading_signal')]))\n"
    )
    env = {**os.environ, "MICRO_DISABLE_NUMBA": "1", "MICRO_QUIET": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    import json

    lm, signal = json.loads(out.stdout)
    day = sample()[sample()["trade_date"] == "2018-01-03"].iloc[:600]
    ref = compute_frames(day).trade_signals
    _assert_column_equal(lm, ref["lee_mykland_stat"], "lee_mykland_stat")
    assert signal == ref["trading_signal"].tolist()
