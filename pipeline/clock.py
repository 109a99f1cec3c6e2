"""Time as a seam: the system clock in production, a fake clock in tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock and monotonic time in integer nanoseconds."""

    def now_ns(self) -> int:
        """Return UTC epoch nanoseconds."""
        ...

    def monotonic_ns(self) -> int:
        """Return a monotonic reading in nanoseconds."""
        ...


class SystemClock:
    """The real clock."""

    def now_ns(self) -> int:
        """Return UTC epoch nanoseconds."""
        return time.time_ns()

    def monotonic_ns(self) -> int:
        """Return a monotonic reading in nanoseconds."""
        return time.monotonic_ns()


class FakeClock:
    """A clock that moves only when told to (tests of backoff and watchdogs)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        self._now_ns = start_ns
        self._mono_ns = 0

    def now_ns(self) -> int:
        """Return the fake UTC epoch nanoseconds."""
        return self._now_ns

    def monotonic_ns(self) -> int:
        """Return the fake monotonic nanoseconds."""
        return self._mono_ns

    def advance(self, seconds: float) -> None:
        """Move both readings forward by ``seconds``."""
        step = round(seconds * 1e9)
        self._now_ns += step
        self._mono_ns += step
