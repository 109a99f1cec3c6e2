"""pipeline.microbatch: records of one offset range -> trades, rejects, gaps (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import OffsetError
from pipeline.events import Gap, Reject
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
    assert batch.trades["trf_id"].eq(0).all()
    assert (batch.trades["kafka_topic"] == TOPIC).all()
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
    assert int((~batch.trades["in_regular_hours"]).sum()) == 451
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
    assert (rej["stage"] == "ingest").all()
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
