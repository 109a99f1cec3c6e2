"""The signal multi-asset on a real DuckDB file: one trading day computed and published."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from assets.resources import KafkaResource, QualityResource, WarehouseResource
from assets.signals import signal_tables
from pipeline.events import Trade
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.nytime import wall_time_ns
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.assets.support import kafka_without_broker, produce_raw
from tests.warehouse.factories import as_records, sample_trades

DAY1 = date(2018, 1, 2)


@pytest.fixture
def loaded(duckdb_file) -> DuckDBWarehouse:
    """Both sample days loaded through the real microbatch path (one batch)."""
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    records = as_records(sample_trades())
    wh.load_batch(
        shape_batch(records, OffsetRange("polygon-market-data", 0, 0, len(records))),
        expected_start=0,
        run_id="load",
    )
    return wh


def _materialize(
    url: str,
    day: date,
    instance: dg.DagsterInstance,
    quality: QualityResource | None = None,
    kafka: KafkaResource | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [signal_tables],
        partition_key=day.isoformat(),
        resources={
            "warehouse": WarehouseResource(url=url),
            "quality": quality or QualityResource(),
            "kafka": kafka or kafka_without_broker(),
        },
        instance=instance,
        raise_on_error=False,
    )


def test_a_day_partition_publishes_signals_for_every_regular_hours_trade(loaded, duckdb_file):
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        result = _materialize(url, DAY1, instance)
        assert result.success
        mats = {
            m.asset_key.to_user_string(): m
            for m in result.asset_materializations_for_node("signal_tables")
        }
        assert set(mats) == {"trading_signals", "symbol_day_metrics", "trade_intensity"}

        n_rth = len(loaded.read_day_trades(DAY1))
        counts = loaded.table_counts()
        assert (
            counts["trading_signals"]
            == n_rth
            == mats["trading_signals"].metadata["dagster/row_count"].value
        )
        assert counts["symbol_day_metrics"] == 1
        assert counts["trade_intensity"] == 390
        [run] = loaded.query_frame("signal_runs_latest", (DAY1, DAY1)).to_dict("records")
        assert run["n_trades"] == n_rth
        assert run["final"]  # the sample's next day was loaded: ingest passed the close
        assert run["kernel_version"] == mats["trading_signals"].metadata["kernel_version"].value
        assert '"lm_window": 270' in run["params"]
        signals = loaded.query_frame("signal_counts_of_day", (DAY1,))
        assert set(signals["trading_signal"]) <= {"BUY", "SELL", "HOLD"}
        assert int(signals["n"].sum()) == n_rth

        # Idempotent: the second run replaces the day with identical content.
        again = _materialize(url, DAY1, instance)
        assert again.success
        assert loaded.table_counts()["trading_signals"] == n_rth
        hashes = loaded.query_frame("signal_runs_latest", (DAY1, DAY1))["content_hash"].tolist()
        assert hashes == [run["content_hash"]]
        assert loaded.table_counts()["signal_runs"] == 2


def test_a_day_without_trades_publishes_nothing_and_says_so(loaded, duckdb_file):
    with dg.instance_for_test() as instance:
        result = _materialize(f"duckdb:///{duckdb_file}", date(2018, 1, 4), instance)
    assert result.success
    mat = result.asset_materializations_for_node("signal_tables")[0]
    assert mat.metadata["published"].value is False
    assert loaded.table_counts()["signal_runs"] == 0


def test_a_day_holding_a_batch_that_failed_its_gate_is_not_published_until_allowed(duckdb_file):
    from pipeline.quality import validate_batch

    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    records = as_records(sample_trades(day=DAY1))
    batch = shape_batch(records, OffsetRange("polygon-market-data", 0, 0, len(records)))
    # The gate fails on symbols the platform does not know; the batch still commits.
    report = validate_batch(batch, known_symbols={"AAPL"})
    assert not report.passed
    wh.load_batch(batch, expected_start=0, run_id="load", quality=report.verdict())
    url = f"duckdb:///{duckdb_file}"

    with dg.instance_for_test() as instance:
        blocked = _materialize(url, DAY1, instance)
        assert not blocked.success
        evals = {e.check_name: e.passed for e in blocked.get_asset_check_evaluations()}
        assert evals["inputs_passed_ingest_checks"] is False
        assert evals["one_row_per_trade"] is True
        assert wh.table_counts()["trading_signals"] == 0
        stored = wh.query_frame("quality_results", ("signals", "signals", 100))
        assert not stored.loc[
            stored["expectation"] == "inputs_passed_ingest_checks", "passed"
        ].iloc[0]

        allowed = _materialize(url, DAY1, instance, QualityResource(allow_failed_batches=True))
        assert allowed.success
        assert wh.table_counts()["trading_signals"] == len(wh.read_day_trades(DAY1))


def _load(wh: DuckDBWarehouse, topic: str, partition: int, trades: list[Trade]) -> None:
    start = wh.next_offset(topic, partition) or 0
    records = as_records(trades, topic=topic, partition=partition, start=start)
    batch = shape_batch(records, OffsetRange(topic, partition, start, start + len(records)))
    wh.load_batch(batch, expected_start=start, run_id=f"load-{partition}-{start}")


def _final(url: str, instance: dg.DagsterInstance, kafka: KafkaResource) -> bool:
    result = _materialize(url, DAY1, instance, kafka=kafka)
    assert result.success
    [mat, *_] = result.asset_materializations_for_node("signal_tables")
    return bool(mat.metadata["final"].value)


@pytest.mark.kafka
def test_a_day_is_final_only_when_every_partition_is_past_its_close(
    duckdb_file, kafka_broker, make_kafka_topic
):
    """Issue 14.1: one partition loaded into the next day must not make the day final while
    another is stuck at 14:00 with records still unloaded (the old bound was the maximum
    over partitions); once that partition has loaded everything Kafka holds it is caught
    up, and follows the stream's frontier instead of blocking the day forever."""
    topic = make_kafka_topic(2)
    kafka = KafkaResource(bootstrap_servers=kafka_broker, topic=topic)
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    day1, day2 = sample_trades(day=DAY1), sample_trades(day=date(2018, 1, 3))
    afternoon = [t for t in day1 if t.sip_timestamp_ns >= wall_time_ns(DAY1, 14, 0)]
    morning = [t for t in day1 if t.sip_timestamp_ns < wall_time_ns(DAY1, 14, 0)]
    # Partition 0: the afternoon and the whole next day, all of what Kafka holds there.
    _load(wh, topic, 0, afternoon + day2)
    # Partition 1 is stuck at 14:00: Kafka holds 3 records, the ledger ends after 1.
    for _ in range(3):
        produce_raw(kafka_broker, topic, b"XXX", b"{}", [], partition=1)
    _load(wh, topic, 1, morning[-1:])
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        assert not _final(url, instance, kafka)
        [run] = wh.query_frame("signal_runs_latest", (DAY1, DAY1)).to_dict("records")
        assert run["ingested_through_ns"] == morning[-1].sip_timestamp_ns

        # The partition loads its last two records (still morning prints): caught up, it
        # is through the latest time loaded anywhere (the next day), and the day is final.
        _load(wh, topic, 1, morning[-3:-1])
        assert wh.next_offset(topic, 1) == 3
        assert _final(url, instance, kafka)
        [run] = wh.query_frame("signal_runs_latest", (DAY1, DAY1)).to_dict("records")
        assert run["ingested_through_ns"] == day2[-1].sip_timestamp_ns


def test_the_stale_signals_sensor_recomputes_a_day_whose_session_changed_after_its_run(
    duckdb_file,
):
    """Issue 14.1: a final day that receives a session trade later (a REST backfill, an
    unstuck partition) is recomputed by the sensor, once, from a real tick's request."""
    from dataclasses import replace

    from assets.definitions import build_defs

    topic = "polygon-market-data"
    url = f"duckdb:///{duckdb_file}"
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    _load(wh, topic, 0, sample_trades())  # both sample days
    defs = build_defs(
        kafka=kafka_without_broker(topic),
        warehouse=WarehouseResource(url=url),
        quality=QualityResource(),
    )
    sensor = defs.resolve_sensor_def("stale_signals_sensor")

    def tick(instance: dg.DagsterInstance, cursor: str | None):
        context = dg.build_sensor_context(
            instance=instance,
            definitions=defs,
            resources=dict(defs.resources or {}),
            cursor=cursor,
        )
        return sensor.evaluate_tick(context)

    with dg.instance_for_test() as instance:
        assert _final(url, instance, kafka_without_broker(topic))
        first = tick(instance, None)
        assert list(first.run_requests or []) == []  # the run read every batch there is

        noon = next(
            t for t in sample_trades(day=DAY1) if t.sip_timestamp_ns > wall_time_ns(DAY1, 12, 0)
        )
        late = replace(
            noon,
            trade_id="late-1",
            sequence_number=10**9,
            sip_timestamp_ns=noon.sip_timestamp_ns + 1,
        )
        _load(wh, topic, 0, [late])
        due = tick(instance, first.cursor)
        [request] = list(due.run_requests or [])
        assert request.partition_key == DAY1.isoformat()
        assert request.tags["signals/kind"] == "stale"

        job = defs.resolve_job_def("signals_job")
        rerun = job.execute_in_process(
            partition_key=request.partition_key, instance=instance, tags=request.tags
        )
        assert rerun.success
        [run] = wh.query_frame("signal_runs_latest", (DAY1, DAY1)).to_dict("records")
        assert run["final"]
        assert run["n_trades"] == len(wh.read_day_trades(DAY1))
        assert list(tick(instance, due.cursor).run_requests or []) == []
