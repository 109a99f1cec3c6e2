"""The one retry schedule of the platform: capped exponential backoff with jitter.

Every loop that retries a transient failure waits :meth:`Backoff.delay_s` between
attempts: the feed's reconnects (:mod:`pipeline.feed.supervisor`), REST backfill requests
(:mod:`pipeline.feed.rest`, where a server's ``Retry-After`` wins), Kafka watermark reads
during a leader election (:mod:`pipeline.kafka.consumer`) and a backup's attach of a
DuckDB file a writer holds (:mod:`pipeline.warehouse.backup`). Each caller keeps its own
deadline or attempt count and its own idea of what is transient; only the waits are
shared. Waits for a DuckDB file lock are not retries: they poll the kernel's lock
(:class:`pipeline.warehouse.duckdb_backend.FileLocks`).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_JITTER = random.Random()  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with "equal jitter".

    Attempt ``n`` (1-based) waits a uniform time in ``[cap/2, cap]`` with
    ``cap = min(max_s, initial_s * multiplier**(n-1))``: never zero (no reconnect storm),
    never beyond ``max_s``, and spread so that many clients do not reconnect in step.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    """Consecutive failures before giving up; None = never give up (for callers that count)."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s or self.multiplier < 1:
            raise ValueError(
                f"backoff needs 0 < initial_s <= max_s and multiplier >= 1, got {self}"
            )

    def delay_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the wait before retry ``attempt`` (1-based).

        Parameters
        ----------
        attempt
            Which retry this is: 1 for the first.
        rng
            The jitter's source (tests pass a seeded one); None: the module's own.

        Returns
        -------
        float
            Seconds, in ``[cap/2, cap]``.
        """
        steps = max(0, attempt - 1)
        # Compared in logs: with "never give up" the attempt count grows without bound, and
        # multiplier ** steps overflows a float (OverflowError) long after the cap is reached.
        grown = math.log(self.initial_s) + steps * math.log(self.multiplier)
        cap = self.max_s if grown >= math.log(self.max_s) else math.exp(grown)
        return cap / 2 + (rng or _JITTER).uniform(0.0, cap / 2)
