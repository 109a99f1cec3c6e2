"""Offset ranges and raw records (pure).

Ranges are half-open ``[start, stop)``. Offsets are not contiguous (transaction
markers, compaction), so a range may hold fewer than ``stop - start`` records.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import OffsetError


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """A half-open offset range ``[start, stop)`` of one topic-partition."""

    topic: str
    partition: int
    start: int
    stop: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.stop < self.start:
            raise OffsetError(
                f"offset range [{self.start}, {self.stop}) of {self.topic}:{self.partition} "
                "is invalid"
            )

    @property
    def span(self) -> int:
        """Return ``stop - start`` (an upper bound on the number of records)."""
        return self.stop - self.start

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:[{self.start},{self.stop})"


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One consumed record, as read; ``timestamp_ms`` is Kafka's record timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int


def plan_stop(next_offset: int, high: int, max_records: int) -> int | None:
    """Return the stop offset of the next microbatch, or None when caught up.

    Parameters
    ----------
    next_offset
        The first offset not yet loaded (from the warehouse ledger, or the low watermark).
    high
        The partition's high watermark (last offset + 1).
    max_records
        The largest span of one batch.

    Returns
    -------
    int | None
        ``min(high, next_offset + max_records)``, or None if ``next_offset >= high``.
    """
    if max_records < 1:
        raise ValueError(f"max_records is {max_records} and must be at least 1")
    if next_offset >= high:
        return None
    return min(high, next_offset + max_records)
