"""The materializer against real warehouse files: it copies only what changed, holds the file
briefly, publishes only consistent states, and keeps memory and files bounded.

Batches are committed by the real loader (``DuckDBWarehouse.load_batch`` on microbatches
shaped by ``shape_batch`` from encoded records); signals by the real kernels and
``publish_signals``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pipeline import processes
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.nytime import day_bounds_ns
from pipeline.serving.catalog import Catalog, follow_ledger, trade_facts
from pipeline.serving.materialize import Materializer
from pipeline.serving.store import StoreLayout
from pipeline.serving.store_view import StorePort
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.warehouse.factories import as_records, sample_trades

TOPIC = "polygon-market-data"
NY = ZoneInfo("America/New_York")
DAY = date(2018, 1, 3)


def load(path: Path, trades: Sequence, partition: int = 0) -> tuple[int, int]:
    """Commit ``trades`` as one microbatch after the partition's ledger end (the real path)."""
    wh = DuckDBWarehouse(path)
    start = wh.next_offset(TOPIC, partition) or 0
    records = as_records(trades, topic=TOPIC, partition=partition, start=start)
    batch = shape_batch(records, OffsetRange(TOPIC, partition, start, start + len(records)))
    wh.load_batch(batch, expected_start=start, run_id=f"test-{partition}-{start}")
    return start, start + len(records)


def shifted(n: int, days: int, start_row: int = 0, symbol: str = "XXX") -> list:
    """``n`` sample prints moved ``days`` calendar days later (new trades, new ids)."""
    from dataclasses import replace

    return [
        replace(
            t,
            symbol=symbol,
            sip_timestamp_ns=t.sip_timestamp_ns + days * 86_400 * 10**9,
            trade_id=f"{t.trade_id}-{days}",
        )
        for t in sample_trades(n, day=DAY, start_row=start_row)
    ]


def publish(path: Path, day: date, run_id: str, computed_ns: int | None = None) -> None:
    """Compute and publish one day's signals as the signals asset does."""
    from pipeline.signals.assemble import compute_frames
    from pipeline.warehouse.finality import ingested_through
    from pipeline.warehouse.provenance import build_signal_run
    from udx.kernels import KERNEL_VERSION, Params

    wh = DuckDBWarehouse(path)
    day_input = wh.read_day(day)
    trades = day_input.trades
    params = Params()
    frames = compute_frames(trades, params, passthrough=("kafka_partition", "kafka_offset"))
    close = datetime(day.year, day.month, day.day, 16, tzinfo=NY)
    run = build_signal_run(
        run_id=run_id,
        day=day,
        trades=trades,
        frames=frames,
        kernel_version=KERNEL_VERSION,
        params=params.to_dict(),
        computed_ns=time.time_ns() if computed_ns is None else computed_ns,
        session_close_ns=int(close.timestamp()) * 10**9,
        ingested_through_ns=ingested_through(day_input.frontier, TOPIC, None),
        ledger_ends_json=day_input.frontier.ends_json(),
        quality_passed=True,
    )
    wh.publish_signals(day, frames, run)


def settle(m: Materializer) -> list[str]:
    """Step until nothing is left to read; return the outcomes."""
    out = []
    for _ in range(1000):
        r = m.step()
        out.append(r.outcome)
        if r.outcome != "progress":
            return out
    raise AssertionError("the materializer never caught up")


def store_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / "days").rglob("*.arrow")}


def test_a_refresh_copies_only_the_new_batch_and_leaves_the_other_files_alone(
    served_copy: Path, tmp_path: Path
) -> None:
    m = Materializer(served_copy, tmp_path / "store")
    assert settle(m) == ["published"]
    before = store_files(tmp_path / "store")
    rows_before = m.stats.rows
    _start, stop = load(served_copy, shifted(300, days=2))  # a new day, 2018-01-05
    assert settle(m) == ["published"]
    assert m.stats.rows - rows_before == 300, "read exactly the new batch's rows"
    after = store_files(tmp_path / "store")
    assert before <= after, "no earlier file was rewritten"
    new = after - before
    assert len(new) == 1
    assert next(iter(new)).startswith("days/2018-01-05/t")
    cat = StorePort(served_copy, store=tmp_path / "store", materialize="off").view().catalog
    assert cat.ledger[(TOPIC, 0)].next_offset == stop
    assert cat.entry("XXX", date(2018, 1, 5)).n_trades == 300
    m.close()


def test_nothing_is_published_until_a_long_build_has_caught_up(
    served_copy: Path, tmp_path: Path
) -> None:
    small = Materializer(served_copy, tmp_path / "small", max_rows=1500)
    layout = StoreLayout(tmp_path / "small")
    outcomes = []
    for _ in range(100):
        r = small.step()
        outcomes.append(r.outcome)
        if r.outcome != "progress":
            break
        assert layout.current_name() is None, "a partial build is never published"
    assert outcomes[-1] == "published"
    assert outcomes.count("progress") >= 10
    whole = Materializer(served_copy, tmp_path / "whole")
    settle(whole)
    a = StorePort(served_copy, store=tmp_path / "small", materialize="off").view().catalog
    b = StorePort(served_copy, store=tmp_path / "whole", materialize="off").view().catalog
    assert a.symbols == b.symbols
    assert {d: c.entries for d, c in a.days.items()} == {d: c.entries for d, c in b.days.items()}
    assert a.runs == b.runs
    small.close()
    whole.close()


def test_a_restarted_server_answers_at_once_from_its_store_without_rereading_history(
    served_copy: Path, tmp_path: Path
) -> None:
    first = Materializer(served_copy, tmp_path / "store")
    settle(first)
    first.close()
    t0 = time.perf_counter()
    port = StorePort(served_copy, store=tmp_path / "store", materialize="off")
    port.start()
    view = port.view()
    started = time.perf_counter() - t0
    assert view.catalog.symbols["XXX"].n_trades > 0
    assert started < 2.0  # reading manifests; no warehouse access at all
    again = Materializer(served_copy, tmp_path / "store")
    assert settle(again) == ["published"]
    assert again.stats.rows == 0, "nothing is copied twice"
    again.close()
    port.close()


def test_segments_merge_then_seal_and_the_answers_do_not_change(
    served_copy: Path, tmp_path: Path
) -> None:
    m = Materializer(served_copy, tmp_path / "store", seal_after_s=3600, grace_s=0)
    settle(m)
    for i in range(8):  # eight small batches of one new day: eight level-0 segments
        load(served_copy, shifted(50, days=2, start_row=50 * i))
        settle(m)
    port = StorePort(served_copy, store=tmp_path / "store", materialize="off")
    day = date(2018, 1, 5)

    def snapshot() -> tuple:
        v = StorePort(served_copy, store=tmp_path / "store", materialize="off").view()
        page = v.trades_page("XXX", *day_bounds_ns(day), None, 1000)
        return tuple(r["kafka_offset"] for r in page.rows), page.total

    before = snapshot()
    assert before[1] == 400
    merged = 0
    while m.maintain():
        merged += 1
    files = StorePort(served_copy, store=tmp_path / "store", materialize="off")._load()
    assert files is not None
    levels = sorted(s.level for s in files.days[day].trades)
    assert levels == [1, 1], "four of a level became one of the next"
    assert merged == 2
    assert snapshot() == before
    m.seal_after_s = 0
    while m.maintain():
        pass
    files = StorePort(served_copy, store=tmp_path / "store", materialize="off")._load()
    assert files is not None
    assert len(files.days[day].trades) == 1, "a quiet day is one sealed segment"
    assert len(files.days[DAY].trades) == 1
    assert snapshot() == before
    m.maintain()  # grace 0: files no state names are gone
    named = {f for d in files.days.values() for f in d.files()}
    assert store_files(tmp_path / "store") == named
    del port
    m.close()


def test_a_new_signals_run_replaces_the_days_signals_and_nothing_else(
    served_copy: Path, tmp_path: Path
) -> None:
    m = Materializer(served_copy, tmp_path / "store")
    settle(m)
    old = StorePort(served_copy, store=tmp_path / "store", materialize="off").view()
    old_run = old.catalog.run(DAY)
    assert old_run is not None
    trades_before = {d: f.trades for d, f in m._days.items()}
    publish(served_copy, DAY, "rerun-of-the-day")
    rows_before = m.stats.rows
    assert settle(m) == ["published"]
    view = StorePort(served_copy, store=tmp_path / "store", materialize="off").view()
    assert view.catalog.run(DAY).run_id == "rerun-of-the-day"
    assert view.catalog.run(date(2018, 1, 2)) == old.catalog.run(date(2018, 1, 2))
    assert {d: f.trades for d, f in m._days.items()} == trades_before
    n_signals = sum(e.signals.n_rows for e in view.catalog.days[DAY].entries.values() if e.signals)
    assert m.stats.rows - rows_before == n_signals, "read exactly the day's new signal rows"
    assert view.day_signal_rows("XXX", DAY)
    m.close()


def test_two_runs_of_a_day_publish_in_commit_order_and_never_hide_its_signals(
    served_copy: Path, tmp_path: Path
) -> None:
    """Issue 14.2: a run stamped first (it computed, then waited for the file) that commits
    last replaces the other's rows; the day's current run must be that one, or the serving
    side looks for the other run's rows, which are gone, and shows no signals."""
    early = time.time_ns()
    publish(served_copy, DAY, "computed-last-committed-first")
    publish(served_copy, DAY, "computed-first-committed-last", computed_ns=early)
    m = Materializer(served_copy, tmp_path / "store")
    settle(m)
    view = StorePort(served_copy, store=tmp_path / "store", materialize="off").view()
    assert view.catalog.run(DAY).run_id == "computed-first-committed-last"
    assert view.day_signal_rows("XXX", DAY)
    with DuckDBWarehouse(served_copy).connect() as con:
        [(n_current,)] = con.execute(
            "SELECT count(*) FROM trading_signals WHERE date = ? AND run_id = ?",
            [DAY, view.catalog.run(DAY).run_id],
        ).fetchall()
    assert n_current > 0
    m.close()


def test_retention_drops_old_days_trades_and_keeps_their_signals(
    served_copy: Path, tmp_path: Path
) -> None:
    from pipeline.warehouse.retention import RetentionPolicy, apply_retention

    m = Materializer(served_copy, tmp_path / "store", first_day_check_s=0)
    settle(m)
    apply_retention(DuckDBWarehouse(served_copy), RetentionPolicy(raw_days=1), today=DAY)
    settle(m)
    view = StorePort(served_copy, store=tmp_path / "store", materialize="off").view()
    old = date(2018, 1, 2)
    assert view.catalog.symbols["XXX"].days == (DAY,)
    assert (
        view.trades_page("XXX", 0, 2**62, None, 10).total == view.catalog.entry("XXX", DAY).n_trades
    )
    assert view.catalog.run(old) is not None, "signals are kept on their own terms"
    assert view.day_signal_rows("XXX", old)
    m.close()


def test_a_warehouse_replaced_under_the_same_name_is_indexed_again(
    served_copy: Path, tmp_path: Path
) -> None:
    m = Materializer(served_copy, tmp_path / "store")
    settle(m)
    earlier = tmp_path / "earlier.duckdb"
    shutil.copy(served_copy, earlier)
    load(served_copy, shifted(100, days=2))
    settle(m)
    assert m._catalog.entry("XXX", date(2018, 1, 5)) is not None
    # Restore the earlier copy (a backup): a new file whose ledger lacks the last batch.
    os.replace(earlier, served_copy)
    settle(m)
    view = StorePort(served_copy, store=tmp_path / "store", materialize="off").view()
    assert view.catalog.entry("XXX", date(2018, 1, 5)) is None
    assert view.catalog.symbols["XXX"].days == (date(2018, 1, 2), DAY)
    m.close()


def test_a_refresh_asks_for_the_file_without_blocking_and_gives_up_after_its_patience(
    served_copy: Path, tmp_path: Path
) -> None:
    """The materializer never queues on the writer's lock: it asks the kernel without
    blocking, for ``patience_s``, then leaves the writer alone until its next tick."""
    from tests.mcp_server.running import writer

    m = Materializer(served_copy, tmp_path / "store", patience_s=0.1)
    with writer(served_copy):
        t0 = time.perf_counter()
        r = m.step()
        spent = time.perf_counter() - t0
    assert r.outcome == "held"
    assert 0.1 <= spent < 0.5
    assert settle(m) == ["published"]
    m.close()


def test_one_materializer_per_store(served_copy: Path, tmp_path: Path) -> None:
    a = Materializer(served_copy, tmp_path / "store")
    b = Materializer(served_copy, tmp_path / "store")
    assert a.try_lock()
    assert not b.try_lock()
    a.unlock()
    assert b.try_lock()
    a.close()
    b.close()


def _loader_process(path: str, out: str) -> None:
    """Commit 40 batches on two partitions, recording when each began and returned."""
    import json

    rows = []
    for i in range(40):
        part = i % 2
        trades = shifted(60, days=3 + i // 20, start_row=60 * (i % 20), symbol=f"L{part}")
        began = time.time_ns()
        _start, stop = load(Path(path), trades, part)
        rows.append([began, time.time_ns(), part, stop])
    Path(out).write_text(json.dumps(rows))


def test_every_published_state_is_the_warehouse_at_its_as_of_while_a_loader_commits(
    served_copy: Path, tmp_path: Path
) -> None:
    """States published during loading hold exactly the batches committed before their as-of.

    The loader is another process, as in production (DuckDB admits one writing process).
    """
    import json
    import multiprocessing

    m = Materializer(served_copy, tmp_path / "store", retry_s=0.005)
    settle(m)
    layout = StoreLayout(tmp_path / "store")
    states = []
    out = tmp_path / "loads.json"
    proc = multiprocessing.get_context("spawn").Process(
        target=_loader_process, args=(str(served_copy), str(out))
    )
    proc.start()
    while proc.is_alive():
        if m.step().outcome == "published":
            v = StorePort(served_copy, store=layout.root, materialize="off").view()
            states.append((v.as_of_ns, v.catalog.ledger_through()))
    proc.join()
    assert proc.exitcode == 0
    settle(m)
    loads = json.loads(out.read_text())
    assert len(states) >= 3
    for as_of, through in states:
        for began, returned, part, stop in loads:
            if returned < as_of:  # committed before the as-of: in the state
                assert through[f"{TOPIC}:{part}"] >= stop
            if began > as_of:  # not begun at the as-of: not in the state
                assert through.get(f"{TOPIC}:{part}", 0) < stop
    final = StorePort(served_copy, store=layout.root, materialize="off").view()
    assert final.catalog.symbols["L0"].n_trades + final.catalog.symbols["L1"].n_trades == 2400
    m.close()


def test_follow_ledger_rereads_a_partition_whose_new_rows_leave_a_hole() -> None:
    from pipeline.serving.catalog import CatalogBuilder, LedgerBatch

    def row(p: int, start: int, stop: int, stamp: int) -> tuple:
        return (TOPIC, p, start, stop, 1, 0, 0, True, None, stamp)

    asked: list[tuple[str, int, int]] = []

    def reread(t: str, p: int, start: int) -> list[tuple]:
        asked.append((t, p, start))
        return [row(p, 5, 9, 3), row(p, 9, 12, 20)]

    b = CatalogBuilder(Catalog())
    b.add_batch(LedgerBatch(TOPIC, 0, 0, 5, 1, 0, 0, True, None, 1), ())
    base = b.freeze()
    # Batch [5, 9) was stamped long before it committed, so the read by stamp missed it:
    # what it found does not continue at offset 5, and the partition is read exactly.
    out = follow_ledger(base, [row(0, 9, 12, 20)], reread)
    assert asked == [(TOPIC, 0, 5)]
    assert [(x.start, x.stop) for x in out] == [(5, 9), (9, 12)]
    # Rows that continue where the catalog stopped are taken as read.
    asked.clear()
    out = follow_ledger(base, [row(0, 5, 9, 3), row(0, 9, 12, 20)], reread)
    assert asked == []
    assert [(x.start, x.stop) for x in out] == [(5, 9), (9, 12)]


def test_trade_facts_fold_minutes_counts_and_ranges_per_batch_symbol_and_day() -> None:
    d = date(2018, 1, 2)
    facts = trade_facts(
        [
            (0, "XXX", d, 0, 3, 10, 20),
            (0, "XXX", d, 389, 1, 30, 30),
            (0, "XXX", d, -1, 2, 5, 40),
            (7, "XXX", d, 1, 1, 50, 50),
        ]
    )
    f = facts[(0, "XXX", d)]
    assert (f.n, f.first_ns, f.last_ns) == (6, 5, 40)
    assert f.minutes == (1 << 0) | (1 << 389)
    assert facts[(7, "XXX", d)].minutes == 1 << 1


def test_the_materializer_process_exits_when_its_server_is_gone(
    served_copy: Path, tmp_path: Path
) -> None:
    """A child materializer watches its parent; a killed server leaves no orphan behind."""
    from tests.support.wait import wait_until

    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-m', 'pipeline.serving.materialize', "
            f"'--warehouse', {str(served_copy)!r}, '--store', {str(tmp_path / 'store')!r}, "
            "'--parent-pid', str(os.getpid())], stderr=subprocess.DEVNULL)\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    child = int(server.stdout.readline())

    def alive() -> bool:
        # A zombie (exited, not yet reaped by whoever adopted it) counts as gone.
        return processes.alive(child)

    try:
        wait_until(
            lambda: StoreLayout(tmp_path / "store").current_name() is not None,
            timeout_s=60,
            what="a published state",
        )
        assert alive()
        server.kill()
        server.wait()
        wait_until(lambda: not alive(), timeout_s=30, what="the materializer to exit")
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
        if alive():
            os.kill(child, 9)


def test_a_final_day_that_gets_a_late_session_trade_is_served_not_final_until_recomputed(
    served_copy: Path, tmp_path: Path
) -> None:
    """Issue 14.1: trades loaded into a day's session after its final run (a late backfill,
    an unstuck partition) make the day not final in every answer until a run reads them."""
    day = date(2018, 1, 2)
    m = Materializer(served_copy, tmp_path / "store")

    def catalog():
        assert settle(m)[-1] in {"published", "idle"}
        return StorePort(served_copy, store=tmp_path / "store", materialize="off").view().catalog

    assert catalog().final(day) is True
    load(served_copy, shifted(1, days=-1, start_row=2000))  # a 2018-01-02 session print
    late = catalog()
    assert late.stale(day)
    assert late.final(day) is False
    assert late.final(date(2018, 1, 3)) is False  # provisional, and not stale
    assert not late.stale(date(2018, 1, 3))
    publish(served_copy, day, "recomputed")
    again = catalog()
    assert again.final(day) is True
    assert not again.stale(day)
    m.close()
