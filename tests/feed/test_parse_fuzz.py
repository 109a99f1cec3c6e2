"""Fuzz the parser: every frame is parsed or rejected with a known reason; nothing raises.

The hot path's flat trade check must agree with the detailed validator on every event it
accepts. Modest example counts in the suite (derandomized); ``FEED_FUZZ_EXAMPLES=1000000``
runs the long campaign.
"""

from __future__ import annotations

import os

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events import Aggregate, FeedStatus, Quote, Reject, Trade
from pipeline.feed.parse import (
    REASON_CODES,
    check_trade_fields,
    fast_trade_fields,
    parse_frame,
    reason_code,
)

EXAMPLES = int(os.environ.get("FEED_FUZZ_EXAMPLES", "400"))


# orjson.dumps refuses lone surrogates and integers beyond 64 bits: keep generated values encodable
# (raw text frames with surrogates are covered by the st.text() branch of _frames).
def _text(n: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=("Cs",)), max_size=n)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text(12),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text(6), inner, max_size=4),
    max_leaves=12,
)

# Near-valid trades: the right keys with values drawn from plausible and implausible ones.
_trade = st.fixed_dictionaries(
    {"ev": st.sampled_from(["T", "T", "T", "Q", "status", "", 1])},
    optional={
        "sym": st.one_of(st.sampled_from(["AAPL", "XXX", ""]), _scalars),
        "x": st.one_of(st.integers(-2, 30), _scalars),
        "i": st.one_of(_text(8), st.integers(-(2**63), 2**63 - 1)),
        "p": st.one_of(st.floats(-10, 1e6), st.integers(-5, 10**6), _scalars),
        "s": st.one_of(st.integers(-5, 10**6), st.floats(-1, 1e4), _scalars),
        "t": st.one_of(st.integers(-1, 2 * 10**13), st.floats(0, 2e12), _scalars),
        "c": st.one_of(
            st.lists(st.integers(-1, 60), max_size=4), st.lists(_scalars, max_size=2), _scalars
        ),
        "q": st.one_of(st.integers(-1, 10**9), _scalars),
        "z": st.one_of(st.integers(0, 3), _scalars),
        "trfi": st.one_of(st.integers(0, 300), _scalars),
        "trft": st.one_of(st.integers(-1, 2 * 10**13), _scalars),
        "status": st.one_of(_text(10), _scalars),
        "message": st.one_of(_text(10), _scalars),
    },
)
_quote = st.fixed_dictionaries(
    {"ev": st.just("Q")},
    optional={
        "sym": st.one_of(st.sampled_from(["AAPL", ""]), _scalars),
        "bx": st.one_of(st.integers(-1, 30), _scalars),
        "bp": st.one_of(st.floats(-1, 1e4), st.integers(-1, 10**4), _scalars),
        "bs": st.one_of(st.integers(-1, 10**4), st.floats(-1, 1e3), _scalars),
        "ax": st.one_of(st.integers(-1, 30), _scalars),
        "ap": st.one_of(st.floats(-1, 1e4), _scalars),
        "as": st.one_of(st.integers(-1, 10**4), _scalars),
        "c": st.one_of(st.integers(-1, 99), st.lists(st.integers(0, 9), max_size=2), _scalars),
        "i": st.one_of(st.lists(st.integers(-1, 999), max_size=3), st.integers(0, 9), _scalars),
        "t": st.one_of(st.integers(-1, 2 * 10**13), _scalars),
        "q": st.one_of(st.integers(-1, 10**9), _scalars),
        "z": st.one_of(st.integers(0, 3), _scalars),
    },
)
_bar = st.fixed_dictionaries(
    {"ev": st.sampled_from(["A", "AM"])},
    optional={
        "sym": st.one_of(st.just("GTE"), _scalars),
        **{
            k: st.one_of(st.floats(-1, 10), st.integers(-1, 10), _scalars)
            for k in ("o", "h", "l", "c", "vw", "a", "op")
        },
        **{
            k: st.one_of(st.integers(-1, 10**6), st.floats(-1, 1e6), _scalars)
            for k in ("v", "av", "z")
        },
        "s": st.one_of(st.integers(-1, 2 * 10**13), _scalars),
        "e": st.one_of(st.integers(-1, 2 * 10**13), _scalars),
        "otc": st.one_of(st.booleans(), _scalars),
    },
)
_frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.lists(st.one_of(_trade, _quote, _bar, _json), max_size=5).map(orjson.dumps),
    _json.map(orjson.dumps),
    # Truncated valid frames.
    st.tuples(st.lists(_trade, min_size=1, max_size=3).map(orjson.dumps), st.integers(0, 200)).map(
        lambda p: p[0][: p[1]]
    ),
)


@pytest.mark.property
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(_frames)
def test_every_frame_is_parsed_or_rejected_with_a_reason(frame: bytes | str) -> None:
    events = parse_frame(frame, 7, max_frame_bytes=4096)
    for e in events:
        assert isinstance(e, Trade | Quote | Aggregate | FeedStatus | Reject)
        assert e.receipt_ns == 7
        if isinstance(e, Reject):
            assert reason_code(e.reason) in REASON_CODES
            assert e.raw == (
                frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass")
            )
        elif isinstance(e, Trade):
            assert e.price > 0
            assert e.size > 0
            assert e.sip_timestamp_ns > 0
            assert isinstance(e.trade_id, str)


@pytest.mark.property
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
@given(_trade)
def test_the_hot_path_trade_check_agrees_with_the_detailed_validator(ev: dict[str, object]) -> None:
    detailed = check_trade_fields(ev, 7)
    fast = fast_trade_fields(ev, 7)
    if fast is not None:
        assert fast == detailed  # whatever the flat check accepts, the validator accepts alike
    elif isinstance(detailed, dict):
        # The flat check may defer (e.g. an integral float size); the result is still right.
        assert detailed["size"] > 0
    if isinstance(detailed, str):
        assert reason_code(detailed) in REASON_CODES
