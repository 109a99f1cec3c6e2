"""Frame buffers and dedup keys bounded in bytes (issue 14.10): O(1) accounting, both bounds."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.feed.buffers import FrameQueue, FrameRing
from pipeline.feed.dedup import KEY_BYTES, Guard, KeyBudget

MIB = 1 << 20


def test_large_frames_fill_the_queue_by_bytes_long_before_its_frame_count() -> None:
    q: FrameQueue[tuple[bytes, int]] = FrameQueue(max_frames=10_000, max_bytes=4 * MIB)
    big = b"x" * (MIB + 1)
    for k in range(3):
        assert q.full_for(len(big)) is None
        q.put_nowait((big, k), len(big))
    assert q.full_for(len(big)) == "bytes"  # 3 frames of 10,000 queued
    assert q.full_for(MIB // 2) is None  # a small one still fits
    assert (q.bytes, q.high_water_bytes, q.high_water_frames) == (3 * len(big), 3 * len(big), 3)
    assert q.describe() == "3 of 10000 frames, 3,145,731 of 4,194,304 bytes"


def test_a_frame_larger_than_the_byte_bound_enters_an_empty_queue() -> None:
    q: FrameQueue[bytes] = FrameQueue(max_frames=10, max_bytes=MIB)
    assert q.full_for(16 * MIB) is None  # refusing it would stall the stream for good
    q.put_nowait(b"", 16 * MIB)
    assert q.full_for(1) == "bytes"


def test_the_frame_count_bound_still_applies_to_small_frames_and_control_items() -> None:
    q: FrameQueue[object] = FrameQueue(max_frames=2, max_bytes=MIB)
    q.put_nowait("a", 1)
    q.put_nowait(None, 0)
    assert q.full_for(0) == "frames"


def test_a_put_waits_for_the_parser_to_take_bytes_off_and_the_level_follows() -> None:
    async def go() -> list[str]:
        q: FrameQueue[str] = FrameQueue(max_frames=100, max_bytes=10)
        q.put_nowait("a", 8)
        log: list[str] = []

        async def producer() -> None:
            await q.put("b", 8)
            log.append(f"put b at {q.bytes} bytes")

        task = asyncio.create_task(producer())
        await asyncio.sleep(0.01)
        assert not task.done()  # 8 + 8 > 10: waiting
        log.append(f"got {await q.get()} at {q.bytes} bytes")
        await task
        log.append(f"got {await q.get()} at {q.bytes} bytes")
        return log

    assert asyncio.run(go()) == ["got a at 0 bytes", "put b at 8 bytes", "got b at 0 bytes"]


def test_the_ring_forgets_its_oldest_frames_past_its_byte_bound_but_keeps_the_newest() -> None:
    ring = FrameRing(max_frames=2048, max_bytes=10)
    for k in range(4):
        ring.append((b"x" * 4, k))
    assert [r for _, r in ring.newest_first()] == [3, 2]
    assert (ring.bytes, ring.evicted) == (8, 2)
    ring.append((b"y" * 50, 9))  # larger than the bound: kept alone
    assert ([r for _, r in ring.newest_first()], ring.bytes) == ([9], 50)
    small = FrameRing(max_frames=2, max_bytes=MIB)
    for k in range(3):
        small.append(("z", k))
    assert [r for _, r in small.newest_first()] == [2, 1]


def _f(trade_id: str, sip: int = 5) -> dict[str, object]:
    return {"symbol": "AAA", "sip_timestamp_ns": sip, "exchange": 4, "trf_id": None,
            "trade_id": trade_id}  # fmt: skip


def test_guards_charge_their_budget_per_new_key_and_give_it_back_when_dropped() -> None:
    budget = KeyBudget(3 * KEY_BYTES)
    a, b = Guard("AAA", 0, 10, budget), Guard("AAA", 0, 10, budget)
    a.remember(_f("1"))
    a.remember(_f("1"))  # known: not charged twice
    assert a.first_time(_f("2"))
    assert not a.first_time(_f("2"))
    assert a.first_time(_f("3", sip=99))  # outside the window: neither kept nor charged
    assert (budget.keys, budget.bytes, budget.exhausted) == (2, 2 * KEY_BYTES, False)
    b.remember(_f("9"))
    assert budget.exhausted
    a.release()
    assert (budget.keys, budget.exhausted, a.keys) == (1, False, set())
    with pytest.raises(ValueError, match="holds no key"):
        KeyBudget(KEY_BYTES - 1)
