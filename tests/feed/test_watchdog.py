"""The silence watchdog on a FakeClock: market hours, sparse symbols, no reconnect storms."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pipeline.clock import FakeClock
from pipeline.feed.watchdog import AlwaysOpen, SilenceWatchdog, UsEquityHours, Verdict

NS = 1_000_000_000


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS


def _weekdays(d: date) -> bool:
    return d.weekday() < 5


def test_us_equity_hours_are_the_extended_session_of_trading_days() -> None:
    hours = UsEquityHours(trading_day=lambda d: d.weekday() < 5 and d != date(2024, 7, 4))
    assert hours.is_open(_ns("2024-07-03T14:00:00"))  # 10:00 New York, a Wednesday
    assert hours.is_open(_ns("2024-07-03T08:00:00"))  # 04:00 pre-market opens
    assert not hours.is_open(_ns("2024-07-03T07:59:59"))
    assert not hours.is_open(_ns("2024-07-04T00:30:00"))  # 20:30 on the 3rd: after-hours over
    assert not hours.is_open(_ns("2024-07-04T14:00:00"))  # Independence Day
    assert not hours.is_open(_ns("2024-07-06T14:00:00"))  # Saturday
    assert hours.is_open(_ns("2024-01-03T14:00:00"))  # winter: 09:00 EST


def test_the_xnys_calendar_knows_exchange_holidays() -> None:
    hours = UsEquityHours()
    assert not hours.is_open(_ns("2025-12-25T15:00:00"))
    assert hours.is_open(_ns("2025-12-24T15:00:00"))


def test_a_busy_feed_that_stops_is_probed_then_reconnected_when_rest_shows_newer_trades() -> None:
    clock = FakeClock()
    wd = SilenceWatchdog(clock, AlwaysOpen(), min_silence_s=2.0, max_silence_s=60.0, factor=10)
    for _ in range(50):  # a frame every 50 ms
        clock.advance(0.05)
        wd.on_frame(clock.monotonic_ns(), data=True)
    assert wd.threshold_s == 2.0  # 10 x 50 ms is below the floor
    clock.advance(1.9)
    assert wd.check() is Verdict.OK
    clock.advance(0.2)
    assert wd.check() is Verdict.PROBE
    assert wd.check() is Verdict.OK  # one probe at a time
    assert wd.probe_result(stalled=True) is Verdict.RECONNECT
    assert wd.stats.reconnects == 1


def test_a_sparse_symbol_earns_a_long_threshold_and_a_quiet_probe_never_reconnects() -> None:
    clock = FakeClock()
    wd = SilenceWatchdog(clock, AlwaysOpen(), min_silence_s=5.0, max_silence_s=1800.0, factor=3)
    for _ in range(30):  # an illiquid ticker: a print every ~2 minutes
        clock.advance(120.0)
        wd.on_frame(clock.monotonic_ns(), data=True)
    assert 300.0 <= wd.threshold_s <= 400.0
    clock.advance(200.0)
    assert wd.check() is Verdict.OK
    reconnects = 0
    for _ in range(10):  # an hour of genuine silence
        clock.advance(wd.threshold_s + 1)
        if wd.check() is Verdict.PROBE and wd.probe_result(stalled=False) is Verdict.RECONNECT:
            reconnects += 1
    assert reconnects == 0
    assert wd.stats.quiet_confirmed >= 3
    assert wd.threshold_s == 1800.0  # each quiet probe doubled the wait, up to the cap


def test_status_frames_keep_the_connection_alive_but_do_not_teach_the_gap() -> None:
    clock = FakeClock()
    wd = SilenceWatchdog(clock, AlwaysOpen(), min_silence_s=1.0, max_silence_s=10.0, factor=10)
    clock.advance(0.5)
    wd.on_frame(clock.monotonic_ns(), data=False)
    assert wd.threshold_s == 1.0
    assert wd.silence_s() == 0.0


def test_outside_market_hours_silence_is_normal() -> None:
    clock = FakeClock(start_ns=_ns("2024-07-06T14:00:00"))  # a Saturday
    wd = SilenceWatchdog(
        clock, UsEquityHours(trading_day=_weekdays), min_silence_s=1.0, max_silence_s=5.0
    )
    clock.advance(3600.0)
    assert wd.check() is Verdict.OK


def test_without_a_probe_it_reconnects_only_at_the_maximum() -> None:
    clock = FakeClock()
    wd = SilenceWatchdog(
        clock, AlwaysOpen(), min_silence_s=1.0, max_silence_s=30.0, can_probe=False
    )
    clock.advance(29.0)
    assert wd.check() is Verdict.OK
    clock.advance(1.5)
    assert wd.check() is Verdict.RECONNECT
    assert wd.check() is Verdict.OK  # the clock restarted: no storm
    wd.on_connect()
    assert wd.silence_s() == 0.0
