"""pipeline.quality: the GX ingest and signal suites on real sample frames."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest

from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.quality import INGEST_CHECKS, SIGNAL_CHECKS, validate_batch, validate_signals
from tests.warehouse.factories import as_records, sample_trades
from tests.warehouse.signal_frames import fake_signal_frames

TOPIC = "polygon-market-data"


def _batch(events, start=0, stop=None):
    records = as_records(events, start=start)
    return shape_batch(
        records, OffsetRange(TOPIC, 0, start, stop if stop is not None else start + len(records))
    )


@pytest.fixture(scope="module")
def sample_batch():
    return _batch(sample_trades(5_000))


def test_a_clean_sample_batch_passes_every_ingest_gate(sample_batch):
    report = validate_batch(sample_batch, known_symbols={"XXX"})

    assert report.passed
    assert [o.name for o in report.outcomes] == [c.name for c in INGEST_CHECKS]
    assert report.failed == []
    assert report.verdict().passed is True
    assert len(report.verdict().results) == len(INGEST_CHECKS)


def test_the_suites_do_not_hash_the_frame(sample_batch, monkeypatch):
    # GX's batch fingerprint (a hash of every cell, read by nothing) was a third of the
    # ingest suite's time; pipeline.quality turns it off. A GX upgrade that moves the
    # switch fails here instead of slowing every batch.
    from great_expectations.execution_engine import pandas_execution_engine

    def refuse(_frame):
        raise AssertionError("the frame was fingerprinted")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", refuse)
    assert validate_batch(sample_batch, known_symbols={"XXX"}).passed


def test_unknown_symbols_fail_the_gate_with_a_sample_of_the_offenders(sample_batch):
    report = validate_batch(sample_batch, known_symbols={"AAPL", "MSFT"})

    assert not report.passed
    assert report.failed == ["known_symbols"]
    [failing] = next(o for o in report.outcomes if o.name == "known_symbols").observed["failing"]
    assert failing["unexpected_count"] == 5_000
    assert "XXX" in failing["sample"]
    assert json.loads(report.summary_json())["failed"].keys() == {"known_symbols"}


def test_without_a_symbol_list_the_known_symbols_gate_is_skipped(sample_batch):
    outcome = next(o for o in validate_batch(sample_batch).outcomes if o.name == "known_symbols")
    assert outcome.passed
    assert outcome.observed == {"skipped": "no symbol list"}


def test_too_many_rejects_fail_the_batch_and_out_of_window_prints_only_warn():
    good = sample_trades(4)
    overnight = replace(
        good[0], trade_id="night", sip_timestamp_ns=good[0].sip_timestamp_ns - 3 * 3600 * 10**9
    )
    bad = [replace(good[0], trade_id=f"bad{i}", price=0.0) for i in range(6)]
    report = validate_batch(_batch([*good, overnight, *bad]), max_reject_ratio=0.5)

    outcomes = {o.name: o for o in report.outcomes}
    assert not outcomes["reject_ratio"].passed
    assert outcomes["reject_ratio"].observed["n_rejects"] == 6
    # 02:01 New York is outside 04:00-20:00: reported, but only as a warning.
    assert not outcomes["timestamps_in_session_window"].passed
    assert outcomes["timestamps_in_session_window"].severity == "WARN"
    assert report.failed == ["timestamps_in_session_window", "reject_ratio"]
    assert not report.passed


def test_row_count_reconciles_with_records_rejects_and_duplicates():
    trades = sample_trades(10)
    batch = _batch([*trades, trades[2], replace(trades[0], trade_id="x", size=0)], start=5, stop=40)
    outcome = next(o for o in validate_batch(batch).outcomes if o.name == "row_count_reconciles")

    assert outcome.passed
    assert outcome.observed["n_messages"] == 12
    assert outcome.observed["offset_span"] == 35


def test_the_signal_suite_passes_contract_frames_and_catches_what_it_must():
    trades = pd.DataFrame(
        {
            "symbol": ["XXX"] * 5,
            "timestamp_ns": range(5),
            "price": [1.0] * 5,
            "size": [1] * 5,
            "kafka_partition": [0] * 5,
            "kafka_offset": range(5),
        }
    )
    from datetime import date

    frames = fake_signal_frames(trades, date(2018, 1, 2))
    ok = validate_signals(frames, "2018-01-02", n_input_trades=5, n_input_symbols=1, n_buckets=390)
    assert ok.passed
    assert [o.name for o in ok.outcomes] == [c.name for c in SIGNAL_CHECKS]

    bad_ts = frames.trade_signals.copy()
    bad_ts.loc[0, "trading_signal"] = "MAYBE"
    bad_ts.loc[1, "lee_mykland_stat"] = float("inf")
    broken = type(frames)(bad_ts, frames.symbol_day_metrics, frames.intensity_buckets.iloc[:-1])
    report = validate_signals(
        broken,
        "2018-01-02",
        n_input_trades=6,
        n_input_symbols=1,
        n_buckets=390,
        failed_input_batches=["t:0:[0,5)"],
    )
    assert set(report.failed) == {
        "inputs_passed_ingest_checks",
        "one_row_per_trade",
        "signal_values",
        "finite_statistics",
        "full_bucket_grid",
    }
    allowed = validate_signals(
        frames,
        "2018-01-02",
        5,
        1,
        390,
        failed_input_batches=["t:0:[0,5)"],
        allow_failed_inputs=True,
    )
    assert allowed.passed
    assert allowed.failed == ["inputs_passed_ingest_checks"]
