"""The warehouse contract, one suite for every backend.

Always runs on DuckDB (a real file per test). Runs on Vertica too when ``VERTICA_HOST``,
``VERTICA_DB``, ``VERTICA_USER`` (and ``VERTICA_PASSWORD``, optionally ``VERTICA_PORT`` and
``VERTICA_TLSMODE``) are set, marked ``vertica`` so ``make test`` skips it and
``make test-vertica`` runs it: each test gets a fresh schema (search_path) that is dropped
afterwards. No Vertica server exists on the development machines or in CI (the Community
Edition images were withdrawn in 2025), so the Vertica half is opt-in.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest

from pipeline.errors import OffsetConflict, WarehouseError
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse import open_warehouse
from pipeline.warehouse.base import InDatabaseRun, LoadResult, SignalAudit, SignalRun, Warehouse
from tests.warehouse.factories import (
    as_records,
    repaired_gap,
    sample_bars,
    sample_quotes,
    sample_trades,
)
from tests.warehouse.signal_frames import fake_signal_frames

TOPIC = "polygon-market-data"
DAY1 = date(2018, 1, 2)
VERTICA_VARS = ("VERTICA_HOST", "VERTICA_DB", "VERTICA_USER")


def _vertica_warehouse() -> Iterator[Warehouse]:
    if not all(os.environ.get(v) for v in VERTICA_VARS):
        pytest.skip(f"set {', '.join(VERTICA_VARS)} (and VERTICA_PASSWORD) to run on Vertica")
    from pipeline.warehouse.vertica_backend import VerticaConfig, VerticaWarehouse

    schema = f"micro_test_{uuid.uuid4().hex[:12]}"
    admin = VerticaWarehouse(VerticaConfig.from_url("vertica://"))
    with admin.transaction() as s:
        s.execute(f"CREATE SCHEMA {schema}")
    try:
        yield open_warehouse(f"vertica://?search_path={schema}")
    finally:
        with admin.transaction() as s:
            s.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["duckdb", pytest.param("vertica", marks=pytest.mark.vertica)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """A migrated, empty warehouse of each backend."""
    if request.param == "duckdb":
        wh = open_warehouse(f"duckdb:///{tmp_path / 'contract.duckdb'}")
        wh.migrate()
        yield wh
        return
    for wh in _vertica_warehouse():
        wh.migrate()
        yield wh


def _batch(trades, start=0, partition=0):
    records = as_records(trades, topic=TOPIC, partition=partition, start=start)
    return shape_batch(records, OffsetRange(TOPIC, partition, start, start + len(records)))


def test_migrations_apply_once_and_a_rerun_is_a_no_op(warehouse: Warehouse) -> None:
    applied = warehouse.applied_migrations()
    assert [m.version for m in applied][:7] == [
        "0001",
        "0002",
        "0003",
        "0004",
        "0005",
        "0006",
        "0007",
    ]
    assert warehouse.migrate() == []


def test_a_batch_and_its_ledger_row_commit_together(warehouse: Warehouse) -> None:
    assert warehouse.next_offset(TOPIC, 0) is None
    result = warehouse.load_batch(_batch(sample_trades(20)), expected_start=0, run_id="r1")
    assert (result.n_trades, result.n_duplicates, result.stop_offset) == (20, 0, 20)
    assert warehouse.next_offset(TOPIC, 0) == 20
    assert warehouse.next_offsets(TOPIC) == {0: 20}
    assert warehouse.table_counts()["market_data"] == 20


def test_a_second_loader_of_the_same_range_fails_and_changes_nothing(warehouse: Warehouse) -> None:
    batch = _batch(sample_trades(10))
    warehouse.load_batch(batch, expected_start=0, run_id="first")
    before = warehouse.table_counts()
    with pytest.raises(OffsetConflict):
        warehouse.load_batch(batch, expected_start=0, run_id="second")
    assert warehouse.table_counts() == before
    assert warehouse.next_offset(TOPIC, 0) == 10


def test_a_trade_repeated_in_a_later_batch_is_stored_once(warehouse: Warehouse) -> None:
    trades = sample_trades(10)
    warehouse.load_batch(_batch(trades), expected_start=0, run_id="a")
    result = warehouse.load_batch(_batch(trades[5:], start=10), expected_start=10, run_id="b")
    assert (result.n_trades, result.n_duplicates) == (0, 5)
    assert warehouse.table_counts()["market_data"] == 10
    assert warehouse.query_frame("duplicate_trade_keys").empty


def test_one_trade_on_two_partitions_loaded_at_once_is_stored_once(warehouse: Warehouse) -> None:
    """Issue 14.6: the partition-0 load is held open before its COMMIT while partition 1,
    carrying one of its trades again, loads. On DuckDB the second load waits for the file;
    on Vertica for the load lock (LOCK_LOADS), so its anti-join sees the first's rows."""
    trades = sample_trades(6)
    first, second = _batch(trades[:4], partition=0), _batch([trades[3], *trades[4:]], partition=1)
    held, release = threading.Event(), threading.Event()
    results: dict[str, LoadResult] = {}

    def hold(step: str) -> None:
        if step == "before_commit" and threading.current_thread().name == "first":
            held.set()
            release.wait(60.0)

    def load(name: str, batch) -> None:
        results[name] = warehouse.load_batch(batch, expected_start=0, run_id=name)

    cast(Any, warehouse).fault_hook = hold
    one = threading.Thread(target=load, args=("first", first), name="first")
    one.start()
    assert held.wait(60.0)
    two = threading.Thread(target=load, args=("second", second), name="second")
    two.start()
    two.join(2.0)  # the second load runs until it must wait for the first (or ends)
    release.set()
    one.join(60.0)
    two.join(60.0)
    cast(Any, warehouse).fault_hook = None
    assert (results["first"].n_trades, results["first"].n_duplicates) == (4, 0)
    assert (results["second"].n_trades, results["second"].n_duplicates) == (2, 1)
    assert warehouse.table_counts()["market_data"] == 6
    assert warehouse.query_frame("duplicate_trade_keys").empty


def test_a_day_reads_back_in_stable_order_and_publishes_atomically(warehouse: Warehouse) -> None:
    warehouse.load_batch(_batch(sample_trades(300, day=DAY1)), expected_start=0, run_id="a")
    trades = warehouse.read_day_trades(DAY1)
    assert list(trades["timestamp_ns"]) == sorted(trades["timestamp_ns"])
    frames = fake_signal_frames(trades, DAY1)
    run = SignalRun(
        run_id="s1", day=DAY1, n_symbols=1, n_trades=len(frames.trade_signals),
        n_buckets=len(frames.intensity_buckets), kernel_version="test", params_json="{}",
        input_offsets_json="{}", content_hash="h", final=False, computed_ns=1,
    )  # fmt: skip
    first = warehouse.publish_signals(DAY1, frames, run)
    again = warehouse.publish_signals(
        DAY1, frames, run.__class__(**{**_fields(run), "run_id": "s2"})
    )
    assert (
        again.n_replaced == first.n_trade_signals + first.n_symbol_days + first.n_intensity_buckets
    )
    assert warehouse.table_counts()["trading_signals"] == len(trades)


def _fields(run: SignalRun) -> dict:
    return {name: getattr(run, name) for name in run.__dataclass_fields__}


def test_quotes_bars_and_gap_repairs_commit_with_the_batch_and_repeat_once(
    warehouse: Warehouse,
) -> None:
    trades = sample_trades(10)
    quotes = sample_quotes(6)
    bars = sample_bars(3)
    pending, done = repaired_gap(trades[2], trades[3], backfilled=5)
    first = [*trades[:5], *quotes[:4], bars[0], pending, *trades[5:], bars[1], done]
    result = warehouse.load_batch(_batch(first), expected_start=0, run_id="a")
    assert (result.n_trades, result.n_quotes, result.n_aggregates, result.n_gaps) == (10, 4, 2, 2)
    assert result.n_rejects == 0

    # A later batch repeats two quotes and a bar (e.g. a producer retried after a restart).
    again = [quotes[2], quotes[3], quotes[4], quotes[5], bars[1], bars[2]]
    result = warehouse.load_batch(
        _batch(again, start=len(first)), expected_start=len(first), run_id="b"
    )
    assert (result.n_quotes, result.n_quote_duplicates) == (2, 2)
    assert (result.n_aggregates, result.n_aggregate_duplicates) == (1, 1)

    counts = warehouse.table_counts()
    assert (counts["market_quotes"], counts["market_aggregates"]) == (6, 3)
    assert counts["market_data_rejects"] == 0
    ledger = warehouse.query_frame("ledger", (TOPIC, TOPIC, 10)).sort_values("start_offset")
    assert ledger[
        ["n_quotes", "n_quote_duplicates", "n_aggregates", "n_aggregate_duplicates"]
    ].astype(int).values.tolist() == [[4, 0, 2, 0], [2, 2, 1, 1]]
    # The ledger reconciles: every record read is filed somewhere, once.
    filed = ledger[
        [
            "n_trades",
            "n_duplicates",
            "n_rejects",
            "n_gaps",
            "n_quotes",
            "n_quote_duplicates",
            "n_aggregates",
            "n_aggregate_duplicates",
        ]
    ].sum(axis=1)
    assert filed.astype(int).tolist() == ledger["n_messages"].astype(int).tolist()

    # Two records, one gap, and its state is the outcome.
    [state] = warehouse.query_frame("feed_gap_states", (0,)).to_dict("records")
    assert (state["gap_id"], state["repair"], bool(state["repaired"])) == (
        pending.gap_id,
        "backfilled",
        True,
    )
    assert (int(state["backfilled"]), int(state["repaired_ns"])) == (5, done.repaired_ns)
    assert int(state["last_before_ns"]) == trades[2].sip_timestamp_ns


def test_signals_computed_in_the_database_match_the_kernels_or_are_refused(
    warehouse: Warehouse,
) -> None:
    """Vertica computes a day with the UDx; DuckDB says it cannot (the assets branch on it).

    On Vertica this needs ``udx/vertica/install.sql`` run against the server first.
    """
    from pipeline.signals.assemble import compute_frames
    from udx.kernels import KERNEL_VERSION, Params

    warehouse.load_batch(_batch(sample_trades(300, day=DAY1)), expected_start=0, run_id="a")
    run = InDatabaseRun(
        run_id="db1", kernel_version=KERNEL_VERSION, params_json="{}", final=False, computed_ns=1
    )
    if not warehouse.computes_signals_in_database:
        with pytest.raises(WarehouseError, match="does not compute signals in the database"):
            warehouse.publish_signals_in_database(DAY1, run, lambda a: (True, None))
        return
    audits: list[SignalAudit] = []

    def judge(audit: SignalAudit) -> tuple[bool, str | None]:
        audits.append(audit)
        return True, None

    outcome = warehouse.publish_signals_in_database(DAY1, run, judge)
    trades = warehouse.read_day_trades(DAY1)
    frames = compute_frames(trades, Params())
    assert outcome.published is not None
    assert outcome.published.n_trade_signals == len(frames.trade_signals) == len(trades)
    (audit,) = audits
    assert (audit.n_rth_trades, audit.n_signal_rows) == (len(trades), len(trades))
    assert audit.n_bad_labels == audit.n_null_flags == audit.n_nonfinite == 0
    stored = warehouse.query_frame("signal_counts_of_day", (DAY1,))
    in_python = frames.trade_signals["trading_signal"].value_counts()
    assert dict(zip(stored["trading_signal"], stored["n"].astype(int), strict=True)) == {
        str(k): int(v) for k, v in in_python.items()
    }


class _LoadBeforeNextStatement:
    """A vertica-python connection whose cursors let ``load`` commit once, right after the
    statement containing ``marker`` and before the next one (the first has been drained)."""

    def __init__(self, conn: Any, marker: str, load: Callable[[], None]) -> None:
        self._conn, self._marker, self._armed = conn, marker, False
        self._load: Callable[[], None] | None = load

    def cursor(self) -> Any:
        outer, cur = self, self._conn.cursor()

        class Cursor:
            def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
                if outer._armed and outer._load is not None:
                    load, outer._load = outer._load, None
                    load()
                outer._armed = outer._armed or outer._marker in sql
                return cur.execute(sql, *args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(cur, name)

        return Cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_in_database_signals_compute_from_one_set_of_trades_while_a_load_commits(
    warehouse: Warehouse,
) -> None:
    """Issue 14.3: a load commits between the statements of the signal transaction; every
    table and the audit must still describe the trades that were there when it began."""
    if not warehouse.computes_signals_in_database:
        pytest.skip("DuckDB reads the day once, in one statement (read_day_trades)")
    from pipeline.warehouse.vertica_backend import VerticaWarehouse
    from udx.kernels import KERNEL_VERSION

    assert isinstance(warehouse, VerticaWarehouse)
    day = sample_trades(None, day=DAY1)
    warehouse.load_batch(_batch(day[:300]), expected_start=0, run_id="a")
    before = len(warehouse.read_day_trades(DAY1))
    stored = warehouse.table_counts()["market_data"]
    loader = VerticaWarehouse(warehouse.config)

    def load() -> None:
        loader.load_batch(_batch(day[300:600], partition=1), expected_start=0, run_id="b")

    connect = warehouse._connect
    warehouse._connect = lambda **kw: _LoadBeforeNextStatement(
        connect(**kw), "INSERT INTO signal_day_trades", load
    )
    audits: list[SignalAudit] = []

    def judge(audit: SignalAudit) -> tuple[bool, str | None]:
        audits.append(audit)
        return True, None

    run = InDatabaseRun(
        run_id="db1", kernel_version=KERNEL_VERSION, params_json="{}", final=False, computed_ns=1
    )
    try:
        outcome = warehouse.publish_signals_in_database(DAY1, run, judge)
    finally:
        warehouse._connect = connect
    assert warehouse.table_counts()["market_data"] > stored  # the load did commit meanwhile
    (audit,) = audits
    assert audit.n_rth_trades == audit.n_signal_rows == before
    assert outcome.published is not None
    assert outcome.published.n_trade_signals == before
    assert warehouse.table_counts()["trading_signals"] == before
