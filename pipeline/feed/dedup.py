"""The dedup key of a trade and the guard that keeps live and backfilled prints apart (pure).

A print is identified by ``(symbol, trade_date, exchange, trf_id, trade_id)`` with
``trade_date`` the New York date of its SIP time and ``trf_id = 0`` for exchange prints
(docs/design.md). What was verified about it (README, "Dedup key"):

- The provider documents the trade id (WebSocket ``i``, REST and flat-file ``id``) as
  "unique per combination of ticker, exchange, and TRF": AAPL on NYSE and AAPL on Nasdaq
  may share an id (Massive REST v3 trades reference; the same sentence in the official
  OpenAPI spec and in independent clients' generated models).
- Ids restart with the trading day (they are SIP/participant sequence numbers), hence
  ``trade_date`` in the key.
- ``q`` / ``sequence_number`` is documented as unique per ticker, but the stream has
  carried two distinct prints with the same ``q`` (polygon-io/issues#241, open): it is
  kept as a secondary column, not the key.
- The stream has carried exact duplicates of one print, same id and content
  (polygon-io/issues#56, #57; client-python#32; acknowledged and fixed upstream as
  "duplicate messages being broadcasted", polygon-io/issues#61): the key collapses them
  into one trade, as the provider's own aggregates do.
- WebSocket ``i`` and REST ``id`` being equal for the same print is documented by the
  shared field description, not observed here (no API key on this machine); the replay
  test double serves the same ids on both.

:class:`Guard` holds the keys already produced for one symbol in a repair window, so a
print that arrives both live and from REST (or twice from REST after a restart) is
produced once. A window may span hours of a liquid symbol, so the guards share a
:class:`KeyBudget`: each new key is charged :data:`KEY_BYTES` (O(1)), a guard gives its
keys back when dropped, and the repair that finds the budget spent stops (its gap fails
with the reason) rather than produce prints it could no longer tell apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from pipeline.nytime import NEW_YORK

_NS_PER_HOUR = 3_600_000_000_000

DedupKey = tuple[str, date, int, int, str]

KEY_BYTES = 192
"""Memory charged per remembered key: its set slot and 5-tuple (~122 bytes measured with
tracemalloc on 200,000 REST-like keys) plus the trade-id string the key alone holds."""

_date_cache: dict[int, date] = {}


def new_york_date(ts_ns: int) -> date:
    """Return the New York calendar date of a UTC ns stamp (cached per UTC hour).

    Parameters
    ----------
    ts_ns
        UTC epoch nanoseconds.

    Returns
    -------
    datetime.date
        The local date (DST switches happen on the hour, so an hour shares one date).
    """
    hour = ts_ns // _NS_PER_HOUR
    d = _date_cache.get(hour)
    if d is None:
        if len(_date_cache) > 100_000:
            _date_cache.clear()
        d = datetime.fromtimestamp(hour * 3600, tz=UTC).astimezone(NEW_YORK).date()
        _date_cache[hour] = d
    return d


def dedup_key(fields: Mapping[str, Any]) -> DedupKey:
    """Return the dedup key of trade fields (a trade.v1 value or parse fields).

    Parameters
    ----------
    fields
        ``symbol``, ``sip_timestamp_ns``, ``exchange``, ``trf_id`` (None = exchange print)
        and ``trade_id``.

    Returns
    -------
    tuple
        ``(symbol, trade_date, exchange, trf_id or 0, trade_id)``.
    """
    return (
        fields["symbol"],
        new_york_date(fields["sip_timestamp_ns"]),
        fields["exchange"],
        fields["trf_id"] or 0,
        fields["trade_id"],
    )


class KeyBudget:
    """Memory the guards' keys may take, charged :data:`KEY_BYTES` per key.

    Parameters
    ----------
    limit_bytes
        The bound; :attr:`exhausted` once the keys take that much.
    """

    __slots__ = ("keys", "limit_bytes")

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < KEY_BYTES:
            raise ValueError(f"a dedup budget of {limit_bytes} bytes holds no key ({KEY_BYTES})")
        self.limit_bytes = limit_bytes
        self.keys = 0

    @property
    def bytes(self) -> int:
        """Return the memory charged to the keys held."""
        return self.keys * KEY_BYTES

    @property
    def exhausted(self) -> bool:
        """Return True once the keys take the whole budget."""
        return self.keys * KEY_BYTES >= self.limit_bytes


class Guard:
    """Keys produced for one symbol inside a SIP window ``[from_ns, to_ns]``.

    Parameters
    ----------
    symbol
        The ticker.
    from_ns, to_ns
        The repair window (inclusive); only prints inside it are checked or remembered.
    budget
        Charged for every key remembered (None: not accounted).
    """

    __slots__ = ("budget", "from_ns", "keys", "symbol", "to_ns")

    def __init__(
        self, symbol: str, from_ns: int, to_ns: int, budget: KeyBudget | None = None
    ) -> None:
        self.symbol = symbol
        self.from_ns = from_ns
        self.to_ns = to_ns
        self.keys: set[DedupKey] = set()
        self.budget = budget

    def widen(self, from_ns: int, to_ns: int) -> None:
        """Extend the window (a second repair of the same symbol overlaps the first)."""
        self.from_ns = min(self.from_ns, from_ns)
        self.to_ns = max(self.to_ns, to_ns)

    def first_time(self, fields: Mapping[str, Any]) -> bool:
        """Return True (and remember it) unless this print was already produced.

        Prints outside the window are always new: nothing else can produce them.
        """
        sip = fields["sip_timestamp_ns"]
        if sip < self.from_ns or sip > self.to_ns:
            return True
        key = dedup_key(fields)
        if key in self.keys:
            return False
        self.keys.add(key)
        if self.budget is not None:
            self.budget.keys += 1
        return True

    def remember(self, fields: Mapping[str, Any]) -> None:
        """Record a print already produced (seeded from recent frames or Kafka)."""
        sip = fields["sip_timestamp_ns"]
        if self.from_ns <= sip <= self.to_ns:
            key = dedup_key(fields)
            if key not in self.keys:
                self.keys.add(key)
                if self.budget is not None:
                    self.budget.keys += 1

    def release(self) -> None:
        """Forget every key and give their memory back to the budget (the guard is dropped)."""
        if self.budget is not None:
            self.budget.keys -= len(self.keys)
        self.keys.clear()
