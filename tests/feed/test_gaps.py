"""Gap bookkeeping and the dedup guard (pure): windows per subscription, repairs, restarts."""

from __future__ import annotations

from datetime import date

from pipeline.feed.dedup import Guard, dedup_key, new_york_date
from pipeline.feed.gaps import GapBook

S = 1_000_000_000  # 1 s in ns
MS = 1_000_000


def _seen(book: GapBook, kind: str, sym: str, sip: int) -> None:
    book.last_sip.setdefault(kind, {})[sym] = sip


def test_a_disconnect_opens_one_gap_per_subscription_closed_by_each_symbols_first_trade() -> None:
    book = GapBook(["T.AAA", "T.BBB"], late_margin_ns=S, close_after_ns=100 * S)
    _seen(book, "T", "AAA", 10 * S)
    _seen(book, "T", "BBB", 12 * S)
    assert book.on_disconnect("code 1006", 777) == []
    assert book.open
    [aaa] = book.on_data("T", "AAA", 20 * S + 5 * MS + 123)
    assert (aaa.channel, aaa.last_before_ns, aaa.first_after_ns) == (
        "T.AAA",
        10 * S,
        20 * S + 5 * MS + 123,
    )
    # The window starts at the stream clock (BBB's 12 s, the latest event seen) minus the
    # late margin, and ends with the first trade's millisecond.
    assert (aaa.repair_from_ns, aaa.repair_to_ns) == (11 * S, 20 * S + 6 * MS - 1)
    assert (aaa.symbols, aaa.gap_id, aaa.reason, aaa.detected_ns) == (
        ("AAA",),
        "777:T.AAA",
        "code 1006",
        777,
    )
    assert aaa.seconds == 10.005000123
    assert book.open
    [bbb] = book.on_data("T", "BBB", 21 * S)
    assert bbb.channel == "T.BBB"
    assert not book.open


def test_a_quiet_symbol_closes_after_the_stream_moved_on_without_a_first_after() -> None:
    book = GapBook(["T.AAA", "T.ZZZ"], late_margin_ns=0, close_after_ns=5 * S)
    _seen(book, "T", "AAA", 10 * S)
    book.on_disconnect("drop", 1)
    assert [g.channel for g in book.on_data("T", "AAA", 11 * S)] == ["T.AAA"]
    assert book.on_data("T", "AAA", 15 * S) == []
    [zzz] = book.on_data("T", "AAA", 16 * S)
    assert (zzz.channel, zzz.last_before_ns, zzz.first_after_ns) == ("T.ZZZ", None, None)
    # Its window ends at the resumption: everything after it came live.
    assert (zzz.repair_from_ns, zzz.repair_to_ns) == (10 * S, 11 * S + MS - 1)


def test_failed_attempts_before_any_data_are_one_gap() -> None:
    book = GapBook(["T.*"])
    _seen(book, "T", "AAA", 10 * S)
    book.on_disconnect("refused", 1)
    book.on_disconnect("refused", 2)
    book.on_disconnect("auth_timeout", 3)
    [gap] = book.on_data("T", "BBB", 20 * S)
    assert gap.reason == "refused; then auth_timeout (3 attempts)"
    assert gap.detected_ns == 1
    assert gap.symbols == ("AAA",)  # a wildcard backfills the symbols seen before


def test_a_new_outage_closes_the_quiet_gaps_of_the_previous_one() -> None:
    book = GapBook(["T.AAA", "T.ZZZ"], late_margin_ns=0, close_after_ns=100 * S)
    _seen(book, "T", "AAA", 10 * S)
    book.on_disconnect("first", 1)
    book.on_data("T", "AAA", 12 * S)
    [zzz] = book.on_disconnect("second", 2)
    assert (zzz.channel, zzz.reason, zzz.repair_to_ns) == ("T.ZZZ", "first", 12 * S + MS - 1)
    assert book.open


def test_quotes_and_bars_have_gaps_of_their_own_kind() -> None:
    book = GapBook(["T.AAA", "Q.AAA", "AM.AAA"], late_margin_ns=0)
    _seen(book, "Q", "AAA", 5 * S)
    book.on_disconnect("drop", 1)
    [q] = book.on_data("Q", "AAA", 6 * S)
    assert (q.kind, q.last_before_ns) == ("Q", 5 * S)
    closed = book.close_all()
    assert sorted(g.channel for g in closed) == ["AM.AAA", "T.AAA"]


def test_a_restart_starts_each_symbols_window_at_its_own_last_record() -> None:
    book = GapBook(["T.AAA", "T.BBB", "T.CCC"], late_margin_ns=S)
    book.restart("restart", 9, 30 * S, {"AAA": 30 * S, "BBB": 20 * S})
    [aaa] = book.on_data("T", "AAA", 40 * S)
    [bbb] = book.on_data("T", "BBB", 41 * S)
    [ccc] = book.on_data("T", "CCC", 42 * S)
    assert aaa.repair_from_ns == 29 * S
    assert bbb.repair_from_ns == 19 * S
    assert (ccc.repair_from_ns, ccc.last_before_ns) == (19 * S, None)  # unknown: earliest


def test_a_wildcard_restart_gives_each_symbol_its_own_gap_and_window() -> None:
    """Issue 14.9: one illiquid symbol's old last trade set the window of every symbol."""
    hour = 3600 * S
    book = GapBook(["T.*"], late_margin_ns=S)
    book.restart("restart", 9, 7 * hour, {"AAA": 7 * hour, "BBB": 7 * hour - 2 * S, "ILL": hour})
    gaps = book.on_data("T", "BBB", 7 * hour + 10 * S)
    assert not book.open
    assert [(g.channel, g.symbols, g.last_before_ns, g.repair_from_ns) for g in gaps] == [
        ("T.AAA", ("AAA",), 7 * hour, 7 * hour - S),
        ("T.BBB", ("BBB",), 7 * hour - 2 * S, 7 * hour - 3 * S),
        ("T.ILL", ("ILL",), hour, hour - S),
    ]
    # Every piece ends at the subscription's first trade after the restart: from there on
    # the wildcard delivered every symbol live.
    assert {(g.first_after_ns, g.repair_to_ns) for g in gaps} == {
        (7 * hour + 10 * S, 7 * hour + 10 * S + MS - 1)
    }
    assert [g.gap_id for g in gaps] == ["9:T.*:AAA", "9:T.*:BBB", "9:T.*:ILL"]
    assert {g.reason for g in gaps} == {"restart"}


def test_a_wildcard_restart_stopped_before_any_trade_keeps_per_symbol_gaps_without_an_end() -> None:
    book = GapBook(["T.*"], late_margin_ns=S)
    book.restart("restart", 9, 30 * S, {"AAA": 30 * S, "ILL": 10 * S})
    gaps = book.close_all()
    assert [(g.channel, g.repair_from_ns, g.repair_to_ns) for g in gaps] == [
        ("T.AAA", 29 * S, None),
        ("T.ILL", 9 * S, None),
    ]


def test_close_all_at_stop_leaves_unresumed_gaps_without_an_end() -> None:
    book = GapBook(["T.AAA"])
    _seen(book, "T", "AAA", 10 * S)
    book.on_disconnect("drop", 1)
    [gap] = book.close_all()
    assert (gap.first_after_ns, gap.repair_to_ns) == (None, None)
    assert not book.open


def _f(sym: str, sip: int, trade_id: str, x: int = 4, trf: int | None = None) -> dict[str, object]:
    return {
        "symbol": sym,
        "sip_timestamp_ns": sip,
        "exchange": x,
        "trf_id": trf,
        "trade_id": trade_id,
    }


def test_the_dedup_key_uses_the_new_york_trading_date_and_trf_zero_for_exchange_prints() -> None:
    # 2018-01-03 03:00 UTC is still 2018-01-02 in New York.
    ts = 1_514_948_400_000_000_000
    assert new_york_date(ts) == date(2018, 1, 2)
    assert dedup_key(_f("AAA", ts, "9")) == ("AAA", date(2018, 1, 2), 4, 0, "9")
    assert dedup_key(_f("AAA", ts, "9", trf=0)) == dedup_key(_f("AAA", ts, "9"))
    assert dedup_key(_f("AAA", ts, "9", trf=201)) != dedup_key(_f("AAA", ts, "9"))
    assert dedup_key(_f("AAA", ts, "9", x=11)) != dedup_key(_f("AAA", ts, "9"))


def test_a_guard_passes_a_print_once_inside_its_window_and_always_outside() -> None:
    guard = Guard("AAA", 10 * S, 20 * S)
    guard.remember(_f("AAA", 11 * S, "1"))
    assert not guard.first_time(_f("AAA", 11 * S, "1"))  # live, then REST: produced once
    assert guard.first_time(_f("AAA", 12 * S, "2"))
    assert not guard.first_time(_f("AAA", 12 * S, "2"))
    assert guard.first_time(_f("AAA", 25 * S, "3"))
    assert guard.first_time(_f("AAA", 25 * S, "3"))  # outside the window: never checked
    guard.widen(5 * S, 30 * S)
    assert (guard.from_ns, guard.to_ns) == (5 * S, 30 * S)
