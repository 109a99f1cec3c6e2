"""Completeness views: trades per (symbol, minute) and per-day coverage joined with feed gaps."""

from __future__ import annotations

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
