"""Completeness views: trades per (symbol, minute) and per-day coverage joined with feed gaps."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pandas as pd

from pipeline.events import Gap
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.warehouse.factories import as_records, sample_trades

DAY1 = date(2018, 1, 2)


def _ns(local: str) -> int:
    return int(pd.Timestamp(local, tz="America/New_York").tz_convert("UTC").value)


def test_minutes_and_gaps_say_how_complete_a_day_is(duckdb_file):
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    trades = sample_trades(day=DAY1)
    gaps = [
        # A 10-minute disconnect during the session, one before the open, one elsewhere.
        Gap(
            "T.XXX",
            _ns("2018-01-02 10:00"),
            _ns("2018-01-02 10:10"),
            "reconnect",
            _ns("2018-01-02 10:10"),
        ),
        Gap(
            "T.*",
            _ns("2018-01-02 08:00"),
            _ns("2018-01-02 09:35"),
            "reconnect",
            _ns("2018-01-02 09:35"),
        ),
        Gap(
            "T.YYY",
            _ns("2018-01-02 11:00"),
            _ns("2018-01-02 12:00"),
            "reconnect",
            _ns("2018-01-02 12:00"),
        ),
    ]
    records = as_records([*trades, *gaps])
    wh.load_batch(
        shape_batch(records, OffsetRange("polygon-market-data", 0, 0, len(records))),
        expected_start=0,
        run_id="r",
    )

    [day] = wh.query_frame("day_completeness", (DAY1,)).to_dict("records")
    assert day["n_trades"] == len(trades)
    assert day["n_rth_trades"] == len(wh.read_day_trades(DAY1))
    assert 0 < day["rth_minutes_with_trades"] <= day["rth_minutes"] == 390
    assert day["n_gaps"] == 2  # T.YYY is another symbol's subscription
    assert day["gap_seconds"] == 10 * 60 + 5 * 60  # the pre-open part of the T.* gap is not counted

    with wh.transaction() as s:
        [(minutes, total)] = s.execute("SELECT count(*), sum(n_trades) FROM trade_minutes")
        [(opening,)] = s.execute(
            "SELECT n_trades FROM trade_minutes WHERE trade_date = ? AND minute_of_session = 0",
            (DAY1,),
        )
    assert total == len(trades)
    assert minutes >= day["rth_minutes_with_trades"]
    t = pd.Series([x.sip_timestamp_ns for x in trades])
    assert opening == int(((t >= _ns("2018-01-02 09:30")) & (t < _ns("2018-01-02 09:31"))).sum())


def test_a_repaired_gap_is_counted_once_as_repaired_and_not_as_missing(duckdb_file):
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    trades = sample_trades(day=DAY1)
    window = ("T.XXX", _ns("2018-01-02 10:00"), _ns("2018-01-02 10:10"), "reconnect")
    # Repaired: pending, then backfilled (two records, one gap_id).
    repaired = Gap(*window, _ns("2018-01-02 10:10"), gap_id="a", repair="pending")
    # Not repaired: pending, then failed; the outcome is loaded in a later batch.
    failed = Gap(*window[:1], _ns("2018-01-02 11:00"), _ns("2018-01-02 11:02"), "reconnect",
                 _ns("2018-01-02 11:02"), gap_id="b", repair="pending")  # fmt: skip
    first = as_records([*trades, repaired, replace(repaired, repair="backfilled"), failed])
    wh.load_batch(
        shape_batch(first, OffsetRange("polygon-market-data", 0, 0, len(first))),
        expected_start=0,
        run_id="r1",
    )
    [day] = wh.query_frame("day_completeness", (DAY1,)).to_dict("records")
    # Gap b is pending: the backfill may still fail, so its window counts as missing.
    assert (day["n_gaps"], day["gap_seconds"], day["n_gaps_repaired"]) == (1, 120, 1)

    second = as_records(
        [replace(failed, repair="failed", repair_detail="HTTP 503")], start=len(first)
    )
    wh.load_batch(
        shape_batch(second, OffsetRange("polygon-market-data", 0, len(first), len(first) + 1)),
        expected_start=len(first),
        run_id="r2",
    )
    [day] = wh.query_frame("day_completeness", (DAY1,)).to_dict("records")
    assert (day["n_gaps"], day["gap_seconds"], day["n_gaps_repaired"]) == (1, 120, 1)
    states = wh.query_frame("feed_gap_states", (0,))
    assert states[["gap_id", "repair"]].values.tolist() == [["a", "backfilled"], ["b", "failed"]]
    assert states["repair_detail"].tolist()[1] == "HTTP 503"
    with wh.transaction() as s:
        assert s.execute("SELECT count(*) FROM feed_gaps") == [(4,)]
