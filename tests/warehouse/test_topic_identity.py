"""The ledger's topic identity on real DuckDB files: adoption of rows before migration 0012,
refusal of another topic id, and the acknowledgement that starts the next epoch (issue 14.5)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import TopicRecreatedError
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse.base import QualityVerdict
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from pipeline.warehouse.migrate import MIGRATIONS_DIR, apply_migrations
from pipeline.warehouse.topic_identity import TopicIncarnation
from tests.warehouse.factories import as_records, sample_trades

TOPIC = "polygon-market-data"
OLD_ID, NEW_ID = "Xc1vKz9eQmWJ3bq2Y7t0Aw", "pT4n0rS8R2eC6vLm1kQ9bA"
DAY1 = date(2018, 1, 2)


def _batch(start: int, n: int, first_row: int = 0):
    trades = sample_trades(n, day=DAY1, start_row=first_row)
    return shape_batch(as_records(trades, start=start), OffsetRange(TOPIC, 0, start, start + n))


def test_rows_written_before_0012_keep_their_place_and_are_adopted_by_the_next_load(
    duckdb_file: Path, tmp_path: Path
) -> None:
    before = tmp_path / "before-0012"
    shutil.copytree(MIGRATIONS_DIR, before)
    # A warehouse of before 0012 has none of the later ones either (0015 alters 0012's table).
    later = sorted({p.name[:4] for p in before.glob("*.sql") if p.name[:4] >= "0012"})
    for p in before.glob("*.sql"):
        if p.name[:4] >= "0012":
            p.unlink()
    wh = DuckDBWarehouse(duckdb_file)
    apply_migrations(wh.transaction, "duckdb", before)
    with wh.transaction() as s:  # a ledger row as the loader wrote it before 0012
        s.execute(
            "INSERT INTO kafka_offsets (kafka_topic, kafka_partition, start_offset, stop_offset, "
            "n_messages, n_trades, n_duplicates, n_rejects, n_gaps, run_id, committed_ns) "
            "VALUES (?, 0, 0, 10, 10, 10, 0, 0, 0, 'old', 1)",
            (TOPIC,),
        )
    assert [m.version for m in wh.migrate()] == later
    assert wh.topic_incarnation(TOPIC) == TopicIncarnation(TOPIC, 0, None)
    assert wh.next_offset(TOPIC, 0) == 10

    wh.load_batch(_batch(10, 5, first_row=10), expected_start=10, run_id="r", topic_id=OLD_ID)
    assert wh.topic_incarnation(TOPIC) == TopicIncarnation(TOPIC, 0, OLD_ID)
    assert wh.next_offsets(TOPIC) == {0: 15}


def test_another_topic_id_is_refused_until_acknowledged_and_the_history_still_counts(
    duckdb_file: Path,
) -> None:
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    failed = QualityVerdict(passed=False, summary_json="{}")
    wh.load_batch(_batch(0, 20), expected_start=0, run_id="a", topic_id=OLD_ID, quality=failed)
    assert wh.ledger_frontier().partitions[(TOPIC, 0)].next_offset == 20

    # The topic was recreated: a batch read from it is refused, nothing is written.
    with pytest.raises(TopicRecreatedError, match=f"{OLD_ID}.*{NEW_ID}"):
        wh.load_batch(_batch(20, 5, first_row=20), expected_start=20, run_id="b", topic_id=NEW_ID)
    assert wh.table_counts()["market_data"] == 20

    new = wh.acknowledge_topic(TOPIC, NEW_ID, {0: 0, 1: 0})
    assert new == TopicIncarnation(TOPIC, 1, NEW_ID)
    assert wh.acknowledge_topic(TOPIC, NEW_ID, {0: 0}) == new  # already acknowledged: no-op
    assert wh.next_offsets(TOPIC) == {0: 0, 1: 0}
    assert wh.partition_progress(TOPIC) == []  # the old topic's batches are history now
    counts = wh.table_counts()
    assert (counts["kafka_offsets"], counts["kafka_offsets_history"]) == (0, 1)
    assert counts["kafka_topic_epochs"] == 2
    # What was loaded from the old topic still counts: its failed gate. Finality is judged
    # on the new topic's partitions only (pipeline/warehouse/finality.py): until they are
    # loaded, no day can look final from the old topic's horizon.
    window = (0, 2**62)
    assert wh.failed_batches(*window) == [f"{TOPIC}:0:[0,20)"]
    assert wh.ledger_frontier().partitions == {}

    # The new topic loads from offset 0; the 20 trades it repeats are not stored twice.
    result = wh.load_batch(_batch(0, 30), expected_start=0, run_id="c", topic_id=NEW_ID)
    assert (result.n_trades, result.n_duplicates) == (10, 20)
    assert wh.next_offsets(TOPIC) == {0: 30, 1: 0}
    with pytest.raises(TopicRecreatedError):
        wh.load_batch(_batch(30, 5, first_row=30), expected_start=30, run_id="d", topic_id=OLD_ID)


def test_a_topic_never_loaded_has_nothing_to_acknowledge(duckdb_file: Path) -> None:
    from pipeline.errors import WarehouseError

    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    with pytest.raises(WarehouseError, match="nothing to acknowledge"):
        wh.acknowledge_topic(TOPIC, NEW_ID, {0: 0})
