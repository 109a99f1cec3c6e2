"""`microstructure ingest` and `signals` paths on a real broker, DuckDB file and Dagster home."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from pipeline.cli import main
from pipeline.commands.ingest import dagster_home, run_ingest
from pipeline.commands.signals import run_signals, trading_days_between
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.warehouse import open_warehouse
from tests.assets.support import produce
from tests.warehouse.factories import sample_trades


@pytest.mark.kafka
def test_ingest_then_signals_backfill_leave_runs_in_the_dagster_home(
    kafka_broker, kafka_topic, tmp_path, monkeypatch
):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # The URL from the environment, as in production: the resources carry it as a
    # dg.EnvVar reference, which the sensor tick and the runs resolve.
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", url)
    settings = Settings.from_env(
        {
            "MICROSTRUCTURE_HOME": str(tmp_path),
            "MICROSTRUCTURE_WAREHOUSE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
            "MICROSTRUCTURE_TOPIC": kafka_topic,
            "MICROSTRUCTURE_MAX_RECORDS": "700",
        }
    )
    produce(kafka_broker, kafka_topic, sample_trades(1_500))
    lines: list[str] = []

    summary = run_ingest(settings, echo=lines.append)

    assert (summary.runs, summary.failed, summary.trades) == (3, 0, 1_500)
    assert summary.lagging == {}
    assert len([line for line in lines if line.startswith("run ")]) == 3
    home = dagster_home(settings)
    assert (home / "dagster.yaml").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="ingest_job"))
        assert {r.run_id for r in runs} == set(summary.run_ids)
        assert all(r.tags["dagster/run_key"].startswith(f"{kafka_topic}:") for r in runs)

    # Nothing new: one tick, no runs.
    assert run_ingest(settings, echo=lines.append).runs == 0

    days = trading_days_between(date(2018, 1, 1), date(2018, 1, 3))
    assert days == ["2018-01-02", "2018-01-03"]
    signals = run_signals(settings, days, echo=lines.append)
    assert signals.failed == []
    assert signals.empty == ["2018-01-03"]  # the slice holds only the first day
    wh = open_warehouse(settings.warehouse_url, read_only=True)
    assert (
        signals.trades
        == wh.table_counts()["trading_signals"]
        == len(wh.read_day_trades(date(2018, 1, 2)))
    )


def test_backfill_bounds_are_checked():
    with pytest.raises(ConfigError, match="before --start"):
        trading_days_between(date(2018, 1, 5), date(2018, 1, 2))


def test_signals_run_on_a_holiday_is_a_usage_error(capsys):
    assert main(["signals", "run", "2018-01-15"]) == 2
    assert "not an NYSE trading day" in capsys.readouterr().err


def test_warehouse_migrate_and_info_on_a_fresh_file(tmp_path, capsys):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    assert main(["warehouse", "--url", url, "migrate"]) == 0
    assert main(["warehouse", "--url", url, "info"]) == 0
    out = capsys.readouterr().out
    assert "0 pending" in out
    assert "market_data" in out


def test_runs_left_started_by_a_killed_ingest_process_are_marked_failed(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from assets.definitions import build_defs
    from assets.sensors import microbatch_request
    from pipeline.commands.ingest import HOST_TAG, PID_TAG, fail_orphaned_runs

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    settings = Settings.from_env({"MICROSTRUCTURE_HOME": str(tmp_path)})
    job = build_defs(settings=settings).resolve_job_def("ingest_job")
    request = microbatch_request("t", 0, 10)
    host = socket.gethostname()
    with dg.instance_for_test() as instance:

        def started(h: str, pid: int) -> str:
            run = instance.create_run_for_job(
                job_def=job,
                run_config=request.run_config,
                tags={**request.tags, HOST_TAG: h, PID_TAG: str(pid)},
                status=dg.DagsterRunStatus.STARTED,
            )
            return run.run_id

        dead = started(host, gone.pid)
        alive = started(host, os.getpid())
        elsewhere = started("another-host", gone.pid)
        lines: list[str] = []

        assert fail_orphaned_runs(instance, lines.append) == 1

        def status_of(run_id: str) -> dg.DagsterRunStatus:
            run = instance.get_run_by_id(run_id)
            assert run is not None
            return run.status

        status = {r: status_of(r) for r in (dead, alive, elsewhere)}
        assert status == {
            dead: dg.DagsterRunStatus.FAILURE,
            alive: dg.DagsterRunStatus.STARTED,
            elsewhere: dg.DagsterRunStatus.STARTED,
        }
        assert f"dead process {gone.pid}" in lines[0]
