"""New York trading days: the partitions of the signal assets.

Daily partitions in ``America/New_York`` without weekends and NYSE holidays (from
``exchange-calendars``), ``end_offset=1`` so that today's partition exists while the
market is open. Starting 2018-01-01 (the shipped sample is 2018-01-02), nine years are
about 2,300 partitions, far below the UI's comfortable limit.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime
from functools import cache

import dagster as dg
import exchange_calendars as xcals
import pandas as pd
from pandas.errors import Pandas4Warning

from pipeline.nytime import NEW_YORK

START_DATE = "2018-01-01"
CALENDAR = "XNYS"


@cache
def _calendar() -> xcals.ExchangeCalendar:
    # exchange-calendars 4.x calls Series.values on tz-aware data, which pandas 3.1
    # deprecates; the values it takes are UTC either way. Not ours to fix: silence only that.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Pandas4Warning, module="exchange_calendars")
        warnings.filterwarnings("ignore", category=Pandas4Warning, module="pandas")
        return xcals.get_calendar(CALENDAR, start=START_DATE)


@cache
def nyse_holidays() -> tuple[date, ...]:
    """Return the weekdays without an NYSE session from :data:`START_DATE` to the calendar's end.

    Returns
    -------
    tuple[date, ...]
        Holidays (regular and ad hoc), ascending.
    """
    cal = _calendar()
    weekdays = pd.bdate_range(START_DATE, cal.last_session)
    return tuple(d.date() for d in weekdays.difference(cal.sessions))


def is_trading_day(day: date) -> bool:
    """Return True if NYSE holds a session on ``day`` (weekends and holidays are False).

    Parameters
    ----------
    day
        A New York date.

    Returns
    -------
    bool
        Whether ``day`` is a session.
    """
    return day.weekday() < 5 and day not in set(nyse_holidays())


def session_close_ns(day: date) -> int:
    """Return the UTC epoch ns of the NYSE close on ``day`` (13:00 on half days, else 16:00).

    Parameters
    ----------
    day
        A trading day; beyond the calendar's range the regular 16:00 close is assumed.

    Returns
    -------
    int
        The close, UTC epoch nanoseconds.
    """
    cal = _calendar()
    session = day.isoformat()
    ts = pd.Timestamp(session)
    if cal.first_session <= ts <= cal.last_session and cal.is_session(session):
        return int(cal.session_close(session).value)
    return int(pd.Timestamp(datetime(day.year, day.month, day.day, 16, tzinfo=NEW_YORK)).value)


trading_days = dg.DailyPartitionsDefinition(
    start_date=START_DATE,
    timezone=NEW_YORK.key,
    end_offset=1,
    exclusions=[
        "0 0 * * 6,0",
        *(datetime(d.year, d.month, d.day, tzinfo=NEW_YORK) for d in nyse_holidays()),
    ],
)
