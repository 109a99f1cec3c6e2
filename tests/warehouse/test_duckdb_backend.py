"""The DuckDB warehouse on real files: exactly-once loads, dedup, locks, signal publishing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.errors import (
    ConfigError,
    DataError,
    OffsetConflict,
    WarehouseError,
    WarehouseLockedError,
)
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import REJECT_COLUMNS, TRADE_COLUMNS, shape_batch
from pipeline.warehouse import open_warehouse
from pipeline.warehouse.base import QualityResultRow, QualityVerdict, SignalRun
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from pipeline.warehouse.finality import PartitionEnd
from tests.warehouse.factories import as_records, sample_trades
from tests.warehouse.signal_frames import fake_signal_frames

TOPIC = "polygon-market-data"
DAY1 = date(2018, 1, 2)


class InjectedCrash(RuntimeError):
    pass


@pytest.fixture
def wh(duckdb_file: Path) -> DuckDBWarehouse:
    w = open_warehouse(f"duckdb:///{duckdb_file}")
    assert isinstance(w, DuckDBWarehouse)
    w.migrate()
    return w


def _batch(trades, start=0, partition=0, stop=None):
    records = as_records(trades, partition=partition, start=start)
    return shape_batch(
        records,
        OffsetRange(TOPIC, partition, start, stop if stop is not None else start + len(records)),
    )


def _rows(path: Path, sql: str):
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_market_data_and_rejects_tables_have_the_microbatch_columns(wh, duckdb_file):
    def columns(table):
        return tuple(
            r[0]
            for r in _rows(
                duckdb_file,
                f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' "
                "ORDER BY ordinal_position",
            )
        )

    def without_loaded_ns(cols):
        assert "loaded_ns" in cols
        return tuple(c for c in cols if c != "loaded_ns")

    assert without_loaded_ns(columns("market_data")) == TRADE_COLUMNS
    assert without_loaded_ns(columns("market_data_rejects")) == REJECT_COLUMNS


def test_a_loaded_batch_moves_the_ledger_and_stores_every_trade_once(wh, duckdb_file):
    trades = sample_trades(1000)
    result = wh.load_batch(_batch(trades), expected_start=0, run_id="run-1")

    assert result.n_trades == 1000
    assert wh.next_offset(TOPIC, 0) == 1000
    assert wh.next_offset(TOPIC, 1) is None
    assert wh.next_offsets(TOPIC) == {0: 1000}
    assert _rows(duckdb_file, "SELECT count(*), count(DISTINCT trade_id) FROM market_data") == [
        (1000, 1000)
    ]
    [ledger] = _rows(
        duckdb_file,
        "SELECT start_offset, stop_offset, n_messages, n_trades, run_id, min_timestamp_ns, "
        "max_timestamp_ns, quality_passed FROM kafka_offsets",
    )
    assert ledger == (
        0,
        1000,
        1000,
        1000,
        "run-1",
        trades[0].sip_timestamp_ns,
        trades[-1].sip_timestamp_ns,
        None,
    )
    assert wh.ledger_frontier().partitions[(TOPIC, 0)] == PartitionEnd(
        1000, trades[-1].sip_timestamp_ns
    )
    [progress] = wh.partition_progress(TOPIC)
    assert (progress.next_offset, progress.n_batches, progress.n_trades) == (1000, 1, 1000)


def test_the_dedup_of_a_batch_reads_only_its_own_days_not_all_history(wh, duckdb_file, tmp_path):
    """A load's cost must not grow with history: the anti-join scans the batch's days only.

    400,000 stored rows of another day fill several row groups; the insert of a batch of
    2018-01-03 is profiled (DuckDB's JSON profile counts the row groups each scan read).
    """
    import json

    import pyarrow as pa

    from pipeline.warehouse import queries as q

    batch = _batch(sample_trades(50, day=date(2018, 1, 3)))
    con = duckdb.connect(str(duckdb_file))
    try:
        con.execute(
            "INSERT INTO market_data SELECT 'XXX', i, 1.0, 1, 1, CAST(i AS VARCHAR), 0, 1, '', i, "
            "NULL, DATE '2018-01-02', true, 0, 'ws', NULL, NULL, 0, 'polygon-market-data', 0, i "
            "FROM range(400000) r(i)"
        )
        # A few rows of the batch's own day, after them (as time goes on, in the last row group).
        con.execute(
            "INSERT INTO market_data SELECT 'XXX', i, 1.0, 1, 1, 'old-' || i, 0, 1, '', i, NULL, "
            "DATE '2018-01-03', true, 0, 'ws', NULL, NULL, 0, 'polygon-market-data', 0, "
            "400000 + i FROM range(10) r(i)"
        )
        con.register(q.BATCH_TRADES, pa.Table.from_pandas(batch.trades, preserve_index=False))
        profile = tmp_path / "profile.json"
        con.execute("PRAGMA enable_profiling='json'")
        con.execute(f"PRAGMA profiling_output='{profile}'")
        con.execute(q.INSERT_TRADES, [0, date(2018, 1, 3), date(2018, 1, 3)])
    finally:
        con.close()
    scans: list[dict] = []

    def walk(node: dict) -> None:
        if node.get("name") == "SEQ_SCAN" and "market_data" in str(node.get("extra_info")):
            scans.append(node)
        for child in node.get("children", []):
            walk(child)

    for op in json.loads(profile.read_text())["operator"]:
        walk(op)
    (scan,) = scans
    assert scan["total_row_groups_to_scan"] >= 4
    assert scan["row_groups_scanned"] <= 1
    assert scan["rows_scanned"] < 1000


def test_a_trade_already_stored_by_an_earlier_batch_is_counted_not_stored_again(wh, duckdb_file):
    trades = sample_trades(200)
    wh.load_batch(_batch(trades[:150]), expected_start=0, run_id="live")
    # The same prints arrive again (e.g. a REST backfill) together with new ones.
    result = wh.load_batch(_batch(trades[100:], start=150), expected_start=150, run_id="backfill")

    assert result.n_trades == 50
    assert result.n_duplicates == 50
    assert _rows(duckdb_file, "SELECT count(*) FROM market_data") == [(200,)]
    assert wh.query_frame("duplicate_trade_keys").empty


def test_a_second_loader_of_the_same_range_fails_and_changes_nothing(wh, duckdb_file):
    batch = _batch(sample_trades(100))
    wh.load_batch(batch, expected_start=0, run_id="first")
    before = wh.table_counts()

    with pytest.raises(OffsetConflict):
        wh.load_batch(batch, expected_start=0, run_id="second")

    assert wh.table_counts() == before
    assert _rows(duckdb_file, "SELECT run_id FROM kafka_offsets") == [("first",)]


def test_two_loaders_racing_on_one_range_commit_exactly_once(duckdb_file):
    """Loader A reads the ledger, then B commits the same range before A commits: A rolls back."""
    batch = _batch(sample_trades(100))
    b = DuckDBWarehouse(duckdb_file)
    b.migrate()
    outcome: dict[str, object] = {}

    def race(step: str) -> None:
        if step == "before_commit" and "b" not in outcome:
            outcome["b"] = b.load_batch(batch, expected_start=0, run_id="loader-b")

    a = DuckDBWarehouse(duckdb_file, fault_hook=race)
    with pytest.raises(OffsetConflict):
        a.load_batch(batch, expected_start=0, run_id="loader-a")

    assert _rows(duckdb_file, "SELECT run_id FROM kafka_offsets") == [("loader-b",)]
    assert _rows(duckdb_file, "SELECT count(*) FROM market_data") == [(100,)]


def test_a_crash_before_commit_leaves_nothing_and_the_same_range_loads_again(duckdb_file):
    batch = _batch(sample_trades(100))

    def crash(step: str) -> None:
        if step == "before_commit":
            raise InjectedCrash(step)

    crashing = DuckDBWarehouse(duckdb_file, fault_hook=crash)
    crashing.migrate()
    with pytest.raises(InjectedCrash):
        crashing.load_batch(batch, expected_start=0, run_id="crashed")

    wh = DuckDBWarehouse(duckdb_file)
    assert wh.next_offset(TOPIC, 0) is None
    assert wh.table_counts()["market_data"] == 0
    wh.load_batch(batch, expected_start=0, run_id="rerun")
    assert wh.table_counts()["market_data"] == 100


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pipeline.kafka.offsets import OffsetRange
    from pipeline.microbatch import shape_batch
    from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
    from tests.warehouse.factories import as_records, sample_trades

    def die(step):
        if step == sys.argv[2]:
            os.kill(os.getpid(), signal.SIGKILL)

    records = as_records(sample_trades(300))
    batch = shape_batch(records, OffsetRange("polygon-market-data", 0, 0, 300))
    wh = DuckDBWarehouse(sys.argv[1], fault_hook=die)
    wh.load_batch(batch, expected_start=0, run_id="killed")
    """
)


@pytest.mark.parametrize(("step", "committed"), [("before_commit", False), ("after_commit", True)])
def test_kill_9_of_the_loading_process_never_half_loads_a_batch(wh, duckdb_file, step, committed):
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, str(duckdb_file), step],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()

    # The lock died with the process; the file holds all of the batch or none of it.
    counts = wh.table_counts()
    assert counts["market_data"] == (300 if committed else 0)
    assert counts["kafka_offsets"] == (1 if committed else 0)
    assert wh.next_offset(TOPIC, 0) == (300 if committed else None)


def test_rejects_gaps_and_quality_rows_commit_with_the_batch(wh, duckdb_file):
    from dataclasses import replace

    from pipeline.events import Gap

    good = sample_trades(5)
    events = [
        *good,
        replace(good[0], trade_id="neg", price=-1.0),
        Gap("T.XXX", 1, 2, "reconnect", 3),
    ]
    verdict = QualityVerdict(
        passed=False,
        summary_json='{"failed": ["price_positive"]}',
        results=[
            QualityResultRow("ingest", f"{TOPIC}:0:[0,7)", "price_positive", False, '{"n": 1}')
        ],
    )
    wh.load_batch(_batch(events), expected_start=0, run_id="r", quality=verdict)

    counts = wh.table_counts()
    assert (counts["market_data"], counts["market_data_rejects"], counts["feed_gaps"]) == (5, 1, 1)
    assert counts["quality_results"] == 1
    assert _rows(
        duckdb_file, "SELECT n_rejects, n_gaps, quality_passed, quality_summary FROM kafka_offsets"
    ) == [(1, 1, False, '{"failed": ["price_positive"]}')]
    assert wh.query_frame("quality_results", (None, None, 10))["expectation"].tolist() == [
        "price_positive"
    ]


def test_a_batch_not_starting_where_the_ledger_ends_is_refused(wh):
    wh.load_batch(_batch(sample_trades(10)), expected_start=0, run_id="a")

    with pytest.raises(OffsetConflict, match="ends at 10"):
        wh.load_batch(
            _batch(sample_trades(10, start_row=10), start=5), expected_start=5, run_id="b"
        )
    with pytest.raises(OffsetConflict, match="expected offset"):
        wh.load_batch(
            _batch(sample_trades(10, start_row=10), start=10), expected_start=11, run_id="c"
        )


def test_day_trades_come_back_in_stable_order_and_regular_hours_only(wh):
    trades = sample_trades(day=DAY1)
    wh.load_batch(_batch(trades), expected_start=0, run_id="r")

    rth = wh.read_day_trades(DAY1)
    every = wh.read_day_trades(DAY1, regular_hours_only=False)

    assert len(every) == len(trades)
    assert 0 < len(rth) < len(every)
    assert rth["timestamp_ns"].is_monotonic_increasing
    assert {"symbol", "timestamp_ns", "price", "size", "kafka_partition", "kafka_offset"} <= set(
        rth.columns
    )
    assert wh.read_day_trades(date(2018, 1, 4)).empty


def _run(run_id: str, n_trades: int, day: date = DAY1, computed_ns: int = 1) -> SignalRun:
    return SignalRun(
        run_id=run_id,
        day=day,
        n_symbols=1,
        n_trades=n_trades,
        n_buckets=390,
        kernel_version="test",
        params_json='{"K": 270}',
        input_offsets_json='{"0": [0, 10]}',
        content_hash="abc",
        final=False,
        computed_ns=computed_ns,
        symbol_input_offsets={"XXX": '{"0": [0, 10]}'},
    )


def test_publishing_a_day_twice_replaces_it_and_keeps_both_run_rows(wh, duckdb_file):
    trades = sample_trades(day=DAY1)
    wh.load_batch(_batch(trades), expected_start=0, run_id="r")
    frames = fake_signal_frames(wh.read_day_trades(DAY1), DAY1)

    first = wh.publish_signals(DAY1, frames, _run("run-a", len(frames.trade_signals)))
    second = wh.publish_signals(
        DAY1, frames, _run("run-b", len(frames.trade_signals), computed_ns=2)
    )

    assert first.n_trade_signals == second.n_trade_signals == len(frames.trade_signals) > 0
    assert (
        second.n_replaced == first.n_trade_signals + first.n_symbol_days + first.n_intensity_buckets
    )
    assert _rows(duckdb_file, "SELECT DISTINCT run_id FROM trading_signals") == [("run-b",)]
    assert _rows(duckdb_file, "SELECT count(*) FROM signal_runs") == [(2,)]
    assert _rows(duckdb_file, "SELECT input_offsets, params FROM symbol_day_metrics") == [
        ('{"0": [0, 10]}', '{"K": 270}')
    ]
    latest = wh.query_frame("signal_runs_latest", (DAY1, DAY1))
    assert latest["run_id"].tolist() == ["run-b"]
    # The view joins each regular-hours trade with its signal.
    assert _rows(
        duckdb_file, "SELECT count(*) FROM enriched_market_data WHERE trading_signal IS NOT NULL"
    ) == [(len(frames.trade_signals),)]
    assert len(trades) > len(frames.trade_signals)


def test_a_frame_of_another_day_or_without_contract_columns_publishes_nothing(wh):
    wh.load_batch(_batch(sample_trades(day=DAY1)), expected_start=0, run_id="r")
    frames = fake_signal_frames(wh.read_day_trades(DAY1), DAY1)

    with pytest.raises(DataError, match="not 2018-01-03"):
        wh.publish_signals(date(2018, 1, 3), frames, _run("x", 1, date(2018, 1, 3)))
    broken = frames.__class__(
        frames.trade_signals.drop(columns=["trading_signal"]),
        frames.symbol_day_metrics,
        frames.intensity_buckets,
    )
    with pytest.raises(DataError, match="trading_signal"):
        wh.publish_signals(DAY1, broken, _run("y", 1))
    assert wh.table_counts()["signal_runs"] == 0


_HOLD_SCRIPT = textwrap.dedent(
    """
    import sys, duckdb
    conn = duckdb.connect(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.read()
    conn.close()
    """
)


def test_a_file_held_by_another_writer_fails_clearly_after_the_lock_timeout(wh, duckdb_file):
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD_SCRIPT, str(duckdb_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "holding"
            blocked = DuckDBWarehouse(duckdb_file, lock_timeout_s=0.3)
            with pytest.raises(WarehouseLockedError, match="locked by another process"):
                blocked.next_offset(TOPIC, 0)
            with pytest.raises(WarehouseLockedError):
                DuckDBWarehouse(duckdb_file, read_only=True, lock_timeout_s=0.3).table_counts()
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
    # Released: both a writer and a reader get in again.
    assert DuckDBWarehouse(duckdb_file, lock_timeout_s=0.3).next_offset(TOPIC, 0) is None


_GRAB_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import duckdb

    sys.stdin.readline()
    conn = duckdb.connect(sys.argv[1], read_only=True)
    print("holding", flush=True)
    time.sleep(0.3)
    conn.close()
    """
)


def test_a_reader_that_gets_in_before_duckdb_locks_the_file_is_waited_out(
    wh, duckdb_file, monkeypatch
):
    """DuckDB opens and closes the file twice before it locks it, and closing any descriptor
    drops every POSIX lock of the process, the wait's own included: a reader polling for the
    file (the serving materializer) can attach in that moment. The writer must then wait for
    it like for any reader, not fail (this crashed a full-speed loader in bench serve)."""
    from pipeline.warehouse import duckdb_backend

    real = duckdb_backend._FILE_LOCKS.acquire
    grabbed: list[bool] = []
    with subprocess.Popen(
        [sys.executable, "-c", _GRAB_SCRIPT, str(duckdb_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as grabber:
        assert grabber.stdin is not None
        assert grabber.stdout is not None

        def acquire(path: Path, *, exclusive: bool, timeout_s: float) -> None:
            real(path, exclusive=exclusive, timeout_s=timeout_s)
            if not grabbed:
                grabbed.append(True)
                os.close(os.open(path, os.O_RDONLY))  # what DuckDB's connect does first
                grabber.stdin.write("go\n")  # type: ignore[union-attr]
                grabber.stdin.flush()  # type: ignore[union-attr]
                assert grabber.stdout.readline().strip() == "holding"  # type: ignore[union-attr]

        monkeypatch.setattr(duckdb_backend._FILE_LOCKS, "acquire", acquire)
        writer = DuckDBWarehouse(duckdb_file, lock_timeout_s=10)
        loaded = writer.load_batch(_batch(sample_trades(5)), expected_start=0, run_id="r")
        grabber.wait(timeout=30)
    assert grabbed
    assert loaded.n_trades == 5


def test_a_read_only_warehouse_reads_between_writes_and_cannot_write(wh, duckdb_file):
    wh.load_batch(_batch(sample_trades(10)), expected_start=0, run_id="r")
    reader = open_warehouse(f"duckdb:///{duckdb_file}", read_only=True)

    assert reader.table_counts()["market_data"] == 10
    assert [m.version for m in reader.applied_migrations()][:2] == ["0001", "0002"]
    with pytest.raises(WarehouseError):
        reader.load_batch(
            _batch(sample_trades(1, start_row=10), start=10), expected_start=10, run_id="x"
        )


def test_a_read_only_warehouse_on_a_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(WarehouseError, match="warehouse migrate"):
        open_warehouse(f"duckdb:///{tmp_path / 'absent.duckdb'}", read_only=True).table_counts()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("vertica://dbadmin@localhost:5433/vmart?tlsmode=bogus", "TLSMODE"),
        ("postgres://localhost/db", "unknown scheme"),
        ("duckdb:///:memory:", "must name a file"),
    ],
)
def test_open_warehouse_refuses_what_it_cannot_open(url, message):
    with pytest.raises(ConfigError, match=message):
        open_warehouse(url)


def test_named_reads_exist_and_unknown_names_fail(wh):
    assert wh.query_frame("trades_per_day", (DAY1, DAY1)).empty
    with pytest.raises(WarehouseError, match="no named read"):
        wh.query_frame("drop_everything")
    assert isinstance(wh.query_frame("rejects_by_reason", (5,)), pd.DataFrame)


@pytest.mark.parametrize("first", ["ws", "rest"])
def test_the_first_committed_copy_of_a_print_is_stored_whatever_its_precision(
    wh, duckdb_file, first
):
    """Issue 14.11, the policy: a print that arrives live (WebSocket, ms) and from REST (ns)
    is stored once, as the copy committed first, and ``source`` says which (hence the time's
    precision). The later copy is counted as a duplicate and changes nothing: no stored row,
    and so no computed day, changes under a reader because a finer copy came later."""
    from dataclasses import replace

    base = sample_trades(1)[0]
    ms = base.sip_timestamp_ns // 1_000_000 * 1_000_000
    ws = replace(base, sip_timestamp_ns=ms, source="ws")
    rest = replace(base, sip_timestamp_ns=ms + 123_456, source="rest")
    a, b = (ws, rest) if first == "ws" else (rest, ws)
    wh.load_batch(_batch([a]), expected_start=0, run_id="one")
    result = wh.load_batch(_batch([b], start=1), expected_start=1, run_id="two")
    assert (result.n_trades, result.n_duplicates) == (0, 1)
    stored = _rows(duckdb_file, "SELECT timestamp_ns, source FROM market_data")
    assert stored == [(a.sip_timestamp_ns, a.source)]
