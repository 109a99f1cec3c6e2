"""``microstructure status`` on a published warehouse, with and without a broker."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.kafka.producer import EventProducer
from pipeline.stages import STAGES
from tests.warehouse.factories import sample_trades


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["status", "--no-dagster", *argv])
    return code, capsys.readouterr().out


def test_status_shows_every_stage_and_says_the_broker_is_down(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("MICROSTRUCTURE_MCP_PORT", str(_closed_port()))
    stream = f"http://127.0.0.1:{_closed_port()}/metrics"
    code, out = _status(["--json", "--stream-metrics", stream], capsys)
    assert code == 0
    report = json.loads(out)
    names = [s["stage"] for s in report["stages"]]
    assert names == [*(s.name for s in STAGES), "receipt_to_ack", "signal_to_served"]
    by = {s["stage"]: s for s in report["stages"]}
    n = 154_519  # both symbols, both days
    assert by["append_to_commit"]["n"] == n
    assert by["append_to_commit"]["p50_s"] is not None
    # The bench writer stamps receipt 1.5 ms and Kafka append 2.5 ms after SIP time.
    assert by["sip_to_receipt"]["p50_s"] == pytest.approx(0.0015)
    assert by["receipt_to_append"]["p99_s"] == pytest.approx(0.001)
    assert by["commit_to_signal"]["n"] > 0
    assert "not reachable" in by["receipt_to_ack"]["note"]
    assert "not reachable" in by["signal_to_served"]["note"]
    assert "no Kafka broker listens" in report["broker_error"]
    assert len(report["partitions"]) == 2  # one per symbol (keyed by symbol)
    assert all(p["lag"] is None and p["ledger_offset"] > 0 for p in report["partitions"])
    assert report["gaps_newest_day"] == "2018-01-03"
    assert {g["symbol"] for g in report["gaps_newest"]} == {"XXX", "AAA"}
    assert [r["day"] for r in report["signal_runs"]] == ["2018-01-03", "2018-01-02"]
    assert report["batch_verdicts"]["failed"] == 1  # the sample's failed batch
    assert report["failed_checks"]

    code, text = _status([], capsys)
    assert code == 0
    for stage in STAGES:
        assert stage.title.split(" (")[0][:20] in text
    assert "no Kafka broker listens" in text
    assert "last signals runs" in text


def test_status_without_a_warehouse_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'none.duckdb'}")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    code, out = _status(["--json", "--stream-metrics", "off", "--mcp-metrics", "off"], capsys)
    assert code == 1
    assert "does not exist" in json.loads(out)["warehouse_error"]


@pytest.mark.kafka
def test_status_measures_lag_per_partition_against_the_ledger(
    warehouse: Path,
    kafka_broker: str,
    make_kafka_topic,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = make_kafka_topic(partitions=2)
    with EventProducer(kafka_broker, topic) as producer:
        for trade in sample_trades(n=250):
            producer.send(trade)
        producer.flush(60.0)
    monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", f"duckdb:///{warehouse}")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
    monkeypatch.setenv("MICROSTRUCTURE_TOPIC", topic)
    code, out = _status(["--json", "--stream-metrics", "off", "--mcp-metrics", "off"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["broker_error"] is None
    lags = {p["partition"]: p["lag"] for p in report["partitions"]}
    assert sum(lags.values()) == 250  # nothing of this topic is in the ledger yet
    assert set(lags) == {0, 1}
