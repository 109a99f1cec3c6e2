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


def _one(frame: bytes | str) -> Trade | FeedStatus | Reject:
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
