"""The local broker: readiness, topics, watermarks, CLI life cycle, no orphan JVM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,  # pyright: ignore[reportPrivateImportUsage]
)

from pipeline import processes
from pipeline.cli import main
from pipeline.errors import BrokerError
from pipeline.kafka.broker import (
    LocalBroker,
    broker_count,
    check_slf4j_providers,
    cluster_status,
    ensure_topic,
    free_port,
)
from pipeline.kafka.consumer import commit_advisory, committed_offset, watermarks
from pipeline.settings import Settings
from tests.support.wait import wait_until

pytestmark = pytest.mark.kafka


def _jvm_alive(pid: int) -> bool:
    return processes.alive(pid)


def test_session_broker_serves_metadata(kafka_broker: str) -> None:
    assert broker_count(kafka_broker, timeout_s=5.0) == 1


def test_topic_is_created_with_log_append_time_and_its_partitions(
    kafka_broker: str, kafka_topic: str
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_broker})
    res = ConfigResource(ConfigResource.Type.TOPIC, kafka_topic)
    config = admin.describe_configs([res])[res].result(timeout=10)
    assert config["message.timestamp.type"].value == "LogAppendTime"
    assert watermarks(kafka_broker, kafka_topic, 10.0) == {0: (0, 0), 1: (0, 0), 2: (0, 0)}


def test_ensure_topic_is_idempotent_and_keeps_the_existing_partition_count(
    kafka_broker: str, kafka_topic: str
) -> None:
    again = ensure_topic(kafka_broker, kafka_topic, 7)
    assert (again.created, again.partitions) == (False, 3)


def test_cluster_status_lists_topics_with_watermarks(kafka_broker: str, kafka_topic: str) -> None:
    from pipeline.errors import KafkaError
    from pipeline.kafka.broker import ClusterStatus
    from tests.support.wait import wait_until

    def status() -> ClusterStatus | None:
        # A fresh topic's leaders can answer NOT_LEADER for a moment after creation.
        try:
            return cluster_status(kafka_broker)
        except KafkaError:
            return None

    st = wait_until(status, 15.0, what="cluster status with the new topic")
    assert st is not None
    assert st.brokers == 1
    assert [(p.partition, p.low, p.high) for p in st.topics[kafka_topic]] == [
        (0, 0, 0),
        (1, 0, 0),
        (2, 0, 0),
    ]


def test_watermarks_of_a_missing_topic_is_an_error(kafka_broker: str) -> None:
    from pipeline.errors import KafkaError

    with pytest.raises(KafkaError, match="no-such-topic"):
        watermarks(kafka_broker, "no-such-topic-xyz", 5.0)


def test_advisory_commit_is_visible_to_the_group(kafka_broker: str, kafka_topic: str) -> None:
    assert committed_offset(kafka_broker, kafka_topic, 1, group_id="lag-dash") is None
    commit_advisory(kafka_broker, kafka_topic, 1, 0, group_id="lag-dash")
    assert committed_offset(kafka_broker, kafka_topic, 1, group_id="lag-dash") == 0


def test_fetched_jars_hold_exactly_one_slf4j_provider() -> None:
    settings = Settings.from_env()
    broker = LocalBroker.from_settings(settings)
    if not broker.fetched():
        pytest.skip("jar cache not fetched")
    assert check_slf4j_providers(broker.libs_dir) == ["log4j-slf4j2-impl-2.25.3.jar"]


def _free_port_pair() -> int:
    """A port whose successor is free too (the CLI broker's controller listens on port + 1)."""
    import socket

    for _ in range(50):
        port = free_port()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port
    raise AssertionError("no free port pair")


def _cli_env(tmp_path: Path) -> dict[str, str]:
    """A private MICROSTRUCTURE_HOME that shares the session's jar cache (no second download)."""
    settings = Settings.from_env()
    libs = settings.home / "kafka" / settings.kafka_version / "libs"
    home = tmp_path / "home"
    (home / "kafka" / settings.kafka_version).mkdir(parents=True)
    (home / "kafka" / settings.kafka_version / "libs").symlink_to(libs)
    return {
        "MICROSTRUCTURE_HOME": str(home),
        "MICROSTRUCTURE_KAFKA_PORT": str(_free_port_pair()),
        "MICROSTRUCTURE_TOPIC_PARTITIONS": "2",
    }


def test_cli_up_status_down_leaves_no_process(
    kafka_broker: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in _cli_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    broker = LocalBroker.from_settings(Settings.from_env())
    try:
        assert main(["kafka", "up"]) == 0
        pid = broker.running_pid()
        assert pid is not None
        assert main(["kafka", "up"]) == 0  # idempotent: same JVM
        assert broker.running_pid() == pid
        assert main(["kafka", "status"]) == 0
        out = capsys.readouterr().out
        assert "topic polygon-market-data: 2 partitions" in out
        assert f"pid {pid}" in out
        assert main(["kafka", "down"]) == 0
        assert not _jvm_alive(pid)
        assert broker.running_pid() is None
        assert main(["kafka", "down"]) == 0
        assert "not running" in capsys.readouterr().out
        assert main(["kafka", "status"]) == 1
    finally:
        broker.down(timeout_s=5.0)


def test_up_on_a_port_held_by_another_process_fails_clearly(
    kafka_broker: str, tmp_path: Path
) -> None:
    port = int(kafka_broker.rsplit(":", 1)[1])
    broker = LocalBroker(
        kafka_home=Settings.from_env().home / "kafka",
        version=Settings.from_env().kafka_version,
        port=port,
        controller_port=free_port(),
        state_dir=tmp_path,
    )
    with pytest.raises(BrokerError, match=f"port {port} .* in use"):
        broker.up(timeout_s=5.0)


def test_a_broker_started_with_die_with_parent_dies_with_a_killed_parent(
    kafka_broker: str, tmp_path: Path
) -> None:
    settings = Settings.from_env()
    script = f"""
import sys
from pathlib import Path
from pipeline.kafka.broker import LocalBroker, free_port
b = LocalBroker(kafka_home=Path({str(settings.home / "kafka")!r}),
                version={settings.kafka_version!r},
                port=free_port(), controller_port=free_port(), state_dir=Path({str(tmp_path)!r}),
                heap_mb=256, die_with_parent=True)
print(b.up(timeout_s=60), flush=True)
sys.stdin.read()
"""
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path.cwd(),
    ) as parent:
        try:
            assert parent.stdout is not None
            line = parent.stdout.readline()
            if not line.strip():
                assert parent.stderr is not None
                pytest.fail(f"broker parent failed: {parent.stderr.read().decode()[-2000:]}")
            jvm = int(line)
            assert _jvm_alive(jvm)
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(timeout=10)
            wait_until(lambda: not _jvm_alive(jvm), 30.0, what=f"JVM {jvm} to die with its parent")
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait(timeout=10)


def test_with_kafka_bootstrap_servers_up_only_ensures_the_topic_and_down_stops_nothing(
    kafka_broker: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.kafka.broker import delete_topic

    topic = f"external-{tmp_path.name}"[:100]
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
    monkeypatch.setenv(
        "MICROSTRUCTURE_HOME", str(tmp_path / "home")
    )  # no jars, no local broker here
    monkeypatch.setenv("MICROSTRUCTURE_TOPIC", topic)
    monkeypatch.setenv("MICROSTRUCTURE_TOPIC_PARTITIONS", "2")
    try:
        assert main(["kafka", "up"]) == 0
        out = capsys.readouterr().out
        assert f"using external Kafka at {kafka_broker}" in out
        assert f"topic {topic}: 2 partitions (created)" in out
        assert main(["kafka", "status"]) == 0
        out = capsys.readouterr().out
        assert "external cluster" in out
        assert f"topic {topic}: 2 partitions, 0 records retained" in out
        assert main(["kafka", "down"]) == 0
        assert "nothing to stop" in capsys.readouterr().out
        assert not (tmp_path / "home" / "kafka").exists()
    finally:
        delete_topic(kafka_broker, topic)


class _ElectingConsumer:
    """A consumer whose partition answers as a just-created one does until its leader is
    elected: librdkafka raises the broker's error with ``retriable()`` False, as seen in
    CI (NOT_LEADER_FOR_PARTITION from ``get_watermark_offsets`` right after creation)."""

    def __init__(self, code: int, failures: int) -> None:
        self.code, self.failures, self.calls = code, failures, 0

    def get_watermark_offsets(self, tp: object, timeout: float, cached: bool) -> tuple[int, int]:
        from confluent_kafka import KafkaError as LibError
        from confluent_kafka import KafkaException

        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(LibError(self.code))
        return 0, 7


@pytest.mark.parametrize("name", ["NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE"])
def test_watermarks_wait_for_a_new_partitions_leader(name: str) -> None:
    import time

    from confluent_kafka import KafkaError as LibError
    from confluent_kafka import TopicPartition

    from pipeline.kafka.consumer import _watermarks_of

    consumer = _ElectingConsumer(getattr(LibError, name), failures=3)
    got = _watermarks_of(consumer, TopicPartition("t", 0), time.monotonic() + 5, "b:9092")  # type: ignore[arg-type]
    assert (got, consumer.calls) == ((0, 7), 4)


def test_watermarks_do_not_retry_what_waiting_cannot_fix() -> None:
    import time

    from confluent_kafka import KafkaError as LibError
    from confluent_kafka import TopicPartition

    from pipeline.errors import KafkaError
    from pipeline.kafka.consumer import _watermarks_of

    consumer = _ElectingConsumer(LibError.TOPIC_AUTHORIZATION_FAILED, failures=99)
    with pytest.raises(KafkaError, match="TOPIC_AUTHORIZATION_FAILED"):
        _watermarks_of(consumer, TopicPartition("t", 0), time.monotonic() + 5, "b:9092")  # type: ignore[arg-type]
    assert consumer.calls == 1
