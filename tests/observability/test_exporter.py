"""The metrics-exporter process: its /metrics move as trades flow through Kafka and the warehouse.

A real ``microstructure metrics-exporter`` process scrapes nothing itself; it reads the real
broker and the real DuckDB file. Trades go through the real producer into a real topic
(LogAppendTime), are loaded by the real microbatch path, and their day is published: each
step shows up in the exporter's metrics.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import EventProducer
from pipeline.microbatch import shape_batch
from pipeline.signals.assemble import compute_frames
from pipeline.warehouse.base import SignalRun
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.observability.conftest import DAY1
from tests.observability.scrape import scrape, value, wait_scrape
from tests.support.wait import wait_until
from tests.warehouse.factories import sample_trades

pytestmark = pytest.mark.kafka
STAGE = "microstructure_trade_stage_latency_seconds"


@contextmanager
def exporter(env: dict[str, str], workdir: Path) -> Iterator[str]:
    """Start ``microstructure metrics-exporter`` on a free port; yield its scrape URL."""
    out = workdir / "exporter.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "metrics-exporter",
                "--port",
                "0",
                "--interval-s",
                "0.2",
                "--since-s",
                "600",
            ],
            env={**os.environ, **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def announced() -> re.Match[str] | None:
            if proc.poll() is not None:
                raise RuntimeError(f"exporter exited early:\n{out.read_text()[-3000:]}")
            return re.search(r"metrics-exporter: (http://\S+/metrics)", out.read_text())

        m = wait_until(announced, timeout_s=60, what="the exporter's URL")
        assert m is not None
        yield m.group(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_exporter_metrics_move_as_trades_flow(
    kafka_broker: str, kafka_topic: str, duckdb_file: Path, tmp_path: Path
) -> None:
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    env = {
        "MICROSTRUCTURE_WAREHOUSE_URL": f"duckdb:///{duckdb_file}",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker,
        "MICROSTRUCTURE_TOPIC": kafka_topic,
        "DAGSTER_HOME": str(tmp_path / "no-dagster"),
        "MICROSTRUCTURE_HOME": str(tmp_path),
    }
    with exporter(env, tmp_path) as url:
        first = wait_scrape(
            url,
            lambda s: value(s, "microstructure_ingest_broker_up_bool") == 1,
            "a refresh that reached the broker",
        )
        assert value(first, "microstructure_ingest_trades_total") == 0
        assert value(first, f"{STAGE}_count", stage="receipt_to_append") == 0

        # Kafka: the day's trades, received now, acknowledged by the broker.
        trades = [
            dataclasses.replace(t, receipt_ns=time.time_ns()) for t in sample_trades(day=DAY1)
        ]
        with EventProducer(kafka_broker, kafka_topic) as producer:
            for t in trades:
                producer.send(t)
            producer.flush(60.0)
        marks = watermarks(kafka_broker, kafka_topic, 10.0)
        [(partition, high)] = [(p, h) for p, (_, h) in marks.items() if h > 0]
        assert high == len(trades)

        def lag() -> float:
            return value(
                scrape(url),
                "microstructure_ingest_consumer_lag_messages",
                topic=kafka_topic,
                partition=str(partition),
            )

        wait_until(lambda: lag() == high, timeout_s=30, what="the lag of the produced trades")

        # Warehouse: the real microbatch path, one batch.
        batch = shape_batch(
            read_range(kafka_broker, OffsetRange(kafka_topic, partition, 0, high), 60.0),
            OffsetRange(kafka_topic, partition, 0, high),
        )
        loaded = wh.load_batch(batch, expected_start=0, run_id="test-load")
        assert loaded.n_trades == high

        after = wait_scrape(
            url,
            lambda s: value(s, "microstructure_ingest_trades_total") == high,
            "the committed batch in the metrics",
        )
        assert value(after, "microstructure_ingest_consumer_lag_messages", topic=kafka_topic,
                     partition=str(partition)) == 0  # fmt: skip
        assert value(after, "microstructure_ingest_batches_total", verdict="unchecked") == 1
        for stage in ("sip_to_receipt", "receipt_to_append", "append_to_commit", "sip_to_commit"):
            assert value(after, f"{STAGE}_count", stage=stage) == high, stage
        # Receipt -> Kafka append measured per trade from the broker's LogAppendTime: seconds
        # at most here (one burst), not the years between the recording and now.
        mean_append_s = value(after, f"{STAGE}_sum", stage="receipt_to_append") / high
        assert 0 < mean_append_s < 30
        assert value(after, f"{STAGE}_bucket", stage="sip_to_receipt", le="+Inf") == high
        assert value(after, "microstructure_ingest_last_commit_timestamp_seconds") > 0

        # Signals: publishing the day measures commit -> signal for its regular-hours trades.
        day_trades = wh.read_day_trades(DAY1)
        frames = compute_frames(day_trades, passthrough=("kafka_partition", "kafka_offset"))
        run = SignalRun("test-run", DAY1, 1, len(day_trades), 390, "test", "{}", "{}", "h",
                        True, time.time_ns())  # fmt: skip
        wh.publish_signals(DAY1, frames, run)

        final = wait_scrape(
            url,
            lambda s: value(s, f"{STAGE}_count", stage="commit_to_signal") > 0,
            "the signals run in the metrics",
        )
        assert value(final, f"{STAGE}_count", stage="commit_to_signal") == len(day_trades)
        assert (
            value(final, "microstructure_signals_runs_total", final="true", audit="unchecked") == 1
        )
        # Counted once: later refreshes add nothing for the same batch and run.
        seen = value(final, "microstructure_exporter_last_refresh_timestamp_seconds")

        again = wait_scrape(
            url,
            lambda s: (
                value(s, "microstructure_exporter_last_refresh_timestamp_seconds") > seen + 0.5
            ),
            "two more refreshes",
        )
        assert value(again, "microstructure_ingest_trades_total") == high
        assert value(again, "microstructure_dagster_up_bool") == 0  # no instance here: said
