"""Kafka records of one offset range -> the rows of one warehouse load (pure).

A microbatch is what one Dagster ``market_data`` run loads: the trades (with the
derived columns computed once, here, so that SQL and the UDx never do time-zone
work), the quotes and aggregates (``quote.v1``, ``agg.v1``), the rejects (kept with their
reason and raw payload, never dropped), the feed's gap records with their repair state
and the counts that go to the offset ledger.

Derived columns (statistics.md section 1):

- ``trade_date``: the America/New_York date of ``timestamp_ns``;
- ``in_regular_hours``: ``09:30:00 <= local time of day <= 16:00:00``, both ends
  inclusive, at nanosecond resolution;
- ``ns_from_open``: nanoseconds since 09:30 New York on ``trade_date`` (negative before).

A trade is identified by ``(symbol, trade_date, exchange, trf_id, trade_id)`` with
``trf_id = 0`` for exchange prints; a repeat inside the batch keeps the first
occurrence (lowest offset) and is counted in ``n_duplicates``. Repeats of trades
stored by earlier batches are found by the warehouse inside the load transaction.
Quotes and aggregates are handled the same way with their own keys, :data:`QUOTE_KEY`
(a quote without a sequence number has no key and is kept as sent) and
:data:`AGGREGATE_KEY`, counted in ``n_quote_duplicates`` / ``n_aggregate_duplicates``.

Speed (a batch is up to 200,000 records): the consumer hands over columns
(:class:`RecordColumns`), well-formed trades are decoded together by one pyarrow JSON
read (:func:`~pipeline.kafka.codec.decode_trades_bulk`), checked and derived
column-wise; every other record (quotes, aggregates, gaps, feed rejects, malformed or
unstorable trades) takes the per-record path (:func:`~pipeline.kafka.codec.decode_event`),
which also names each reject's reason, and its frames are built column by column. A batch
of trades only never leaves the bulk path.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as _pc

from pipeline.errors import OffsetError, ParseError
from pipeline.events import Aggregate, Gap, Quote, Reject, Trade
from pipeline.kafka.codec import (
    SCHEMA_REJECT,
    SCHEMA_SIGNAL,
    SCHEMA_TRADE,
    SIGNAL_FLOATS,
    decode_event,
    decode_signal,
    decode_trades_bulk,
    input_key,
)
from pipeline.kafka.offsets import KafkaRecord, OffsetRange, plan_stop
from pipeline.nytime import NEW_YORK
from pipeline.warehouse.schema import VARCHAR_BYTES

NS_PER_S = 1_000_000_000
OPEN_NS = (9 * 3600 + 30 * 60) * NS_PER_S  # 09:30:00 local
CLOSE_NS = 16 * 3600 * NS_PER_S  # 16:00:00 local, inclusive
DEDUP_KEY: tuple[str, ...] = ("symbol", "trade_date", "exchange", "trf_id", "trade_id")
# Not (symbol, trade_date, sequence_number): the stream has carried two different events with
# one `q` (README, "Dedup key"); with the SIP time in the key both are kept, while a re-sent
# quote (same SIP time, same `q`) is stored once, and the daily restart of `q` cannot collide.
QUOTE_KEY: tuple[str, ...] = ("symbol", "sip_timestamp_ns", "sequence_number")
AGGREGATE_KEY: tuple[str, ...] = ("symbol", "kind", "start_ns")
# A gap's repair_detail is an error text of unbounded length; Vertica keeps 4,096 bytes
# (ENFORCELENGTH would fail the whole load), so at most 1,000 characters of UTF-8 are kept.
MAX_REPAIR_DETAIL_CHARS = 1000

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
    "gap_id",
    "repair",
    "repair_from_ns",
    "repair_to_ns",
    "backfilled",
    "repair_detail",
    "repaired_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
# market_quotes and market_aggregates without loaded_ns (sql/migrations/0010).
QUOTE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "sip_timestamp_ns",
    "bid_exchange",
    "bid_price",
    "bid_size",
    "ask_exchange",
    "ask_price",
    "ask_size",
    "condition",
    "indicators",
    "sequence_number",
    "tape",
    "trade_date",
    "source",
    "receipt_ns",
    "kafka_ts_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
AGGREGATE_COLUMNS: tuple[str, ...] = (
    "kind",
    "symbol",
    "start_ns",
    "end_ns",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "accumulated_volume",
    "day_open",
    "day_vwap",
    "average_size",
    "otc",
    "trade_date",
    "receipt_ns",
    "kafka_ts_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

# The live path's records (topic trading-signals, sql/migrations/0015), without loaded_ns. A
# live record is identified by its input key: the market-data record it was derived from.
LIVE_KEY: tuple[str, ...] = ("input_topic", "input_partition", "input_offset")
LIVE_SIGNAL_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "seq",
    "timestamp_ns",
    "price",
    "size",
    "log_return",
    "lee_mykland_stat",
    "lm_xi",
    "lm_n",
    "lm_n_rule",
    "jump_detected",
    "garch_sigma2",
    "standardized_return",
    "bns_stat",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
    "trading_signal",
    "in_order",
    "garch_params",
    "acd_params",
    "kernel_version",
    "params",
    *LIVE_KEY,
    "emitted_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)
LIVE_REJECT_COLUMNS: tuple[str, ...] = (
    "stage",
    "reason",
    "raw",
    *LIVE_KEY,
    "kernel_version",
    "emitted_ns",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

# pyarrow.compute generates its functions at import: its stubs cannot list them.
pc: Any = _pc

_INT64_MAX = 2**63 - 1
_INT64_MIN = -(2**63)
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
        Records that are neither valid events nor storable, columns :data:`REJECT_COLUMNS`.
    gaps
        Feed gap records with their repair state, columns :data:`GAP_COLUMNS`.
    n_messages
        Records read (offsets are not contiguous, so this may be below the span).
    n_duplicates
        Trades dropped because an earlier record of the batch had the same dedup key.
    quotes
        One row per distinct quote (:data:`QUOTE_KEY`), columns :data:`QUOTE_COLUMNS`.
    aggregates
        One row per distinct bar (:data:`AGGREGATE_KEY`), columns :data:`AGGREGATE_COLUMNS`.
    n_quote_duplicates, n_aggregate_duplicates
        Quotes and bars dropped because an earlier record of the batch had the same key.
    live_signals
        ``signal.v1`` records (the live path's topic): one row per input key,
        columns :data:`LIVE_SIGNAL_COLUMNS`, in offset order.
    live_rejects
        The live path's ``reject.v1`` records (input records it refused), one per input key,
        columns :data:`LIVE_REJECT_COLUMNS`.
    n_live_duplicates
        Live records dropped because an earlier record of the batch had the same input key
        (the at-least-once producer's repeats).
    """

    range: OffsetRange
    trades: pd.DataFrame
    rejects: pd.DataFrame
    gaps: pd.DataFrame
    n_messages: int
    n_duplicates: int
    quotes: pd.DataFrame = field(default_factory=lambda: _empty(QUOTE_COLUMNS))
    aggregates: pd.DataFrame = field(default_factory=lambda: _empty(AGGREGATE_COLUMNS))
    n_quote_duplicates: int = 0
    n_aggregate_duplicates: int = 0
    live_signals: pd.DataFrame = field(default_factory=lambda: _empty(LIVE_SIGNAL_COLUMNS))
    live_rejects: pd.DataFrame = field(default_factory=lambda: _empty(LIVE_REJECT_COLUMNS))
    n_live_duplicates: int = 0

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

    @property
    def n_quotes(self) -> int:
        """Return the number of distinct quotes in the batch."""
        return len(self.quotes)

    @property
    def n_aggregates(self) -> int:
        """Return the number of distinct bars in the batch."""
        return len(self.aggregates)

    @property
    def n_live_signals(self) -> int:
        """Return the number of distinct live signals (input keys) in the batch."""
        return len(self.live_signals)

    @property
    def n_live_rejects(self) -> int:
        """Return the number of distinct live rejects (input keys) in the batch."""
        return len(self.live_rejects)

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
            "n_quotes": self.n_quotes,
            "n_quote_duplicates_in_batch": self.n_quote_duplicates,
            "n_aggregates": self.n_aggregates,
            "n_aggregate_duplicates_in_batch": self.n_aggregate_duplicates,
            "n_live_signals": self.n_live_signals,
            "n_live_rejects": self.n_live_rejects,
            "n_live_duplicates_in_batch": self.n_live_duplicates,
            "min_timestamp_ns": int(ts.min()) if len(ts) else None,
            "max_timestamp_ns": int(ts.max()) if len(ts) else None,
        }


@dataclass(frozen=True)
class RecordColumns:
    """The records of one range of one topic-partition, column by column, as read.

    :func:`pipeline.kafka.consumer.read_range_columns` returns this instead of one
    :class:`~pipeline.kafka.offsets.KafkaRecord` per record, so that reading and shaping
    a batch of well-formed trades does no per-record Python work beyond the client's.

    Attributes
    ----------
    topic, partition
        The topic-partition every record belongs to.
    offsets
        Record offsets (``int64``), as read: ascending, not contiguous in general.
    keys, values
        Record keys and values (None when absent), one per offset.
    headers
        Each record's headers as the client returns them (``(name, value)`` pairs, or
        None); ``schema`` and ``recv_ns`` are looked up only where needed.
    timestamps_ms
        Kafka record timestamps (``int64``; -1 when the record has none).
    """

    topic: str
    partition: int
    offsets: npt.NDArray[np.int64]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    headers: Sequence[Sequence[tuple[str, bytes | None]] | None]
    timestamps_ms: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets)

    @classmethod
    def from_records(cls, records: Sequence[KafkaRecord], offsets: OffsetRange) -> RecordColumns:
        """Return the columns of ``records``, which must belong to ``offsets``' partition.

        Parameters
        ----------
        records
            Records as read.
        offsets
            The range they were read from.

        Returns
        -------
        RecordColumns
            The same records, column by column.

        Raises
        ------
        OffsetError
            If a record belongs to another topic-partition.
        """
        for rec in records:
            if rec.topic != offsets.topic or rec.partition != offsets.partition:
                raise OffsetError(
                    f"record {rec.topic}:{rec.partition}@{rec.offset} is not in {offsets}"
                )
        n = len(records)
        return cls(
            topic=offsets.topic,
            partition=offsets.partition,
            offsets=np.fromiter((r.offset for r in records), dtype=np.int64, count=n),
            keys=[r.key for r in records],
            values=[r.value for r in records],
            headers=[r.headers for r in records],
            timestamps_ms=np.fromiter((r.timestamp_ms for r in records), dtype=np.int64, count=n),
        )

    def records(self) -> list[KafkaRecord]:
        """Return one :class:`~pipeline.kafka.offsets.KafkaRecord` per record.

        Returns
        -------
        list[KafkaRecord]
            In offset order.
        """
        return [
            KafkaRecord(
                topic=self.topic,
                partition=self.partition,
                offset=offset,
                key=key,
                value=value,
                headers=tuple(headers or ()),
                timestamp_ms=ts,
            )
            for offset, key, value, headers, ts in zip(
                self.offsets.tolist(),
                self.keys,
                self.values,
                self.headers,
                self.timestamps_ms.tolist(),
                strict=True,
            )
        ]


Headers = Sequence[tuple[str, bytes | None]] | None
# The headers every record of the producer carries, in this order (pipeline.kafka.codec).
_PACKED_NAMES = ("schema", "recv_ns")


class PackedHeaders(Sequence[Headers]):
    """Record headers kept as two columns of values, for the usual ``(schema, recv_ns)`` pair.

    A record's headers as the client returns them are a list of tuples: three objects that
    the cyclic garbage collector visits for as long as the batch lives (a sixth of reading
    200,000 records went to that). Records whose headers are exactly ``schema`` then
    ``recv_ns`` keep the two values only; any other record keeps its headers as read.
    Indexing rebuilds the same list the client returned.
    """

    def __init__(self) -> None:
        self._schemas: list[bytes | None] = []
        self._recv: list[bytes | None] = []
        self._other: dict[int, Headers] = {}

    def extend(self, headers: Sequence[Headers]) -> None:
        """Append the headers of more records, in record order.

        Parameters
        ----------
        headers
            Each record's headers as the client returns them.
        """
        # Checked as Any: a record without headers (None) or with another count of them
        # makes the unpacking raise, and that batch takes the record-by-record loop below.
        hs: Sequence[Any] = headers
        try:
            usual = [(a[0], b[0]) for a, b in hs].count(_PACKED_NAMES) == len(hs)
        except (TypeError, ValueError):
            usual = False
        if usual:
            self._schemas += [h[0][1] for h in hs]
            self._recv += [h[1][1] for h in hs]
            return
        for h in headers:
            if h is not None and len(h) == 2 and (h[0][0], h[1][0]) == _PACKED_NAMES:
                self._schemas.append(h[0][1])
                self._recv.append(h[1][1])
            else:
                self._other[len(self._schemas)] = h
                self._schemas.append(None)
                self._recv.append(None)

    def schemas(self) -> list[bytes | None]:
        """Return each record's ``schema`` header (None where it has none).

        Returns
        -------
        list[bytes | None]
            One value per record, without rebuilding any header list.
        """
        if not self._other:
            return self._schemas
        out = list(self._schemas)
        for i, h in self._other.items():
            out[i] = _header(h, "schema")
        return out

    def __len__(self) -> int:
        return len(self._schemas)

    @overload
    def __getitem__(self, i: int) -> Headers: ...

    @overload
    def __getitem__(self, i: slice) -> list[Headers]: ...

    def __getitem__(self, i: int | slice) -> Headers | list[Headers]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"record {i} of {n}")
        i %= n
        if i in self._other:
            return self._other[i]
        return [(_PACKED_NAMES[0], self._schemas[i]), (_PACKED_NAMES[1], self._recv[i])]

    def __iter__(self) -> Iterator[Headers]:
        return (self[i] for i in range(len(self)))


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block (it is restored after).

    Reading and shaping a batch allocate a few objects per record and free none of them
    in cycles; with the collector running, its passes over the growing heap cost more
    than the work itself. Reference counting still frees everything as usual.

    Yields
    ------
    None
        Inside the block, automatic collection is off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _header(headers: Headers, name: str) -> bytes | None:
    for key, value in headers or ():
        if key == name:
            return value
    return None


def _header_int(headers: Headers, name: str) -> int | None:
    for key, value in headers or ():
        if key == name and value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _schemas(headers: Sequence[Headers]) -> list[bytes | None]:
    if isinstance(headers, PackedHeaders):
        return headers.schemas()
    # The producer writes ``schema`` first: one look at the first pair serves nearly all.
    return [h[0][1] if h and h[0][0] == "schema" else _header(h, "schema") for h in headers]


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


_MD_BYTES = VARCHAR_BYTES["market_data"]
_REJECT_BYTES = VARCHAR_BYTES["market_data_rejects"]


def _too_long(table: str, fields: Sequence[tuple[str, str | None]]) -> str | None:
    """Return why one of ``fields`` is longer than its column of ``table``, or None."""
    sizes = VARCHAR_BYTES[table]
    for name, value in fields:
        if value is not None:
            n = len(value.encode("utf-8", "surrogatepass"))
            if n > sizes[name]:
                return f"{name} is {n} bytes, longer than the {sizes[name]} {table}.{name} holds"
    return None


def _fit(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` UTF-8 bytes, on a character boundary."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


def _conditions_text(conditions: Sequence[int]) -> str | None:
    """Return the stored form of a conditions list (a comma list; none is NULL)."""
    return ",".join(map(str, conditions)) if conditions else None


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
    return _too_long(
        "market_data",
        (
            ("symbol", t.symbol),
            ("trade_id", t.trade_id),
            ("conditions", _conditions_text(t.conditions)),
            ("source", t.source),
        ),
    )


def _int_problem(obj: object, names: Sequence[str], lo: int, hi: int, what: str) -> str | None:
    """Return why one of the integer fields ``names`` of ``obj`` is outside ``[lo, hi]``."""
    for name in names:
        v = getattr(obj, name)
        if v is not None and not lo <= v <= hi:
            return f"{name} is {v} and must be {what}"
    return None


def _quote_problem(q: Quote) -> str | None:
    """Return why a decoded quote cannot be stored, or None if it can.

    Zero prices are kept (the provider sends 0 for an empty side of the book); what the
    columns cannot hold, or no book can mean, is refused.
    """
    for name in ("bid_price", "ask_price"):
        v = getattr(q, name)
        if not math.isfinite(v) or v < 0:
            return f"{name} is {v!r} and must be finite and not negative"
    return (
        _int_problem(
            q, ("sip_timestamp_ns", "bid_size", "ask_size"), 0, _INT64_MAX, "a non-negative int64"
        )
        or _int_problem(
            q,
            ("bid_exchange", "ask_exchange", "condition", "tape"),
            0,
            _INT32_MAX,
            "a non-negative int32",
        )
        or _int_problem(q, ("sequence_number", "receipt_ns"), -_INT64_MAX, _INT64_MAX, "an int64")
        or _too_long(
            "market_quotes",
            (
                ("symbol", q.symbol),
                ("indicators", _conditions_text(q.indicators)),
                ("source", q.source),
            ),
        )
    )


def _aggregate_problem(a: Aggregate) -> str | None:
    """Return why a decoded bar cannot be stored, or None if it can.

    The checks the streamer's parser applies to a bar (positive prices, a window that does
    not end before it starts, low <= open, close <= high), so that the loader stores no bar
    the feed itself would have refused, plus what the columns cannot hold.
    """
    for name in ("open", "high", "low", "close"):
        v = getattr(a, name)
        if not math.isfinite(v) or v <= 0:
            return f"{name} is {v!r} and must be finite and positive"
    for name in ("vwap", "day_open", "day_vwap"):
        v = getattr(a, name)
        if v is not None and (not math.isfinite(v) or v < 0):
            return f"{name} is {v!r} and must be finite and not negative"
    problem = _int_problem(
        a,
        ("start_ns", "end_ns", "volume", "accumulated_volume", "average_size"),
        0,
        _INT64_MAX,
        "a non-negative int64",
    ) or _int_problem(a, ("receipt_ns",), -_INT64_MAX, _INT64_MAX, "an int64")
    if problem is not None:
        return problem
    if (problem := _too_long("market_aggregates", (("symbol", a.symbol),))) is not None:
        return problem
    if a.end_ns < a.start_ns:
        return f"end_ns {a.end_ns} is before start_ns {a.start_ns}"
    if not a.low <= min(a.open, a.close) <= max(a.open, a.close) <= a.high:
        return (
            f"bar is inconsistent (open={a.open!r} high={a.high!r} low={a.low!r} close={a.close!r})"
        )
    return None


def _gap_problem(g: Gap) -> str | None:
    """Return why a decoded gap record cannot be stored, or None.

    An integer beyond int64 or a text longer than its column cannot.
    """
    too_long = _too_long("feed_gaps", (("subscription", g.subscription), ("reason", g.reason)))
    return too_long or _int_problem(
        g,
        (
            "last_before_ns",
            "first_after_ns",
            "detected_ns",
            "repair_from_ns",
            "repair_to_ns",
            "backfilled",
            "repaired_ns",
        ),
        -_INT64_MAX,
        _INT64_MAX,
        "an int64",
    )


def _storable(table: pa.Table) -> npt.NDArray[np.bool_]:
    """Vectorised :func:`_trade_problem`: True where a bulk-decoded trade can be stored.

    Decoded int64 columns cannot exceed int64, so only the lower bound -2**63 (outside
    ``[-INT64_MAX, INT64_MAX]``) and the int32 columns' ranges need a look.
    """
    price = table["price"].to_numpy()
    ok = np.isfinite(price) & (price > 0)
    ok &= table["size"].to_numpy() > 0
    ok &= table["sip_timestamp_ns"].to_numpy() >= 0
    exchange = table["exchange"].to_numpy()
    ok &= (exchange >= 0) & (exchange <= _INT32_MAX)
    for name in ("tape", "trf_id"):
        v = pc.fill_null(table[name], 0).to_numpy()
        ok &= (v >= 0) & (v <= _INT32_MAX)
    for name in ("sequence_number", "trf_timestamp_ns", "receipt_ns"):
        ok &= pc.fill_null(table[name], 0).to_numpy() != _INT64_MIN
    for name in ("symbol", "trade_id", "source"):
        ok &= pc.fill_null(pc.binary_length(table[name]), 0).to_numpy() <= _MD_BYTES[name]
    joined = pc.binary_join(pc.cast(table["conditions"], pa.list_(pa.string())), ",")
    ok &= pc.fill_null(pc.binary_length(joined), 0).to_numpy() <= _MD_BYTES["conditions"]
    return ok


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


def _check_offsets(cols: RecordColumns, offsets: OffsetRange) -> None:
    if cols.topic != offsets.topic or cols.partition != offsets.partition:
        raise OffsetError(f"records of {cols.topic}:{cols.partition} are not in {offsets}")
    o = cols.offsets
    if not len(o):
        return
    bad = (o < offsets.start) | (o >= offsets.stop)
    bad[1:] |= o[1:] <= o[:-1]
    if bad.any():
        i = int(np.argmax(bad))
        previous = int(o[i - 1]) if i else offsets.start - 1
        raise OffsetError(
            f"record offset {int(o[i])} is out of order or outside {offsets} (previous {previous})"
        )


FUTURE_TOLERANCE_S = 300.0
"""How far ahead of the loader's clock a trade's SIP time may be before it is rejected as
``future_timestamp``: far more than any clock skew between the SIP and this host, far less
than a session. A trade stamped in the future would otherwise be stored, and move the
bounds completeness is judged by past every close."""


def _future_reason(sip_ns: int, now_ns: int, tolerance_s: float) -> str:
    return (
        f"future_timestamp: sip_timestamp_ns {sip_ns} is {(sip_ns - now_ns) / 1e9:,.0f} s "
        f"ahead of the loader's clock (tolerance {tolerance_s:g} s)"
    )


class _Shaper:
    """The per-record path of :func:`shape_batch`: rare records, and the reasons of bad ones."""

    def __init__(self, cols: RecordColumns, now_ns: int, future_tolerance_s: float) -> None:
        self.cols = cols
        self.now_ns = now_ns
        self.future_tolerance_s = future_tolerance_s
        self.latest_ns = now_ns + int(future_tolerance_s * 1e9)
        self.rejects: list[tuple[int, tuple[Any, ...]]] = []
        self.gaps: list[tuple[int, Gap]] = []
        self.trades: list[tuple[int, Trade]] = []
        self.quotes: list[tuple[int, Quote]] = []
        self.aggregates: list[tuple[int, Aggregate]] = []
        self.live: list[tuple[int, dict[str, Any]]] = []
        self.live_rejects: list[tuple[int, tuple[Any, ...]]] = []

    def reject(
        self,
        i: int,
        stage: str,
        reason: str,
        raw: bytes | None,
        symbol: str | None,
        receipt_ns: int | None,
    ) -> None:
        c = self.cols
        if _too_long("market_data_rejects", (("symbol", symbol),)) is not None:
            symbol = None  # not a symbol the tables can hold; the raw payload keeps it
        self.rejects.append(
            (
                i,
                (
                    stage,
                    _fit(reason, _REJECT_BYTES["reason"]),
                    _raw_text(raw),
                    symbol,
                    receipt_ns or _header_int(c.headers[i], "recv_ns"),
                    c.topic,
                    c.partition,
                    int(c.offsets[i]),
                ),
            )
        )

    def one(self, i: int) -> None:
        """Decode record ``i`` on its own and file it by event type, or as a reject."""
        c = self.cols
        value = c.values[i]
        schema = _header(c.headers[i], "schema")
        if schema == SCHEMA_SIGNAL or (
            schema == SCHEMA_REJECT and _header(c.headers[i], "input_offset") is not None
        ):
            self.live_record(i, schema)
            return
        try:
            # Every event type the warehouse has a table for: a valid quote or bar is data,
            # not a reject (codec.decode would refuse them as unrouted).
            event = decode_event(value, c.headers[i])
        except ParseError as e:
            self.reject(i, "ingest", f"undecodable: {e}", value, _key_text(c.keys[i]), None)
            return
        if isinstance(event, Trade):
            problem = _trade_problem(event)
            if problem is None and event.sip_timestamp_ns > self.latest_ns:
                problem = _future_reason(
                    event.sip_timestamp_ns, self.now_ns, self.future_tolerance_s
                )
            if problem is not None:
                self.reject(i, "ingest", problem, value, event.symbol, event.receipt_ns)
            else:
                self.trades.append((i, event))
        elif isinstance(event, Quote):
            problem = _quote_problem(event)
            if problem is not None:
                self.reject(i, "ingest", f"quote: {problem}", value, event.symbol, event.receipt_ns)
            else:
                self.quotes.append((i, event))
        elif isinstance(event, Aggregate):
            problem = _aggregate_problem(event)
            if problem is not None:
                self.reject(i, "ingest", f"bar: {problem}", value, event.symbol, event.receipt_ns)
            else:
                self.aggregates.append((i, event))
        elif isinstance(event, Reject):
            # Everything the streamer rejected is stage "feed"; its own stage name
            # (parse, decode, ...) stays visible in the reason.
            reason = event.reason if event.stage == "feed" else f"[{event.stage}] {event.reason}"
            self.reject(i, "feed", reason, event.raw, None, None)
        else:
            problem = _gap_problem(event)
            if problem is not None:
                self.reject(i, "ingest", f"gap: {problem}", value, None, None)
            else:
                self.gaps.append((i, event))

    def live_record(self, i: int, schema: bytes) -> None:
        """File a record of the live path (a signal, or an input record it refused)."""
        c = self.cols
        value, headers = c.values[i], c.headers[i]
        emitted = int(c.timestamps_ms[i]) * 1_000_000 if c.timestamps_ms[i] >= 0 else None
        lineage = (emitted, c.topic, c.partition, int(c.offsets[i]))
        try:
            if schema == SCHEMA_SIGNAL:
                row = decode_signal(value, headers)
                problem = _live_problem(row)
                if problem is None:
                    self.live.append((i, row))
                    return
                raise ParseError(problem)
            event = decode_event(value, headers)
            key = input_key(headers)
            if not isinstance(event, Reject) or key is None:
                raise ParseError("a live reject.v1 record needs a reject value and its input key")
            kernel = _header(headers, "kernel_version")
            self.live_rejects.append(
                (
                    i,
                    (
                        _fit(event.stage, _LIVE_REJECT_BYTES["stage"]),
                        _fit(event.reason, _LIVE_REJECT_BYTES["reason"]),
                        _raw_text(event.raw),
                        *key,
                        None if kernel is None else _fit(kernel.decode("latin-1"), 64),
                        *lineage,
                    ),
                )
            )
        except ParseError as e:
            what = "signal" if schema == SCHEMA_SIGNAL else "live reject"
            self.reject(i, "ingest", f"{what}: {e}", value, _key_text(c.keys[i]), None)


_LIVE_BYTES = VARCHAR_BYTES["live_signals"]
_LIVE_REJECT_BYTES = VARCHAR_BYTES["live_signal_rejects"]
_LIVE_TEXT = ("symbol", "lm_n_rule", "garch_params", "acd_params", "kernel_version", "params")


def _live_problem(row: Mapping[str, Any]) -> str | None:
    """Return why a decoded ``signal.v1`` row cannot be stored, or None if it can."""
    for name in ("seq", "input_partition"):
        if not 0 <= row[name] <= _INT32_MAX:
            return f"{name} is {row[name]} and must be a non-negative int32"
    for name in ("timestamp_ns", "size", "input_offset"):
        if not 0 <= row[name] <= _INT64_MAX:
            return f"{name} is {row[name]} and must be a non-negative int64"
    if row["lm_n"] is not None and not 0 <= row["lm_n"] <= _INT64_MAX:
        return f"lm_n is {row['lm_n']} and must be a non-negative int64"
    if not (math.isfinite(row["price"]) and row["price"] > 0):
        return f"price is {row['price']!r} and must be finite and positive"
    try:
        date.fromisoformat(row["date"])
    except ValueError:
        return f"date is {row['date']!r} and must be YYYY-MM-DD"
    return _too_long("live_signals", [(n, row[n]) for n in (*_LIVE_TEXT, "input_topic")])


def _live_frames(
    cols: RecordColumns,
    signals: Sequence[tuple[int, dict[str, Any]]],
    rejects: Sequence[tuple[int, tuple[Any, ...]]],
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Return the live signals and rejects, each input key once (first arrival), and repeats."""
    n_dup = 0
    if signals:
        pos = _positions(signals)
        rows = [r for _, r in signals]
        frame = pd.DataFrame(
            {
                **{
                    name: [r[name] for r in rows] for name in LIVE_SIGNAL_COLUMNS if name in rows[0]
                },
                "emitted_ns": pd.array(
                    [int(t) * 1_000_000 if t >= 0 else None for t in cols.timestamps_ms[pos]],
                    dtype="Int64",
                ),
                "kafka_topic": pd.Series([cols.topic] * len(rows), dtype="str"),
                "kafka_partition": np.full(len(rows), cols.partition, dtype=np.int32),
                "kafka_offset": cols.offsets[pos],
            },
            columns=list(LIVE_SIGNAL_COLUMNS),
        )
        frame["date"] = pd.to_datetime(frame["date"]).dt.date
        # Nullable types, never object columns: null (an undefined statistic) stays NULL.
        frame = frame.astype(
            {
                "lm_n": "Int64",
                "in_order": "boolean",
                **dict.fromkeys(SIGNAL_FLOATS, "Float64"),
                **dict.fromkeys(("garch_params", "acd_params", "lm_n_rule", "params"), "str"),
            }
        )
        frame, n_dup = _dedup(frame, LIVE_KEY)
    else:
        frame = _empty(LIVE_SIGNAL_COLUMNS)
    if rejects:
        r_frame = pd.DataFrame(
            [row for _, row in rejects], columns=list(LIVE_REJECT_COLUMNS)
        ).astype({"emitted_ns": "Int64"})
        r_frame, n = _dedup(r_frame, LIVE_KEY)
        n_dup += n
    else:
        r_frame = _empty(LIVE_REJECT_COLUMNS)
    return frame, r_frame, n_dup


def shape_batch(
    records: Sequence[KafkaRecord] | RecordColumns,
    offsets: OffsetRange,
    *,
    now_ns: int | None = None,
    future_tolerance_s: float = FUTURE_TOLERANCE_S,
) -> Microbatch:
    """Turn the records of one offset range into trades, rejects and gaps.

    Well-formed trades (nearly all records) are decoded together
    (:func:`~pipeline.kafka.codec.decode_trades_bulk`) and checked column-wise; every
    other record, and every trade the bulk path cannot vouch for or finds unstorable,
    is decoded on its own, so that a reject carries the same reason either way.

    Parameters
    ----------
    records
        Records as read from ``offsets`` (ascending offsets, within the range), as
        :class:`RecordColumns` (the consumer's fast path) or a sequence of records.
    offsets
        The range that was read; its bounds become the ledger row.
    now_ns
        The loader's clock (default: now); a trade stamped more than
        ``future_tolerance_s`` after it is a ``future_timestamp`` reject.
    future_tolerance_s
        See :data:`FUTURE_TOLERANCE_S`.

    Returns
    -------
    Microbatch
        The batch; ``trades`` holds each dedup key once, in offset order.

    Raises
    ------
    OffsetError
        If a record lies outside ``offsets`` or offsets are not strictly increasing:
        the consumer broke its contract and nothing may be loaded.
    """
    if now_ns is None:
        now_ns = time.time_ns()
    with paused_gc():
        return _shape(records, offsets, now_ns, future_tolerance_s)


def _shape(
    records: Sequence[KafkaRecord] | RecordColumns,
    offsets: OffsetRange,
    now_ns: int,
    future_tolerance_s: float,
) -> Microbatch:
    cols = (
        records
        if isinstance(records, RecordColumns)
        else RecordColumns.from_records(records, offsets)
    )
    _check_offsets(cols, offsets)
    shaper = _Shaper(cols, now_ns, future_tolerance_s)
    schemas = _schemas(cols.headers)
    values = cols.values
    if schemas.count(SCHEMA_TRADE) == len(cols):  # the usual case: trades only
        trade_pos = np.arange(len(cols), dtype=np.int64)
        trade_values = values
    else:
        trade_pos = np.fromiter(
            (i for i, s in enumerate(schemas) if s == SCHEMA_TRADE), dtype=np.int64
        )
        for i in np.setdiff1d(np.arange(len(cols)), trade_pos, assume_unique=True).tolist():
            shaper.one(i)
        trade_values = [values[i] for i in trade_pos.tolist()]
    table, got = decode_trades_bulk(trade_values)
    table = table.combine_chunks()
    fast_pos = trade_pos[got]
    if len(got) < len(trade_pos):
        missed = np.setdiff1d(np.arange(len(trade_pos)), got, assume_unique=True)
        for i in trade_pos[missed].tolist():
            shaper.one(i)
    storable = _storable(table)
    # Storable values can still be stamped in the future: those take the per-record path,
    # which names the reason.
    storable &= table["sip_timestamp_ns"].to_numpy() <= shaper.latest_ns
    if not storable.all():
        for i in fast_pos[~storable].tolist():
            shaper.one(i)
        table = table.filter(pa.array(storable))
        fast_pos = fast_pos[storable]
    trades, n_dup = _trades_frame(cols, table, fast_pos, shaper.trades)
    shaper.rejects.sort(key=lambda r: r[0])
    r_rows = [row for _, row in shaper.rejects]
    rejects = (
        pd.DataFrame(r_rows, columns=list(REJECT_COLUMNS)) if r_rows else _empty(REJECT_COLUMNS)
    )
    quotes, n_quote_dup = _quotes_frame(cols, shaper.quotes)
    aggregates, n_agg_dup = _aggregates_frame(cols, shaper.aggregates)
    live, live_rejects, n_live_dup = _live_frames(cols, shaper.live, shaper.live_rejects)
    return Microbatch(
        range=offsets,
        trades=trades,
        rejects=rejects,
        gaps=_gaps_frame(cols, shaper.gaps),
        n_messages=len(cols),
        n_duplicates=n_dup,
        quotes=quotes,
        aggregates=aggregates,
        n_quote_duplicates=n_quote_dup,
        n_aggregate_duplicates=n_agg_dup,
        live_signals=live,
        live_rejects=live_rejects,
        n_live_duplicates=n_live_dup,
    )


_DERIVED = frozenset({"trade_date", "in_regular_hours", "ns_from_open"})


def _masked(values: pa.ChunkedArray | pa.Array, dtype: str) -> pd.api.extensions.ExtensionArray:
    # Via the validity mask, never via float: int64 values above 2**53 stay exact.
    data = pc.fill_null(values, 0).to_numpy().astype(dtype.lower(), copy=False)
    return pd.arrays.IntegerArray(data, pc.is_null(values).to_numpy(zero_copy_only=False))


def _columns_from_arrow(
    cols: RecordColumns, t: pa.Table, pos: npt.NDArray[np.int64]
) -> dict[str, Any]:
    """Return the stored columns of bulk-decoded trades (``pos``: their record positions)."""
    conditions = pc.binary_join(pc.cast(t["conditions"], pa.list_(pa.string())), ",")
    receipt = t["receipt_ns"]
    return {
        "symbol": pd.Series(t["symbol"], dtype="str"),
        "timestamp_ns": t["sip_timestamp_ns"].to_numpy(),
        "price": t["price"].to_numpy(),
        "size": t["size"].to_numpy(),
        "exchange": t["exchange"].to_numpy().astype(np.int32),
        "trade_id": pd.Series(t["trade_id"], dtype="str"),
        "trf_id": pc.fill_null(t["trf_id"], 0).to_numpy().astype(np.int32),
        "tape": _masked(t["tape"], "Int32"),
        # No conditions (empty or absent) is NULL, as in the per-record path.
        "conditions": pd.Series(
            pc.if_else(pc.equal(conditions, ""), pa.scalar(None, pa.string()), conditions),
            dtype="str",
        ),
        "sequence_number": _masked(t["sequence_number"], "Int64"),
        "trf_timestamp_ns": _masked(t["trf_timestamp_ns"], "Int64"),
        "source": pd.Series(t["source"], dtype="str"),
        # receipt_ns 0 means unknown: NULL.
        "receipt_ns": _masked(
            pc.if_else(pc.equal(receipt, 0), pa.scalar(None, pa.int64()), receipt), "Int64"
        ),
        "kafka_ts_ns": cols.timestamps_ms[pos] * 1_000_000,
        "kafka_offset": cols.offsets[pos],
    }


def _columns_from_trades(
    cols: RecordColumns, trades: Sequence[tuple[int, Trade]]
) -> dict[str, Any]:
    """Return the stored columns of trades decoded one by one (the rare path)."""
    pos = np.fromiter((i for i, _ in trades), dtype=np.int64, count=len(trades))
    ts = [t for _, t in trades]
    return {
        "symbol": pd.Series([t.symbol for t in ts], dtype="str"),
        "timestamp_ns": np.asarray([t.sip_timestamp_ns for t in ts], dtype=np.int64),
        "price": np.asarray([t.price for t in ts], dtype=np.float64),
        "size": np.asarray([t.size for t in ts], dtype=np.int64),
        "exchange": np.asarray([t.exchange for t in ts], dtype=np.int32),
        "trade_id": pd.Series([t.trade_id for t in ts], dtype="str"),
        "trf_id": np.asarray([t.trf_id or 0 for t in ts], dtype=np.int32),
        "tape": pd.array([t.tape for t in ts], dtype="Int32"),
        "conditions": pd.Series([_conditions_text(t.conditions) for t in ts], dtype="str"),
        "sequence_number": pd.array([t.sequence_number for t in ts], dtype="Int64"),
        "trf_timestamp_ns": pd.array([t.trf_timestamp_ns for t in ts], dtype="Int64"),
        "source": pd.Series([t.source for t in ts], dtype="str"),
        "receipt_ns": pd.array([t.receipt_ns or None for t in ts], dtype="Int64"),
        "kafka_ts_ns": cols.timestamps_ms[pos] * 1_000_000,
        "kafka_offset": cols.offsets[pos],
    }


def _trades_frame(
    cols: RecordColumns,
    table: pa.Table,
    fast_pos: npt.NDArray[np.int64],
    slow: Sequence[tuple[int, Trade]],
) -> tuple[pd.DataFrame, int]:
    # Columns, not a frame: the one frame below is built once (a frame copies its numeric
    # columns into blocks on construction).
    data: dict[str, Any] = _columns_from_arrow(cols, table, fast_pos)
    if slow:
        # Rare: merge the trades decoded one by one back into offset order.
        extra = pd.DataFrame(_columns_from_trades(cols, slow))
        pos = np.concatenate([fast_pos, np.fromiter((i for i, _ in slow), dtype=np.int64)])
        order = np.argsort(pos, kind="stable")
        merged = pd.concat([pd.DataFrame(data), extra], ignore_index=True).take(order)
        data = {name: merged[name].array for name in merged.columns}
    ts = np.asarray(data["timestamp_ns"], dtype=np.int64)
    derived = local_time_columns(ts)
    n = len(ts)
    columns: dict[str, Any] = {}
    for name in TRADE_COLUMNS:
        if name in _DERIVED:
            columns[name] = derived[name].to_numpy()
        elif name == "kafka_topic":
            columns[name] = pd.Series(
                pc.fill_null(pa.nulls(n, pa.string()), cols.topic), dtype="str"
            )
        elif name == "kafka_partition":
            columns[name] = np.full(n, cols.partition, dtype=np.int32)
        else:
            columns[name] = data[name]
    frame = pd.DataFrame(columns)
    dup = frame.duplicated(subset=list(DEDUP_KEY), keep="first").to_numpy(dtype=bool)
    n_dup = int(dup.sum())
    if n_dup:
        frame = pd.DataFrame(frame.loc[~dup]).reset_index(drop=True)
    return frame, n_dup


# --- quotes, aggregates and gaps: built column by column from the per-record path -----------


def _positions(rows: Sequence[tuple[int, Any]]) -> npt.NDArray[np.int64]:
    return np.fromiter((i for i, _ in rows), dtype=np.int64, count=len(rows))


def _lineage(cols: RecordColumns, pos: npt.NDArray[np.int64]) -> dict[str, Any]:
    """Return the Kafka lineage columns of the records at ``pos``."""
    n = len(pos)
    return {
        "kafka_ts_ns": cols.timestamps_ms[pos] * 1_000_000,
        "kafka_topic": pd.Series([cols.topic] * n, dtype="str"),
        "kafka_partition": np.full(n, cols.partition, dtype=np.int32),
        "kafka_offset": cols.offsets[pos],
    }


def _int64(values: Sequence[int]) -> npt.NDArray[np.int64]:
    return np.fromiter(values, dtype=np.int64, count=len(values))


def _float64(values: Sequence[float]) -> npt.NDArray[np.float64]:
    return np.fromiter(values, dtype=np.float64, count=len(values))


def _dedup(frame: pd.DataFrame, key: Sequence[str], keyed: Any = None) -> tuple[pd.DataFrame, int]:
    """Drop rows whose ``key`` an earlier row has (only where ``keyed``); return the count."""
    dup = frame.duplicated(subset=list(key), keep="first").to_numpy(dtype=bool)
    if keyed is not None:
        dup = dup & np.asarray(keyed, dtype=bool)
    n_dup = int(dup.sum())
    if n_dup:
        frame = pd.DataFrame(frame.loc[~dup]).reset_index(drop=True)
    return frame, n_dup


def _quotes_frame(
    cols: RecordColumns, rows: Sequence[tuple[int, Quote]]
) -> tuple[pd.DataFrame, int]:
    """Return the distinct quotes (first arrival of each :data:`QUOTE_KEY`) and the repeats."""
    if not rows:
        return _empty(QUOTE_COLUMNS), 0
    qs = [q for _, q in rows]
    ts = _int64([q.sip_timestamp_ns for q in qs])
    frame = pd.DataFrame(
        {
            "symbol": pd.Series([q.symbol for q in qs], dtype="str"),
            "sip_timestamp_ns": ts,
            "bid_exchange": np.asarray([q.bid_exchange for q in qs], dtype=np.int32),
            "bid_price": _float64([q.bid_price for q in qs]),
            "bid_size": _int64([q.bid_size for q in qs]),
            "ask_exchange": np.asarray([q.ask_exchange for q in qs], dtype=np.int32),
            "ask_price": _float64([q.ask_price for q in qs]),
            "ask_size": _int64([q.ask_size for q in qs]),
            "condition": pd.array([q.condition for q in qs], dtype="Int32"),
            # As a trade's conditions: a comma list, NULL for none.
            "indicators": pd.Series([_conditions_text(q.indicators) for q in qs], dtype="str"),
            "sequence_number": pd.array([q.sequence_number for q in qs], dtype="Int64"),
            "tape": pd.array([q.tape for q in qs], dtype="Int32"),
            "trade_date": local_time_columns(ts)["trade_date"].to_numpy(),
            "source": pd.Series([q.source for q in qs], dtype="str"),
            # receipt_ns 0 means unknown: NULL, as for trades.
            "receipt_ns": pd.array([q.receipt_ns or None for q in qs], dtype="Int64"),
            **_lineage(cols, _positions(rows)),
        },
        columns=list(QUOTE_COLUMNS),
    )
    # A quote without a sequence number has no key: two of them are two quotes.
    return _dedup(frame, QUOTE_KEY, keyed=frame["sequence_number"].notna().to_numpy(dtype=bool))


def _aggregates_frame(
    cols: RecordColumns, rows: Sequence[tuple[int, Aggregate]]
) -> tuple[pd.DataFrame, int]:
    """Return the distinct bars (first arrival of each :data:`AGGREGATE_KEY`) and the repeats."""
    if not rows:
        return _empty(AGGREGATE_COLUMNS), 0
    bars = [a for _, a in rows]
    start = _int64([a.start_ns for a in bars])
    frame = pd.DataFrame(
        {
            "kind": pd.Series([a.kind for a in bars], dtype="str"),
            "symbol": pd.Series([a.symbol for a in bars], dtype="str"),
            "start_ns": start,
            "end_ns": _int64([a.end_ns for a in bars]),
            "open": _float64([a.open for a in bars]),
            "high": _float64([a.high for a in bars]),
            "low": _float64([a.low for a in bars]),
            "close": _float64([a.close for a in bars]),
            "volume": _int64([a.volume for a in bars]),
            "vwap": pd.array([a.vwap for a in bars], dtype="Float64"),
            "accumulated_volume": pd.array([a.accumulated_volume for a in bars], dtype="Int64"),
            "day_open": pd.array([a.day_open for a in bars], dtype="Float64"),
            "day_vwap": pd.array([a.day_vwap for a in bars], dtype="Float64"),
            "average_size": pd.array([a.average_size for a in bars], dtype="Int64"),
            "otc": np.asarray([a.otc for a in bars], dtype=bool),
            "trade_date": local_time_columns(start)["trade_date"].to_numpy(),
            "receipt_ns": pd.array([a.receipt_ns or None for a in bars], dtype="Int64"),
            **_lineage(cols, _positions(rows)),
        },
        columns=list(AGGREGATE_COLUMNS),
    )
    return _dedup(frame, AGGREGATE_KEY)


def _gaps_frame(cols: RecordColumns, rows: Sequence[tuple[int, Gap]]) -> pd.DataFrame:
    """Return the gap records with their repair state (every record: the view picks states)."""
    if not rows:
        return _empty(GAP_COLUMNS)
    gs = [g for _, g in rows]
    return pd.DataFrame(
        {
            "subscription": pd.Series([g.subscription for g in gs], dtype="str"),
            # Nullable integers, never float: epoch ns exceed 2**53.
            "last_before_ns": pd.array([g.last_before_ns for g in gs], dtype="Int64"),
            "first_after_ns": pd.array([g.first_after_ns for g in gs], dtype="Int64"),
            "reason": pd.Series([g.reason for g in gs], dtype="str"),
            "detected_ns": _int64([g.detected_ns for g in gs]),
            # The codec reads an absent gap_id / repair_detail as "": NULL here.
            "gap_id": pd.Series([g.gap_id or None for g in gs], dtype="str"),
            "repair": pd.Series([g.repair for g in gs], dtype="str"),
            "repair_from_ns": pd.array([g.repair_from_ns for g in gs], dtype="Int64"),
            "repair_to_ns": pd.array([g.repair_to_ns for g in gs], dtype="Int64"),
            "backfilled": _int64([g.backfilled for g in gs]),
            "repair_detail": pd.Series(
                [g.repair_detail[:MAX_REPAIR_DETAIL_CHARS] or None for g in gs], dtype="str"
            ),
            "repaired_ns": pd.array([g.repaired_ns for g in gs], dtype="Int64"),
            **_lineage(cols, _positions(rows)),
        },
        columns=list(GAP_COLUMNS),
    )


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
