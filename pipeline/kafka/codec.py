"""Events <-> Kafka records (pure).

One record per event. Key = symbol for trades (so a symbol stays ordered in one
partition), the subscription for gaps and ``_reject`` for rejects. Value = a JSON
object with our domain names. Headers: ``schema`` (e.g. ``trade.v1``) and
``recv_ns`` (receipt time, decimal ASCII).

Rejects and gaps travel in the same topic as trades so that they reach the
warehouse through the same exactly-once path (``market_data_rejects``,
``feed_gaps``) instead of a side channel that can lose them.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from pipeline.errors import ParseError
from pipeline.events import Event, Gap, Reject, Trade

SCHEMA_TRADE = b"trade.v1"
SCHEMA_GAP = b"gap.v1"
SCHEMA_REJECT = b"reject.v1"
REJECT_KEY = b"_reject"

Headers = list[tuple[str, bytes]]


def encode(event: Event) -> tuple[bytes, bytes, Headers]:
    """Encode an event as ``(key, value, headers)``.

    Parameters
    ----------
    event
        A :class:`Trade`, :class:`Gap` or :class:`Reject`.

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
    if isinstance(event, Gap):
        value = orjson.dumps(
            {
                "subscription": event.subscription,
                "last_before_ns": event.last_before_ns,
                "first_after_ns": event.first_after_ns,
                "reason": event.reason,
                "detected_ns": event.detected_ns,
            }
        )
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


def decode(value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None) -> Event:
    """Decode a record produced by :func:`encode`.

    Parameters
    ----------
    value
        The record value.
    headers
        The record headers (``schema`` decides the event type).

    Returns
    -------
    Event
        The decoded event.

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
            detected = _int_or_none(obj, "detected_ns")
            return Gap(
                subscription=str(obj["subscription"]),
                last_before_ns=_int_or_none(obj, "last_before_ns"),
                first_after_ns=_int_or_none(obj, "first_after_ns"),
                reason=str(obj["reason"]),
                detected_ns=detected or 0,
            )
        if schema == SCHEMA_REJECT:
            return Reject(
                stage=str(obj["stage"]),
                reason=str(obj["reason"]),
                raw=str(obj["raw"]).encode("latin-1"),
            )
    except KeyError as e:
        raise ParseError(f"field {e.args[0]!r} is missing") from None
    raise ParseError(f"unknown or missing schema header: {schema!r}")
