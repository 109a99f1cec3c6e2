"""The serve benchmark's data: a warehouse written as ingest writes it, and its loader.

A small warehouse (3 symbols x 2 days x 300 trades) is built once for the module; tests
that write copy it first. Its rows are checked against the real load path: the same
records, re-encoded as ``trade.v1`` and loaded by ``load_batch``, give the same rows.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.bench import serve_data as sd
from pipeline.kafka.codec import SCHEMA_TRADE, encode_fields
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import PackedHeaders, RecordColumns, local_time_columns, shape_batch
from pipeline.warehouse import open_warehouse

ROOT = Path(__file__).resolve().parents[2]
N_SYMBOLS, N_DAYS, PER_DAY, BATCH = 3, 2, 300, 200


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> sd.ServeWarehouseFacts:
    path = tmp_path_factory.mktemp("serve") / "warehouse.duckdb"
    return sd.build_serve_warehouse(
        path,
        n_symbols=N_SYMBOLS,
        n_days=N_DAYS,
        batch_records=BATCH,
        max_trades_per_symbol_day=PER_DAY,
    )


def _frame(path: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetch_df()
    finally:
        con.close()


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy()


def _where(frame: pd.DataFrame, mask: Any) -> pd.DataFrame:
    return pd.DataFrame(frame.loc[np.asarray(mask, dtype=bool)])


def _copy(facts: sd.ServeWarehouseFacts, tmp_path: Path) -> Path:
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(facts.path, copy)
    return copy


def test_the_facts_count_what_the_file_holds(small):
    counts = open_warehouse(f"duckdb:///{small.path}", read_only=True).table_counts()
    assert small.symbols == ("XXX", "S01", "S02")
    assert small.days == ("2018-01-02", "2018-01-03")
    assert counts["market_data"] == small.n_trades == N_SYMBOLS * N_DAYS * PER_DAY
    assert counts["trading_signals"] == small.n_signals
    assert counts["kafka_offsets"] == small.n_batches
    assert counts["market_data_rejects"] == small.n_rejects > 0
    assert counts["feed_gaps"] == small.n_gaps == 1
    assert (
        open_warehouse(f"duckdb:///{small.path}", read_only=True)
        .query_frame("duplicate_trade_keys")
        .empty
    )


def test_every_trade_lies_in_exactly_one_ledger_range_of_its_partition(small):
    covered = _frame(
        small.path,
        "SELECT m.kafka_partition, m.kafka_offset, count(l.start_offset) AS n "
        "FROM market_data AS m LEFT JOIN kafka_offsets AS l "
        "ON l.kafka_topic = m.kafka_topic AND l.kafka_partition = m.kafka_partition "
        "AND m.kafka_offset >= l.start_offset AND m.kafka_offset < l.stop_offset GROUP BY ALL",
    )
    assert len(covered) == small.n_trades
    assert set(covered["n"]) == {1}


def _count_in_range(table: str) -> str:
    return (
        f"(SELECT count(*) FROM {table} AS x WHERE x.kafka_partition = l.kafka_partition "
        "AND x.kafka_offset >= l.start_offset AND x.kafka_offset < l.stop_offset)"
    )


def test_ledger_ranges_are_contiguous_from_zero_and_count_their_records(small):
    ledger = _frame(
        small.path, "SELECT * FROM kafka_offsets ORDER BY kafka_partition, start_offset"
    )
    held = _frame(
        small.path,
        "SELECT l.kafka_partition, l.start_offset, "
        f"{_count_in_range('market_data')} AS trades, "
        f"{_count_in_range('market_data_rejects')} AS rejects, "
        f"{_count_in_range('feed_gaps')} AS gaps "
        "FROM kafka_offsets AS l ORDER BY 1, 2",
    )
    parts = _col(ledger, "kafka_partition")
    for p in np.unique(parts):
        mine = _where(ledger, parts == p)
        starts, stops = _col(mine, "start_offset").tolist(), _col(mine, "stop_offset").tolist()
        assert starts == [0, *stops[:-1]]
        assert small.last_offsets[int(p)] == stops[-1]
        assert (np.diff(_col(mine, "committed_ns")) > 0).all()
    # Every offset of a range is one record: a trade, a reject or a gap record.
    n_messages = _col(ledger, "n_messages")
    assert (n_messages == _col(ledger, "stop_offset") - _col(ledger, "start_offset")).all()
    assert (_col(held, "trades") + _col(held, "rejects") + _col(held, "gaps") == n_messages).all()
    assert (_col(held, "trades") == _col(ledger, "n_trades")).all()
    assert (_col(held, "rejects") == _col(ledger, "n_rejects")).all()
    assert set(_col(ledger, "kafka_topic")) == {sd.TOPIC}


def test_trades_of_a_symbol_stay_in_one_partition(small):
    parts = _frame(small.path, "SELECT DISTINCT symbol, kafka_partition FROM market_data")
    assert dict(zip(parts["symbol"], parts["kafka_partition"], strict=True)) == {
        s: sd.partition_of(s) for s in small.symbols
    }


def test_derived_columns_are_the_loaders_local_time_columns(small):
    md = _frame(
        small.path,
        "SELECT timestamp_ns, trade_date, in_regular_hours, ns_from_open FROM market_data",
    )
    want = local_time_columns(md["timestamp_ns"].to_numpy(dtype=np.int64))
    assert (pd.to_datetime(md["trade_date"]).to_numpy() == want["trade_date"].to_numpy()).all()
    assert (md["in_regular_hours"].to_numpy() == want["in_regular_hours"].to_numpy()).all()
    assert (md["ns_from_open"].to_numpy() == want["ns_from_open"].to_numpy()).all()
    assert sorted(str(d.date()) for d in want["trade_date"].unique()) == list(small.days)


def test_each_day_has_a_final_signal_run_and_a_signal_per_regular_hours_trade(small):
    runs = _frame(small.path, "SELECT * FROM signal_runs ORDER BY date")
    assert [str(d.date()) for d in pd.to_datetime(runs["date"])] == list(small.days)
    assert _col(runs, "final").all()
    assert _col(runs, "quality_passed").all()
    unmatched = _frame(
        small.path,
        "SELECT count(*) AS n FROM market_data AS m LEFT JOIN trading_signals AS s "
        "ON s.kafka_partition = m.kafka_partition AND s.kafka_offset = m.kafka_offset "
        "WHERE m.in_regular_hours AND s.kafka_offset IS NULL",
    )
    assert unmatched["n"].iloc[0] == 0
    n_rth = _frame(small.path, "SELECT count(*) AS n FROM market_data WHERE in_regular_hours")
    assert n_rth["n"].iloc[0] == small.n_signals


def test_one_trade_free_batch_fails_its_reject_ratio_gate_with_its_verdict_stored(small):
    failed = _frame(small.path, "SELECT * FROM kafka_offsets WHERE NOT quality_passed")
    assert len(failed) == 1
    assert failed["n_trades"].iloc[0] == 0
    assert failed["n_rejects"].iloc[0] == failed["n_messages"].iloc[0] == 4
    verdicts = _frame(
        small.path,
        "SELECT q.* FROM quality_results AS q JOIN kafka_offsets AS l ON q.run_id = l.run_id "
        "WHERE NOT q.passed",
    )
    assert verdicts["expectation"].tolist() == ["reject_ratio"]
    # Every other batch carries the gates' verdict too, one row per gate.
    per_batch = _frame(
        small.path,
        "SELECT l.run_id, count(q.run_id) AS n FROM kafka_offsets AS l "
        "LEFT JOIN quality_results AS q ON q.run_id = l.run_id GROUP BY ALL",
    )
    assert len(set(_col(per_batch, "n"))) == 1
    assert _col(per_batch, "n")[0] >= 7


def test_the_feed_gap_is_a_window_without_trades_of_its_symbol(small):
    gap = _frame(small.path, "SELECT * FROM feed_gaps").iloc[0]
    symbol = gap["subscription"].removeprefix("T.")
    inside = _frame(
        small.path,
        f"SELECT count(*) AS n FROM market_data WHERE symbol = '{symbol}' "
        f"AND timestamp_ns > {gap['last_before_ns']} AND timestamp_ns < {gap['first_after_ns']}",
    )
    assert inside["n"].iloc[0] == 0
    assert gap["kafka_partition"] == sd.partition_of(gap["subscription"])


def _records_of(rows: pd.DataFrame, partition: int) -> RecordColumns:
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    heads: list[list[tuple[str, bytes | None]]] = []
    for r in rows.to_dict("records"):
        key, value = encode_fields(
            {
                "symbol": r["symbol"],
                "sip_timestamp_ns": int(r["timestamp_ns"]),
                "price": float(r["price"]),
                "size": int(r["size"]),
                "exchange": int(r["exchange"]),
                "trade_id": r["trade_id"],
                "tape": int(r["tape"]),
                "conditions": [int(c) for c in r["conditions"].split(",")]
                if isinstance(r["conditions"], str)
                else [],
                "sequence_number": int(r["sequence_number"]),
                "trf_id": None,
                "trf_timestamp_ns": None,
                "receipt_ns": int(r["receipt_ns"]),
                "source": r["source"],
            }
        )
        keys.append(key)
        values.append(value)
        heads.append([("schema", SCHEMA_TRADE), ("recv_ns", b"%d" % int(r["receipt_ns"]))])
    headers = PackedHeaders()
    headers.extend(heads)
    return RecordColumns(
        topic=sd.TOPIC,
        partition=partition,
        offsets=rows["kafka_offset"].to_numpy(dtype=np.int64),
        keys=keys,
        values=values,
        headers=headers,
        timestamps_ms=(rows["kafka_ts_ns"].to_numpy(dtype=np.int64) // 1_000_000),
    )


def test_stored_trades_equal_what_the_real_load_writes_from_the_same_records(small, tmp_path):
    columns = "* EXCLUDE (loaded_ns)"
    stored = _frame(
        small.path, f"SELECT {columns} FROM market_data ORDER BY kafka_partition, kafka_offset"
    )
    ledger = _frame(
        small.path, "SELECT * FROM kafka_offsets ORDER BY kafka_partition, start_offset"
    )
    replay = open_warehouse(f"duckdb:///{tmp_path / 'replay.duckdb'}")
    replay.migrate()
    parts, offsets = _col(stored, "kafka_partition"), _col(stored, "kafka_offset")
    for r in ledger.to_dict("records"):
        p, start, stop = int(r["kafka_partition"]), int(r["start_offset"]), int(r["stop_offset"])
        rows = _where(stored, (parts == p) & (offsets >= start) & (offsets < stop))
        rng = OffsetRange(sd.TOPIC, p, start, stop)
        batch = shape_batch(_records_of(rows, p), rng)
        loaded = replay.load_batch(batch, expected_start=start, run_id="replay")
        assert loaded.n_trades == r["n_trades"]
    again = _frame(
        tmp_path / "replay.duckdb",
        f"SELECT {columns} FROM market_data ORDER BY kafka_partition, kafka_offset",
    )
    pd.testing.assert_frame_equal(again, stored)


def test_every_symbol_day_of_the_full_size_has_forty_thousand_trades_gap_or_not():
    sessions = sd.trading_sessions(20)
    for k, session in enumerate(sessions[:2]):
        s = sd._sample_days()[k % 2]
        start = sd._midnight_ns(session) + 11 * 3600 * 10**9
        gap = sd._Gap(day_index=k, symbol_index=1, start_ns=start, end_ns=start + 40 * 10**9)
        _, t = sd._day_trades(k, session, sd.symbol_names(4), 7, sd.TRADES_PER_SYMBOL_DAY, gap)
        assert np.bincount(t.code).tolist() == [sd.TRADES_PER_SYMBOL_DAY] * 4
        assert len(s.ts) < sd.TRADES_PER_SYMBOL_DAY
        in_gap = (t.code == 1) & (t.ts >= gap.start_ns) & (t.ts <= gap.end_ns)
        assert not in_gap.any()
    assert len(sessions) == 20
    assert sessions[-1].isoformat() == "2018-01-30"
    assert 25 * len(sessions) * sd.TRADES_PER_SYMBOL_DAY >= 20_000_000


def test_the_cache_builds_once_and_then_reuses_the_file(tmp_path, monkeypatch):
    # A relative cache directory, as the benchmark passes it (var/bench/serve).
    monkeypatch.chdir(tmp_path)
    cache_dir = Path("cache")
    lines: list[str] = []
    first = sd.cached_serve_warehouse(
        cache_dir, n_days=1, n_symbols=2, max_trades_per_symbol_day=100, progress=lines.append
    )
    built = len(lines)
    inode = first.path.stat().st_ino
    second = sd.cached_serve_warehouse(
        cache_dir, n_days=1, n_symbols=2, max_trades_per_symbol_day=100, progress=lines.append
    )
    assert built == 1
    assert len(lines) == 1
    assert second == first
    assert second.path.stat().st_ino == inode
    assert first.path == tmp_path / "cache" / f"warehouse-2x1-t100-v{sd.FIXTURE_VERSION}.duckdb"
    assert sd.read_facts(first.path) == first
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        first.path.name,
        f"{first.path.name}.facts.json",
        f"{first.path.name}.lock",
    ]


def _check_loaded(path: Path, facts: sd.ServeWarehouseFacts, report: sd.LoaderReport) -> None:
    ledger = _frame(path, "SELECT * FROM kafka_offsets ORDER BY kafka_partition, start_offset")
    parts = _col(ledger, "kafka_partition")
    for p in np.unique(parts):
        mine = _where(ledger, parts == p)
        assert _col(mine, "start_offset").tolist()[1:] == _col(mine, "stop_offset").tolist()[:-1]
    loaded = {(b.partition, b.start, b.stop) for b in report.batches}
    ours = _where(ledger, [str(r).startswith("bench-serve-loader") for r in _col(ledger, "run_id")])
    ranges = zip(
        _col(ours, "kafka_partition").tolist(),
        _col(ours, "start_offset").tolist(),
        _col(ours, "stop_offset").tolist(),
        strict=True,
    )
    assert set(ranges) == loaded
    assert len(ours) == len(report.batches)
    n = _col(_frame(path, "SELECT count(*) AS n FROM market_data"), "n")[0]
    assert n == facts.n_trades + report.rows
    markers = [b.marker_ts_ns or 0 for b in report.batches]
    assert all(markers)
    assert markers == sorted(set(markers))
    fresh = _frame(
        path,
        "SELECT kafka_offset, timestamp_ns FROM market_data WHERE symbol = 'ZZFRESH' "
        "ORDER BY kafka_offset",
    )
    assert fresh["timestamp_ns"].tolist() == markers
    commits = [b.committed_wall_ns for b in report.batches]
    assert commits == sorted(commits)


def test_prepared_batches_continue_the_ledger_with_a_newest_marker_each(small):
    # 4 x 249 prints of the marker's partition (XXX and S02, 600 a session) span two sessions.
    batches = sd.prepare_batches(small, n_batches=4, batch_records=250)
    part = sd.partition_of(sd.MARKER_SYMBOL)
    assert [(b.range.start, b.range.stop) for b in batches] == [
        (small.last_offsets[part] + 250 * i, small.last_offsets[part] + 250 * (i + 1))
        for i in range(4)
    ]
    last_day = pd.Timestamp(small.days[-1]).to_datetime64()
    days: list[set[np.datetime64]] = []
    for b in batches:
        t = b.trades
        assert b.range.partition == part
        assert b.n_trades == b.n_messages == 250
        assert (_col(t, "kafka_partition") == part).all()
        assert (_col(t, "trade_date") > last_day).all()
        ts = _col(t, "timestamp_ns")
        marker = ts[_col(t, "symbol") == sd.MARKER_SYMBOL]
        assert len(marker) == 1
        assert marker[0] == ts.max()
        days.append(set(_col(t, "trade_date")))
    assert [len(d) for d in days] == [1, 1, 2, 1]
    later = sd.prepare_batches(small, n_batches=1, batch_records=100, day_offset=2)
    assert _col(later[0].trades, "trade_date").min() > max(days[-1])


def test_the_loader_commits_every_batch_once_in_order(small, tmp_path):
    copy = _copy(small, tmp_path)
    batches = sd.prepare_batches(copy, n_batches=5, batch_records=150)
    report = sd.run_loader(copy, batches, out_json=tmp_path / "load.json")
    assert report.n_batches == 5
    assert report.stopped_by == "batches"
    assert report.rows == sum(b.n_trades for b in batches) == 5 * 150
    assert sd.LoaderReport.from_json((tmp_path / "load.json").read_text()) == report
    _check_loaded(copy, small, report)
    # The same batches again: the ledger has moved on, nothing is loaded twice.
    with pytest.raises(ValueError, match="ledger"):
        sd.run_loader(copy, batches, out_json=tmp_path / "again.json")
    # The copy has no facts file: they are read from the file, the loaded sessions included,
    # and batches prepared from it go on where the loader stopped.
    facts = sd.read_facts(copy)
    assert facts.symbols == small.symbols
    assert facts.trades_per_symbol_day == PER_DAY
    assert facts.days[: len(small.days)] == small.days
    assert len(facts.days) > len(small.days)
    assert facts.last_offsets[batches[-1].range.partition] == batches[-1].range.stop
    more = sd.prepare_batches(copy, n_batches=1, batch_records=150)
    assert more[0].range.start == batches[-1].range.stop
    assert sd.run_loader(copy, more, out_json=tmp_path / "more.json").rows == 150


def test_the_loader_entry_point_commits_every_batch_in_its_own_process(small, tmp_path):
    copy = _copy(small, tmp_path)
    batches = sd.prepare_batches(copy, n_batches=3, batch_records=120, day_offset=1)
    sd.save_batches(batches, tmp_path / "batches.pkl")
    out = tmp_path / "load.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.bench.serve_data",
            "load",
            "--warehouse",
            str(copy),
            "--batches",
            str(tmp_path / "batches.pkl"),
            "--duration",
            "60",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = sd.LoaderReport.from_json(out.read_text())
    assert report.n_batches == 3
    assert report.rows == 3 * 120
    _check_loaded(copy, small, report)
