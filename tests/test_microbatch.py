"""pipeline.microbatch: records of one offset range -> trades, rejects, gaps (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import orjson
import pandas as pd
import pytest

from pipeline.errors import OffsetError, ParseError
from pipeline.events import Gap, Reject, Trade
from pipeline.kafka.codec import SCHEMA_TRADE, encode
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import (
    GAP_COLUMNS,
    REJECT_COLUMNS,
    TRADE_COLUMNS,
    local_time_columns,
    shape_batch,
)
from tests.warehouse.factories import as_records, sample_trades

TOPIC = "polygon-market-data"


def _ns(local: str) -> int:
    return int(pd.Timestamp(local, tz="America/New_York").tz_convert("UTC").value)


def test_sample_trades_become_one_row_each_with_lineage_in_offset_order():
    trades = sample_trades(500)
    records = as_records(trades, start=100)
    batch = shape_batch(records, OffsetRange(TOPIC, 0, 100, 600))

    assert tuple(batch.trades.columns) == TRADE_COLUMNS
    assert batch.n_trades == 500
    assert batch.n_messages == 500
    assert batch.n_rejects == batch.n_gaps == batch.n_duplicates == 0
    assert batch.trades["kafka_offset"].tolist() == list(range(100, 600))
    assert batch.trades["timestamp_ns"].tolist() == [t.sip_timestamp_ns for t in trades]
    assert bool(batch.trades["trf_id"].eq(0).all())
    assert bool((batch.trades["kafka_topic"] == TOPIC).all())
    assert batch.metadata()["min_timestamp_ns"] == trades[0].sip_timestamp_ns


def test_derived_columns_use_new_york_wall_time_in_winter_and_summer():
    stamps = np.array(
        [
            _ns("2018-01-02 09:30:00"),  # EST
            _ns("2018-07-02 09:30:00"),  # EDT
            _ns("2018-01-02 23:59:59.999999999"),  # still Jan 2 in New York, Jan 3 in UTC
        ],
        dtype=np.int64,
    )
    derived = local_time_columns(stamps)

    assert derived["ns_from_open"].tolist() == [
        0,
        0,
        (14 * 3600 + 29 * 60 + 59) * 10**9 + 999_999_999,
    ]
    assert [d.date() for d in derived["trade_date"]] == [
        date(2018, 1, 2),
        date(2018, 7, 2),
        date(2018, 1, 2),
    ]


def test_regular_hours_include_both_ends_at_nanosecond_resolution():
    stamps = np.array(
        [
            _ns("2018-01-02 09:29:59.999999999"),
            _ns("2018-01-02 09:30:00"),
            _ns("2018-01-02 16:00:00"),
            _ns("2018-01-02 16:00:00.000000001"),
        ],
        dtype=np.int64,
    )
    assert local_time_columns(stamps)["in_regular_hours"].tolist() == [False, True, True, False]


def test_the_sample_has_its_documented_out_of_hours_prints():
    batch = shape_batch(as_records(sample_trades()), OffsetRange(TOPIC, 0, 0, 77_263))

    # pipeline/data/sample/README.md: 451 prints lie outside regular hours.
    assert int((~batch.trades["in_regular_hours"].to_numpy(dtype=bool)).sum()) == 451
    assert sorted({d.date() for d in batch.trades["trade_date"]}) == [
        date(2018, 1, 2),
        date(2018, 1, 3),
    ]


def test_a_trade_seen_twice_in_one_batch_is_kept_once_and_counted():
    trades = sample_trades(10)
    again = replace(trades[3], receipt_ns=trades[3].receipt_ns + 5, source="rest")
    batch = shape_batch(as_records([*trades, again]), OffsetRange(TOPIC, 0, 0, 11))

    assert batch.n_trades == 10
    assert batch.n_duplicates == 1
    # The first arrival wins.
    assert batch.trades.loc[batch.trades["trade_id"] == trades[3].trade_id, "source"].tolist() == [
        "file"
    ]


def test_same_trade_id_on_another_exchange_or_trf_is_a_different_trade():
    t = sample_trades(1)[0]
    others = [replace(t, exchange=t.exchange + 1), replace(t, trf_id=3)]
    batch = shape_batch(as_records([t, *others]), OffsetRange(TOPIC, 0, 0, 3))

    assert batch.n_trades == 3
    assert batch.n_duplicates == 0


def test_bad_records_are_rejected_with_reason_and_raw_payload_and_the_batch_goes_on():
    good = sample_trades(3)
    bad_price = replace(good[0], trade_id="bad-price", price=0.0)
    bad_size = replace(good[0], trade_id="bad-size", size=0)
    huge = (b"XXX", b'{"symbol": "XXX", "price": 1e400}', [("schema", SCHEMA_TRADE)])
    garbage = (b"XXX", b"\xff\xfenot json", [("schema", SCHEMA_TRADE), ("recv_ns", b"42")])
    no_schema = (b"XXX", encode(good[0])[1], [])
    records = as_records([good[0], bad_price, huge, good[1], bad_size, garbage, no_schema, good[2]])
    batch = shape_batch(records, OffsetRange(TOPIC, 0, 0, 8))

    assert batch.n_trades == 3
    assert tuple(batch.rejects.columns) == REJECT_COLUMNS
    rej = batch.rejects.set_index("kafka_offset")
    assert rej.index.tolist() == [1, 2, 4, 5, 6]
    assert bool((rej["stage"] == "ingest").all())
    assert "price is 0.0 and must be positive" in rej.loc[1, "reason"]
    assert rej.loc[1, "symbol"] == "XXX"
    assert rej.loc[2, "reason"].startswith("undecodable:")
    assert "size is 0 and must be positive" in rej.loc[4, "reason"]
    assert rej.loc[5, "raw"].encode("latin-1") == b"\xff\xfenot json"
    assert rej.loc[5, "receipt_ns"] == 42
    assert "schema" in rej.loc[6, "reason"]


def test_streamer_rejects_and_gaps_pass_through_with_their_raw_bytes():
    raw = b'[{"ev":"T","sym":"XXX","p":-1}]\xff'
    events = [
        Reject(stage="feed", reason="price is -1 and must be positive", raw=raw, receipt_ns=7),
        Reject(stage="parse", reason="not JSON", raw=b"\x00\x01", receipt_ns=8),
        Gap("T.XXX", last_before_ns=1, first_after_ns=5, reason="reconnect", detected_ns=9),
    ]
    batch = shape_batch(as_records(events), OffsetRange(TOPIC, 0, 0, 3))

    assert batch.n_trades == 0
    assert tuple(batch.trades.columns) == TRADE_COLUMNS
    assert batch.rejects["stage"].tolist() == ["feed", "feed"]
    assert batch.rejects["raw"].iloc[0].encode("latin-1") == raw
    assert batch.rejects["reason"].iloc[1] == "[parse] not JSON"
    assert batch.rejects["receipt_ns"].tolist() == [7, 8]
    assert tuple(batch.gaps.columns) == GAP_COLUMNS
    assert batch.gaps[["subscription", "last_before_ns", "first_after_ns", "detected_ns"]].iloc[
        0
    ].tolist() == [
        "T.XXX",
        1,
        5,
        9,
    ]


def test_non_contiguous_offsets_are_fine_and_counted_as_messages():
    records = as_records(sample_trades(5), start=10, step=3)  # 10, 13, ..., 22
    batch = shape_batch(records, OffsetRange(TOPIC, 0, 10, 30))

    assert batch.n_messages == 5
    assert batch.range.span == 20
    assert batch.trades["kafka_offset"].tolist() == [10, 13, 16, 19, 22]


def test_an_empty_range_gives_an_empty_batch_with_the_contract_columns():
    batch = shape_batch([], OffsetRange(TOPIC, 2, 50, 50))

    assert batch.n_messages == batch.n_trades == 0
    assert tuple(batch.trades.columns) == TRADE_COLUMNS
    assert batch.metadata()["min_timestamp_ns"] is None


@pytest.mark.parametrize(
    ("rng", "start"),
    [
        (OffsetRange(TOPIC, 0, 0, 3), 1),  # last record at offset 3 is outside [0, 3)
        (OffsetRange(TOPIC, 1, 0, 10), 0),  # wrong partition
    ],
)
def test_records_outside_the_range_are_a_broken_consumer_and_fail(rng, start):
    with pytest.raises(OffsetError):
        shape_batch(as_records(sample_trades(3), start=start), rng)


def test_offsets_out_of_order_fail():
    records = as_records(sample_trades(3))
    with pytest.raises(OffsetError, match="out of order"):
        shape_batch([records[1], records[0], records[2]], OffsetRange(TOPIC, 0, 0, 3))


# --- the bulk path against the per-record path ------------------------------------------------


def _shape_one_by_one(records, offsets: OffsetRange):
    """The reference: every record decoded on its own (what shape_batch did before bulk)."""
    from pipeline.kafka.codec import decode
    from pipeline.microbatch import _trade_problem

    trades, rejects = [], []
    for r in records:
        try:
            event = decode(r.value, r.headers)
        except ParseError as e:
            rejects.append((r.offset, f"undecodable: {e}"))
            continue
        if isinstance(event, Trade):
            problem = _trade_problem(event)
            if problem is None:
                trades.append((r.offset, event))
            else:
                rejects.append((r.offset, problem))
    return trades, rejects


def _value(**fields) -> bytes:
    base = {
        "symbol": "XXX",
        "sip_timestamp_ns": 1_514_903_400_000_000_000,
        "price": 157.8,
        "size": 2,
        "exchange": 8,
        "trade_id": "0",
        "tape": None,
        "conditions": [],
        "sequence_number": 0,
        "trf_id": None,
        "trf_timestamp_ns": None,
        "receipt_ns": 1_514_903_400_000_001_000,
        "source": "file",
    }
    for k, v in fields.items():
        if v is KeyError:
            base.pop(k)
        else:
            base[k] = v
    return orjson.dumps(base)


_GOOD = _value()
# Values the bulk reader and the strict decoder might judge differently.
EDGE_VALUES: list[bytes | None] = [
    _value(price=157),
    _value(price=True),
    _value(size=2.0),
    _value(size="2"),
    _value(size=0),
    _value(symbol=""),
    _value(symbol=5),
    _value(symbol=KeyError),
    _value(price=KeyError),
    _value(price=None),
    _value(source=KeyError),  # defaults to "ws"
    _value(source=None),
    _value(source="x"),
    _value(conditions=[1, 12, 37]),
    _value(conditions=None),
    _value(conditions=KeyError),
    _value(conditions=[True]),
    _value(conditions=0),  # falsy: no conditions, as decode() reads it
    _value(tape=3, trf_id=4, trf_timestamp_ns=5, sequence_number=2**62),
    _value(trf_id=True),
    _value(receipt_ns=None),
    _value(receipt_ns=0),
    _value(size=2**63),
    _value(size=2**64 - 1),
    _value(sequence_number=-(2**63)),
    _value(exchange=2**40),
    _value(sip_timestamp_ns=-5),
    _value(price=-0.0),
    _value(price=1e-300),
    _value(trade_id=7),
    _value(trade_id=""),
    _GOOD.replace(b"157.8", b"0.30000000000000004"),
    _GOOD.replace(b"157.8", b"1.5e2"),
    _GOOD.replace(b"157.8", b"123456789012345678901234567890"),
    _GOOD.replace(b"157.8", b"1e400"),
    _GOOD.replace(b"157.8", b"NaN"),
    _GOOD.replace(b"157.8", b"Infinity"),
    _GOOD[:-1] + b',"x":NaN}',  # not JSON anywhere, even in a field nobody reads
    _GOOD[:-1] + b',"x":-Inf}',
    _GOOD[:-1] + b',"x":"\xff"}',  # invalid UTF-8 in an ignored field
    _GOOD[:-1] + b',"x":"\xed\xa0\x80"}',  # an encoded surrogate
    _GOOD[:-1] + b',"x":"\\ud800"}',
    _GOOD[:-1] + b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}",  # deeper than orjson allows
    _GOOD[:-1] + b',"symbol":"YYY"}',  # a repeated key: the last one counts
    _GOOD[:-1] + b',"x":1,"x":2}',
    _GOOD.replace(b'"XXX"', b'"X\\u00e9"'),
    _GOOD.replace(b":", b": "),
    b" " + _GOOD,
    _GOOD + b" ",
    _GOOD + _GOOD,
    _GOOD + b"\n" + _GOOD,
    b'{"a":1}\n{"b":2}',
    b"",
    None,
    b"[]",
    b"{}",
    b"\x00not json",
]


@pytest.mark.parametrize("case", range(len(EDGE_VALUES)))
def test_the_bulk_path_agrees_with_decoding_one_by_one_on_each_edge_case(case):
    # Between well-formed trades, so that the bulk reader has something to read around it.
    good = [_value(trade_id=f"g{i}") for i in range(150)]
    values = [*good, EDGE_VALUES[case], *(_value(trade_id=f"h{i}") for i in range(150))]
    records = as_records([(b"XXX", v, [("schema", SCHEMA_TRADE)]) for v in values])
    rng = OffsetRange(TOPIC, 0, 0, len(records))

    batch = shape_batch(records, rng)
    trades, rejects = _shape_one_by_one(records, rng)

    assert batch.trades["kafka_offset"].tolist() == [o for o, _ in trades]
    assert batch.rejects[["kafka_offset", "reason"]].values.tolist() == [list(r) for r in rejects]
    by_offset = batch.trades.set_index("kafka_offset")
    for offset, t in trades:
        row = by_offset.loc[offset]
        assert (row["symbol"], row["price"], row["size"], row["trade_id"], row["source"]) == (
            t.symbol,
            t.price,
            t.size,
            t.trade_id,
            t.source,
        )
        assert np.float64(row["price"]).tobytes() == np.float64(t.price).tobytes()


def _stored(t: Trade) -> tuple:
    """A trade's stored columns, as the per-record path computed them."""
    return (
        t.symbol,
        t.sip_timestamp_ns,
        t.price,
        t.size,
        t.exchange,
        t.trade_id,
        t.trf_id or 0,
        t.tape,
        ",".join(map(str, t.conditions)) or None,
        t.sequence_number,
        t.trf_timestamp_ns,
        t.source,
        t.receipt_ns or None,
    )


_STORED = (
    "symbol",
    "timestamp_ns",
    "price",
    "size",
    "exchange",
    "trade_id",
    "trf_id",
    "tape",
    "conditions",
    "sequence_number",
    "trf_timestamp_ns",
    "source",
    "receipt_ns",
)


def test_a_mixed_batch_is_shaped_exactly_as_one_record_at_a_time():
    trades = sample_trades(600)
    events: list = [*trades[:300]]
    events += [(b"XXX", v, [("schema", SCHEMA_TRADE), ("recv_ns", b"77")]) for v in EDGE_VALUES]
    events += [
        Reject(stage="feed", reason="x", raw=b"\xff\x00", receipt_ns=3),
        Gap("T.XXX", 1, 2, "reconnect", 9),
        replace(trades[5], source="rest"),  # a repeat: the first arrival is kept
    ]
    events += [replace(t, tape=3, trf_id=4, conditions=(1, 12)) for t in trades[300:]]
    records = as_records(events, start=7, step=2)
    rng = OffsetRange(TOPIC, 0, 7, 7 + 2 * len(records))

    batch = shape_batch(records, rng)
    ref_trades, ref_rejects = _shape_one_by_one(records, rng)

    # The first arrival of each dedup key is kept.
    seen: set = set()
    kept = []
    for o, t in ref_trades:
        day = local_time_columns(np.array([t.sip_timestamp_ns]))["trade_date"].iloc[0]
        key = (t.symbol, day, t.exchange, t.trf_id or 0, t.trade_id)
        if key not in seen:
            seen.add(key)
            kept.append((o, t))
    assert batch.n_messages == len(records)
    assert batch.n_duplicates == len(ref_trades) - len(kept) > 0
    assert batch.trades["kafka_offset"].tolist() == [o for o, _ in kept]
    got = [
        tuple(None if pd.isna(v) else v for v in row)
        for row in batch.trades.loc[:, list(_STORED)].itertuples(index=False)
    ]
    assert got == [_stored(t) for _, t in kept]
    feed_reject = records[300 + len(EDGE_VALUES)].offset
    assert batch.rejects[["kafka_offset", "reason"]].values.tolist() == [
        list(r) for r in sorted([*ref_rejects, (feed_reject, "x")])
    ]
    assert batch.n_gaps == 1
    # The per-record path produced these dtypes before the bulk path existed.
    assert batch.trades.dtypes.astype(str).to_dict() == {
        "symbol": "str",
        "timestamp_ns": "int64",
        "price": "float64",
        "size": "int64",
        "exchange": "int32",
        "trade_id": "str",
        "trf_id": "int32",
        "tape": "Int32",
        "conditions": "str",
        "sequence_number": "Int64",
        "trf_timestamp_ns": "Int64",
        "trade_date": "datetime64[ns]",
        "in_regular_hours": "bool",
        "ns_from_open": "int64",
        "source": "str",
        "receipt_ns": "Int64",
        "kafka_ts_ns": "int64",
        "kafka_topic": "str",
        "kafka_partition": "int32",
        "kafka_offset": "int64",
    }
