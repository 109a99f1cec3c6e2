"""The code location loads: assets, checks, sensor, schedules, jobs and partitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import yaml

from assets.definitions import defs
from assets.partitions import is_trading_day, session_close_ns, trading_days
from assets.resources import KafkaResource, WarehouseResource
from assets.schedules import signals_daily_schedule, signals_hourly_schedule
from assets.sensors import microbatch_request, run_key
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_definitions_load_with_every_asset_job_sensor_and_schedule():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "market_data",
        "live_signals",
        "trading_signals",
        "symbol_day_metrics",
        "trade_intensity",
        "enriched_market_data",
    }
    assert defs.resolve_job_def("ingest_job")
    assert defs.resolve_job_def("signals_job").partitions_def == trading_days
    assert defs.resolve_sensor_def("market_data_sensor").job_name == "ingest_job"
    assert defs.resolve_sensor_def("live_signals_sensor").job_name == "live_signals_job"
    for schedule in (signals_hourly_schedule, signals_daily_schedule):
        assert defs.resolve_schedule_def(schedule.name).job_name == "signals_job"


def test_workspace_yaml_points_at_these_definitions():
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    assert (module["module_name"], module["attribute"]) == ("assets.definitions", "defs")


def test_trading_days_skip_weekends_and_nyse_holidays_and_stay_a_few_thousand():
    keys = trading_days.get_partition_keys(
        current_time=dt.datetime(2026, 12, 31, 12, tzinfo=dt.UTC)
    )
    assert keys[0] == "2018-01-02"  # 2018-01-01 is New Year's Day
    assert "2018-01-06" not in keys  # Saturday
    assert "2018-01-15" not in keys  # Martin Luther King Jr. Day
    assert "2018-12-05" not in keys  # national day of mourning (ad hoc closure)
    assert "2018-07-03" in keys  # a half day is a trading day
    assert 2_000 < len(keys) < 2_400
    assert not is_trading_day(dt.date(2018, 12, 25))


def test_today_exists_during_the_session_thanks_to_end_offset_1():
    during = dt.datetime(2018, 1, 3, 15, 0, tzinfo=dt.UTC)  # 10:00 New York
    assert trading_days.get_partition_keys(current_time=during)[-1] == "2018-01-03"


def test_half_days_close_at_13_00_new_york():
    ny = ZoneInfo("America/New_York")

    def ns(*args):
        return int(dt.datetime(*args, tzinfo=ny).timestamp()) * 10**9

    assert session_close_ns(dt.date(2018, 7, 3)) == ns(2018, 7, 3, 13)
    assert session_close_ns(dt.date(2018, 7, 2)) == ns(2018, 7, 2, 16)


def test_schedules_ask_for_today_on_trading_days_and_skip_holidays():
    def evaluate(schedule, when):
        repo = defs.get_repository_def()
        with dg.build_schedule_context(scheduled_execution_time=when, repository_def=repo) as ctx:
            return schedule.evaluate_tick(ctx)

    ny = ZoneInfo("America/New_York")
    [request] = evaluate(
        signals_hourly_schedule, dt.datetime(2018, 1, 3, 11, 5, tzinfo=ny)
    ).run_requests
    assert request.partition_key == "2018-01-03"
    holiday = evaluate(signals_daily_schedule, dt.datetime(2018, 1, 15, 16, 45, tzinfo=ny))
    assert holiday.run_requests == []
    assert "not an NYSE trading day" in holiday.skip_message


def test_a_microbatch_request_carries_only_two_integers_and_the_partition_tag():
    r = microbatch_request("polygon-market-data", 2, 5000)
    assert r.run_key == "polygon-market-data:2:5000"
    assert r.run_config == {
        "ops": {"market_data": {"config": {"partition": 2, "stop_offset": 5000}}}
    }
    assert r.tags == {
        "ingest/tp": "polygon-market-data-2",
        "ingest/stop": "5000",
        "dagster/max_runtime": "900",
    }
    assert run_key("t", 0, 10, attempt=2) == "t:0:10:retry2"


def test_dagster_yaml_limits_runs_to_one_per_topic_partition_and_per_trading_day(tmp_path):
    (tmp_path / "dagster.yaml").write_text((ROOT / "docker" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    per_value = {"applyLimitPerUniqueValue": True}
    assert limits == [
        {"key": "ingest/tp", "value": per_value, "limit": 1},
        {"key": "dagster/partition", "value": per_value, "limit": 1},  # signals: one per day
    ]
    # Only the signals job is partitioned (by trading day): the limit cannot hold back ingest.
    assert defs.resolve_job_def("signals_job").partitions_def is not None
    assert defs.resolve_job_def("ingest_job").partitions_def is None


def test_secrets_reach_dagster_as_environment_references_never_as_values(monkeypatch):
    """Issue 14.12: the UI shows each resource's configured values (the JSON below is what
    it renders); a SASL password or a warehouse URL must appear there as the name of the
    variable holding it, and be resolved only inside the run."""
    from assets.definitions import build_defs

    secret = "hunter2-sasl-secret"
    monkeypatch.setenv(
        "MICROSTRUCTURE_KAFKA_CONFIG", f"security.protocol=SASL_SSL;sasl.password={secret}"
    )
    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", "duckdb:////srv/secret-path/w.duckdb")
    defs = build_defs()
    shown = {
        name: res.get_resource_definition().config_schema.default_value_as_json_str
        for name, res in (defs.resources or {}).items()
    }
    assert all(secret not in text and "secret-path" not in text for text in shown.values())
    assert '"env": "MICROSTRUCTURE_KAFKA_CONFIG"' in shown["kafka"]
    assert '"env": "MICROSTRUCTURE_WAREHOUSE_URL"' in shown["warehouse"]
    assert secret not in repr(defs.resources)
    assert secret not in repr(Settings.from_env())

    # Inside a run the values are resolved: the resource sees the password.
    seen: dict[str, object] = {}

    @dg.op
    def probe(kafka: KafkaResource, warehouse: WarehouseResource) -> None:
        seen["extra"] = kafka._conf()
        seen["url"] = warehouse.url

    @dg.job(
        resource_defs={"kafka": defs.resources["kafka"], "warehouse": defs.resources["warehouse"]}
    )
    def probe_job() -> None:
        probe()

    assert probe_job.execute_in_process().success
    assert seen == {
        "extra": {"security.protocol": "SASL_SSL", "sasl.password": secret},
        "url": "duckdb:////srv/secret-path/w.duckdb",
    }
