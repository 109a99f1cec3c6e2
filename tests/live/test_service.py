"""``live-signals`` against the real broker: two instances, a rebalance, a kill -9, a restore.

The input is the sample's first prints of 2018-01-02 and 2018-01-03 under four symbols (the
same real prints, renamed so that the keys spread over the partitions). An uninterrupted
instance gives the reference. Then instance A starts, instance B joins (a rebalance), A is
killed with SIGKILL while records flow, B takes A's partitions after the session timeout,
rebuilds their state from the day's first offset and finishes. The signal records, keyed
by input (partition, offset), must be the reference's: none missing, none extra, and any
duplicate (produced again after the last commit of the killed instance) identical.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from pathlib import Path

import orjson
import pytest

from pipeline.errors import KafkaError
from pipeline.events import Trade
from pipeline.kafka.codec import SCHEMA_SIGNAL
from pipeline.kafka.consumer import committed_offset, read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import EventProducer
from pipeline.live.service import LiveConfig, LiveSignalsService
from tests.support.wait import wait_until
from tests.warehouse.factories import sample_trades

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ("XXA", "XXB", "XXD", "XXE")


def _trades() -> list[Trade]:
    # The day changes in chunk 2 of 4, so the kill in chunk 3 leaves 2018-01-03 checkpoints.
    day1 = sample_trades(1500, day=date(2018, 1, 2))
    day2 = sample_trades(1700, day=date(2018, 1, 3))
    out = [replace(t, symbol=s) for t in (*day1, *day2) for s in SYMBOLS]
    return out  # time order; at equal stamps the symbols in a fixed order


def _produce(bootstrap: str, topic: str, trades: Sequence[Trade]) -> None:
    with EventProducer(bootstrap, topic) as producer:
        for t in trades:
            producer.send(t)


def _caught_up(bootstrap: str, topic: str, group: str) -> bool:
    for p, (_, high) in watermarks(bootstrap, topic, 10.0).items():
        try:
            committed = committed_offset(bootstrap, topic, p, group_id=group) or 0
        except KafkaError:  # NOT_COORDINATOR while the group's coordinator is being set up
            return False
        if high and committed < high:
            return False
    return True


def _assigned(log: Path) -> bool:
    return "assigned partitions [" in log.read_text()


def _outputs(bootstrap: str, topic: str) -> list[tuple[tuple[int, int], bytes, bytes]]:
    """Return ``((input partition, input offset), schema, value)`` of every output record."""
    out = []
    for p, (low, high) in watermarks(bootstrap, topic, 10.0).items():
        for r in read_range(bootstrap, OffsetRange(topic, p, low, high), 60.0):
            h = dict(r.headers)
            key = (int(h["input_partition"] or b"-1"), int(h["input_offset"] or b"-1"))
            out.append((key, h["schema"] or b"", r.value or b""))
    return out


def _start(
    bootstrap: str, topic: str, out_topic: str, group: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MICROSTRUCTURE_TOPIC": topic,
        "MICROSTRUCTURE_SIGNALS_TOPIC": out_topic,
        "MICROSTRUCTURE_LIVE_GROUP": group,
        "MICRO_QUIET": "1",
    }
    cmd = [sys.executable, "-m", "pipeline.cli", "live-signals", "--batch-size", "50",
           "--session-timeout-ms", "6000", "--json"]  # fmt: skip
    with log.open("wb") as err:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )


def test_two_instances_a_kill_and_a_rebalance_emit_the_uninterrupted_runs_signals(
    kafka_broker: str, make_kafka_topic, tmp_path: Path
) -> None:
    topic = make_kafka_topic(4)
    ref_out, out = make_kafka_topic(4), make_kafka_topic(4)
    trades = _trades()
    q = len(trades) // 4
    chunks = [trades[:q], trades[q : 2 * q], trades[2 * q : 3 * q], trades[3 * q :]]

    group = f"g-{topic}"
    _produce(kafka_broker, topic, chunks[0])
    a = _start(kafka_broker, topic, out, group, tmp_path / "a.log")
    b: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: _caught_up(kafka_broker, topic, group), 120, 0.2, "A through chunk 1")
        b = _start(kafka_broker, topic, out, group, tmp_path / "b.log")
        wait_until(lambda: _assigned(tmp_path / "b.log"), 60, 0.2, "B assigned partitions")
        _produce(kafka_broker, topic, chunks[1])
        wait_until(
            lambda: _caught_up(kafka_broker, topic, group), 120, 0.2, "A and B through chunk 2"
        )
        _produce(kafka_broker, topic, chunks[2])
        os.killpg(a.pid, signal.SIGKILL)  # mid-stream: chunk 3 is being processed
        assert a.wait(30) == -signal.SIGKILL
        _produce(kafka_broker, topic, chunks[3])
        wait_until(lambda: _caught_up(kafka_broker, topic, group), 120, 0.2, "B through the end")
        b.send_signal(signal.SIGTERM)
        stdout, _ = b.communicate(timeout=60)
        assert b.returncode == 0, (tmp_path / "b.log").read_text()
    finally:
        for proc in (a, b):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            if proc is not None:
                proc.communicate(timeout=30)  # reaps it and closes its pipe
    summary_b = orjson.loads(stdout.strip().splitlines()[-1])
    # B rebuilt the partitions it took over from A from the first offset of 2018-01-03.
    assert any(r["replay_from"] > 0 for r in summary_b["restored"]), summary_b

    # The reference: one instance, never interrupted.
    ref_group = f"ref-{topic}"
    stop = threading.Event()
    service = LiveSignalsService(LiveConfig(kafka_broker, topic, ref_out, ref_group))
    runner = threading.Thread(target=lambda: service.run(stop=stop))
    runner.start()
    try:
        wait_until(lambda: _caught_up(kafka_broker, topic, ref_group), 120, 0.2, "reference")
    finally:
        stop.set()
        runner.join(60)

    reference = _outputs(kafka_broker, ref_out)
    ref_by_key = {k: (s, v) for k, s, v in reference}
    assert len(ref_by_key) == len(reference)  # the uninterrupted run never repeats itself
    signals = [k for k, s, _ in reference if s == SCHEMA_SIGNAL]
    day_ns = 86_400 * 10**9
    open_ns, close_ns = (14 * 3600 + 1800) * 10**9, 21 * 3600 * 10**9  # 09:30 and 16:00 EST
    rth = sum(1 for t in trades if open_ns <= t.sip_timestamp_ns % day_ns <= close_ns)
    assert len(signals) == rth > 10_000
    assert len({p for p, _ in signals}) >= 3

    got: dict[tuple[int, int], tuple[bytes, bytes]] = {}
    duplicates = 0
    for k, s, v in _outputs(kafka_broker, out):
        if k in got:
            duplicates += 1
            assert got[k] == (s, v), f"duplicate of input {k} with another payload"
        got[k] = (s, v)
    assert got.keys() == ref_by_key.keys()
    assert got == ref_by_key
    print(f"{len(got)} input offsets with output; {duplicates} identical duplicates")
