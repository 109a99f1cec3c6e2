"""Two loads at once on Vertica: one trade arriving on two partitions is stored once.

Vertica enforces no key on ``market_data``, and under READ COMMITTED each load's dedup
anti-join cannot see the other's uncommitted rows. These tests drive the real
``VerticaWarehouse.load_batch`` of two partitions through the concurrent-session stand-in
(``tests/vertica/sessions.py``: READ COMMITTED per statement, table locks, temporary
tables, on DuckDB), the first load held open just before its COMMIT while the second
runs. The opt-in contract suite (``make test-vertica``) runs the same race on a server.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from vertica_python import errors as verrors

from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import Microbatch, shape_batch
from pipeline.warehouse import vertica_backend as vb
from pipeline.warehouse.base import LoadResult
from tests.support.vertica_standin import StandInLimitation
from tests.vertica.sessions import SessionsStandIn, migrated_duckdb
from tests.vertica.test_vertica_backend import ENV
from tests.warehouse.factories import as_records, sample_trades

TOPIC = "polygon-market-data"


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[SessionsStandIn]:
    with SessionsStandIn(migrated_duckdb(tmp_path / "w.duckdb"), lock_timeout_s=10.0) as s:
        yield s


def _warehouse(
    standin: SessionsStandIn, hook: Callable[[str], None] | None = None
) -> vb.VerticaWarehouse:
    config = vb.VerticaConfig.from_url("vertica://", ENV)
    return vb.VerticaWarehouse(config, connect=standin.connect, fault_hook=hook)


def _batch(trades, partition: int) -> Microbatch:
    records = as_records(trades, topic=TOPIC, partition=partition, start=0)
    return shape_batch(records, OffsetRange(TOPIC, partition, 0, len(records)))


# --- the stand-in refuses and isolates as Vertica does ------------------------------------------


def test_a_session_sees_another_sessions_rows_from_the_first_statement_after_its_commit(
    standin: SessionsStandIn,
) -> None:
    a, b = standin.connect(autocommit=False), standin.connect(autocommit=False)
    ca, cb = a.cursor(), b.cursor()
    count = "SELECT COUNT(*) FROM market_data"
    cb.execute(count)
    assert cb.fetchall() == [[0]]  # b's transaction is open from here on
    ca.execute(vb.CREATE_STAGES[0])
    ca.copy(
        vb.copy_statement(vb.STAGE_TRADES, vb._trade_columns()),
        vb.encode_rows(_batch(sample_trades(2), 0).trades, vb._trade_columns()),
    )
    with pytest.raises(verrors.MissingRelation):  # a's temporary table is a's alone
        cb.execute("SELECT COUNT(*) FROM market_data_stage")
    ca.execute(vb.insert_trades_sql(), {"loaded_ns": 1})
    assert ca.fetchall() == [[2]]
    cb.execute(count)
    assert cb.fetchall() == [[0]]  # uncommitted rows are invisible to b
    a.commit()
    cb.execute(count)
    assert cb.fetchall() == [[2]]  # READ COMMITTED: b's next statement sees the commit
    ca.execute("SELECT COUNT(*) FROM market_data_stage")
    assert ca.fetchall() == [[0]]  # ON COMMIT DELETE ROWS
    a.close()
    b.close()


def test_the_insert_validate_lock_is_one_sessions_at_a_time_and_times_out(
    tmp_path: Path,
) -> None:
    with SessionsStandIn(migrated_duckdb(tmp_path / "w.duckdb"), lock_timeout_s=0.2) as s:
        a, b = s.connect(autocommit=False), s.connect(autocommit=False)
        a.cursor().execute("LOCK TABLE kafka_offsets IN INSERT VALIDATE MODE")
        b.cursor().execute("LOCK TABLE kafka_offsets IN INSERT MODE")  # I and IV: granted
        with pytest.raises(verrors.LockFailure, match="Timed out IV locking"):
            b.cursor().execute("LOCK TABLE kafka_offsets IN INSERT VALIDATE MODE")
        with pytest.raises(verrors.LockFailure):
            b.cursor().execute("LOCK TABLE kafka_offsets IN INSERT VALIDATE MODE NOWAIT")
        a.commit()
        b.cursor().execute("LOCK TABLE kafka_offsets IN INSERT VALIDATE MODE NOWAIT")
        with pytest.raises(StandInLimitation):
            a.cursor().execute("LOCK TABLE kafka_offsets IN EXCLUSIVE MODE")
        a.close()
        b.close()


def test_the_ledger_key_is_enforced_and_a_copy_without_no_commit_commits(
    standin: SessionsStandIn,
) -> None:
    _warehouse(standin).load_batch(_batch(sample_trades(3), 0), expected_start=0, run_id="a")
    conn = standin.connect(autocommit=False)
    row = dict.fromkeys(vb.q.LEDGER_COLUMNS, 0) | {"kafka_topic": TOPIC, "run_id": "b"}
    row |= {"quality_passed": None, "quality_summary": None}
    with pytest.raises(verrors.QueryError, match="Duplicate key values") as info:
        conn.cursor().execute(vb.INSERT_LEDGER, row)
    assert info.value.sqlstate == "23505"
    trades = _batch(sample_trades(5)[3:], 1).trades.assign(loaded_ns=1)
    columns = [*vb._trade_columns(), "loaded_ns"]
    sql = vb.copy_statement(vb.q.MARKET_DATA, columns).removesuffix(" NO COMMIT")
    conn.cursor().copy(sql, vb.encode_rows(trades, columns))
    assert standin.committed("SELECT COUNT(*) FROM market_data") == [(5,)]
    conn.close()


# --- issue 14.6: the same trade on two partitions, loaded concurrently ---------------------------


def _race(standin: SessionsStandIn, first: Microbatch, second: Microbatch) -> list[LoadResult]:
    """Load ``first`` and hold it before COMMIT while ``second`` loads; then let both finish.

    The first load's COMMIT waits until the second has either finished its transaction or
    is waiting for a lock (which only the first's COMMIT can release).
    """
    at_commit = threading.Event()
    go_on = threading.Event()
    results: dict[str, LoadResult] = {}
    errors: list[BaseException] = []

    def hold(step: str) -> None:
        if step == "before_commit":
            at_commit.set()
            assert go_on.wait(30.0), "the race was never released"

    def run(name: str, batch: Microbatch, hook: Callable[[str], None] | None) -> None:
        try:
            results[name] = _warehouse(standin, hook).load_batch(
                batch, expected_start=0, run_id=name
            )
        except BaseException as e:
            errors.append(e)
            go_on.set()

    one = threading.Thread(target=run, args=("first", first, hold))
    one.start()
    assert at_commit.wait(30.0)
    two = threading.Thread(target=run, args=("second", second, None))
    two.start()
    blocked = threading.Thread(target=lambda: _ignore(standin.wait_for_lock_waiter))
    blocked.start()
    while two.is_alive() and blocked.is_alive():
        two.join(0.01)
    go_on.set()
    for t in (one, two, blocked):
        t.join(30.0)
    assert not errors, errors
    return [results["first"], results["second"]]


def _ignore(wait: Callable[[], object]) -> None:
    with contextlib.suppress(TimeoutError):
        wait()


def test_one_trade_on_two_partitions_loaded_at_once_is_stored_once_and_counted_duplicate(
    standin: SessionsStandIn,
) -> None:
    """Issue 14.6: today both anti-joins miss the other's uncommitted row and both insert."""
    trades = sample_trades(6)
    shared = trades[3]
    first = _batch(trades[:4], partition=0)
    second = _batch([shared, *trades[4:]], partition=1)
    a, b = _race(standin, first, second)
    assert (a.n_trades, a.n_duplicates) == (4, 0)
    assert (b.n_trades, b.n_duplicates) == (2, 1)  # the shared trade, counted not stored
    stored = standin.committed(
        "SELECT symbol, trade_date, exchange, trf_id, trade_id, COUNT(*) FROM market_data "
        "GROUP BY ALL HAVING COUNT(*) > 1"
    )
    assert stored == []
    assert standin.committed("SELECT COUNT(*) FROM market_data") == [(6,)]
    # The ledger reconciles: every record read is filed once, as a row or a duplicate.
    assert standin.committed(
        "SELECT SUM(n_messages), SUM(n_trades), SUM(n_duplicates) FROM kafka_offsets"
    ) == [(7, 6, 1)]


def test_loads_of_different_trades_still_copy_at_once_and_lose_nothing(
    standin: SessionsStandIn,
) -> None:
    trades = sample_trades(8)
    a, b = _race(standin, _batch(trades[:4], 0), _batch(trades[4:], 1))
    assert (a.n_trades, b.n_trades, a.n_duplicates, b.n_duplicates) == (4, 4, 0, 0)
    assert standin.committed("SELECT COUNT(*) FROM market_data") == [(8,)]
