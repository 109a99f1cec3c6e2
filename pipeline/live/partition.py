"""One input partition of the live path: records in offset order -> signal records (pure).

Per record: decode (the codec's ``decode_event``) -> trades only -> New York date ->
regular hours -> the symbol-day's :class:`~pipeline.live.state.SymbolDayState` ->
``signal.v1`` record. Nothing is skipped quietly: a record that cannot be processed
(undecodable, bad price, a print of a day the partition has already left) becomes a
``reject.v1`` record with its reason, and every other record without a signal (other
event types, prints outside regular hours) is counted by kind.

Restart point. The partition's *day* is the latest New York date of its trades; its
``replay_from`` is the first offset of that day. Symbol states of older days are dropped
when the day advances, and a later print of an older day is a ``stale_day`` reject. So
the state after offset ``o`` depends only on ``[replay_from, o]``: replaying that range
without emitting (:meth:`PartitionProcessor.process` with ``emit=False``) rebuilds it
exactly, and :class:`Checkpoint` (committed with the consumer offset) says where it starts.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from zoneinfo import ZoneInfo

import orjson

from pipeline.errors import ParseError
from pipeline.events import Reject, Trade
from pipeline.kafka import codec
from pipeline.live.state import NO_PRIORS, LiveStats, Priors, SymbolDayState
from udx.kernels import KERNEL_VERSION, Params, session_bounds

PriorsSource = Callable[[str, str], Priors]
"""``(symbol, date) -> Priors`` of that symbol-day; called once per symbol-day."""

STAGE = "live-signals"
Output = tuple[bytes, bytes, codec.Headers]


def no_priors(symbol: str, date: str) -> Priors:
    """Return no priors: running ``n``, GARCH and ACD columns null."""
    return NO_PRIORS


@dataclass(frozen=True)
class Checkpoint:
    """Where a partition's state can be rebuilt from: its day and that day's first offset."""

    date: str
    replay_from: int

    def encode(self) -> str:
        """Return the commit metadata string (small JSON)."""
        return orjson.dumps({"v": 1, "date": self.date, "replay_from": self.replay_from}).decode()

    @classmethod
    def decode(cls, text: str | None) -> Checkpoint | None:
        """Parse commit metadata; None when there is none.

        Raises
        ------
        ParseError
            If metadata exists but is not a checkpoint (the state could not be rebuilt).
        """
        if not text:
            return None
        try:
            obj = orjson.loads(text)
            return cls(str(obj["date"]), int(obj["replay_from"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ParseError(f"commit metadata {text!r} is not a live-signals checkpoint") from e


class _Calendar:
    """New York date and session of a stamp, computed once per local day."""

    def __init__(self, params: Params) -> None:
        self._params = params
        self._zone = ZoneInfo(params.tz)
        self._lo = 0
        self._hi = 0
        self.date = ""
        self.open_ns = 0
        self.close_ns = 0

    def at(self, timestamp_ns: int) -> None:
        if self._lo <= timestamp_ns < self._hi:
            return
        local = dt.datetime.fromtimestamp(timestamp_ns // 1_000_000_000, tz=self._zone)
        day = local.date()
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self._zone)
        after = midnight + dt.timedelta(days=1)
        self._lo = round(midnight.timestamp()) * 1_000_000_000
        self._hi = round(after.replace(tzinfo=self._zone).timestamp()) * 1_000_000_000
        self.date = day.isoformat()
        self.open_ns, self.close_ns = session_bounds(self.date, self._params)


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


class PartitionProcessor:
    """Turn one input partition's records, in offset order, into signal and reject records.

    Parameters
    ----------
    topic, partition
        The input partition (recorded in every output's headers).
    params
        Parameters of the statistics.
    priors
        Source of each symbol-day's :class:`~pipeline.live.state.Priors`.
    checkpoint
        The committed checkpoint when resuming (its records must then be replayed).
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        params: Params,
        priors: PriorsSource = no_priors,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.params = params
        self._priors = priors
        self._params_json = orjson.dumps(params.to_dict(), option=orjson.OPT_SORT_KEYS)
        self._cal = _Calendar(params)
        self.date: str | None = checkpoint.date if checkpoint else None
        self.replay_from: int | None = checkpoint.replay_from if checkpoint else None
        self._states: dict[str, SymbolDayState] = {}
        self.next_offset: int | None = None
        self.counts: Counter[str] = Counter()

    def checkpoint(self) -> Checkpoint | None:
        """Return the restart point after the records processed so far (None: no trade yet)."""
        if self.date is None or self.replay_from is None:
            return None
        return Checkpoint(self.date, self.replay_from)

    def process(
        self,
        offset: int,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        *,
        emit: bool = True,
    ) -> Output | None:
        """Process one record; return the record to produce, if any.

        Parameters
        ----------
        offset
            The record's offset (records must come in offset order).
        value, headers
            The record as read.
        emit
            False while replaying to rebuild state: nothing is returned or counted.

        Returns
        -------
        tuple or None
            ``(key, value, headers)`` of a ``signal.v1`` or ``reject.v1`` record.
        """
        self.next_offset = offset + 1
        try:
            event = codec.decode_event(value, headers)
        except ParseError as e:
            return self._reject(offset, value, f"undecodable record: {e}", emit)
        if not isinstance(event, Trade):
            if emit:
                self.counts[f"not_a_trade:{type(event).__name__.lower()}"] += 1
            return None
        if not (math.isfinite(event.price) and event.price > 0.0):
            return self._reject(offset, value, "price null, non-finite or <= 0", emit)
        ts = event.sip_timestamp_ns
        cal = self._cal
        cal.at(ts)
        if self.date is None or cal.date > self.date:
            # A new day: the partition's restart point moves here; older states are done.
            self.date = cal.date
            self.replay_from = offset
            self._states.clear()
        elif cal.date < self.date:
            reason = f"stale_day: a print of {cal.date} after this partition reached {self.date}"
            return self._reject(offset, value, reason, emit)
        if not cal.open_ns <= ts <= cal.close_ns:
            if emit:
                self.counts["outside_session"] += 1
            return None
        state = self._states.get(event.symbol)
        if state is None:
            priors = self._priors(event.symbol, cal.date)
            state = SymbolDayState(cal.open_ns, cal.close_ns, self.params, priors)
            self._states[event.symbol] = state
        stats = state.update(ts, event.price)
        if not emit:
            return None
        self.counts["signals"] += 1
        if not stats.in_order:
            self.counts["late_prints"] += 1
        return self._signal(offset, event, cal.date, stats, state.priors)

    def _signal(
        self, offset: int, trade: Trade, date: str, stats: LiveStats, priors: Priors
    ) -> Output:
        fields = asdict(stats)
        for name, x in fields.items():
            if isinstance(x, float):
                fields[name] = _num(x)
        value = orjson.dumps(
            {
                "symbol": trade.symbol,
                "date": date,
                "timestamp_ns": trade.sip_timestamp_ns,
                "price": trade.price,
                "size": trade.size,
                **fields,
                "garch_params": priors.garch.source if priors.garch else None,
                "acd_params": priors.acd.source if priors.acd else None,
                "provisional": True,
            }
        )
        hdrs = codec.signal_headers(
            codec.SCHEMA_SIGNAL, self.topic, self.partition, offset, KERNEL_VERSION,
            self._params_json,
        )  # fmt: skip
        return trade.symbol.encode(), value, hdrs

    def _reject(self, offset: int, value: bytes | None, reason: str, emit: bool) -> Output | None:
        if not emit:
            return None
        self.counts[f"rejects:{reason.split(':', 1)[0]}"] += 1
        key, body, _ = codec.encode(Reject(stage=STAGE, reason=reason, raw=value or b""))
        hdrs = codec.signal_headers(
            codec.SCHEMA_REJECT, self.topic, self.partition, offset, KERNEL_VERSION,
            self._params_json,
        )  # fmt: skip
        return key, body, hdrs
