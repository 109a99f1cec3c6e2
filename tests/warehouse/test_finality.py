"""The finality rule of pipeline/warehouse/finality.py, case by case (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.nytime import wall_time_ns
from pipeline.warehouse.finality import (
    LedgerFrontier,
    PartitionEnd,
    RunRead,
    TradeBatch,
    days_to_recompute,
    ingested_through,
    is_final,
    parse_ledger_ends,
    read_by_run,
    touches_session,
)

T = "polygon-market-data"
DAY = date(2018, 1, 2)
H14, H16_20 = wall_time_ns(DAY, 14, 0), wall_time_ns(DAY, 16, 20)
CLOSE = wall_time_ns(DAY, 16, 0)


def frontier(**ends: tuple[int, int | None]) -> LedgerFrontier:
    return LedgerFrontier({(T, int(p[1:])): PartitionEnd(*e) for p, e in ends.items()})


def test_the_bound_is_the_weakest_partition_not_the_strongest():
    f = frontier(p0=(100, H16_20), p1=(50, H14))
    assert ingested_through(f, T, None) == H14
    assert ingested_through(f, T, {0: (0, 100), 1: (0, 60)}) == H14
    assert not is_final(CLOSE, ingested_through(f, T, {0: (0, 100), 1: (0, 60)}))


def test_a_caught_up_partition_follows_the_stream_a_lagging_one_does_not():
    f = frontier(p0=(100, H16_20), p1=(60, H14))
    assert ingested_through(f, T, {0: (0, 100), 1: (0, 60)}) == H16_20
    assert is_final(CLOSE, H16_20)
    # The same partition one record behind holds the day back.
    assert ingested_through(f, T, {0: (0, 100), 1: (0, 61)}) == H14


def test_partitions_kafka_has_and_the_ledger_lacks_count():
    f = frontier(p0=(100, H16_20))
    # Partition 1 holds records that were never loaded: nothing is known of it.
    assert ingested_through(f, T, {0: (0, 100), 1: (0, 5)}) is None
    # An empty partition (or one whose records all expired) is caught up.
    assert ingested_through(f, T, {0: (0, 100), 1: (7, 7)}) == H16_20


def test_without_watermarks_no_partition_is_caught_up_and_other_topics_do_not_count():
    f = LedgerFrontier(
        {(T, 0): PartitionEnd(100, H16_20), ("old-topic", 0): PartitionEnd(5, H14 - 10**12)}
    )
    assert ingested_through(f, T, None) == H16_20
    assert ingested_through(LedgerFrontier({}), T, None) is None
    assert ingested_through(frontier(p0=(100, None)), T, None) is None


def test_ledger_ends_round_trip_and_tell_a_read_batch_from_a_later_one():
    f = LedgerFrontier({(T, 0): PartitionEnd(100, H14), ("a:b", 2): PartitionEnd(7, None)})
    ends = parse_ledger_ends(f.ends_json())
    assert ends == {(T, 0): 100, ("a:b", 2): 7}
    assert read_by_run(ends, T, 0, 100)
    assert not read_by_run(ends, T, 0, 101)
    assert not read_by_run(ends, T, 1, 1)  # a partition the run never saw
    assert parse_ledger_ends(None) is None


@pytest.mark.parametrize(
    ("lo", "hi", "touches"),
    [
        (wall_time_ns(DAY, 9, 0), wall_time_ns(DAY, 9, 29), False),
        (wall_time_ns(DAY, 9, 0), wall_time_ns(DAY, 9, 30), True),
        (wall_time_ns(DAY, 15, 59), wall_time_ns(DAY, 17, 0), True),
        (wall_time_ns(DAY, 16, 0), wall_time_ns(DAY, 19, 0), False),
        (wall_time_ns(date(2018, 1, 1), 12, 0), wall_time_ns(date(2018, 1, 3), 12, 0), True),
    ],
)
def test_a_batch_touches_a_day_when_its_time_range_meets_the_session(lo, hi, touches):
    assert touches_session(DAY, lo, hi) is touches


def _batch(stop: int, lo: int, hi: int, partition: int = 0) -> TradeBatch:
    return TradeBatch(T, partition, stop, lo, hi)


def test_a_day_is_due_when_a_batch_its_run_did_not_read_lands_in_its_session():
    late = _batch(120, wall_time_ns(DAY, 15, 0), wall_time_ns(DAY, 15, 1))
    read = _batch(100, wall_time_ns(DAY, 15, 0), wall_time_ns(DAY, 15, 1))
    final_run = {DAY: RunRead(True, {(T, 0): 100})}
    now = wall_time_ns(DAY, 10, 0)  # even before the close: a final run went stale
    assert days_to_recompute([late], final_run, now) == [DAY]
    assert days_to_recompute([read], final_run, now) == []
    # After-hours prints do not change the signals.
    evening = _batch(130, wall_time_ns(DAY, 17, 0), wall_time_ns(DAY, 18, 0))
    assert days_to_recompute([evening], final_run, now) == []
    # A partition the run never saw.
    assert days_to_recompute([_batch(5, *_session(), partition=3)], final_run, now) == [DAY]


def _session() -> tuple[int, int]:
    return wall_time_ns(DAY, 10, 0), wall_time_ns(DAY, 11, 0)


def test_a_provisional_day_waits_for_its_close_plus_the_grace_then_is_due():
    provisional = {DAY: RunRead(False, {(T, 0): 100})}
    late = _batch(120, *_session())
    assert days_to_recompute([late], provisional, wall_time_ns(DAY, 14, 0)) == []
    assert days_to_recompute([late], provisional, wall_time_ns(DAY, 16, 14)) == []
    assert days_to_recompute([late], provisional, wall_time_ns(DAY, 16, 15)) == [DAY]


def test_days_without_a_run_or_without_recorded_ends_are_not_judged():
    late = _batch(120, *_session())
    now = wall_time_ns(DAY, 20, 0)
    assert days_to_recompute([late], {}, now) == []
    assert days_to_recompute([late], {DAY: RunRead(True, None)}, now) == []


def test_a_batch_spanning_days_touches_each_session_it_meets():
    nxt = date(2018, 1, 3)
    b = _batch(9, wall_time_ns(DAY, 15, 0), wall_time_ns(nxt, 9, 45))
    assert b.days() == [DAY, nxt]
    overnight = _batch(9, wall_time_ns(DAY, 18, 0), wall_time_ns(nxt, 8, 0))
    assert overnight.days() == []
