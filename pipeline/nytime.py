"""New York exchange time and ISO 8601 text for epoch nanoseconds: one definition each.

Times in the platform are ``int64`` UTC epoch nanoseconds; a trading day is the New York
calendar date of a stamp. Answers show times as ISO 8601 UTC with milliseconds
(``2018-01-02T14:30:00.123Z``) and, beside them, in exchange time with its offset.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from pipeline._typing import Int64Array

NEW_YORK = ZoneInfo("America/New_York")
NS = 1_000_000_000


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS, tz=UTC).replace(microsecond=(ns % NS) // 1000)


def iso_utc(ns: int | None) -> str | None:
    """Return ``ns`` as ISO 8601 UTC with milliseconds (None stays None)."""
    if ns is None:
        return None
    return _utc(ns).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_utc_array(ns: Int64Array) -> list[str]:
    """Return each stamp as :func:`iso_utc` does, vectorised (for thousands of rows)."""
    text = np.datetime_as_string(np.asarray(ns, dtype="datetime64[ns]"), unit="ms")
    return [f"{t}Z" for t in text.tolist()]


def iso_new_york(ns: int) -> str:
    """Return ``ns`` as ISO 8601 in New York time with its offset."""
    return _utc(ns).astimezone(NEW_YORK).isoformat(timespec="milliseconds")


def ny_date(ns: int) -> date:
    """Return the New York calendar date of ``ns``."""
    return _utc(ns).astimezone(NEW_YORK).date()


def ny_dates(ns: Int64Array) -> list[date]:
    """Return the New York calendar date of each stamp (vectorised over distinct hours)."""
    arr = np.asarray(ns, dtype=np.int64)
    if not len(arr):
        return []
    # The New York offset is constant within a UTC hour, so convert each distinct hour once.
    hours = arr // (3600 * NS)
    uniq, inverse = np.unique(hours, return_inverse=True)
    per_hour = [ny_date(int(h) * 3600 * NS) for h in uniq.tolist()]
    return [per_hour[i] for i in inverse.tolist()]


def day_bounds_ns(day: date) -> tuple[int, int]:
    """Return ``[start, end)`` in epoch ns of the New York calendar day ``day``."""
    start = datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=NEW_YORK)
    return int(start.timestamp()) * NS, int(end.timestamp()) * NS


def wall_time_ns(day: date, hour: int, minute: int) -> int:
    """Return the epoch ns of a New York wall-clock time on ``day``."""
    dt = datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)
    return int(dt.timestamp()) * NS


__all__ = [
    "NEW_YORK",
    "NS",
    "day_bounds_ns",
    "iso_new_york",
    "iso_utc",
    "iso_utc_array",
    "ny_date",
    "ny_dates",
    "wall_time_ns",
]
