"""``compute_frames``: contract columns, partitions, passthrough, rejects, invariances."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import DataError
from pipeline.signals.assemble import (
    INTENSITY_BUCKET_NAMES,
    SYMBOL_DAY_METRIC_NAMES,
    TRADE_SIGNAL_NAMES,
    compute_frames,
)
from tests.signals.conftest import sample, sample_frames
from tests.udx.conftest import KERNEL_PROPERTIES
from udx.kernels import local_date, symbol_day

CONTRACT_TRADES = [
    "symbol", "timestamp_ns", "price", "size", "date", "log_return", "lee_mykland_stat",
    "lm_xi", "jump_detected", "garch_sigma2", "standardized_return", "bns_stat",
    "conditional_duration", "acd_surprise", "trade_intensity_zscore", "trading_signal",
]  # fmt: skip
CONTRACT_METRICS = [
    "symbol", "date", "n_trades", "n_returns", "first_timestamp_ns", "last_timestamp_ns",
    "vwap", "bns_m", "bns_rv", "bns_bv", "bns_tq", "bns_qq", "bns_rj", "bns_z", "bns_p_value",
    "bns_jump", "garch_omega", "garch_alpha", "garch_beta", "garch_loglik", "garch_scale",
    "garch_converged", "acd_exp_omega", "acd_exp_alpha", "acd_exp_beta", "acd_exp_loglik",
    "acd_weibull_omega", "acd_weibull_alpha", "acd_weibull_beta", "acd_weibull_gamma",
    "acd_weibull_loglik", "acd_exp_at_boundary", "acd_weibull_at_boundary", "lm_jump_count",
    "notes",
]  # fmt: skip
CONTRACT_BUCKETS = ["symbol", "date", "bucket", "bucket_start_ns", "count", "z"]


def test_frames_have_exactly_the_contract_columns_in_order() -> None:
    f = sample_frames()
    assert list(f.trade_signals.columns) == CONTRACT_TRADES == TRADE_SIGNAL_NAMES
    assert list(f.symbol_day_metrics.columns) == CONTRACT_METRICS == SYMBOL_DAY_METRIC_NAMES
    assert list(f.intensity_buckets.columns) == CONTRACT_BUCKETS == INTENSITY_BUCKET_NAMES
    assert str(f.trade_signals["log_return"].dtype) == "Float64"
    assert str(f.trade_signals["jump_detected"].dtype) == "bool"
    assert f.trade_signals["log_return"].isna().to_numpy().sum() == 2  # first print of each day
    assert str(f.symbol_day_metrics["garch_converged"].dtype) == "boolean"


def test_both_sample_days_are_computed_as_separate_partitions() -> None:
    f = sample_frames()
    m = f.symbol_day_metrics
    assert m["date"].tolist() == ["2018-01-02", "2018-01-03"]
    assert m["n_trades"].tolist() == [39_195, 37_617]
    assert m["lm_jump_count"].tolist() == [232, 169]
    assert len(f.trade_signals) == 39_195 + 37_617
    assert len(f.intensity_buckets) == 780
    assert f.rejects.empty
    # Each partition restarts: no overnight return, LM window restarts.
    day2 = f.trade_signals[f.trade_signals["date"] == "2018-01-03"]
    assert pd.isna(day2["log_return"].iloc[0])
    assert day2["lee_mykland_stat"].iloc[:270].isna().all()


def test_frames_equal_symbol_day_on_each_partition() -> None:
    f = sample_frames()
    df = sample()
    for date in ("2018-01-02", "2018-01-03"):
        rows = df[[local_date(int(t)) == date for t in df["timestamp_ns"]]]
        res = symbol_day(rows["timestamp_ns"], rows["price"], rows["size"])
        got = f.trade_signals[f.trade_signals["date"] == date]
        for col in ("log_return", "lee_mykland_stat", "garch_sigma2", "acd_surprise", "bns_stat"):
            np.testing.assert_array_equal(
                got[col].to_numpy(dtype=float, na_value=np.nan), res.trades[col]
            )
        np.testing.assert_array_equal(
            got["trading_signal"].to_numpy(), res.trades["trading_signal"]
        )
        m = f.symbol_day_metrics.set_index("date").loc[date]
        for key, value in res.metrics.items():
            if key == "date":
                continue
            got_value = m[key]
            if value is None:
                assert pd.isna(got_value), key
            elif isinstance(value, float):
                assert math.isclose(float(got_value), value, rel_tol=0.0), key
            else:
                assert got_value == value, key


def test_passthrough_columns_and_seq_follow_each_print() -> None:
    df = sample().assign(kafka_partition=3, kafka_offset=np.arange(len(sample())) + 1000)
    f = compute_frames(df, passthrough=("kafka_partition", "kafka_offset"))
    ts = f.trade_signals
    assert list(ts.columns) == [*CONTRACT_TRADES, "seq", "kafka_partition", "kafka_offset"]
    src = df.set_index("kafka_offset")
    picked = src.loc[ts["kafka_offset"].to_numpy()]
    np.testing.assert_array_equal(picked["timestamp_ns"].to_numpy(), ts["timestamp_ns"].to_numpy())
    np.testing.assert_array_equal(picked["price"].to_numpy(), ts["price"].to_numpy())
    for _, g in ts.groupby("date"):
        assert g["seq"].tolist() == list(range(len(g)))
    assert "seq" not in sample_frames().trade_signals.columns


def test_invalid_rows_are_rejected_with_reasons_and_counted_in_notes() -> None:
    df = sample().copy()
    df = df.astype({"price": "float64", "symbol": "object"})
    df.loc[5000, "price"] = np.nan
    df.loc[5001, "price"] = -1.0
    df.loc[5002, "size"] = -3
    df.loc[7, "symbol"] = None
    f = compute_frames(df)
    assert f.rejects["row"].tolist() == [7, 5000, 5001, 5002]
    reasons = dict(zip(f.rejects["row"].tolist(), f.rejects["reason"].tolist(), strict=True))
    assert reasons[7] == "symbol null or empty"
    assert reasons[5000] == reasons[5001] == "price null, non-finite or <= 0"
    assert reasons[5002] == "size null, negative or not an integer"
    note = f.symbol_day_metrics.iloc[0]["notes"]
    assert "rejected rows: 3" in note
    assert f.symbol_day_metrics.iloc[0]["n_trades"] == 39_195 - 3


def test_text_columns_with_garbage_are_rejected_row_by_row() -> None:
    df = sample().head(3000).astype(str)
    df.loc[10, "timestamp_ns"] = "not a stamp"
    df.loc[11, "price"] = "abc"
    f = compute_frames(df)
    assert f.rejects["row"].tolist() == [10, 11]
    assert pd.isna(f.rejects["timestamp_ns"].iloc[0])
    # Large integer stamps parsed from text keep full ns precision.
    assert f.trade_signals["timestamp_ns"].iloc[0] == int(sample()["timestamp_ns"].iloc[115])


def test_missing_or_clashing_columns_raise_data_error() -> None:
    with pytest.raises(DataError, match=r"lacks column\(s\) \['size'\]"):
        compute_frames(sample().drop(columns=["size"]))
    with pytest.raises(DataError, match=r"lacks column\(s\) \['kafka_offset'\]"):
        compute_frames(sample(), passthrough=["kafka_offset"])
    with pytest.raises(DataError, match="collide"):
        compute_frames(sample().assign(seq=1), passthrough=["seq"])


def test_an_empty_frame_gives_empty_contract_frames() -> None:
    empty = pd.DataFrame({"timestamp_ns": [], "symbol": [], "price": [], "size": []})
    f = compute_frames(empty, passthrough=())
    assert list(f.trade_signals.columns) == CONTRACT_TRADES
    assert f.trade_signals.empty
    assert list(f.symbol_day_metrics.columns) == CONTRACT_METRICS
    assert f.symbol_day_metrics.empty
    assert f.intensity_buckets.empty
    f = compute_frames(empty.assign(kafka_offset=[]), passthrough=("kafka_offset",))
    assert list(f.trade_signals.columns)[-2:] == ["seq", "kafka_offset"]


def test_progress_is_reported_per_partition() -> None:
    seen: list[tuple[int, int, str, str]] = []
    compute_frames(sample().head(5000), progress=lambda *a: seen.append(a))
    assert seen == [(1, 1, "XXX", "2018-01-02")]


@pytest.mark.property
@KERNEL_PROPERTIES
@given(seed=st.integers(0, 10_000), n_symbols=st.integers(2, 3))
def test_results_do_not_depend_on_symbol_interleaving_or_names(seed: int, n_symbols: int) -> None:
    base = sample().iloc[115:1500]  # regular-hours prints of the first day
    rng = np.random.default_rng(seed)
    names = [f"S{k}" for k in range(n_symbols)]
    frame = pd.concat(
        [base.iloc[k * 100 :].assign(symbol=name) for k, name in enumerate(names)],
        ignore_index=True,
    )
    # Interleave the symbols at random, each keeping its own row order (arrival order).
    labels = frame["symbol"].to_numpy()
    slots = rng.permutation(labels)
    order = np.empty(len(frame), dtype=np.int64)
    for name in names:
        order[slots == name] = np.flatnonzero(labels == name)
    a = compute_frames(frame)
    b = compute_frames(frame.iloc[order])
    pd.testing.assert_frame_equal(a.trade_signals, b.trade_signals)
    pd.testing.assert_frame_equal(a.symbol_day_metrics, b.symbol_day_metrics)
    pd.testing.assert_frame_equal(a.intensity_buckets, b.intensity_buckets)
    # Renaming symbols permutes the partitions and nothing else.
    rename = dict(zip(names, rng.permutation(names), strict=True))
    c = compute_frames(frame.assign(symbol=[rename[s] for s in frame["symbol"].tolist()]))
    for old, new in rename.items():
        x = a.symbol_day_metrics.loc[a.symbol_day_metrics["symbol"] == old]
        y = c.symbol_day_metrics.loc[c.symbol_day_metrics["symbol"] == new]
        pd.testing.assert_frame_equal(
            x.drop(columns="symbol").reset_index(drop=True),
            y.drop(columns="symbol").reset_index(drop=True),
        )
