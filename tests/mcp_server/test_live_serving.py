"""Issue 17.5 end to end: live records -> warehouse once -> MCP, provisional, then final.

Real broker, real DuckDB file, real Dagster runs, the real ``live-signals`` service (in
process) and the SDK's client: sample prints go into a market-data topic; the live service
turns them into ``signal.v1`` records in a signals topic, and part of them is produced again
(the at-least-once producer after a crash); ``market_data`` and ``live_signals`` load both
topics; the MCP server then serves each trade's live signal as provisional. After the batch
signals run of the day (final: ingest is past the close) the same trades are served as the
batch's final rows, and ``get_real_time_data`` shows the batch value beside the live one.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import dagster as dg
import pytest
from mcp import Client

from assets.resources import KafkaResource, QualityResource, WarehouseResource
from assets.signals import signal_tables
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.live.service import LiveConfig, LiveSignalsService
from pipeline.warehouse import open_warehouse
from tests.assets.support import harness, produce, produce_outputs
from tests.mcp_server.conftest import ServerFactory
from tests.mcp_server.test_tools import ok
from tests.warehouse.factories import sample_trades

pytestmark = [pytest.mark.anyio, pytest.mark.kafka, pytest.mark.timeout(300)]

DAY = date(2018, 1, 2)


def _live_signals(bootstrap: str, md_topic: str, sig_topic: str) -> int:
    """Run the live-signals service until it has consumed the topic; return its signals."""
    service = LiveSignalsService(LiveConfig(bootstrap, md_topic, sig_topic, f"g-{sig_topic}"))
    summary: list[Any] = []
    runner = threading.Thread(target=lambda: summary.append(service.run(idle_exit_s=4.0)))
    runner.start()
    runner.join(120)
    assert summary, "live-signals did not finish"
    return int(summary[0].counts["signals"])


def _load_both(bootstrap: str, md_topic: str, sig_topic: str, duckdb_file: Path) -> None:
    with dg.instance_for_test() as instance:
        h = harness(
            bootstrap,
            md_topic,
            duckdb_file,
            instance,
            signals_kafka=KafkaResource(bootstrap_servers=bootstrap, topic=sig_topic),
        )
        assert h.ingest_until_caught_up() == 1
        sensor = h.defs.resolve_sensor_def("live_signals_sensor")
        ctx = dg.build_sensor_context(
            instance=instance, definitions=h.defs, resources=dict(h.defs.resources or {})
        )
        [request] = sensor.evaluate_tick(ctx).run_requests or []
        job = h.defs.resolve_job_def("live_signals_job")
        assert job.execute_in_process(run_config=request.run_config, instance=instance).success
        assert sensor.evaluate_tick(ctx).run_requests == []


def _signals_run(bootstrap: str, md_topic: str, duckdb_file: Path) -> bool:
    """Run the day's batch signals (the signals assets) and return whether it succeeded."""
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [signal_tables],
            partition_key=DAY.isoformat(),
            resources={
                "warehouse": WarehouseResource(url=f"duckdb:///{duckdb_file}"),
                "quality": QualityResource(),
                "kafka": KafkaResource(bootstrap_servers=bootstrap, topic=md_topic),
            },
            instance=instance,
        ).success


async def _signals(client: Client) -> list[dict[str, Any]]:
    args = {"symbol": "XXX", "start": DAY.isoformat(), "end": DAY.isoformat(), "limit": 1000}
    rows: list[dict[str, Any]] = []
    data = await ok(client, "get_trading_signals", **args)
    rows += data["rows"]
    while data["paging"]["next_cursor"]:
        data = await ok(client, "get_trading_signals", **args, cursor=data["paging"]["next_cursor"])
        rows += data["rows"]
    assert len(rows) == data["paging"]["total"]
    return rows


async def test_live_records_load_once_serve_provisional_then_the_batch_serves_them_final(
    kafka_broker: str, make_kafka_topic, duckdb_file: Path, make_server: ServerFactory
) -> None:
    md_topic, sig_topic = make_kafka_topic(1), make_kafka_topic(1)
    trades = sample_trades(900, day=DAY)
    # The next morning's first prints: ingest is then past the close, so the run is final.
    tomorrow = [
        replace(t, trade_id=f"n{t.trade_id}") for t in sample_trades(5, day=date(2018, 1, 3))
    ]
    produce(kafka_broker, md_topic, [*trades, *tomorrow])
    n_live = _live_signals(kafka_broker, md_topic, sig_topic)
    assert n_live > 600
    # The at-least-once producer: the last 100 signal records again, identical.
    _, high = watermarks(kafka_broker, sig_topic, 10.0)[0]
    again = read_range(kafka_broker, OffsetRange(sig_topic, 0, high - 100, high), 60.0)
    produce_outputs(
        kafka_broker,
        sig_topic,
        [(r.key or b"", r.value or b"", [(k, v or b"") for k, v in r.headers]) for r in again],
    )

    await anyio.to_thread.run_sync(_load_both, kafka_broker, md_topic, sig_topic, duckdb_file)
    counts = open_warehouse(f"duckdb:///{duckdb_file}", read_only=True).table_counts()
    assert counts["live_signals"] == n_live
    assert counts["market_data"] == len(trades) + len(tomorrow)

    server = make_server(path=duckdb_file)
    async with Client(server) as client:
        live = await _signals(client)
        assert len(live) == n_live
        assert {(r["source"], r["provisional"]) for r in live} == {("live", True)}
        rt = (await ok(client, "get_real_time_data", symbols=["XXX"]))["rows"][0]
        ls = rt["live_signal"]
        assert ls["provisional"] is True
        assert (ls["timestamp_ns"], ls["seq"]) == (live[0]["timestamp_ns"], live[0]["seq"])
        assert ls["provenance"]["lm_n_rule"] == "running"
        assert ls["batch"] is None  # no signals run yet
        assert rt["last_signal"] is None

        # Dagster runs its own event loop: off this test's loop, in a worker thread.
        assert await anyio.to_thread.run_sync(_signals_run, kafka_broker, md_topic, duckdb_file)

        final = await _signals(client)
        assert {(r["source"], r["provisional"]) for r in final} == {("batch", False)}
        # The same trades, now the batch's: every live row's trade, by its market-data offset.
        assert sorted((r["kafka_partition"], r["kafka_offset"]) for r in final) == sorted(
            (r["kafka_partition"], r["kafka_offset"]) for r in live
        )
        rt = (await ok(client, "get_real_time_data", symbols=["XXX"]))["rows"][0]
        ls = rt["live_signal"]
        assert ls["provisional"] is True
        assert ls["batch"] is not None
        assert ls["batch"]["final"] is True
        assert ls["batch"]["timestamp_ns"] == ls["timestamp_ns"]
        assert rt["last_signal"]["timestamp_ns"] == ls["timestamp_ns"]
