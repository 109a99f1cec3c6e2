"""The silence watchdog: notice a feed that stopped talking, without reconnect storms (no IO).

A socket can stay open while the provider stops sending (a stalled session); TCP keepalive
pings do not see that. The watchdog watches the time since the last frame and decides,
with the injected :class:`~pipeline.clock.Clock`:

- **Market hours.** Outside the US equity session (04:00-20:00 New York on NYSE trading
  days, extended hours included) silence is normal: it never forces a reconnect (pings
  still catch a dead socket).
- **Sparse symbols.** The threshold adapts to the subscription: ``factor`` times an
  exponentially weighted mean of the gaps between data frames, clamped to
  ``[min_silence_s, max_silence_s]``. An illiquid ticker that prints every few minutes
  earns a threshold of many minutes, a busy one a few seconds.
- **Evidence before action.** When the silence passes the threshold the verdict is
  ``probe``: the streamer asks the REST trades endpoint whether a subscribed symbol
  printed after the last trade we saw. Only a yes (:meth:`probe_result` with
  ``stalled=True``) makes it reconnect; a no doubles the threshold (up to the maximum),
  so a quiet symbol costs one cheap REST call per threshold, never a reconnect. Without
  a probe the watchdog reconnects only after ``max_silence_s``.

Reconnects go through the supervisor's capped, jittered backoff, so even a wrong
verdict cannot turn into a storm.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Protocol

from pipeline.clock import Clock
from pipeline.errors import ConfigError
from pipeline.nytime import NEW_YORK

_EXTENDED_OPEN_S = 4 * 3600
_EXTENDED_CLOSE_S = 20 * 3600
NS_PER_S = 1_000_000_000


class MarketHours(Protocol):
    """Tells whether prints are expected at a wall-clock time."""

    def is_open(self, now_ns: int) -> bool:
        """Return True if the market is in session at ``now_ns`` (UTC epoch ns)."""
        ...


class AlwaysOpen:
    """Every time is a trading time (replays of recorded days, crypto-like tests)."""

    def is_open(self, now_ns: int) -> bool:
        """Return True."""
        return True


class UsEquityHours:
    """NYSE trading days, 04:00-20:00 New York (pre-market to after-hours).

    Parameters
    ----------
    trading_day
        Tells whether a New York date has a session; default: the ``XNYS`` calendar of
        ``exchange-calendars`` (loaded on first use), weekdays if it cannot be loaded.
    """

    def __init__(self, trading_day: Callable[[date], bool] | None = None) -> None:
        self._trading_day = trading_day
        self._cache: dict[date, bool] = {}

    def _is_trading_day(self, day: date) -> bool:
        if self._trading_day is None:
            self._trading_day = _xnys_sessions()
        hit = self._cache.get(day)
        if hit is None:
            hit = self._cache[day] = self._trading_day(day)
        return hit

    def is_open(self, now_ns: int) -> bool:
        """Return True within the extended session of a trading day."""
        local = datetime.fromtimestamp(now_ns / NS_PER_S, tz=UTC).astimezone(NEW_YORK)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        if not _EXTENDED_OPEN_S <= seconds < _EXTENDED_CLOSE_S:
            return False
        return self._is_trading_day(local.date())


def _xnys_sessions() -> Callable[[date], bool]:
    try:
        import exchange_calendars as xcals  # heavy (seconds): imported only when needed
        from pandas.errors import Pandas4Warning
    except ImportError:  # pragma: no cover - a declared dependency
        return lambda d: d.weekday() < 5
    with warnings.catch_warnings():
        # exchange-calendars 4.x trips a pandas 3 deprecation; not ours to fix.
        warnings.filterwarnings("ignore", category=Pandas4Warning)
        cal = xcals.get_calendar("XNYS")
        sessions = {ts.date() for ts in cal.sessions}
        first, last = cal.first_session.date(), cal.last_session.date()

    def is_session(d: date) -> bool:
        if first <= d <= last:
            return d in sessions
        return d.weekday() < 5  # beyond the calendar's range: weekdays

    return is_session


class Verdict(Enum):
    """What the watchdog wants done now."""

    OK = "ok"
    PROBE = "probe"
    RECONNECT = "reconnect"


@dataclass
class WatchdogStats:
    """Counters of the watchdog (metrics, tests)."""

    probes: int = 0
    quiet_confirmed: int = 0
    reconnects: int = 0


class SilenceWatchdog:
    """Decide when silence on a connection means a stalled feed.

    Parameters
    ----------
    clock
        Monotonic time for silence, wall time for market hours.
    hours
        Market-hours policy.
    min_silence_s, max_silence_s
        Bounds of the adaptive threshold.
    factor
        Threshold = ``factor`` x mean gap between data frames.
    can_probe
        True when a REST probe is available (else reconnect only at ``max_silence_s``).
    """

    def __init__(
        self,
        clock: Clock,
        hours: MarketHours,
        *,
        min_silence_s: float = 15.0,
        max_silence_s: float = 600.0,
        factor: float = 20.0,
        can_probe: bool = True,
    ) -> None:
        if not 0 < min_silence_s <= max_silence_s:
            raise ConfigError(
                f"watchdog bounds {min_silence_s}..{max_silence_s} s must be positive and ordered"
            )
        self.clock = clock
        self.hours = hours
        self.min_silence_s = min_silence_s
        self.max_silence_s = max_silence_s
        self.factor = factor
        self.can_probe = can_probe
        self.stats = WatchdogStats()
        self._last_ns = clock.monotonic_ns()
        self._mean_gap_s: float | None = None
        self._extra_s = 0.0  # grows after each probe that found the silence genuine
        self._probing = False

    @property
    def threshold_s(self) -> float:
        """Return the current silence threshold."""
        base = self.min_silence_s
        if self._mean_gap_s is not None:
            base = max(base, self.factor * self._mean_gap_s)
        return min(self.max_silence_s, base + self._extra_s)

    def silence_s(self) -> float:
        """Return seconds since the last frame (or connection)."""
        return (self.clock.monotonic_ns() - self._last_ns) / NS_PER_S

    def on_connect(self) -> None:
        """Start timing a new connection (its handshake is not silence)."""
        self._last_ns = self.clock.monotonic_ns()
        self._extra_s = 0.0
        self._probing = False

    def on_frame(self, mono_ns: int, *, data: bool) -> None:
        """Note a frame; ``data`` frames (not status) teach the typical gap."""
        if data:
            gap_s = (mono_ns - self._last_ns) / NS_PER_S
            m = self._mean_gap_s
            self._mean_gap_s = gap_s if m is None else 0.95 * m + 0.05 * gap_s
            self._extra_s = 0.0
        self._last_ns = mono_ns

    def check(self) -> Verdict:
        """Return what to do now (call periodically)."""
        if self._probing or not self.hours.is_open(self.clock.now_ns()):
            return Verdict.OK
        silence = self.silence_s()
        if silence < self.threshold_s:
            return Verdict.OK
        if self.can_probe:
            self._probing = True
            self.stats.probes += 1
            return Verdict.PROBE
        if silence >= self.max_silence_s:
            self.stats.reconnects += 1
            self._last_ns = self.clock.monotonic_ns()
            return Verdict.RECONNECT
        return Verdict.OK

    def probe_result(self, *, stalled: bool) -> Verdict:
        """Take the probe's answer: ``RECONNECT`` if the provider printed what we did not get."""
        self._probing = False
        if stalled:
            self.stats.reconnects += 1
            self._last_ns = self.clock.monotonic_ns()
            return Verdict.RECONNECT
        # Genuinely quiet: wait twice as long before asking again.
        self.stats.quiet_confirmed += 1
        self._extra_s = max(self.threshold_s, self._extra_s * 2 or self.threshold_s)
        self._last_ns = self.clock.monotonic_ns()
        return Verdict.OK
