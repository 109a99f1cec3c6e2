"""pipeline.microbatch: records of one offset range -> trades, quotes, bars, rejects, gaps."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import orjson
import pandas as pd
import pytest

from pipeline.errors import OffsetError, ParseError
from pipeline.events import Gap, Reject, Trade
from pipeline.kafka.codec import SCHEMA_GAP, SCHEMA_QUOTE, SCHEMA_TRADE, encode
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import (
    AGGREGATE_COLUMNS,
    GAP_COLUMNS,
    MAX_REPAIR_DETAIL_CHARS,
    QUOTE_COLUMNS,
    REJECT_COLUMNS,
    TRADE_COLUMNS,
    local_time_columns,
    shape_batch,
)
from tests.warehouse.factories import (
    as_records,
    repaired_gap,
    sample_bars,
    sample_quotes,
    sample_trades,
)

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
    # Longer than the Vertica column (in UTF-8 bytes), and just fitting (issue 14.4).
    _value(symbol="ABCDEFGHIJKLMNOPQ"),
    _value(symbol="ABCDEFGHIJKLMNOP"),
    _value(symbol="ÉÉÉÉÉÉÉÉÉ"),  # 9 characters, 18 bytes
    _value(trade_id="x" * 65),
    _value(trade_id="x" * 64),
    _value(conditions=list(range(300))),
    _value(conditions=[12] * 85),  # 85 * 3 - 1 = 254 bytes
    _value(source="s" * 17),
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


# --- quotes, aggregates and gap repairs ---------------------------------------------------------


def test_the_column_constants_are_the_table_columns_without_loaded_ns(duckdb_file):
    from pipeline.warehouse.duckdb_backend import DuckDBWarehouse

    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    with wh.transaction() as s:
        rows = s.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_name IN ('market_data', 'market_quotes', 'market_aggregates', "
            "'feed_gaps') ORDER BY table_name, ordinal_position"
        )
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        if column != "loaded_ns":
            tables.setdefault(table, []).append(column)
    assert tables["market_data"] == list(TRADE_COLUMNS)
    assert tables["market_quotes"] == list(QUOTE_COLUMNS)
    assert tables["market_aggregates"] == list(AGGREGATE_COLUMNS)
    # feed_gaps grew by ADD COLUMN, which appends: same set, the insert names its columns.
    assert sorted(tables["feed_gaps"]) == sorted(GAP_COLUMNS)


def test_quotes_and_bars_get_frames_of_their_own_and_are_not_rejects():
    trades = sample_trades(4)
    quotes = sample_quotes(3, start_row=10)
    bars = sample_bars(2)
    events = [trades[0], quotes[0], bars[0], trades[1], quotes[1], trades[2], bars[1], quotes[2]]
    events.append(trades[3])
    batch = shape_batch(as_records(events, start=40), OffsetRange(TOPIC, 0, 40, 40 + len(events)))

    assert batch.n_rejects == 0
    assert (batch.n_trades, batch.n_quotes, batch.n_aggregates) == (4, 3, 2)
    assert batch.trades["kafka_offset"].tolist() == [40, 43, 45, 48]
    assert tuple(batch.quotes.columns) == QUOTE_COLUMNS
    assert batch.quotes["kafka_offset"].tolist() == [41, 44, 47]
    assert batch.quotes["sip_timestamp_ns"].tolist() == [q.sip_timestamp_ns for q in quotes]
    assert batch.quotes["bid_price"].tolist() == [q.bid_price for q in quotes]
    assert batch.quotes["sequence_number"].tolist() == [q.sequence_number for q in quotes]
    assert [d.date() for d in batch.quotes["trade_date"]] == [date(2018, 1, 2)] * 3
    assert bool((batch.quotes["kafka_topic"] == TOPIC).all())
    assert tuple(batch.aggregates.columns) == AGGREGATE_COLUMNS
    assert batch.aggregates["kafka_offset"].tolist() == [42, 46]
    assert batch.aggregates[["kind", "start_ns", "volume"]].values.tolist() == [
        ["AM", b.start_ns, b.volume] for b in bars
    ]
    assert bool(batch.aggregates["vwap"].notna().all())
    assert batch.aggregates["accumulated_volume"].isna().all()
    meta = batch.metadata()
    assert (meta["n_quotes"], meta["n_aggregates"]) == (3, 2)


def test_a_repeated_quote_or_bar_is_kept_once_and_a_quote_without_sequence_number_as_sent():
    q = sample_quotes(1)[0]
    same_q_later = replace(q, sip_timestamp_ns=q.sip_timestamp_ns + 1)  # another event, same q
    unkeyed = replace(q, sequence_number=None)
    bar = sample_bars(1)[0]
    events = [q, replace(q, receipt_ns=q.receipt_ns + 9), same_q_later, unkeyed, unkeyed, bar, bar]
    batch = shape_batch(as_records(events), OffsetRange(TOPIC, 0, 0, len(events)))

    assert (batch.n_quotes, batch.n_quote_duplicates) == (4, 1)
    assert batch.quotes["kafka_offset"].tolist() == [0, 2, 3, 4]  # the first arrival wins
    assert (batch.n_aggregates, batch.n_aggregate_duplicates) == (1, 1)
    assert batch.n_rejects == 0


def test_gap_records_keep_their_repair_state_and_ids():
    trades = sample_trades(2)
    pending, done = repaired_gap(trades[0], trades[1], backfilled=7)
    failed = replace(
        pending, gap_id="9:T.XXX", repair="failed", repair_detail="x" * 5000, repaired_ns=99
    )
    legacy = (
        b"T.XXX",
        orjson.dumps(
            {
                "subscription": "T.XXX",
                "last_before_ns": 1,
                "first_after_ns": None,
                "reason": "reconnect",
                "detected_ns": 5,
            }
        ),
        [("schema", SCHEMA_GAP)],
    )
    batch = shape_batch(as_records([pending, done, failed, legacy]), OffsetRange(TOPIC, 0, 0, 4))

    g = batch.gaps
    assert tuple(g.columns) == GAP_COLUMNS
    assert g["repair"].tolist() == ["pending", "backfilled", "failed", "not_attempted"]
    assert g["gap_id"].tolist()[:3] == [pending.gap_id, pending.gap_id, "9:T.XXX"]
    assert pd.isna(g["gap_id"].iloc[3])  # a record of a streamer that did not track repairs
    assert g["backfilled"].tolist() == [0, 7, 0, 0]
    assert g["repair_from_ns"].iloc[1] == trades[0].sip_timestamp_ns
    assert g["repaired_ns"].iloc[1] == done.repaired_ns
    assert pd.isna(g["repaired_ns"].iloc[0])
    assert len(g["repair_detail"].iloc[2]) == MAX_REPAIR_DETAIL_CHARS
    assert pd.isna(g["first_after_ns"].iloc[3])
    # Exact int64 (epoch ns exceed 2**53): never through float.
    assert str(g["last_before_ns"].dtype) == "Int64"
    assert g["last_before_ns"].iloc[0] == trades[0].sip_timestamp_ns


def test_unstorable_quotes_bars_and_gaps_are_rejects_with_their_reason():
    q = sample_quotes(1)[0]
    bar = sample_bars(1)[0]
    gap = repaired_gap(*sample_trades(2), backfilled=0)[0]
    bad = [
        replace(q, bid_price=-1.0),
        replace(q, ask_exchange=2**40),
        replace(bar, low=bar.high + 1.0),
        replace(bar, end_ns=bar.start_ns - 1),
        replace(gap, repaired_ns=2**63),
        (b"XXX", b'{"symbol": "XXX"}', [("schema", SCHEMA_QUOTE)]),
    ]
    batch = shape_batch(as_records([*bad, q, bar]), OffsetRange(TOPIC, 0, 0, len(bad) + 2))

    assert (batch.n_quotes, batch.n_aggregates, batch.n_gaps) == (1, 1, 0)
    reasons = batch.rejects.set_index("kafka_offset")["reason"]
    assert reasons.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert "bid_price is -1.0" in reasons[0]
    assert "ask_exchange" in reasons[1]
    assert "bar is inconsistent" in reasons[2]
    assert "before start_ns" in reasons[3]
    assert "repaired_ns" in reasons[4]
    assert reasons[5].startswith("undecodable:")
    assert not reasons.str.contains("not routed").any()


def test_a_batch_of_trades_only_never_leaves_the_bulk_path(monkeypatch):
    import pipeline.microbatch as mb

    def refuse(*_args, **_kwargs):
        raise AssertionError("a well-formed trade was decoded one by one")

    monkeypatch.setattr(mb, "decode_event", refuse)
    batch = shape_batch(as_records(sample_trades(300)), OffsetRange(TOPIC, 0, 0, 300))
    assert batch.n_trades == 300
    assert batch.n_quotes == batch.n_aggregates == batch.n_gaps == 0


@pytest.mark.parametrize("mixed", [False, True], ids=["bulk path", "per-record path"])
def test_a_trade_stamped_beyond_the_tolerance_in_the_future_is_a_future_timestamp_reject(mixed):
    """Issue 14.1: one trade stamped far ahead (int64 max passes every other check) must
    not be stored, where it would move a day's bound past every close."""
    good = sample_trades(3)
    now_ns = good[-1].sip_timestamp_ns + 3_600 * 10**9  # an hour after the last trade
    soon = replace(good[0], trade_id="soon", sip_timestamp_ns=now_ns + 10 * 10**9)
    far = replace(good[0], trade_id="far", sip_timestamp_ns=2**63 - 1)
    events: list = [good[0], soon, far, good[1], good[2]]
    if mixed:  # a quote among the trades sends the batch through the per-record path too
        events.insert(1, sample_quotes(1)[0])
    batch = shape_batch(
        as_records(events), OffsetRange(TOPIC, 0, 0, len(events)),
        now_ns=now_ns, future_tolerance_s=60.0,
    )  # fmt: skip
    assert sorted(batch.trades["trade_id"]) == sorted(
        [good[0].trade_id, "soon", *[t.trade_id for t in good[1:]]]
    )
    [reason] = batch.rejects["reason"].tolist()
    assert reason.startswith("future_timestamp: ")
    assert "tolerance 60 s" in reason
    assert batch.rejects["symbol"].tolist() == ["XXX"]


def test_the_future_tolerance_defaults_to_five_minutes_of_the_loaders_clock():
    import time

    from pipeline.microbatch import FUTURE_TOLERANCE_S

    t = replace(
        sample_trades(1)[0], trade_id="ahead", sip_timestamp_ns=time.time_ns() + 3_600 * 10**9
    )
    batch = shape_batch(as_records([t]), OffsetRange(TOPIC, 0, 0, 1))
    assert FUTURE_TOLERANCE_S == 300.0
    assert batch.n_trades == 0
    assert batch.rejects["reason"].str.startswith("future_timestamp").all()
