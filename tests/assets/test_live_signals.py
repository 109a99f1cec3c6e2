"""live_signals_sensor + live_signals against a real broker, a real DuckDB file and Dagster.

The trading-signals topic is written as ``microstructure live-signals`` writes it: the live
path's own partition processor turns real sample prints into ``signal.v1`` records (and a
bad print into a ``reject.v1`` record), the project's producer sends them, and a block of
them is sent twice, as the at-least-once producer does after a crash. The loader must store
each input key once, keep the reject with its reason, count the repeats in the ledger, and
load exactly once across a crash between the rows and COMMIT.
"""

from __future__ import annotations

import dagster as dg
import pytest

from assets.resources import KafkaResource, WarehouseResource
from pipeline.kafka import codec
from pipeline.warehouse import open_warehouse
from tests.assets.support import harness, produce_outputs, produce_raw
from tests.warehouse.factories import live_outputs

pytestmark = pytest.mark.kafka


def _harness(bootstrap, topic, duckdb_file, instance, warehouse=None):
    return harness(
        bootstrap,
        "unused-market-data-topic",
        duckdb_file,
        instance,
        warehouse=warehouse,
        signals_kafka=KafkaResource(bootstrap_servers=bootstrap, topic=topic, read_timeout_s=60.0),
    )


def test_live_records_load_once_per_input_key_with_rejects_and_repeats_counted(
    kafka_broker, make_kafka_topic, duckdb_file
):
    kafka_topic = make_kafka_topic(1)  # signals (key XXX) and rejects (_reject) in one
    outputs = live_outputs(400)
    signals = [o for o in outputs if dict(o[2])["schema"] == codec.SCHEMA_SIGNAL]
    rejects = [o for o in outputs if dict(o[2])["schema"] == codec.SCHEMA_REJECT]
    assert len(rejects) == 1
    assert len(signals) > 200
    produce_outputs(kafka_broker, kafka_topic, outputs)
    # The at-least-once producer after a crash: the last 50 records (and the reject) again.
    produce_outputs(kafka_broker, kafka_topic, [*outputs[-50:], *rejects])
    produce_raw(kafka_broker, kafka_topic, b"XXX", b"not json", [("schema", codec.SCHEMA_SIGNAL)])

    with dg.instance_for_test() as instance:
        h = _harness(kafka_broker, kafka_topic, duckdb_file, instance)
        sensor = h.defs.resolve_sensor_def("live_signals_sensor")
        context = dg.build_sensor_context(
            instance=instance, definitions=h.defs, resources=dict(h.defs.resources or {})
        )
        [request] = sensor.evaluate_tick(context).run_requests or []
        assert request.run_config["ops"] == {
            "live_signals": {
                "config": {
                    "partition": request.run_config["ops"]["live_signals"]["config"]["partition"],
                    "stop_offset": len(outputs) + 52,
                }
            }
        }
        result = h.defs.resolve_job_def("live_signals_job").execute_in_process(
            run_config=request.run_config,
            instance=instance,
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
        )
        mat = result.asset_materializations_for_node("live_signals")[0].metadata
        assert mat["n_signals"].value == len(signals)
        assert mat["n_signal_rejects"].value == 1
        assert mat["n_signal_duplicates"].value == 51
        assert mat["n_rejects"].value == 1  # the record that is no live record
        checks = result.get_asset_check_evaluations()
        assert checks
        assert all(c.passed for c in checks)
        assert {c.asset_key for c in checks} == {dg.AssetKey("live_signals")}

        assert sensor.evaluate_tick(context).run_requests == []
        # A rerun of the loaded range changes nothing.
        again = h.defs.resolve_job_def("live_signals_job").execute_in_process(
            run_config=request.run_config, instance=instance
        )
        assert again.asset_materializations_for_node("live_signals")[0].metadata["noop"].value

    wh = open_warehouse(f"duckdb:///{duckdb_file}", read_only=True)
    counts = wh.table_counts()
    assert counts["live_signals"] == len(signals)
    assert counts["live_signal_rejects"] == 1
    assert counts["market_data_rejects"] == 1
    with wh.transaction() as s:  # type: ignore[attr-defined]
        keys = s.execute(
            "SELECT count(*), count(DISTINCT (input_topic, input_partition, input_offset)), "
            "min(seq), max(seq), count(DISTINCT trading_signal) FROM live_signals"
        )
        [(reason, stage, offset)] = s.execute(
            "SELECT reason, stage, input_offset FROM live_signal_rejects"
        )
        [(bad,)] = s.execute("SELECT reason FROM market_data_rejects")
    assert keys[0][:2] == (len(signals), len(signals))
    assert (keys[0][2], keys[0][3]) == (0, len(signals) - 1)
    assert (reason, stage, offset) == ("price null, non-finite or <= 0", "live-signals", 7)
    assert bad.startswith("signal: ")
    ledger = wh.query_frame("ledger", (kafka_topic, kafka_topic, 10))
    assert ledger[
        ["n_signals", "n_signal_duplicates", "n_signal_rejects", "n_rejects"]
    ].values.tolist() == [[len(signals), 51, 1, 1]]


def test_a_crash_between_the_rows_and_commit_leaves_nothing_and_the_retry_loads_once(
    kafka_broker, make_kafka_topic, duckdb_file
):
    kafka_topic = make_kafka_topic(1)
    outputs = live_outputs(200)
    produce_outputs(kafka_broker, kafka_topic, outputs)
    url = f"duckdb:///{duckdb_file}"
    with dg.instance_for_test() as instance:
        for step in ("after_insert", "before_commit"):
            crashing = _harness(
                kafka_broker,
                kafka_topic,
                duckdb_file,
                instance,
                warehouse=WarehouseResource(url=url, fault_at=step),
            )
            sensor = crashing.defs.resolve_sensor_def("live_signals_sensor")
            ctx = dg.build_sensor_context(
                instance=instance,
                definitions=crashing.defs,
                resources=dict(crashing.defs.resources or {}),
            )
            [request] = sensor.evaluate_tick(ctx).run_requests or []
            failed = crashing.defs.resolve_job_def("live_signals_job").execute_in_process(
                run_config=request.run_config,
                instance=instance,
                tags={**request.tags, "dagster/run_key": request.run_key or ""},
                raise_on_error=False,
            )
            assert not failed.success
            counts = open_warehouse(url, read_only=True).table_counts()
            assert (counts["live_signals"], counts["kafka_offsets"]) == (0, 0), step

        healthy = _harness(kafka_broker, kafka_topic, duckdb_file, instance)
        sensor = healthy.defs.resolve_sensor_def("live_signals_sensor")
        ctx = dg.build_sensor_context(
            instance=instance,
            definitions=healthy.defs,
            resources=dict(healthy.defs.resources or {}),
        )
        [retry] = sensor.evaluate_tick(ctx).run_requests or []
        assert (retry.run_key or "").endswith(":retry2")
        assert (
            healthy.defs.resolve_job_def("live_signals_job")
            .execute_in_process(run_config=retry.run_config, instance=instance)
            .success
        )
    counts = open_warehouse(url, read_only=True).table_counts()
    assert counts["live_signals"] == len(outputs) - 1
    assert counts["live_signal_rejects"] == 1
    assert counts["kafka_offsets"] == 1
