"""A topic deleted and recreated under the same name, against a real broker and DuckDB file.

Issue 14.5: the ledger knew topics by name only, so a topic recreated while nothing ran,
whose new high watermark passed the old ledger end, was loaded from the old end on and
its offsets ``0..end`` were never loaded, silently. Now every ledger row carries Kafka's
topic id: a new id stops loading (the sensor says why and plans nothing, a run fails with
:class:`~pipeline.errors.TopicRecreatedError`) until ``microstructure kafka
acknowledge-topic`` records the new topic, which then loads from offset 0 with the old
ledger rows kept as history and the trades already stored not stored twice.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from pipeline.cli import main
from pipeline.kafka.broker import delete_topic, ensure_topic
from pipeline.warehouse import open_warehouse
from tests.assets.support import harness, produce
from tests.support.wait import wait_until
from tests.warehouse.factories import sample_trades

pytestmark = pytest.mark.kafka

DAY1 = date(2018, 1, 2)


def recreate(bootstrap: str, topic: str, partitions: int, timeout_s: float = 60.0) -> None:
    """Delete ``topic`` and create it again (empty, with a new topic id)."""
    delete_topic(bootstrap, topic, timeout_s=30.0)
    # Deletion completes in the background: until it has, creating answers "already exists".
    wait_until(
        lambda: ensure_topic(bootstrap, topic, partitions, timeout_s=30.0).created,
        timeout_s,
        interval_s=0.2,
        what=f"{topic} deleted and created again",
    )


def stored_trade_ids(url: str) -> set[str]:
    wh = open_warehouse(url, read_only=True)
    with wh.transaction() as s:
        return {str(r[0]) for r in s.execute("SELECT trade_id FROM market_data")}


def test_a_recreated_topic_stops_loading_until_acknowledged_then_loads_from_offset_zero(
    kafka_broker, make_kafka_topic, duckdb_file, monkeypatch, capsys
):
    topic = make_kafka_topic(1)
    produce(kafka_broker, topic, sample_trades(100, day=DAY1))
    with dg.instance_for_test() as instance:
        h = harness(kafka_broker, topic, duckdb_file, instance)
        assert h.ingest_until_caught_up() == 1

        # While nothing runs the topic is recreated and the feed replays past the old end:
        # 300 records, the first 50 of them trades already stored.
        recreate(kafka_broker, topic, 1)
        produce(kafka_broker, topic, sample_trades(300, day=DAY1, start_row=50))

        # Before: the sensor asked for [100, 300) of the new topic and rows 100..149 were
        # never loaded. Now it plans nothing and says why and what to run.
        tick = h.tick()
        assert list(tick.run_requests or []) == []
        reason = tick.skip_message or ""
        assert f"topic {topic!r} was recreated" in reason
        assert f"microstructure kafka acknowledge-topic --topic {topic}" in reason
        assert stored_trade_ids(h.url) == {str(i) for i in range(100)}

        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
        monkeypatch.setenv("MICROSTRUCTURE_TOPIC", topic)
        monkeypatch.setenv("MICROSTRUCTURE_WAREHOUSE_URL", h.url)
        assert main(["kafka", "acknowledge-topic", "--topic", topic]) == 0
        out = capsys.readouterr().out
        assert "partition 0 from offset 0" in out

        assert h.ingest_until_caught_up() == 1
        # Every offset of the new topic loaded, the 50 replayed trades stored once.
        assert stored_trade_ids(h.url) == {str(i) for i in range(350)}
        wh = open_warehouse(h.url, read_only=True)
        assert wh.query_frame("duplicate_trade_keys").empty
        # The ledger holds the new topic's batch; the old topic's row moved to the history.
        [row] = wh.query_frame("ledger", (topic, topic, 10)).to_dict("records")
        assert (row["start_offset"], row["stop_offset"]) == (0, 300)
        assert (row["n_trades"], row["n_duplicates"]) == (250, 50)
        new_id = row["kafka_topic_id"]
        with wh.transaction() as s:
            history = s.execute(
                "SELECT topic_epoch, start_offset, stop_offset, n_trades, kafka_topic_id "
                "FROM kafka_offsets_history"
            )
            acknowledged = s.execute(
                "SELECT topic_epoch, kafka_partition, kafka_topic_id, start_offset, "
                "previous_topic_id FROM kafka_topic_epochs"
            )
        [(epoch, start, stop, n_trades, old_id)] = history
        assert (epoch, start, stop, n_trades) == (0, 0, 100, 100)
        assert old_id
        assert new_id != old_id
        assert acknowledged == [(1, 0, new_id, 0, old_id)]
        from pipeline.warehouse.topic_identity import TopicIncarnation

        assert wh.topic_incarnation(topic) == TopicIncarnation(topic, 1, new_id)
        assert wh.next_offsets(topic) == {0: 300}
        assert h.tick().run_requests == []


def test_a_run_planned_before_the_recreation_fails_loudly_and_writes_nothing(
    kafka_broker, make_kafka_topic, duckdb_file
):
    topic = make_kafka_topic(1)
    produce(kafka_broker, topic, sample_trades(100, day=DAY1))
    with dg.instance_for_test() as instance:
        h = harness(kafka_broker, topic, duckdb_file, instance, max_records=60)
        [first] = h.requests()
        assert h.run(first).success
        [pending] = h.requests()  # [60, 100), asked for before the topic goes away
        recreate(kafka_broker, topic, 1)
        produce(kafka_broker, topic, sample_trades(200, day=DAY1, start_row=100))

        failed = h.run(pending, raise_on_error=False)
        assert not failed.success
        [failure] = [e for e in failed.all_events if e.is_step_failure]
        error = failure.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        assert error is not None
        assert error.cls_name == "TopicRecreatedError"
        assert "acknowledge-topic" in error.message
        assert stored_trade_ids(h.url) == {str(i) for i in range(60)}
