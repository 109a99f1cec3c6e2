"""parse_frame on recorded frames and on every class of bad input."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from pipeline.events import FeedStatus, Reject, Trade
from pipeline.feed import parse
from pipeline.feed.parse import parse_frame, reason_code, validate_trade

DATA = Path(__file__).parent.parent / "data" / "feed"
RECV = 1_700_000_000_123_456_789
DOC_TRADE = {"ev": "T", "sym": "MSFT", "x": 4, "i": "12345", "z": 3, "p": 114.125, "s": 100,
             "c": [0, 12], "t": 1536036818784, "q": 3681328}  # fmt: skip


def _frames(name: str) -> list[bytes]:
    return [line for line in (DATA / name).read_bytes().splitlines() if line]


def _one(frame: bytes | str) -> parse.ParsedEvent:
    [event] = parse_frame(frame, RECV)
    return event


def _with(**changes: object) -> bytes:
    ev = dict(DOC_TRADE)
    for k, v in changes.items():
        if v is _DROP:
            ev.pop(k)
        else:
            ev[k] = v
    return orjson.dumps([ev])


_DROP = object()


def test_the_documented_trade_parses_with_ms_converted_to_ns() -> None:
    frames = _frames("provider_docs_examples.jsonl")
    trade = _one(frames[-1])
    assert trade == Trade(
        symbol="MSFT",
        sip_timestamp_ns=1_536_036_818_784_000_000,
        price=114.125,
        size=100,
        exchange=4,
        trade_id="12345",
        tape=3,
        conditions=(0, 12),
        sequence_number=3681328,
        receipt_ns=RECV,
        source="ws",
    )


def test_the_documented_status_frames_parse() -> None:
    statuses = [_one(f) for f in _frames("provider_docs_examples.jsonl")[:3]]
    assert statuses == [
        FeedStatus("connected", "Connected Successfully", RECV),
        FeedStatus("auth_success", "authenticated", RECV),
        FeedStatus("success", "subscribed to: T.MSFT", RECV),
    ]


def test_recorded_replay_frames_parse_without_rejects() -> None:
    events = [
        e for f in _frames("replay_xxx_2018-01-02_first60.jsonl") for e in parse_frame(f, RECV)
    ]
    trades = [e for e in events if isinstance(e, Trade)]
    assert len(trades) == 60
    assert not [e for e in events if isinstance(e, Reject)]
    assert [t.sequence_number for t in trades] == list(range(1, 61))
    assert trades[0].sip_timestamp_ns == 1_514_887_281_479_000_000
    assert trades[0].conditions == (14, 12, 37)  # TAQ "FTI": sweep, Form T, odd lot


def test_a_frame_may_mix_status_and_trade_events_and_keeps_their_order() -> None:
    frame = orjson.dumps(
        [{"ev": "status", "status": "success", "message": "x"}, DOC_TRADE, DOC_TRADE]
    )
    kinds = [type(e).__name__ for e in parse_frame(frame, RECV)]
    assert kinds == ["FeedStatus", "Trade", "Trade"]


def test_absent_or_null_conditions_mean_none() -> None:
    assert _one(_with(c=_DROP)).conditions == ()  # type: ignore[union-attr]
    assert _one(_with(c=None)).conditions == ()  # type: ignore[union-attr]


def test_text_frames_parse_like_bytes() -> None:
    assert _one(_with().decode()) == _one(_with())


def test_optional_trf_fields_are_converted_to_ns() -> None:
    t = _one(_with(trfi=201, trft=1536036818780))
    assert isinstance(t, Trade)
    assert (t.trf_id, t.trf_timestamp_ns) == (201, 1_536_036_818_780_000_000)


def test_an_integral_float_size_is_accepted_as_an_integer() -> None:
    t = _one(_with(s=100.0))
    assert isinstance(t, Trade)
    assert t.size == 100


def test_unknown_extra_keys_are_ignored() -> None:
    assert isinstance(_one(_with(pt=1536036818783, ds="100")), Trade)


@pytest.mark.parametrize(
    ("frame", "code", "detail"),
    [
        (b'[{"ev":"T",', parse.MALFORMED_JSON, ""),
        (b"", parse.MALFORMED_JSON, ""),
        (b"\xff\xfe", parse.MALFORMED_JSON, ""),
        (orjson.dumps(DOC_TRADE), parse.FRAME_NOT_ARRAY, "JSON dict"),
        (b"42", parse.FRAME_NOT_ARRAY, "JSON int"),
        (b"[42]", parse.EVENT_NOT_OBJECT, "event 0 is a JSON int"),
        (orjson.dumps([{"ev": "NOI", "sym": "MSFT"}]), parse.UNKNOWN_EVENT_TYPE, "'NOI'"),
        (orjson.dumps([{"sym": "MSFT"}]), parse.MISSING_FIELD, "'ev'"),
        (orjson.dumps([{"ev": 1}]), parse.MISTYPED_FIELD, "'ev'"),
        (_with(sym=_DROP), parse.MISSING_FIELD, "'sym'"),
        (_with(x=_DROP), parse.MISSING_FIELD, "'x'"),
        (_with(i=_DROP), parse.MISSING_FIELD, "'i'"),
        (_with(p=_DROP), parse.MISSING_FIELD, "'p'"),
        (_with(s=_DROP), parse.MISSING_FIELD, "'s'"),
        (_with(t=_DROP), parse.MISSING_FIELD, "'t'"),
        (_with(sym=""), parse.MISTYPED_FIELD, "'sym'"),
        (_with(sym=5), parse.MISTYPED_FIELD, "'sym'"),
        (_with(i=12345), parse.MISTYPED_FIELD, "'i' is 12345"),
        (_with(x="4"), parse.MISTYPED_FIELD, "'x'"),
        (_with(x=True), parse.MISTYPED_FIELD, "'x'"),
        (_with(p="114.125"), parse.MISTYPED_FIELD, "'p'"),
        (_with(s=1.5), parse.MISTYPED_FIELD, "'s' is 1.5"),
        (_with(s="100"), parse.MISTYPED_FIELD, "'s'"),
        (_with(t=1536036818784.5), parse.MISTYPED_FIELD, "'t'"),
        (_with(t=1536036818784000000), parse.INVALID_VALUE, "'t'"),
        (_with(t=0), parse.INVALID_VALUE, "'t'"),
        # Past int64 once in ns (2262-04-11), below the old bound of 10**13 ms (2286).
        (_with(t=9_223_372_036_855), parse.INVALID_VALUE, "'t'"),
        (_with(t=9_999_999_999_999), parse.INVALID_VALUE, "'t'"),
        (_with(trft=9_300_000_000_000), parse.INVALID_VALUE, "'trft'"),
        (_with(c=12), parse.MISTYPED_FIELD, "'c'"),
        (_with(c=["12"]), parse.MISTYPED_FIELD, "'c'"),
        (_with(q="1"), parse.MISTYPED_FIELD, "'q'"),
        (_with(z=[3]), parse.MISTYPED_FIELD, "'z'"),
        (_with(trft="x"), parse.MISTYPED_FIELD, "'trft'"),
        (_with(p=0), parse.NON_POSITIVE_PRICE, "'p' is 0"),
        (_with(p=-1.25), parse.NON_POSITIVE_PRICE, "'p' is -1.25"),
        (_with(s=0), parse.NON_POSITIVE_SIZE, "'s' is 0"),
        (_with(s=-100), parse.NON_POSITIVE_SIZE, "'s' is -100"),
        (orjson.dumps([{"ev": "status"}]), parse.MISSING_FIELD, "'status'"),
        (orjson.dumps([{"ev": "status", "status": 1}]), parse.MISTYPED_FIELD, "'status'"),
    ],
)
def test_bad_input_becomes_a_reject_with_its_reason_and_the_raw_frame(
    frame: bytes, code: str, detail: str
) -> None:
    event = _one(frame)
    assert isinstance(event, Reject)
    assert reason_code(event.reason) == code
    assert detail in event.reason
    assert event.raw == frame
    assert event.stage == "parse"
    assert event.receipt_ns == RECV


def test_one_bad_event_does_not_spoil_its_neighbours() -> None:
    frame = orjson.dumps([DOC_TRADE, {**DOC_TRADE, "p": -1}, DOC_TRADE])
    events = parse_frame(frame, RECV)
    assert [type(e).__name__ for e in events] == ["Trade", "Reject", "Trade"]
    bad = events[1]
    assert isinstance(bad, Reject)
    assert bad.reason.startswith("non_positive_price: event 1 ")


def test_an_empty_array_is_no_events() -> None:
    assert parse_frame(b"[]", RECV) == []


def test_a_text_frame_with_a_lone_surrogate_is_kept_byte_for_byte() -> None:
    event = _one("[\ud800")
    assert isinstance(event, Reject)
    assert event.raw == "[\ud800".encode("utf-8", "surrogatepass")


def test_validate_trade_applies_the_same_value_rules_to_file_trades() -> None:
    good = Trade("XXX", 1, 10.0, 5, 4, "1")
    assert validate_trade(good) is None
    assert (
        reason_code(validate_trade(Trade("XXX", 1, 0.0, 5, 4, "1")) or "")
        == parse.NON_POSITIVE_PRICE
    )
    assert (
        reason_code(validate_trade(Trade("XXX", 1, 10.0, 0, 4, "1")) or "")
        == parse.NON_POSITIVE_SIZE
    )
    assert (
        reason_code(validate_trade(Trade("XXX", 1, float("nan"), 5, 4, "1")) or "")
        == parse.INVALID_VALUE
    )
    assert reason_code(validate_trade(Trade("", 1, 1.0, 5, 4, "1")) or "") == parse.MISSING_FIELD
    assert reason_code(validate_trade(Trade("XXX", 0, 1.0, 5, 4, "1")) or "") == parse.INVALID_VALUE


# -- quotes, aggregates, statuses, oversize frames, REST rows ------------------------------------
DOC_QUOTE = {"ev": "Q", "sym": "MSFT", "bx": 4, "bp": 114.125, "bs": 100, "ax": 7, "ap": 114.128,
             "as": 160, "c": 0, "i": [604], "t": 1536036818784, "q": 50385480, "z": 3}  # fmt: skip
DOC_AM = {"ev": "AM", "sym": "GTE", "v": 4110, "av": 9470157, "op": 0.4372, "vw": 0.4488,
          "o": 0.4488, "c": 0.4486, "h": 0.4489, "l": 0.4486, "a": 0.4352, "z": 685,
          "s": 1610144640000, "e": 1610144700000}  # fmt: skip


def test_a_documented_quote_parses_with_scalar_condition_and_indicator_list() -> None:
    from pipeline.events import Quote

    quote = _one(orjson.dumps([DOC_QUOTE]))
    assert quote == Quote(
        symbol="MSFT",
        sip_timestamp_ns=1_536_036_818_784_000_000,
        bid_exchange=4,
        bid_price=114.125,
        bid_size=100,
        ask_exchange=7,
        ask_price=114.128,
        ask_size=160,
        condition=0,
        indicators=(604,),
        sequence_number=50385480,
        tape=3,
        receipt_ns=RECV,
    )


def test_a_one_sided_quote_with_a_zero_bid_is_kept() -> None:
    from pipeline.events import Quote

    quote = _one(orjson.dumps([{**DOC_QUOTE, "bp": 0, "bs": 0}]))
    assert isinstance(quote, Quote)
    assert (quote.bid_price, quote.bid_size) == (0.0, 0)


def test_documented_minute_and_second_aggregates_parse_with_ms_window_in_ns() -> None:
    from pipeline.events import Aggregate

    bar = _one(orjson.dumps([DOC_AM]))
    assert isinstance(bar, Aggregate)
    assert (bar.kind, bar.symbol, bar.start_ns, bar.end_ns) == (
        "AM",
        "GTE",
        1_610_144_640_000_000_000,
        1_610_144_700_000_000_000,
    )
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        0.4488,
        0.4489,
        0.4486,
        0.4486,
        4110,
    )
    assert (bar.vwap, bar.accumulated_volume, bar.day_open, bar.day_vwap, bar.average_size) == (
        0.4488, 9470157, 0.4372, 0.4352, 685,
    )  # fmt: skip
    second = _one(orjson.dumps([{**DOC_AM, "ev": "A", "e": 1610144641000, "otc": True}]))
    assert isinstance(second, Aggregate)
    assert (second.kind, second.otc) == ("A", True)


@pytest.mark.parametrize(
    ("event", "code", "detail"),
    [
        ({**DOC_QUOTE, "i": 604}, parse.MISTYPED_FIELD, "'i'"),  # i is a list on Q
        ({**DOC_QUOTE, "c": [0]}, parse.MISTYPED_FIELD, "'c'"),  # c is a scalar on Q
        ({**DOC_QUOTE, "bp": -1.0}, parse.INVALID_VALUE, "'bp'"),
        ({**DOC_QUOTE, "as": 1.5}, parse.MISTYPED_FIELD, "'as'"),
        ({k: v for k, v in DOC_QUOTE.items() if k != "ax"}, parse.MISSING_FIELD, "'ax'"),
        ({**DOC_AM, "h": 0.1}, parse.INVALID_VALUE, "inconsistent"),
        ({**DOC_AM, "e": 1610144580000}, parse.INVALID_VALUE, "before start"),
        ({**DOC_AM, "o": 0}, parse.NON_POSITIVE_PRICE, "'o'"),
        ({**DOC_AM, "v": -5}, parse.INVALID_VALUE, "'v'"),
        ({**DOC_AM, "otc": "yes"}, parse.MISTYPED_FIELD, "'otc'"),
        ({k: v for k, v in DOC_AM.items() if k != "s"}, parse.MISSING_FIELD, "'s'"),
    ],
)
def test_bad_quotes_and_bars_are_rejects_with_their_reason(
    event: dict[str, object], code: str, detail: str
) -> None:
    frame = orjson.dumps([event])
    reject = _one(frame)
    assert isinstance(reject, Reject)
    assert reason_code(reject.reason) == code
    assert detail in reject.reason
    assert reject.raw == frame


@pytest.mark.parametrize(
    "status",
    [
        "connected", "auth_success", "auth_failed", "auth_timeout", "max_connections",
        "success", "error", "slow_consumer", "force_disconnect",
    ],
)  # fmt: skip
def test_every_status_frame_parses_to_a_feed_status(status: str) -> None:
    assert _one(orjson.dumps([{"ev": "status", "status": status, "message": "m"}])) == FeedStatus(
        status, "m", RECV
    )


def test_an_oversize_frame_is_one_reject_that_keeps_the_start_of_the_frame() -> None:
    frame = orjson.dumps([DOC_TRADE] * 2000)
    [reject] = parse_frame(frame, RECV, max_frame_bytes=10_000)
    assert isinstance(reject, Reject)
    assert reason_code(reject.reason) == parse.OVERSIZE_FRAME
    assert f"frame is {len(frame)} bytes, limit 10000" in reject.reason
    assert reject.raw == frame[: parse.RAW_KEEP_BYTES]
    assert len(parse_frame(frame, RECV, max_frame_bytes=len(frame))) == 2000


def test_parse_frame_fields_gives_the_kafka_value_layout_in_frame_order() -> None:
    from pipeline.kafka.codec import encode

    frame = orjson.dumps(
        [DOC_TRADE, {"ev": "status", "status": "success", "message": "x"}, DOC_QUOTE]
    )
    items = parse.parse_frame_fields(frame, RECV)
    assert [i[0] if isinstance(i, tuple) else type(i).__name__ for i in items] == [
        "T",
        "FeedStatus",
        "Q",
    ]
    _kind, fields = items[0]  # type: ignore[misc]
    assert orjson.dumps(fields) == encode(_one(orjson.dumps([DOC_TRADE])))[1]  # type: ignore[arg-type]


def test_a_rest_row_becomes_the_same_trade_as_the_websocket_event_with_ns_time() -> None:
    row = {"conditions": [0, 12], "exchange": 4, "id": "12345", "price": 114.125,
           "sequence_number": 3681328, "sip_timestamp": 1536036818784123456, "size": 100.0,
           "tape": 3, "participant_timestamp": 1536036818784000001}  # fmt: skip
    fields = parse.rest_trade_fields(row, "MSFT", RECV)
    assert isinstance(fields, dict)
    ws = parse.parse_frame_fields(orjson.dumps([DOC_TRADE]), RECV)[0][1]  # type: ignore[index]
    assert fields == {**ws, "sip_timestamp_ns": 1536036818784123456, "source": "rest"}
    assert parse.rest_trade_fields({**row, "trf_id": 0, "trf_timestamp": 0}, "MSFT", RECV) == fields


_ROW = {"exchange": 4, "id": "1", "price": 1.0, "sip_timestamp": 5, "size": 1.0}


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ({**_ROW, "size": 1.5}, parse.MISTYPED_FIELD),
        ({**_ROW, "id": 1}, parse.MISTYPED_FIELD),
        ({**_ROW, "price": 0}, parse.NON_POSITIVE_PRICE),
        ({**_ROW, "size": 0.0}, parse.NON_POSITIVE_SIZE),
        ({k: v for k, v in _ROW.items() if k != "sip_timestamp"}, parse.MISSING_FIELD),
        (["not", "a", "row"], parse.EVENT_NOT_OBJECT),
    ],
)
def test_bad_rest_rows_are_rejects(row: object, code: str) -> None:
    reason = parse.rest_trade_fields(row, "X", RECV)
    assert isinstance(reason, str)
    assert reason_code(reason) == code


def test_the_last_millisecond_whose_ns_fits_int64_is_accepted() -> None:
    trade = _one(_with(t=9_223_372_036_854))
    assert isinstance(trade, Trade)
    assert trade.sip_timestamp_ns == 9_223_372_036_854_000_000 <= 2**63 - 1


def test_a_large_frame_is_parsed_whole_and_its_rejects_fit_a_kafka_record() -> None:
    """Issue 14.8: no size limit by default; a bad event of a large frame keeps itself as
    raw, not the frame, and an unparsable large frame keeps its first RAW_KEEP_BYTES."""
    bad = {**DOC_TRADE, "p": -1}
    frame = orjson.dumps([DOC_TRADE] * 10_000 + [bad] + [DOC_TRADE] * 10_000)
    assert len(frame) > 2 * 2**20
    events = parse_frame(frame, RECV)
    assert len(events) == 20_001
    [reject] = [e for e in events if isinstance(e, Reject)]
    assert reason_code(reject.reason) == parse.NON_POSITIVE_PRICE
    assert orjson.loads(reject.raw) == bad
    [broken] = parse_frame(frame[:-1], RECV)
    assert isinstance(broken, Reject)
    assert reason_code(broken.reason) == parse.MALFORMED_JSON
    assert broken.raw == frame[: parse.RAW_KEEP_BYTES]
