"""``collect_live`` (pure): what it keeps of the signals topic, and what it counts."""

from __future__ import annotations

from typing import Any

import orjson

from pipeline.kafka.codec import SCHEMA_REJECT, SCHEMA_SIGNAL, signal_headers
from pipeline.live.reconcile import RawRecord, collect_live


def _rec(offset: int, day: str = "2018-01-03", topic: str = "md", **over: Any) -> RawRecord:
    value = {"symbol": "XXX", "date": day, "timestamp_ns": offset, "price": 1.0, **over}
    return signal_headers(SCHEMA_SIGNAL, topic, 0, offset, "k", b"{}"), orjson.dumps(value)


def test_one_record_per_input_offset_others_counted_by_kind() -> None:
    raw = [
        _rec(1),
        _rec(2),
        _rec(2),  # an identical duplicate (produced again after a crash)
        _rec(3),
        _rec(3, log_return=0.5),  # a duplicate with another value: a conflict
        _rec(4, day="2018-01-02"),
        _rec(5, topic="other"),
        (signal_headers(SCHEMA_REJECT, "md", 0, 6, "k", b"{}"), b"{}"),
        (signal_headers(SCHEMA_SIGNAL, "md", 0, 7, "k", b"{}"), b"not json"),
        ([("schema", b"trade.v1")], b"{}"),
    ]
    live = collect_live(raw, "2018-01-03", "md")
    assert sorted(live.records) == [(0, 1), (0, 2), (0, 3)]
    assert live.records[(0, 3)]["log_return"] is None  # the first copy is kept
    assert live.conflicts == [(0, 3)]
    assert dict(live.counts) == {
        "signals": 3,
        "duplicates": 2,
        "other_day": 1,
        "other_input_topic": 1,
        "rejects": 1,
        "undecodable": 1,
        "other_schema:trade.v1": 1,
    }
