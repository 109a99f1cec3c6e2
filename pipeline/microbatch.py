"""Kafka records of one offset range -> the rows of one warehouse load (pure).

A microbatch is what one Dagster ``market_data`` run loads: the trades (with the
derived columns computed once, here, so that SQL and the UDx never do time-zone
work), the rejects (kept with their reason and raw payload, never dropped), the
feed's gap records and the counts that go to the offset ledger.

Derived columns (statistics.md section 1):

- ``trade_date``: the America/New_York date of ``timestamp_ns``;
- ``in_regular_hours``: ``09:30:00 <= local time of day <= 16:00:00``, both ends
  inclusive, at nanosecond resolution;
- ``ns_from_open``: nanoseconds since 09:30 New York on ``trade_date`` (negative before).

A trade is identified by ``(symbol, trade_date, exchange, trf_id, trade_id)`` with
``trf_id = 0`` for exchange prints; a repeat inside the batch keeps the first
occurrence (lowest offset) and is counted in ``n_duplicates``. Repeats of trades
stored by earlier batches are found by the warehouse inside the load transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import OffsetError, ParseError
from pipeline.events import Gap, Reject, Trade
from pipeline.kafka.codec import decode
from pipeline.kafka.offsets import KafkaRecord, OffsetRange, plan_stop

NEW_YORK = "America/New_York"
NS_PER_S = 1_000_000_000
OPEN_NS = (9 * 3600 + 30 * 60) * NS_PER_S  # 09:30:00 local
CLOSE_NS = 16 * 3600 * NS_PER_S  # 16:00:00 local, inclusive
DEDUP_KEY: tuple[str, ...] = ("symbol", "trade_date", "exchange", "trf_id", "trade_id")

# Column order = table order in sql/migrations (market_data without loaded_ns, which the
# warehouse stamps at commit). tests/test_microbatch.py checks these against the tables.
TRADE_COLUMNS: tuple[str, ...] = (
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
    "trade_date",
    "in_regular_hours",
    "ns_from_open",
    "source",
    "receipt_ns",
    "kafka_ts_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
REJECT_COLUMNS: tuple[str, ...] = (
    "stage",
    "reason",
    "raw",
    "symbol",
    "receipt_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
GAP_COLUMNS: tuple[str, ...] = (
    "subscription",
    "last_before_ns",
    "first_after_ns",
    "reason",
    "detected_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Microbatch:
    """The rows of one offset range, ready for :meth:`Warehouse.load_batch`.

    Attributes
    ----------
    range
        The half-open offset range that was read (the ledger row's bounds).
    trades
        One row per distinct trade, columns :data:`TRADE_COLUMNS`, in offset order.
    rejects
        Records that are not valid trades, columns :data:`REJECT_COLUMNS`.
    gaps
        Feed gap records, columns :data:`GAP_COLUMNS`.
    n_messages
        Records read (offsets are not contiguous, so this may be below the span).
    n_duplicates
        Trades dropped because an earlier record of the batch had the same dedup key.
    """

    range: OffsetRange
    trades: pd.DataFrame
    rejects: pd.DataFrame
    gaps: pd.DataFrame
    n_messages: int
    n_duplicates: int

    @property
    def n_trades(self) -> int:
        """Return the number of distinct trades in the batch."""
        return len(self.trades)

    @property
    def n_rejects(self) -> int:
        """Return the number of rejected records."""
        return len(self.rejects)

    @property
    def n_gaps(self) -> int:
        """Return the number of gap records."""
        return len(self.gaps)

    def metadata(self) -> dict[str, int | str | None]:
        """Return counts and bounds for run metadata and logs.

        Returns
        -------
        dict[str, int | str | None]
            Offsets, counts and the SIP time range of the trades.
        """
        ts = self.trades["timestamp_ns"].to_numpy(dtype="int64")
        return {
            "topic": self.range.topic,
            "partition": self.range.partition,
            "start_offset": self.range.start,
            "stop_offset": self.range.stop,
            "n_messages": self.n_messages,
            "n_trades": self.n_trades,
            "n_duplicates_in_batch": self.n_duplicates,
            "n_rejects": self.n_rejects,
            "n_gaps": self.n_gaps,
            "min_timestamp_ns": int(ts.min()) if len(ts) else None,
            "max_timestamp_ns": int(ts.max()) if len(ts) else None,
        }


def _header_int(record: KafkaRecord, name: str) -> int | None:
    for key, value in record.headers:
        if key == name and value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _raw_text(value: bytes | None) -> str | None:
    # latin-1 maps every byte to one character, so the raw payload survives exactly.
    return None if value is None else value.decode("latin-1")


def _key_text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None


def _reject_row(
    stage: str,
    reason: str,
    raw: bytes | None,
    symbol: str | None,
    receipt_ns: int | None,
    rec: KafkaRecord,
) -> tuple[Any, ...]:
    return (
        stage,
        reason,
        _raw_text(raw),
        symbol,
        receipt_ns or _header_int(rec, "recv_ns"),
        rec.topic,
        rec.partition,
        rec.offset,
    )


def _trade_problem(t: Trade) -> str | None:
    """Return why a decoded trade cannot be stored, or None if it can."""
    if not math.isfinite(t.price):
        return f"price is {t.price!r} and must be finite"
    if t.price <= 0:
        return f"price is {t.price!r} and must be positive"
    if t.size <= 0:
        return f"size is {t.size} and must be positive"
    if t.size > _INT64_MAX:
        return f"size is {t.size} and exceeds int64"
    if not 0 <= t.sip_timestamp_ns <= _INT64_MAX:
        return f"sip_timestamp_ns is {t.sip_timestamp_ns} and must be a non-negative int64"
    if not 0 <= t.exchange <= _INT32_MAX:
        return f"exchange is {t.exchange} and must be a non-negative int32"
    for name in ("tape", "trf_id"):
        v = getattr(t, name)
        if v is not None and not 0 <= v <= _INT32_MAX:
            return f"{name} is {v} and must be a non-negative int32"
    for name in ("sequence_number", "trf_timestamp_ns", "receipt_ns"):
        v = getattr(t, name)
        if v is not None and not -_INT64_MAX <= v <= _INT64_MAX:
            return f"{name} is {v} and exceeds int64"
    return None


def local_time_columns(timestamp_ns: np.ndarray[Any, np.dtype[np.int64]]) -> pd.DataFrame:
    """Derive ``trade_date``, ``in_regular_hours`` and ``ns_from_open`` from SIP times.

    Parameters
    ----------
    timestamp_ns
        UTC epoch nanoseconds.

    Returns
    -------
    pandas.DataFrame
        Columns ``trade_date`` (``datetime64`` at local midnight, no time zone),
        ``in_regular_hours`` (bool) and ``ns_from_open`` (int64), one row per stamp.
    """
    ts = np.ascontiguousarray(timestamp_ns, dtype=np.int64)
    utc = pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC")
    # Wall-clock time in New York without a zone: midnight and 09:30 are wall times, and
    # arithmetic on naive wall times is what handles EST/EDT correctly.
    wall = utc.tz_convert(NEW_YORK).tz_localize(None)
    midnight = wall.normalize()
    tod = wall.asi8 - midnight.asi8
    # 09:30 exists exactly once on every New York day (DST switches at 02:00), so the
    # localisation below is never ambiguous.
    open_utc = (midnight + pd.Timedelta(OPEN_NS, unit="ns")).tz_localize(NEW_YORK).tz_convert("UTC")
    return pd.DataFrame(
        {
            "trade_date": midnight.as_unit("ns").to_numpy(),
            "in_regular_hours": (tod >= OPEN_NS) & (tod <= CLOSE_NS),
            "ns_from_open": ts - open_utc.as_unit("ns").asi8,
        }
    )


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def shape_batch(records: Sequence[KafkaRecord], offsets: OffsetRange) -> Microbatch:
    """Turn the records of one offset range into trades, rejects and gaps.

    Parameters
    ----------
    records
        Records as read from ``offsets`` (ascending offsets, within the range).
    offsets
        The range that was read; its bounds become the ledger row.

    Returns
    -------
    Microbatch
        The batch; ``trades`` holds each dedup key once.

    Raises
    ------
    OffsetError
        If a record lies outside ``offsets`` or offsets are not strictly increasing:
        the consumer broke its contract and nothing may be loaded.
    """
    t_cols: dict[str, list[Any]] = {c: [] for c in TRADE_COLUMNS if c not in _DERIVED}
    r_rows: list[tuple[Any, ...]] = []
    g_rows: list[tuple[Any, ...]] = []
    last = offsets.start - 1
    for rec in records:
        if rec.topic != offsets.topic or rec.partition != offsets.partition:
            raise OffsetError(
                f"record {rec.topic}:{rec.partition}@{rec.offset} is not in {offsets}"
            )
        if not offsets.start <= rec.offset < offsets.stop or rec.offset <= last:
            raise OffsetError(
                f"record offset {rec.offset} is out of order or outside {offsets} (previous {last})"
            )
        last = rec.offset
        try:
            event = decode(rec.value, rec.headers)
        except ParseError as e:
            r_rows.append(
                _reject_row("ingest", f"undecodable: {e}", rec.value, _key_text(rec.key), None, rec)
            )
            continue
        if isinstance(event, Trade):
            problem = _trade_problem(event)
            if problem is not None:
                r_rows.append(
                    _reject_row("ingest", problem, rec.value, event.symbol, event.receipt_ns, rec)
                )
                continue
            t_cols["symbol"].append(event.symbol)
            t_cols["timestamp_ns"].append(event.sip_timestamp_ns)
            t_cols["price"].append(event.price)
            t_cols["size"].append(event.size)
            t_cols["exchange"].append(event.exchange)
            t_cols["trade_id"].append(event.trade_id)
            t_cols["trf_id"].append(event.trf_id or 0)
            t_cols["tape"].append(event.tape)
            t_cols["conditions"].append(",".join(map(str, event.conditions)) or None)
            t_cols["sequence_number"].append(event.sequence_number)
            t_cols["trf_timestamp_ns"].append(event.trf_timestamp_ns)
            t_cols["source"].append(event.source)
            t_cols["receipt_ns"].append(event.receipt_ns or None)
            t_cols["kafka_ts_ns"].append(rec.timestamp_ms * 1_000_000)
            t_cols["kafka_topic"].append(rec.topic)
            t_cols["kafka_partition"].append(rec.partition)
            t_cols["kafka_offset"].append(rec.offset)
        elif isinstance(event, Reject):
            # Everything the streamer rejected is stage "feed"; its own stage name
            # (parse, decode, ...) stays visible in the reason.
            reason = event.reason if event.stage == "feed" else f"[{event.stage}] {event.reason}"
            r_rows.append(_reject_row("feed", reason, event.raw, None, None, rec))
        elif isinstance(event, Gap):
            g_rows.append(
                (
                    event.subscription,
                    event.last_before_ns,
                    event.first_after_ns,
                    event.reason,
                    event.detected_ns,
                    rec.topic,
                    rec.partition,
                    rec.offset,
                )
            )
    trades, n_dup = _trades_frame(t_cols)
    rejects = (
        pd.DataFrame(r_rows, columns=list(REJECT_COLUMNS)) if r_rows else _empty(REJECT_COLUMNS)
    )
    gaps = pd.DataFrame(g_rows, columns=list(GAP_COLUMNS)) if g_rows else _empty(GAP_COLUMNS)
    return Microbatch(
        range=offsets,
        trades=trades,
        rejects=rejects,
        gaps=gaps,
        n_messages=len(records),
        n_duplicates=n_dup,
    )


_DERIVED = frozenset({"trade_date", "in_regular_hours", "ns_from_open"})
_NULLABLE_INT = {
    "tape": "Int32",
    "sequence_number": "Int64",
    "trf_timestamp_ns": "Int64",
    "receipt_ns": "Int64",
}


def _trades_frame(cols: dict[str, list[Any]]) -> tuple[pd.DataFrame, int]:
    ts = np.asarray(cols["timestamp_ns"], dtype=np.int64)
    data: dict[str, Any] = {
        "symbol": pd.Series(cols["symbol"], dtype="str"),
        "timestamp_ns": ts,
        "price": np.asarray(cols["price"], dtype=np.float64),
        "size": np.asarray(cols["size"], dtype=np.int64),
        "exchange": np.asarray(cols["exchange"], dtype=np.int32),
        "trade_id": pd.Series(cols["trade_id"], dtype="str"),
        "trf_id": np.asarray(cols["trf_id"], dtype=np.int32),
        "conditions": pd.Series(cols["conditions"], dtype="str"),
        "source": pd.Series(cols["source"], dtype="str"),
        "kafka_ts_ns": np.asarray(cols["kafka_ts_ns"], dtype=np.int64),
        "kafka_topic": pd.Series(cols["kafka_topic"], dtype="str"),
        "kafka_partition": np.asarray(cols["kafka_partition"], dtype=np.int32),
        "kafka_offset": np.asarray(cols["kafka_offset"], dtype=np.int64),
    }
    for name, dtype in _NULLABLE_INT.items():
        data[name] = pd.array(cols[name], dtype=dtype)
    frame = pd.DataFrame(data)
    derived = local_time_columns(ts)
    for name in _DERIVED:
        frame[name] = derived[name].to_numpy()
    frame = pd.DataFrame(frame.loc[:, list(TRADE_COLUMNS)])
    dup = frame.duplicated(subset=list(DEDUP_KEY), keep="first").to_numpy(dtype=bool)
    n_dup = int(dup.sum())
    if n_dup:
        frame = pd.DataFrame(frame.loc[~dup]).reset_index(drop=True)
    return frame, n_dup


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """The next microbatch of one partition, as the sensor asks for it.

    Only ``stop`` travels in the run request; ``start`` is informational (the run reads
    its own lower bound from the ledger, so a stale plan can never skip or repeat rows).
    """

    partition: int
    start: int
    stop: int

    @property
    def span(self) -> int:
        """Return ``stop - start``."""
        return self.stop - self.start


def plan_microbatches(
    watermarks: Mapping[int, tuple[int, int]],
    next_offsets: Mapping[int, int],
    max_records: int,
) -> tuple[list[PlannedBatch], list[str]]:
    """Compare Kafka's watermarks with the ledger and plan one batch per lagging partition.

    Parameters
    ----------
    watermarks
        ``{partition: (low, high)}`` of the topic.
    next_offsets
        ``{partition: first offset not loaded}`` from the ledger; absent = never loaded
        (the batch then starts at the low watermark).
    max_records
        Largest offset span of one batch.

    Returns
    -------
    tuple[list[PlannedBatch], list[str]]
        Batches in partition order, and warnings (the ledger ahead of Kafka means the
        topic was recreated or truncated: nothing is planned for that partition).
    """
    planned: list[PlannedBatch] = []
    warnings: list[str] = []
    for partition in sorted(watermarks):
        low, high = watermarks[partition]
        start = next_offsets.get(partition, low)
        if start > high:
            warnings.append(
                f"partition {partition}: the ledger ends at {start} beyond the high watermark "
                f"{high}; was the topic recreated? nothing is loaded until an operator decides"
            )
            continue
        stop = plan_stop(start, high, max_records)
        if stop is not None:
            planned.append(PlannedBatch(partition, start, stop))
    return planned, warnings


def day_bounds_ns(day: date) -> tuple[int, int]:
    """Return the UTC epoch ns bounds ``[start, end)`` of a New York calendar day.

    Parameters
    ----------
    day
        The local date.

    Returns
    -------
    tuple[int, int]
        Local midnight of ``day`` and of the next day, as UTC epoch ns (23 or 25 hours
        apart on DST switch days).
    """
    start = pd.Timestamp(day.isoformat()).tz_localize(NEW_YORK)
    end = (pd.Timestamp(day.isoformat()) + pd.Timedelta(days=1)).tz_localize(NEW_YORK)
    return int(start.as_unit("ns").value), int(end.as_unit("ns").value)
