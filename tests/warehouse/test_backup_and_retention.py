"""Backup/restore of the DuckDB warehouse and the retention policy, on real files.

The mid-stream test takes a backup between two microbatches, keeps loading, restores, and
resumes from the restored offset ledger: the end state must equal an uninterrupted load,
with nothing lost or loaded twice. Vertica's side (vbr, DROP_PARTITIONS) needs a server and
is documented in docs/vertica.md; its SQL is checked in tests/vertica/test_sql.py.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipeline.errors import ConfigError, WarehouseError
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse import open_warehouse
from pipeline.warehouse.backup import (
    backup_warehouse,
    describe_backup,
    manifest_path,
    restore_warehouse,
)
from pipeline.warehouse.base import SignalRun
from pipeline.warehouse.retention import RetentionPolicy, apply_retention
from tests.warehouse.factories import as_records, live_outputs, live_records, sample_trades
from tests.warehouse.signal_frames import fake_signal_frames

TOPIC = "polygon-market-data"
DAY1, DAY2 = date(2018, 1, 2), date(2018, 1, 3)


def _records():
    trades = sample_trades(200, day=DAY1) + sample_trades(200, day=DAY2)
    return as_records(trades, topic=TOPIC, partition=0, start=0)


def _load(wh, records, start, stop):
    batch = shape_batch(
        [r for r in records if start <= r.offset < stop], OffsetRange(TOPIC, 0, start, stop)
    )
    return wh.load_batch(batch, expected_start=start, run_id=f"run-{start}")


def _state(path: Path):
    conn = duckdb.connect(str(path), read_only=True)
    try:
        trades = conn.execute(
            "SELECT symbol, timestamp_ns, trade_id, kafka_offset FROM market_data "
            "ORDER BY kafka_offset"
        ).fetchall()
        ledger = conn.execute(
            "SELECT start_offset, stop_offset, n_trades, n_duplicates FROM kafka_offsets ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()
    return trades, ledger


def test_restore_of_a_mid_stream_backup_resumes_from_its_ledger_with_nothing_lost_or_doubled(
    tmp_path: Path,
) -> None:
    records = _records()
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = open_warehouse(url)
    wh.migrate()
    _load(wh, records, 0, 150)
    manifest = backup_warehouse(url, tmp_path / "bk" / "mid.duckdb")
    assert manifest.next_offsets == {f"{TOPIC}:0": 150}
    assert manifest.table_counts["market_data"] == 150
    _load(wh, records, 150, 300)  # work after the backup, lost with the restore

    restore_warehouse(url, tmp_path / "bk" / "mid.duckdb", force=True)
    wh = open_warehouse(url)
    start = wh.next_offset(TOPIC, 0)
    assert start == 150
    _load(wh, records, start, 300)
    _load(wh, records, 300, 400)

    clean_url = f"duckdb:///{tmp_path / 'clean.duckdb'}"
    clean = open_warehouse(clean_url)
    clean.migrate()
    for lo, hi in ((0, 150), (150, 300), (300, 400)):
        _load(clean, records, lo, hi)
    got, want = _state(tmp_path / "wh.duckdb"), _state(tmp_path / "clean.duckdb")
    assert got == want
    assert len(got[0]) == 400
    assert [r[3] for r in got[0]] == list(range(400))


def test_a_backup_waits_for_nothing_but_the_lock_and_never_overwrites(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    open_warehouse(url).migrate()
    dest = tmp_path / "b.duckdb"
    backup_warehouse(url, dest)
    assert describe_backup(dest)["migrations"]
    with pytest.raises(ConfigError, match="exists"):
        backup_warehouse(url, dest)
    with pytest.raises(ConfigError, match="vbr"):
        backup_warehouse("vertica://u@h/db", tmp_path / "v.duckdb")


def test_restore_refuses_an_existing_file_without_force_and_a_tampered_backup(
    tmp_path: Path,
) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = open_warehouse(url)
    wh.migrate()
    _load(wh, _records(), 0, 10)
    dest = tmp_path / "b.duckdb"
    backup_warehouse(url, dest)
    with pytest.raises(ConfigError, match="force"):
        restore_warehouse(url, dest)
    text = manifest_path(dest).read_text().replace('"market_data": 10', '"market_data": 11')
    manifest_path(dest).write_text(text)
    with pytest.raises(WarehouseError, match="does not match"):
        restore_warehouse(url, dest, force=True)


def test_retention_deletes_days_before_the_cutoff_from_raw_and_signal_tables(
    tmp_path: Path,
) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = open_warehouse(url)
    wh.migrate()
    _load(wh, _records(), 0, 400)
    policy = RetentionPolicy(raw_days=1, signal_days=None)
    assert policy.cutoffs(DAY2) == {"market_data": DAY2}
    result = apply_retention(wh, policy, today=DAY2)
    assert result.rows_dropped == {"market_data": 200}
    days = wh.query_frame("trades_per_day", (DAY1, DAY2))
    assert list(days["trade_date"].astype(str)) == ["2018-01-03"]
    assert wh.next_offset(TOPIC, 0) == 400  # the ledger is kept: nothing is reloaded
    assert apply_retention(wh, RetentionPolicy(), today=DAY2).rows_dropped == {}
    with pytest.raises(ConfigError, match="at least 1"):
        RetentionPolicy(raw_days=0)


def test_signal_retention_drops_published_days_from_every_signal_table(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = open_warehouse(url)
    wh.migrate()
    _load(wh, _records(), 0, 400)
    for day in (DAY1, DAY2):
        frames = fake_signal_frames(wh.read_day_trades(day), day)
        run = SignalRun(
            run_id=f"r-{day}", day=day, n_symbols=1, n_trades=len(frames.trade_signals),
            n_buckets=len(frames.intensity_buckets), kernel_version="test", params_json="{}",
            input_offsets_json="{}", content_hash="h", final=True, computed_ns=1,
        )  # fmt: skip
        wh.publish_signals(day, frames, run)
    # The live path's history of both days (issue 17.5): kept as long as the signals.
    start = 0
    for day in (DAY1, DAY2):
        live = live_records(live_outputs(300, day=day, bad_at=None), start=start)
        wh.load_batch(
            shape_batch(live, OffsetRange("trading-signals", 0, start, start + len(live))),
            expected_start=start,
            run_id=f"live-{day}",
        )
        start += len(live)
    n_live = wh.table_counts()["live_signals"]
    result = apply_retention(wh, RetentionPolicy(signal_days=1), today=DAY2)
    assert set(result.rows_dropped) == {
        "trading_signals", "symbol_day_metrics", "trade_intensity", "signal_runs", "live_signals"
    }  # fmt: skip
    assert 0 < result.rows_dropped["live_signals"] < n_live
    assert result.rows_dropped["signal_runs"] == 1
    assert result.rows_dropped["trading_signals"] > 0
    counts = wh.table_counts()
    assert counts["market_data"] == 400
    assert counts["signal_runs"] == 1
