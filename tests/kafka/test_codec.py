"""The Kafka record codec: versioned schemas, compatible additions, the loader's decode contract."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.events import Aggregate, Gap, Quote, Reject, Trade
from pipeline.feed.parse import parse_frame_fields
from pipeline.kafka import codec

QUOTE = Quote(
    "MSFT", 1_536_036_818_784_000_000, 4, 114.125, 100, 7, 114.128, 160, 0, (604,), 5, 3, 9
)
BAR = Aggregate(
    "AM", "GTE", 1, 60_000_000_001, 1.0, 2.0, 0.5, 1.5, 10, 1.2, 99, 1.1, 1.3, 5, False, 9
)
TRADE = Trade("AAA", 1_514_903_400_000_000_000, 10.5, 100, 4, "7", 1, (14,), 3, None, None, 9, "ws")


def test_quotes_and_aggregates_round_trip_with_their_own_schema_and_symbol_key() -> None:
    for event, schema in ((QUOTE, codec.SCHEMA_QUOTE), (BAR, codec.SCHEMA_AGG)):
        key, value, headers = codec.encode(event)
        assert key == event.symbol.encode()
        assert dict(headers) == {"schema": schema, "recv_ns": b"9"}
        assert codec.decode_event(value, headers) == event


def test_the_loader_contract_refuses_quotes_and_bars_loudly_so_they_become_rejects() -> None:
    # pipeline.microbatch stores what decode() raises as a reject with its reason: a
    # quote must never vanish because the loader has no table for it yet.
    for event in (QUOTE, BAR):
        _, value, headers = codec.encode(event)
        with pytest.raises(codec.UnroutedSchemaError, match="valid but not routed"):
            codec.decode(value, headers)
        assert issubclass(codec.UnroutedSchemaError, ParseError)


def test_trade_v1_values_are_unchanged_and_the_hot_path_writes_the_same_bytes() -> None:
    _, value, headers = codec.encode(TRADE)
    assert orjson.loads(value) == {
        "symbol": "AAA", "sip_timestamp_ns": 1_514_903_400_000_000_000, "price": 10.5,
        "size": 100, "exchange": 4, "trade_id": "7", "tape": 1, "conditions": [14],
        "sequence_number": 3, "trf_id": None, "trf_timestamp_ns": None, "receipt_ns": 9,
        "source": "ws",
    }  # fmt: skip
    assert dict(headers)["schema"] == b"trade.v1"
    frame = orjson.dumps(
        [
            {
                "ev": "T",
                "sym": "AAA",
                "i": "7",
                "x": 4,
                "p": 10.5,
                "s": 100,
                "t": 1_514_903_400_000,
                "q": 3,
                "z": 1,
                "c": [14],
            }
        ]
    )
    [(kind, fields)] = parse_frame_fields(frame, 9)  # type: ignore[misc]
    assert kind == "T"
    assert codec.encode_fields(fields) == (b"AAA", value)
    assert codec.headers(codec.SCHEMA_BY_KIND[kind], 9) == headers


def test_gap_repair_fields_are_optional_additions_to_gap_v1() -> None:
    gap = Gap("T.AAA", 1, 2, "1006", 3, "3:T.AAA", "backfilled", 0, 5, 42, "", 6)
    key, value, headers = codec.encode(gap)
    assert (key, dict(headers)["schema"]) == (b"T.AAA", b"gap.v1")
    assert codec.decode(value, headers) == gap
    # A record written before the repair fields existed still decodes.
    old = orjson.dumps(
        {
            "subscription": "T.AAA",
            "last_before_ns": 1,
            "first_after_ns": None,
            "reason": "x",
            "detected_ns": 3,
        }
    )
    assert codec.decode(old, [("schema", b"gap.v1")]) == Gap("T.AAA", 1, None, "x", 3)
    with pytest.raises(ParseError, match="repair"):
        codec.decode(orjson.dumps({**orjson.loads(value), "repair": "maybe"}), headers)


@pytest.mark.parametrize(
    ("value", "schema", "match"),
    [
        ({"symbol": "A"}, b"quote.v1", "sip_timestamp_ns"),
        ({"kind": "X", "symbol": "A"}, b"agg.v1", "kind"),
        ({"kind": "A", "symbol": "A", "otc": 1}, b"agg.v1", "otc"),
        ({"symbol": "A", "sip_timestamp_ns": True}, b"quote.v1", "integer"),
    ],
)
def test_malformed_quote_and_bar_values_are_parse_errors(
    value: dict[str, object], schema: bytes, match: str
) -> None:
    with pytest.raises(ParseError, match=match):
        codec.decode_event(orjson.dumps(value), [("schema", schema)])


@pytest.mark.property
@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.builds(
        Quote,
        symbol=st.text(min_size=1, max_size=6),
        sip_timestamp_ns=st.integers(0, 2**63 - 1),
        bid_exchange=st.integers(0, 99),
        bid_price=st.floats(0, 1e6),
        bid_size=st.integers(0, 10**9),
        ask_exchange=st.integers(0, 99),
        ask_price=st.floats(0, 1e6),
        ask_size=st.integers(0, 10**9),
        condition=st.none() | st.integers(0, 99),
        indicators=st.lists(st.integers(0, 999), max_size=3).map(tuple),
        sequence_number=st.none() | st.integers(0, 2**63 - 1),
        tape=st.none() | st.integers(1, 3),
        receipt_ns=st.integers(0, 2**63 - 1),
    )
)
def test_any_quote_round_trips(quote: Quote) -> None:
    _, value, headers = codec.encode(quote)
    assert codec.decode_event(value, headers) == quote


def test_rejects_keep_raw_bytes_exactly() -> None:
    reject = Reject("parse", "malformed_json: x", bytes(range(256)), 5)
    _, value, headers = codec.encode(reject)
    assert codec.decode(value, headers) == Reject("parse", "malformed_json: x", bytes(range(256)))
