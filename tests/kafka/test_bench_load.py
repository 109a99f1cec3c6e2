"""``bench load`` prints its figures and its baseline is honest (tiny runs; never timed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import orjson
import pytest

from pipeline.bench.load import _naive_throughput, _prepare, _throughput
from pipeline.cli import main

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(300)
def test_bench_load_prints_the_figures_and_the_ratio_to_the_naive_loader(
    kafka_broker: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
    args = ["--trades", "3000", "--max-records", "1000", "--processes", "2"]
    code = main(
        ["bench", "load", "--json", "--rate", "500", "--seconds", "2", "--interval-s", "1", *args]
    )
    # Exit code 0 also means every run, the naive loader's too, committed all 3,000 trades.
    assert code == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out) == [
        "rows_per_s",
        "append_to_commit_p50_s",
        "append_to_commit_p99_s",
        "baseline_rows_per_s",
        "ratio",
    ]
    assert all(isinstance(v, float) and v > 0 for v in out.values())


@pytest.mark.timeout(180)
def test_the_naive_loader_commits_exactly_the_rows_the_loader_commits(
    kafka_broker: str, tmp_path: Path
) -> None:
    args = argparse.Namespace(
        trades=2500, partitions=3, processes=1, max_records=1000, rounds=1, skip_latency=True
    )
    prep = _prepare(kafka_broker, args)
    naive = _naive_throughput(kafka_broker, args, prep["topic"], prep["high"], tmp_path / "n.db")
    loader = _throughput(kafka_broker, args, prep["topic"], prep["high"], tmp_path / "l.db")
    assert naive["rows_committed"] == loader["rows_committed"] == 2500
    # One transaction per batch of at most --max-records offsets, for both.
    assert naive["batches"] == loader["batches"]
    cols = "symbol, {ts}, price, size, exchange, trade_id, kafka_partition, kafka_offset"
    with duckdb.connect(str(tmp_path / "n.db"), read_only=True) as conn:
        naive_rows = conn.execute(
            f"SELECT {cols.format(ts='sip_timestamp_ns')} FROM trades ORDER BY ALL"
        ).fetchall()
    with duckdb.connect(str(tmp_path / "l.db"), read_only=True) as conn:
        loader_rows = conn.execute(
            f"SELECT {cols.format(ts='timestamp_ns')} FROM market_data ORDER BY ALL"
        ).fetchall()
    assert naive_rows == loader_rows
