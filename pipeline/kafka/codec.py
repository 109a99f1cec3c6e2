"""Events <-> Kafka records (pure).

One record per event. Key = symbol for trades, quotes and aggregates (so a symbol stays
ordered in one partition), the subscription for gaps and ``_reject`` for rejects.
Value = a JSON object with our domain names (the dataclass field names of
:mod:`pipeline.events`). Headers: ``schema`` and ``recv_ns`` (receipt time, decimal ASCII).

Schemas (the ``schema`` header; a version changes only when a field changes meaning or
disappears, new optional fields keep the version):

- ``trade.v1``: symbol, sip_timestamp_ns, price, size, exchange, trade_id, tape,
  conditions[], sequence_number, trf_id, trf_timestamp_ns, receipt_ns, source.
- ``quote.v1``: symbol, sip_timestamp_ns, bid_exchange, bid_price, bid_size,
  ask_exchange, ask_price, ask_size, condition, indicators[], sequence_number, tape,
  receipt_ns, source.
- ``agg.v1``: kind (``A`` per second | ``AM`` per minute), symbol, start_ns, end_ns, open,
  high, low, close, volume, vwap, accumulated_volume, day_open, day_vwap, average_size,
  otc, receipt_ns.
- ``gap.v1``: subscription, last_before_ns, first_after_ns, reason, detected_ns, and
  (optional, added compatibly) gap_id, repair, repair_from_ns, repair_to_ns, backfilled,
  repair_detail, repaired_ns.
- ``reject.v1``: stage, reason, raw (latin-1 text of the raw bytes).
- ``signal.v1`` (topic ``trading-signals``, written by ``microstructure live-signals``, never
  in the market-data topic): one trade's provisional statistics, the per-trade columns of
  statistics.md 5.1 plus seq, lm_n, lm_n_rule, in_order and the priors' sources; headers
  add the input topic, partition and offset (the idempotent key of a signal), the kernel
  version and the parameter set. See :func:`signal_headers`.

Rejects and gaps travel in the same topic as trades so that they reach the
warehouse through the same exactly-once path (``market_data_rejects``,
``feed_gaps``) instead of a side channel that can lose them.

:func:`decode` is the warehouse loader's contract and returns only what it stores
(:data:`~pipeline.events.Event`: trades, gaps, rejects). A valid ``quote.v1`` or
``agg.v1`` record makes it raise :class:`UnroutedSchemaError` (a
:class:`~pipeline.errors.ParseError`), so a loader without a table for them keeps the
record as a reject with that reason instead of dropping it; :func:`decode_event`
returns every event type. The streamer's hot path uses :func:`encode_fields` on the
plain dicts of :func:`pipeline.feed.parse.parse_frame_fields` (same value layout).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pipeline.errors import ParseError
from pipeline.events import Aggregate, AnyEvent, Event, Gap, Quote, Reject, Trade

SCHEMA_TRADE = b"trade.v1"
SCHEMA_QUOTE = b"quote.v1"
SCHEMA_AGG = b"agg.v1"
SCHEMA_GAP = b"gap.v1"
SCHEMA_REJECT = b"reject.v1"
SCHEMA_SIGNAL = b"signal.v1"
REJECT_KEY = b"_reject"
SCHEMAS: frozenset[bytes] = frozenset(
    {SCHEMA_TRADE, SCHEMA_QUOTE, SCHEMA_AGG, SCHEMA_GAP, SCHEMA_REJECT}
)
SCHEMA_BY_KIND: Mapping[str, bytes] = {
    "T": SCHEMA_TRADE,
    "Q": SCHEMA_QUOTE,
    "A": SCHEMA_AGG,
    "AM": SCHEMA_AGG,
}
REPAIRS: frozenset[str] = frozenset(
    {"pending", "backfilled", "failed", "not_attempted", "unsupported"}
)

Headers = list[tuple[str, bytes]]


class UnroutedSchemaError(ParseError):
    """A valid record of a schema the caller's :func:`decode` contract does not cover."""

    def __init__(self, schema: bytes) -> None:
        super().__init__(
            f"schema {schema.decode(errors='replace')!r} is valid but not routed by this "
            "loader (kept as a reject instead of dropped; see pipeline.kafka.codec)"
        )
        self.schema = schema


def headers(schema: bytes, receipt_ns: int) -> Headers:
    """Return the record headers of one event (shared by the events of one frame).

    Parameters
    ----------
    schema
        One of the ``SCHEMA_*`` constants.
    receipt_ns
        Receipt time (UTC epoch ns).

    Returns
    -------
    list[tuple[str, bytes]]
        ``schema`` and ``recv_ns``.
    """
    return [("schema", schema), ("recv_ns", b"%d" % receipt_ns)]


def signal_headers(
    schema: bytes,
    input_topic: str,
    input_partition: int,
    input_offset: int,
    kernel_version: str,
    params_json: bytes,
) -> Headers:
    """Return the headers of a record derived from one input record (``signal.v1``, rejects).

    Parameters
    ----------
    schema
        ``SCHEMA_SIGNAL`` or ``SCHEMA_REJECT``.
    input_topic, input_partition, input_offset
        Where the input record is: the idempotent key of what was derived from it.
    kernel_version
        ``udx.kernels.KERNEL_VERSION`` of the code that computed it.
    params_json
        The parameter set, as compact JSON.

    Returns
    -------
    list[tuple[str, bytes]]
        ``schema``, ``input_topic``, ``input_partition``, ``input_offset``,
        ``kernel_version``, ``params``.
    """
    return [
        ("schema", schema),
        ("input_topic", input_topic.encode()),
        ("input_partition", b"%d" % input_partition),
        ("input_offset", b"%d" % input_offset),
        ("kernel_version", kernel_version.encode()),
        ("params", params_json),
    ]


def encode_fields(fields: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """Encode the fields of a trade, quote or aggregate as ``(key, value)`` (hot path).

    Parameters
    ----------
    fields
        A dict of :func:`pipeline.feed.parse.parse_frame_fields` (or of a REST reader):
        the dataclass field names in value order.

    Returns
    -------
    tuple[bytes, bytes]
        Key (the symbol) and JSON value.
    """
    return fields["symbol"].encode(), orjson.dumps(fields)


def _gap_value(event: Gap) -> dict[str, Any]:
    return {
        "subscription": event.subscription,
        "last_before_ns": event.last_before_ns,
        "first_after_ns": event.first_after_ns,
        "reason": event.reason,
        "detected_ns": event.detected_ns,
        "gap_id": event.gap_id,
        "repair": event.repair,
        "repair_from_ns": event.repair_from_ns,
        "repair_to_ns": event.repair_to_ns,
        "backfilled": event.backfilled,
        "repair_detail": event.repair_detail,
        "repaired_ns": event.repaired_ns,
    }


def encode(event: AnyEvent) -> tuple[bytes, bytes, Headers]:
    """Encode an event as ``(key, value, headers)``.

    Parameters
    ----------
    event
        A :class:`Trade`, :class:`Quote`, :class:`Aggregate`, :class:`Gap` or :class:`Reject`.

    Returns
    -------
    tuple[bytes, bytes, list[tuple[str, bytes]]]
        Record key, JSON value and headers.
    """
    if isinstance(event, Trade):
        value = orjson.dumps(
            {
                "symbol": event.symbol,
                "sip_timestamp_ns": event.sip_timestamp_ns,
                "price": event.price,
                "size": event.size,
                "exchange": event.exchange,
                "trade_id": event.trade_id,
                "tape": event.tape,
                "conditions": event.conditions,
                "sequence_number": event.sequence_number,
                "trf_id": event.trf_id,
                "trf_timestamp_ns": event.trf_timestamp_ns,
                "receipt_ns": event.receipt_ns,
                "source": event.source,
            }
        )
        return (
            event.symbol.encode(),
            value,
            [("schema", SCHEMA_TRADE), ("recv_ns", b"%d" % event.receipt_ns)],
        )
    if isinstance(event, Quote):
        fields = {
            "symbol": event.symbol,
            "sip_timestamp_ns": event.sip_timestamp_ns,
            "bid_exchange": event.bid_exchange,
            "bid_price": event.bid_price,
            "bid_size": event.bid_size,
            "ask_exchange": event.ask_exchange,
            "ask_price": event.ask_price,
            "ask_size": event.ask_size,
            "condition": event.condition,
            "indicators": event.indicators,
            "sequence_number": event.sequence_number,
            "tape": event.tape,
            "receipt_ns": event.receipt_ns,
            "source": event.source,
        }
        key, value = encode_fields(fields)
        return key, value, headers(SCHEMA_QUOTE, event.receipt_ns)
    if isinstance(event, Aggregate):
        fields = {
            "kind": event.kind,
            "symbol": event.symbol,
            "start_ns": event.start_ns,
            "end_ns": event.end_ns,
            "open": event.open,
            "high": event.high,
            "low": event.low,
            "close": event.close,
            "volume": event.volume,
            "vwap": event.vwap,
            "accumulated_volume": event.accumulated_volume,
            "day_open": event.day_open,
            "day_vwap": event.day_vwap,
            "average_size": event.average_size,
            "otc": event.otc,
            "receipt_ns": event.receipt_ns,
        }
        key, value = encode_fields(fields)
        return key, value, headers(SCHEMA_AGG, event.receipt_ns)
    if isinstance(event, Gap):
        value = orjson.dumps(_gap_value(event))
        return (
            event.subscription.encode(),
            value,
            [("schema", SCHEMA_GAP), ("recv_ns", b"%d" % event.detected_ns)],
        )
    if isinstance(event, Reject):
        # Raw frames may be arbitrary bytes: latin-1 text makes the JSON round trip exact.
        value = orjson.dumps(
            {"stage": event.stage, "reason": event.reason, "raw": event.raw.decode("latin-1")}
        )
        return REJECT_KEY, value, [("schema", SCHEMA_REJECT), ("recv_ns", b"%d" % event.receipt_ns)]
    raise TypeError(f"cannot encode {type(event).__name__}")


def _header(headers: Sequence[tuple[str, bytes | None]] | None, name: str) -> bytes | None:
    if not headers:
        return None
    for key, value in headers:
        if key == name:
            return value
    return None


def _int_or_none(obj: dict[str, object], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(f"field {name!r} is {value!r} and must be an integer or null")
    return value


def _float_or_none(obj: dict[str, object], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"field {name!r} is {value!r} and must be a number or null")
    return float(value)


def _required(value: object, name: str) -> Any:
    if value is None:
        raise ParseError(f"field {name!r} is required")
    return value


def _int_list(obj: dict[str, object], name: str) -> tuple[int, ...]:
    items = obj.get(name) or ()
    if not isinstance(items, list | tuple) or not all(
        isinstance(c, int) and not isinstance(c, bool) for c in items
    ):
        raise ParseError(f"field {name!r} is {items!r} and must be a list of integers")
    return tuple(items)


def _symbol(obj: dict[str, object]) -> str:
    symbol = obj["symbol"]
    if not isinstance(symbol, str) or not symbol:
        raise ParseError(f"field 'symbol' is {symbol!r} and must be a non-empty string")
    return symbol


def _decode_quote(obj: dict[str, object]) -> Quote:
    source = obj.get("source", "ws")
    if source not in ("ws", "rest", "file"):
        raise ParseError(f"field 'source' is {source!r}")
    return Quote(
        symbol=_symbol(obj),
        sip_timestamp_ns=_required(_int_or_none(obj, "sip_timestamp_ns"), "sip_timestamp_ns"),
        bid_exchange=_required(_int_or_none(obj, "bid_exchange"), "bid_exchange"),
        bid_price=_required(_float_or_none(obj, "bid_price"), "bid_price"),
        bid_size=_required(_int_or_none(obj, "bid_size"), "bid_size"),
        ask_exchange=_required(_int_or_none(obj, "ask_exchange"), "ask_exchange"),
        ask_price=_required(_float_or_none(obj, "ask_price"), "ask_price"),
        ask_size=_required(_int_or_none(obj, "ask_size"), "ask_size"),
        condition=_int_or_none(obj, "condition"),
        indicators=_int_list(obj, "indicators"),
        sequence_number=_int_or_none(obj, "sequence_number"),
        tape=_int_or_none(obj, "tape"),
        receipt_ns=_int_or_none(obj, "receipt_ns") or 0,
        source=source,
    )


def _decode_agg(obj: dict[str, object]) -> Aggregate:
    kind = obj.get("kind")
    if kind not in ("A", "AM"):
        raise ParseError(f"field 'kind' is {kind!r} and must be 'A' or 'AM'")
    otc = obj.get("otc", False)
    if not isinstance(otc, bool):
        raise ParseError(f"field 'otc' is {otc!r} and must be a boolean")
    return Aggregate(
        kind=kind,
        symbol=_symbol(obj),
        start_ns=_required(_int_or_none(obj, "start_ns"), "start_ns"),
        end_ns=_required(_int_or_none(obj, "end_ns"), "end_ns"),
        open=_required(_float_or_none(obj, "open"), "open"),
        high=_required(_float_or_none(obj, "high"), "high"),
        low=_required(_float_or_none(obj, "low"), "low"),
        close=_required(_float_or_none(obj, "close"), "close"),
        volume=_required(_int_or_none(obj, "volume"), "volume"),
        vwap=_float_or_none(obj, "vwap"),
        accumulated_volume=_int_or_none(obj, "accumulated_volume"),
        day_open=_float_or_none(obj, "day_open"),
        day_vwap=_float_or_none(obj, "day_vwap"),
        average_size=_int_or_none(obj, "average_size"),
        otc=otc,
        receipt_ns=_int_or_none(obj, "receipt_ns") or 0,
    )


def _decode_gap(obj: dict[str, object]) -> Gap:
    repair = obj.get("repair", "not_attempted")
    if repair not in REPAIRS:
        raise ParseError(f"field 'repair' is {repair!r} and must be one of {sorted(REPAIRS)}")
    detail = obj.get("repair_detail", "")
    return Gap(
        subscription=str(obj["subscription"]),
        last_before_ns=_int_or_none(obj, "last_before_ns"),
        first_after_ns=_int_or_none(obj, "first_after_ns"),
        reason=str(obj["reason"]),
        detected_ns=_int_or_none(obj, "detected_ns") or 0,
        gap_id=str(obj.get("gap_id") or ""),
        repair=repair,  # type: ignore[arg-type]
        repair_from_ns=_int_or_none(obj, "repair_from_ns"),
        repair_to_ns=_int_or_none(obj, "repair_to_ns"),
        backfilled=_int_or_none(obj, "backfilled") or 0,
        repair_detail="" if detail is None else str(detail),
        repaired_ns=_int_or_none(obj, "repaired_ns"),
    )


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None) -> Event:
    """Decode a trade, gap or reject record (the warehouse loader's contract).

    Parameters
    ----------
    value
        The record value.
    headers
        The record headers (``schema`` decides the event type).

    Returns
    -------
    Event
        The decoded trade, gap or reject.

    Raises
    ------
    UnroutedSchemaError
        For a valid ``quote.v1`` or ``agg.v1`` record (use :func:`decode_event` to read it).
    ParseError
        If the schema header is missing or unknown, or the value is malformed.
    """
    event = decode_event(value, headers)
    if isinstance(event, Quote):
        raise UnroutedSchemaError(SCHEMA_QUOTE)
    if isinstance(event, Aggregate):
        raise UnroutedSchemaError(SCHEMA_AGG)
    return event


def decode_event(
    value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> AnyEvent:
    """Decode any record produced by :func:`encode` or :func:`encode_fields`.

    Parameters
    ----------
    value
        The record value.
    headers
        The record headers (``schema`` decides the event type).

    Returns
    -------
    AnyEvent
        The decoded trade, quote, aggregate, gap or reject.

    Raises
    ------
    ParseError
        If the schema header is missing or unknown, or the value is malformed.
    """
    schema = _header(headers, "schema")
    if value is None:
        raise ParseError("record has no value")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise ParseError(f"value is not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ParseError(f"value is a JSON {type(obj).__name__}, expected an object")
    try:
        if schema == SCHEMA_TRADE:
            conditions = obj.get("conditions") or ()
            if not isinstance(conditions, list | tuple) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in conditions
            ):
                raise ParseError(
                    f"field 'conditions' is {conditions!r} and must be a list of integers"
                )
            price = obj["price"]
            if isinstance(price, bool) or not isinstance(price, int | float):
                raise ParseError(f"field 'price' is {price!r} and must be a number")
            size = _int_or_none(obj, "size")
            ts = _int_or_none(obj, "sip_timestamp_ns")
            exchange = _int_or_none(obj, "exchange")
            symbol = obj["symbol"]
            trade_id = obj["trade_id"]
            if not isinstance(symbol, str) or not symbol:
                raise ParseError(f"field 'symbol' is {symbol!r} and must be a non-empty string")
            if not isinstance(trade_id, str):
                raise ParseError(f"field 'trade_id' is {trade_id!r} and must be a string")
            if size is None or ts is None or exchange is None:
                raise ParseError("fields 'size', 'sip_timestamp_ns' and 'exchange' are required")
            source = obj.get("source", "ws")
            if source not in ("ws", "rest", "file"):
                raise ParseError(f"field 'source' is {source!r}")
            return Trade(
                symbol=symbol,
                sip_timestamp_ns=ts,
                price=float(price),
                size=size,
                exchange=exchange,
                trade_id=trade_id,
                tape=_int_or_none(obj, "tape"),
                conditions=tuple(conditions),
                sequence_number=_int_or_none(obj, "sequence_number"),
                trf_id=_int_or_none(obj, "trf_id"),
                trf_timestamp_ns=_int_or_none(obj, "trf_timestamp_ns"),
                receipt_ns=_int_or_none(obj, "receipt_ns") or 0,
                source=source,
            )
        if schema == SCHEMA_GAP:
            return _decode_gap(obj)
        if schema == SCHEMA_QUOTE:
            return _decode_quote(obj)
        if schema == SCHEMA_AGG:
            return _decode_agg(obj)
        if schema == SCHEMA_REJECT:
            return Reject(
                stage=str(obj["stage"]),
                reason=str(obj["reason"]),
                raw=str(obj["raw"]).encode("latin-1"),
            )
    except KeyError as e:
        raise ParseError(f"field {e.args[0]!r} is missing") from None
    raise ParseError(f"unknown or missing schema header: {schema!r}")


# --- many trade values at once (the warehouse loader's hot path) -------------------------

TRADE_FIELDS: tuple[str, ...] = (
    "symbol",
    "sip_timestamp_ns",
    "price",
    "size",
    "exchange",
    "trade_id",
    "tape",
    "conditions",
    "sequence_number",
    "trf_id",
    "trf_timestamp_ns",
    "receipt_ns",
    "source",
)
# A trade value is ~250 bytes. Longer ones go one by one, where orjson enforces limits
# (nesting depth 1024) that the bulk reader does not.
_BULK_MAX_VALUE_BYTES = 2000
# A chunk the bulk reader refuses is halved until it is this small; its values are then
# left to decode(), which names each one's problem.
_BULK_MIN_CHUNK = 64


def decode_trades_bulk(values: Sequence[bytes | None]) -> tuple[Any, Any]:
    """Decode many ``trade.v1`` values at once; what it cannot vouch for is left to :func:`decode`.

    One pyarrow JSON read over the newline-joined values replaces a Python dict and a
    :class:`~pipeline.events.Trade` per value. A row comes back only when :func:`decode`
    would return the same trade for its value. Left out, for the caller to decode one by
    one (and so get the reason of a bad one): values that are not one JSON object on one
    line, that hold ``NaN`` or ``Infinity`` (pyarrow reads them, JSON has neither), that are
    unusually long, that miss a required field or hold a null or value :func:`decode`
    refuses, and every value of a chunk the bulk reader refuses.

    Parameters
    ----------
    values
        Record values whose ``schema`` header is ``trade.v1``.

    Returns
    -------
    tuple[pyarrow.Table, numpy.ndarray]
        The trades, columns :data:`TRADE_FIELDS` with :func:`decode`'s meaning (``tape``,
        ``trf_id``, ``sequence_number``, ``trf_timestamp_ns`` null for None;
        ``receipt_ns`` null for 0; ``conditions`` a list, null for none), and the
        ascending positions in ``values`` of its rows (``int64``).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute
    import pyarrow.json as pj

    # Its functions are generated at import: the stubs cannot list them.
    pc: Any = pyarrow.compute

    schema = pa.schema(
        [
            ("symbol", pa.string()),
            ("sip_timestamp_ns", pa.int64()),
            ("price", pa.float64()),
            ("size", pa.int64()),
            ("exchange", pa.int64()),
            ("trade_id", pa.string()),
            ("tape", pa.int64()),
            ("conditions", pa.list_(pa.int64())),
            ("sequence_number", pa.int64()),
            ("trf_id", pa.int64()),
            ("trf_timestamp_ns", pa.int64()),
            ("receipt_ns", pa.int64()),
            ("source", pa.string()),
        ]
    )
    n = len(values)
    if None in values:  # a record without a value goes one by one (b"" fails below)
        vals: Sequence[bytes] = [b"" if v is None else v for v in values]
    else:
        vals = values  # type: ignore[assignment] # no None, as just checked
    joined = b"\n".join(vals)
    lengths = np.fromiter(map(len, vals), dtype=np.int64, count=n)
    raw = np.frombuffer(joined, dtype=np.uint8)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    ok = (lengths >= 2) & (lengths <= _BULK_MAX_VALUE_BYTES)
    ok &= raw[np.where(ok, starts, 0)] == ord("{")
    ok &= raw[np.where(ok, starts + lengths - 1, 0)] == ord("}")
    # pyarrow reads NaN, Inf and Infinity, which are not JSON (one memchr first: rarely there).
    # A line break inside a value needs no check: it leaves an unbalanced line, which
    # pyarrow refuses, or an extra row, which the row count catches.
    for first, literal in ((b"N", b"NaN"), (b"I", b"Inf")):
        if first in joined and literal in joined:
            ok &= np.fromiter((literal not in v for v in vals), dtype=bool, count=n)
    # pyarrow checks UTF-8 only in the fields it converts; orjson checks every byte.
    if not joined.isascii():
        ok &= np.fromiter((_is_utf8(v) for v in vals), dtype=bool, count=n)
    index = np.flatnonzero(ok)

    read_options = pj.ReadOptions(use_threads=False)
    parse_options = pj.ParseOptions(
        explicit_schema=schema, unexpected_field_behavior="ignore", newlines_in_values=False
    )
    tables: list[pa.Table] = []
    kept: list[np.ndarray] = []

    def read(lo: int, hi: int, buf: bytes | None = None) -> None:
        if buf is None:
            buf = b"\n".join([vals[i] for i in index[lo:hi].tolist()])
        try:
            table = pj.read_json(
                pa.BufferReader(buf), read_options=read_options, parse_options=parse_options
            )
        except (pa.ArrowException, ValueError):  # ArrowInvalid, invalid UTF-8
            table = None
        if table is not None and table.num_rows == hi - lo:
            tables.append(table.select(list(TRADE_FIELDS)))
            kept.append(index[lo:hi])
        elif hi - lo > _BULK_MIN_CHUNK:
            mid = (lo + hi) // 2
            read(lo, mid)
            read(mid, hi)

    if len(index):
        read(0, len(index), joined if len(index) == n else None)
    if not tables:
        return schema.empty_table(), np.empty(0, dtype=np.int64)
    table = pa.concat_tables(tables)
    index = np.concatenate(kept)
    # What decode() refuses although it is well-formed JSON of the right types.
    good = pc.and_(
        pc.and_(pc.is_valid(table["sip_timestamp_ns"]), pc.is_valid(table["price"])),
        pc.and_(pc.is_valid(table["size"]), pc.is_valid(table["exchange"])),
    )
    good = pc.and_(good, pc.is_valid(table["trade_id"]))
    good = pc.and_(good, pc.fill_null(pc.greater(pc.utf8_length(table["symbol"]), 0), False))
    good = pc.and_(good, pc.is_in(table["source"], value_set=pa.array(["ws", "rest", "file"])))
    mask = np.asarray(good.to_numpy(zero_copy_only=False), dtype=bool)
    conditions = table["conditions"].combine_chunks()
    items = pc.list_flatten(conditions)
    if items.null_count:
        parents = pc.list_parent_indices(conditions).to_numpy()
        mask[parents[np.asarray(pc.is_null(items).to_numpy(zero_copy_only=False), dtype=bool)]] = (
            False
        )
    if not mask.all():
        table = table.filter(pa.array(mask))
        index = index[mask]
    return table, index


def _is_utf8(value: bytes) -> bool:
    if value.isascii():
        return True
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- the live path's records (topic trading-signals), read back by the warehouse loader ------

SIGNAL_FLOATS: tuple[str, ...] = (
    "log_return",
    "lee_mykland_stat",
    "lm_xi",
    "garch_sigma2",
    "standardized_return",
    "bns_stat",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
)
"""The ``signal.v1`` statistics that are numbers or null (null: undefined, e.g. NaN)."""
SIGNAL_LABELS: frozenset[str] = frozenset({"BUY", "SELL", "HOLD"})


def input_key(
    headers: Sequence[tuple[str, bytes | None]] | None,
) -> tuple[str, int, int] | None:
    """Return a derived record's input ``(topic, partition, offset)`` (None when absent).

    Parameters
    ----------
    headers
        The record headers (:func:`signal_headers` wrote them).

    Returns
    -------
    tuple[str, int, int] | None
        The idempotent key of a ``signal.v1`` or live ``reject.v1`` record.

    Raises
    ------
    ParseError
        If some of the three headers are present but not all, or one is malformed.
    """
    parts = [_header(headers, n) for n in ("input_topic", "input_partition", "input_offset")]
    if all(p is None for p in parts):
        return None
    topic, partition, offset = parts
    try:
        if topic is None or partition is None or offset is None:
            raise ValueError("incomplete")
        return topic.decode(), int(partition), int(offset)
    except (UnicodeDecodeError, ValueError):
        raise ParseError(
            f"input headers {parts!r} are not a (topic, partition, offset) key"
        ) from None


def decode_signal(
    value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> dict[str, Any]:
    """Decode a ``signal.v1`` record into the columns of one ``live_signals`` row.

    Parameters
    ----------
    value
        The record value (:class:`pipeline.live.partition.PartitionProcessor` wrote it).
    headers
        Its headers: ``schema``, the input key, ``kernel_version`` and ``params``.

    Returns
    -------
    dict[str, Any]
        ``symbol, date, seq, timestamp_ns, price, size``, the statistics, ``lm_n, lm_n_rule,
        jump_detected, trading_signal, in_order, garch_params, acd_params, kernel_version,
        params, input_topic, input_partition, input_offset``.

    Raises
    ------
    ParseError
        If the schema is not ``signal.v1``, the input key or the kernel version is missing,
        or a field is missing or of the wrong type.
    """
    if _header(headers, "schema") != SCHEMA_SIGNAL:
        raise ParseError(f"schema {_header(headers, 'schema')!r} is not {SCHEMA_SIGNAL!r}")
    key = input_key(headers)
    kernel = _header(headers, "kernel_version")
    if key is None or not kernel:
        raise ParseError("a signal.v1 record needs its input key and kernel_version headers")
    if value is None:
        raise ParseError("record has no value")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise ParseError(f"value is not JSON: {e}") from e
    if not isinstance(obj, dict):
        raise ParseError(f"value is a JSON {type(obj).__name__}, expected an object")
    try:
        label = obj["trading_signal"]
        if label not in SIGNAL_LABELS:
            raise ParseError(f"field 'trading_signal' is {label!r}")
        jump = obj["jump_detected"]
        if not isinstance(jump, bool):
            raise ParseError(f"field 'jump_detected' is {jump!r} and must be a boolean")
        day = str(obj["date"])
        if len(day) != 10:
            raise ParseError(f"field 'date' is {day!r} and must be YYYY-MM-DD")
        params = _header(headers, "params")
        row: dict[str, Any] = {
            "symbol": _symbol(obj),
            "date": day,
            "seq": _required(_int_or_none(obj, "seq"), "seq"),
            "timestamp_ns": _required(_int_or_none(obj, "timestamp_ns"), "timestamp_ns"),
            "price": _required(_float_or_none(obj, "price"), "price"),
            "size": _required(_int_or_none(obj, "size"), "size"),
            **{name: _float_or_none(obj, name) for name in SIGNAL_FLOATS},
            "lm_n": _int_or_none(obj, "lm_n"),
            "lm_n_rule": None if obj.get("lm_n_rule") is None else str(obj["lm_n_rule"]),
            "jump_detected": jump,
            "trading_signal": label,
            "in_order": None if obj.get("in_order") is None else bool(obj["in_order"]),
            "garch_params": None if obj.get("garch_params") is None else str(obj["garch_params"]),
            "acd_params": None if obj.get("acd_params") is None else str(obj["acd_params"]),
            "kernel_version": kernel.decode(errors="replace"),
            "params": None if params is None else params.decode(errors="replace"),
            "input_topic": key[0],
            "input_partition": key[1],
            "input_offset": key[2],
        }
    except KeyError as e:
        raise ParseError(f"field {e.args[0]!r} is missing") from None
    return row
