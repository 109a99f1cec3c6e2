"""When each event of a replay is due: the replay server's pacing, pure.

``speed`` paces by SIP time (1 = real time, pauses capped at ``max_pause_s``), ``rate`` by
events per second, neither = every event at once. Times are seconds after the timeline's
start; :class:`~pipeline.feed.replay_server.ReplayServer` owns the clock.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Sequence

NS_PER_S = 1_000_000_000


class Timeline:
    """When each event is due, as seconds after the timeline's start."""

    def __init__(
        self,
        sips: Sequence[int],
        speed: float | None,
        rate: float | None,
        max_pause_s: float | None,
    ) -> None:
        self.n = len(sips)
        self.speed = speed
        self.rate = rate
        self._due: array[float] | None = None
        if speed is not None and self.n:
            due = array("d", [0.0]) * self.n
            t = 0.0
            cap = max_pause_s if max_pause_s is not None else math.inf
            for k in range(1, self.n):
                t += min((sips[k] - sips[k - 1]) / NS_PER_S / speed, cap)
                due[k] = t
            self._due = due

    @property
    def paced(self) -> bool:
        """Return False when events are due at once (max speed)."""
        return self.speed is not None or self.rate is not None

    def due_s(self, k: int) -> float:
        """Return when event ``k`` is due (seconds after start)."""
        if self._due is not None:
            return self._due[k]
        if self.rate is not None:
            return k / self.rate
        return 0.0

    def due_before(self, elapsed_s: float) -> int:
        """Return how many events were due strictly before ``elapsed_s`` (gone for a subscriber)."""
        if self._due is not None:
            return bisect.bisect_left(self._due, elapsed_s)
        if self.rate is not None:
            return min(self.n, max(0, math.ceil(elapsed_s * self.rate)))
        return 0

    def due_count(self, elapsed_s: float) -> int:
        """Return how many events are due ``elapsed_s`` after the start."""
        if self._due is not None:
            return bisect.bisect_right(self._due, elapsed_s)
        if self.rate is not None:
            return min(self.n, max(0, math.floor(elapsed_s * self.rate) + 1))
        return self.n
