"""Sensor + market_data against a real broker, a real DuckDB file and a real Dagster instance.

Exactly-once checks: every produced trade stored once, rerunning a loaded range changes
nothing, a crash before COMMIT leaves nothing and the range loads later, a second loader
of the same range fails with OffsetConflict and rolls back.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date

import dagster as dg
import pytest

from assets.ingest import STOP_TAG
from assets.resources import QualityResource, WarehouseResource
from pipeline.errors import OffsetConflict
from pipeline.kafka import consumer
from pipeline.kafka.codec import SCHEMA_TRADE
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse import open_warehouse
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.assets.support import harness, produce, produce_raw
from tests.warehouse.factories import sample_trades

pytestmark = pytest.mark.kafka

DAY1 = date(2018, 1, 2)


def _partition_of(h, n_expected: int) -> tuple[int, int]:
    marks = consumer.watermarks(h.bootstrap, h.topic, 10.0)
    [(p, (low, high))] = [(p, lh) for p, lh in marks.items() if lh[1] > 0]
    assert high - low == n_expected
    return p, high


def test_sensor_and_runs_load_every_produced_trade_exactly_once(
    kafka_broker, kafka_topic, duckdb_file
):
    trades = sample_trades(2_500)
    # A repeat of an earlier print (e.g. live + backfill), a bad price and a garbage record.
    extra = [replace(trades[10], source="rest"), replace(trades[0], trade_id="neg", price=-1.0)]
    produce(kafka_broker, kafka_topic, [*trades, *extra])
    produce_raw(kafka_broker, kafka_topic, b"XXX", b"\x00not json", [("schema", SCHEMA_TRADE)])

    with dg.instance_for_test() as instance:
        h = harness(kafka_broker, kafka_topic, duckdb_file, instance, max_records=1_000)
        p, high = _partition_of(h, 2_503)

        first = h.requests()
        # Idle partitions ask for nothing; the lagging one asks for its first 1,000 offsets only.
        assert [r.run_key for r in first] == [f"{kafka_topic}:{p}:1000"]
        assert first[0].run_config == {
            "ops": {"market_data": {"config": {"partition": p, "stop_offset": 1000}}}
        }
        assert first[0].tags["ingest/tp"] == f"{kafka_topic}-{p}"

        result = h.run(first[0])
        mat = result.asset_materializations_for_node("market_data")[0]
        assert mat.metadata["n_trades"].value == 1000
        assert h.ingest_until_caught_up() == 2  # [1000, 2000) and [2000, 2503)
        idle = h.tick()
        assert idle.run_requests == []
        assert "every partition is loaded" in (idle.skip_message or "")

        wh = open_warehouse(h.url, read_only=True)
        counts = wh.table_counts()
        assert counts["market_data"] == 2_500
        assert counts["market_data_rejects"] == 2
        assert wh.query_frame("duplicate_trade_keys").empty
        ledger = wh.query_frame("ledger", (kafka_topic, kafka_topic, 100)).sort_values(
            "start_offset"
        )
        assert ledger[["start_offset", "stop_offset"]].values.tolist() == [
            [0, 1000],
            [1000, 2000],
            [2000, high],
        ]
        assert int(ledger["n_duplicates"].to_numpy().sum()) == 1
        assert consumer.committed_offset(kafka_broker, kafka_topic, p) == high

        # A forced rerun of an already loaded range (same run config) is a no-op.
        again = h.run(first[0])
        assert (
            again.asset_materializations_for_node("market_data")[0].metadata["noop"].value is True
        )
        assert open_warehouse(h.url, read_only=True).table_counts() == counts


def test_a_crash_before_commit_leaves_nothing_and_the_retry_loads_the_range_once(
    kafka_broker, kafka_topic, duckdb_file
):
    produce(kafka_broker, kafka_topic, sample_trades(300))
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        crashing = harness(
            kafka_broker,
            kafka_topic,
            duckdb_file,
            instance,
            warehouse=WarehouseResource(url=url, fault_at="before_commit"),
        )
        [request] = crashing.requests()
        failed = crashing.run(request, raise_on_error=False)
        assert not failed.success
        assert open_warehouse(url, read_only=True).table_counts()["market_data"] == 0

        healthy = harness(kafka_broker, kafka_topic, duckdb_file, instance)
        # The same stop again: the daemon would skip the used run key, so the sensor retries.
        [retry] = healthy.requests()
        assert retry.run_key == f"{request.run_key}:retry1"
        assert healthy.run(retry).success
        assert healthy.requests() == []
        assert open_warehouse(url, read_only=True).table_counts()["market_data"] == 300


def test_a_partition_with_a_run_in_flight_is_skipped(kafka_broker, kafka_topic, duckdb_file):
    produce(kafka_broker, kafka_topic, sample_trades(50))
    with dg.instance_for_test() as instance:
        h = harness(kafka_broker, kafka_topic, duckdb_file, instance)
        [request] = h.requests()
        job = h.defs.resolve_job_def("ingest_job")
        # A run of the same topic-partition in flight (started by the daemon elsewhere).
        instance.create_run_for_job(
            job_def=job,
            run_config=request.run_config,
            tags=request.tags,
            status=dg.DagsterRunStatus.STARTED,
        )
        tick = h.tick()
        assert tick.run_requests == []
        assert "queued, running or backing off" in (tick.skip_message or "")


def test_a_second_loader_of_the_same_range_fails_with_offset_conflict_and_rolls_back(
    kafka_broker, kafka_topic, duckdb_file
):
    produce(kafka_broker, kafka_topic, sample_trades(400))
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        h = harness(kafka_broker, kafka_topic, duckdb_file, instance)
        [request] = h.requests()
        p = request.run_config["ops"]["market_data"]["config"]["partition"]
        stop = request.run_config["ops"]["market_data"]["config"]["stop_offset"]

        class RacedWarehouse(WarehouseResource):
            """The real warehouse; just before the run commits, a loader started by hand wins."""

            def open(self, read_only=False, lock_timeout_s=None):
                wh = super().open(read_only, lock_timeout_s)

                def by_hand(step: str) -> None:
                    if step == "before_commit":
                        rng = OffsetRange(kafka_topic, p, 0, stop)
                        batch = shape_batch(consumer.read_range(kafka_broker, rng, 30.0), rng)
                        DuckDBWarehouse(duckdb_file).load_batch(
                            batch, expected_start=0, run_id="by-hand"
                        )

                wh.fault_hook = by_hand  # type: ignore[attr-defined] # the DuckDB backend's hook
                return wh

        raced = harness(
            kafka_broker, kafka_topic, duckdb_file, instance, warehouse=RacedWarehouse(url=url)
        )
        result = raced.run(request, raise_on_error=False)

        assert not result.success
        [failure] = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        error = failure.step_failure_data.error
        assert error is not None
        assert OffsetConflict.__name__ in error.to_string()
        wh = open_warehouse(url, read_only=True)
        assert wh.table_counts()["market_data"] == 400
        assert wh.query_frame("ledger", (kafka_topic, kafka_topic, 10))["run_id"].tolist() == [
            "by-hand"
        ]


def test_a_batch_failing_its_gate_commits_with_its_verdict_and_fails_the_run_visibly(
    kafka_broker, kafka_topic, duckdb_file
):
    produce(kafka_broker, kafka_topic, sample_trades(200))
    with dg.instance_for_test() as instance:
        h = harness(
            kafka_broker,
            kafka_topic,
            duckdb_file,
            instance,
            quality=QualityResource(known_symbols=["AAPL"]),
        )
        [request] = h.requests()
        result = h.run(request, raise_on_error=False)

        assert not result.success
        evals = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert evals["known_symbols"].passed is False
        assert evals["prices_positive_finite"].passed is True
        wh = open_warehouse(h.url, read_only=True)
        # One bad verdict must not stall ingest: rows and ledger committed, verdict stored.
        assert wh.table_counts()["market_data"] == 200
        [ledger] = wh.query_frame("ledger", (kafka_topic, kafka_topic, 10)).to_dict("records")
        assert not ledger["quality_passed"]
        assert "known_symbols" in ledger["quality_summary"]
        assert h.requests() == []  # the range is loaded: nothing to retry


def test_two_sensors_loading_the_same_partition_at_once_lose_and_double_nothing(
    kafka_broker, kafka_topic, duckdb_file
):
    """Two Dagster instances (two sensors) ask for the same range; their runs overlap.

    Loader A holds its load transaction open just before COMMIT until loader B's run of the
    same range is over: whichever commits second must fail loudly with OffsetConflict (or
    find the range loaded), and after both catch up every trade is stored once.
    """
    produce(kafka_broker, kafka_topic, sample_trades(900))
    url = f"duckdb:///{duckdb_file}"
    a_waits = threading.Event()
    b_done = threading.Event()

    class HoldsItsCommit(WarehouseResource):
        def open(self, read_only=False, lock_timeout_s=None):
            wh = super().open(read_only, lock_timeout_s)

            def hold(step: str) -> None:
                if step == "before_commit" and not a_waits.is_set():
                    a_waits.set()
                    # B's load waits for A's turn (loads of one file take turns in a process,
                    # as another process would wait for the file lock), so B cannot finish
                    # first: hold the commit a few seconds while B's run is under way.
                    b_done.wait(5)

            wh.fault_hook = hold  # type: ignore[attr-defined] # the DuckDB backend's hook
            return wh

    with dg.instance_for_test() as ia, dg.instance_for_test() as ib:
        a = harness(
            kafka_broker, kafka_topic, duckdb_file, ia, 400, warehouse=HoldsItsCommit(url=url)
        )
        b = harness(kafka_broker, kafka_topic, duckdb_file, ib, 400)
        [ra], [rb] = a.requests(), b.requests()
        assert ra.run_config == rb.run_config  # the same range, asked twice

        results: dict[str, dg.ExecuteInProcessResult] = {}
        thread = threading.Thread(target=lambda: results.update(a=a.run(ra, raise_on_error=False)))
        thread.start()
        assert a_waits.wait(120)
        try:
            results["b"] = b.run(rb, raise_on_error=False)
        finally:
            b_done.set()
            thread.join(120)

        outcomes = {}
        for name, result in results.items():
            if result.success:
                [mat] = result.asset_materializations_for_node("market_data")
                outcomes[name] = "no-op" if mat.metadata["noop"].value else "loaded"
            else:
                [failure] = [
                    e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
                ]
                error = failure.step_failure_data.error
                assert error is not None
                assert OffsetConflict.__name__ in error.to_string()
                outcomes[name] = "OffsetConflict"
        assert sorted(outcomes.values()) in (["OffsetConflict", "loaded"], ["loaded", "no-op"])

        # Both sensors go on until neither has anything to ask for.
        for _ in range(20):
            pending = [(h, r) for h in (a, b) for r in h.requests()]
            if not pending:
                break
            for h, r in pending:
                h.run(r, raise_on_error=False)
        else:
            raise AssertionError("the two sensors did not catch up")

        wh = open_warehouse(url, read_only=True)
        assert wh.table_counts()["market_data"] == 900
        assert wh.query_frame("duplicate_trade_keys").empty
        ledger = wh.query_frame("ledger", (kafka_topic, kafka_topic, 100)).sort_values(
            "start_offset"
        )
        assert ledger[["start_offset", "stop_offset"]].values.tolist() == [
            [0, 400],
            [400, 800],
            [800, 900],
        ]


def test_a_range_that_always_fails_is_declared_stuck_while_new_trades_move_its_stop(
    kafka_broker, kafka_topic, duckdb_file
):
    """Issue 14.7: attempts are counted per start offset, so a stop that moves with every
    tick (new trades keep arriving) cannot reset the count and retry a failing batch forever."""
    from assets.sensors import MAX_ATTEMPTS

    produce(kafka_broker, kafka_topic, sample_trades(20))
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        failing = harness(
            kafka_broker,
            kafka_topic,
            duckdb_file,
            instance,
            warehouse=WarehouseResource(url=url, fault_at="before_commit"),
        )
        stops = []
        for _ in range(MAX_ATTEMPTS):
            [request] = failing.requests()
            stops.append(request.tags[STOP_TAG])
            assert not failing.run(request, raise_on_error=False).success
            produce(kafka_broker, kafka_topic, sample_trades(1))  # the same symbol: same partition
        tick = failing.tick()
    assert len(set(stops)) == MAX_ATTEMPTS  # the stop moved every time
    assert tick.run_requests == []
    assert "stuck" in (tick.skip_message or "")
    assert f"{MAX_ATTEMPTS} runs" in (tick.skip_message or "")


def test_a_trade_stamped_in_the_future_is_stored_as_a_reject_not_a_trade(
    kafka_broker, kafka_topic, duckdb_file
):
    """Issue 14.1: accepted up to int64 max before, such a trade made every day look final."""
    ahead = replace(sample_trades(1)[0], trade_id="ahead", sip_timestamp_ns=2**63 - 1)
    produce(kafka_broker, kafka_topic, [*sample_trades(5), ahead])
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        h = harness(kafka_broker, kafka_topic, duckdb_file, instance)
        assert h.ingest_until_caught_up() == 1
    wh = open_warehouse(url, read_only=True)
    assert wh.table_counts()["market_data"] == 5
    with wh.connect() as con:
        [(reason,)] = con.execute("SELECT reason FROM market_data_rejects").fetchall()
    assert reason.startswith("future_timestamp: ")
