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
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import orjson

from pipeline.errors import ParseError
from pipeline.events import AnyEvent, Reject, Trade
from pipeline.kafka import codec
from pipeline.live.state import NO_PRIORS, LiveColumns, Priors, SymbolDayState
from udx.kernels import KERNEL_VERSION, Params, session_bounds
from udx.kernels.schema import SIGNAL_LABELS

PriorsSource = Callable[[str, str], Priors]
"""``(symbol, date) -> Priors`` of that symbol-day; called once per symbol-day."""

STAGE = "live-signals"
Output = tuple[bytes, bytes, codec.Headers]
Record = tuple[int, bytes | None, Sequence[tuple[str, bytes | None]] | None]
"""``(offset, value, headers)`` of one input record."""


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


class _Run:
    """The trades of one symbol-day within a batch, waiting for one state update."""

    __slots__ = ("date", "index", "offsets", "px", "size", "state", "symbol", "ts")

    def __init__(self, state: SymbolDayState, date: str, symbol: str) -> None:
        self.state = state
        self.date = date
        self.symbol = symbol
        self.index: list[int] = []  # position in the batch
        self.offsets: list[int] = []
        self.ts: list[int] = []
        self.px: list[float] = []
        self.size: list[int] = []


# Below this many records a batch is decoded record by record: the bulk reader's set-up
# (~1 ms a call) costs more than it saves (measured: 30 us a record at 32, 9.6 at 128,
# 3.3 at 256 and 3.2 at 1,000, against 4.1 one by one).
_BULK_MIN = 256
TradeFields = tuple[str, int, float, int]
"""``(symbol, sip_timestamp_ns, price, size)`` of a decoded trade."""


def _decode(
    records: Sequence[Record],
) -> list[tuple[int, bytes | None, TradeFields | AnyEvent | ParseError]]:
    """Decode records as :func:`~pipeline.kafka.codec.decode_event` does, trades in bulk.

    ``trade.v1`` values go through :func:`~pipeline.kafka.codec.decode_trades_bulk`,
    which returns a row only when ``decode_event`` would return the same trade; every
    other record (and a trade the bulk reader leaves out) is decoded alone, so a bad one
    gets its reason.

    Returns
    -------
    list
        Per record: ``(offset, value, decoded)``, ``decoded`` being a trade's fields, any
        other event, or the :class:`ParseError` that ``decode_event`` raised.
    """
    n = len(records)
    fields: list[TradeFields | None] = [None] * n
    if n >= _BULK_MIN:
        pos = [
            i
            for i, (_, value, headers) in enumerate(records)
            if value is not None and codec._header(headers, "schema") == codec.SCHEMA_TRADE
        ]
        if pos:
            table, index = codec.decode_trades_bulk([records[i][1] for i in pos])
            rows = zip(
                table["symbol"].to_pylist(), table["sip_timestamp_ns"].to_pylist(),
                table["price"].to_pylist(), table["size"].to_pylist(), strict=True,
            )  # fmt: skip
            for j, row in zip(index.tolist(), rows, strict=True):
                fields[pos[j]] = row
    out: list[tuple[int, bytes | None, TradeFields | AnyEvent | ParseError]] = []
    for (offset, value, headers), row in zip(records, fields, strict=True):
        if row is not None:
            out.append((offset, value, row))
            continue
        try:
            event = codec.decode_event(value, headers)
        except ParseError as e:
            out.append((offset, value, e))
            continue
        if isinstance(event, Trade):
            out.append(
                (offset, value, (event.symbol, event.sip_timestamp_ns, event.price, event.size))
            )
        else:
            out.append((offset, value, event))
    return out


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
        # signal_headers' layout, split around the one header that differs per record.
        hdrs = codec.signal_headers(
            codec.SCHEMA_SIGNAL, topic, partition, 0, KERNEL_VERSION, self._params_json
        )
        at = [name for name, _ in hdrs].index("input_offset")
        self._base_headers, self._params_tail = hdrs[:at], hdrs[at + 1 :]
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
        return self.process_batch([(offset, value, headers)], emit=emit)[0]

    def process_batch(self, records: Sequence[Record], *, emit: bool = True) -> list[Output | None]:
        """Process consecutive records of the partition; return what to produce for each.

        The same as :meth:`process` record by record (the statistics are split-invariant):
        the trades of one symbol-day in the batch go through its state in one
        :meth:`~pipeline.live.state.SymbolDayState.update_many` call.

        Parameters
        ----------
        records
            ``(offset, value, headers)`` in offset order.
        emit
            False while replaying to rebuild state: nothing is returned or counted.

        Returns
        -------
        list
            Per record, in order: ``(key, value, headers)`` of a ``signal.v1`` or
            ``reject.v1`` record, or None (nothing to produce; counted by kind).
        """
        out: list[Output | None] = [None] * len(records)
        runs: dict[str, _Run] = {}
        cal = self._cal
        counts = self.counts
        for i, (offset, value, event) in enumerate(_decode(records)):
            self.next_offset = offset + 1
            if isinstance(event, ParseError):
                out[i] = self._reject(offset, value, f"undecodable record: {event}", emit)
                continue
            if not isinstance(event, tuple):
                if emit:
                    counts[f"not_a_trade:{type(event).__name__.lower()}"] += 1
                continue
            symbol, ts, price, size = event
            if not (math.isfinite(price) and price > 0.0):
                out[i] = self._reject(offset, value, "price null, non-finite or <= 0", emit)
                continue
            cal.at(ts)
            if self.date is None or cal.date > self.date:
                # A new day: the partition's restart point moves here; older states are done
                # (their prints so far in this batch are computed first).
                self._finish(runs, out, emit)
                self.date = cal.date
                self.replay_from = offset
                self._states.clear()
            elif cal.date < self.date:
                reason = (
                    f"stale_day: a print of {cal.date} after this partition reached {self.date}"
                )
                out[i] = self._reject(offset, value, reason, emit)
                continue
            if not cal.open_ns <= ts <= cal.close_ns:
                if emit:
                    counts["outside_session"] += 1
                continue
            run = runs.get(symbol)
            if run is None:
                state = self._states.get(symbol)
                if state is None:
                    priors = self._priors(symbol, cal.date)
                    state = SymbolDayState(cal.open_ns, cal.close_ns, self.params, priors)
                    self._states[symbol] = state
                run = runs[symbol] = _Run(state, cal.date, symbol)
            run.index.append(i)
            run.offsets.append(offset)
            run.ts.append(ts)
            run.px.append(price)
            run.size.append(size)
        self._finish(runs, out, emit)
        return out

    def _finish(self, runs: dict[str, _Run], out: list[Output | None], emit: bool) -> None:
        """Feed each symbol's pending prints to its state; put their signals in ``out``."""
        for run in runs.values():
            cols = run.state.update_many(
                np.fromiter(run.ts, dtype=np.int64, count=len(run.ts)),
                np.fromiter(run.px, dtype=np.float64, count=len(run.px)),
            )
            if emit:
                self._signals(run, cols, out)
        runs.clear()

    def _signals(self, run: _Run, cols: LiveColumns, out: list[Output | None]) -> None:
        priors = run.state.priors
        garch = priors.garch.source if priors.garch else None
        acd = priors.acd.source if priors.acd else None
        rule = cols.lm_n_rule
        date = run.date
        key = run.symbol.encode()
        base = self._base_headers
        params = self._params_tail
        counts = self.counts
        counts["signals"] += len(cols)
        late = len(cols) - int(np.count_nonzero(cols.in_order))
        if late:
            counts["late_prints"] += late
        dumps = orjson.dumps
        # NaN is written as JSON null by orjson, as the batch stores null.
        rows = zip(
            run.index, run.offsets, run.ts, run.px, run.size, cols.seq.tolist(),
            cols.log_return.tolist(), cols.lee_mykland_stat.tolist(), cols.lm_xi.tolist(),
            cols.lm_n.tolist(), cols.jump_detected.tolist(), cols.bns_stat.tolist(),
            cols.garch_sigma2.tolist(), cols.standardized_return.tolist(),
            cols.conditional_duration.tolist(), cols.acd_surprise.tolist(),
            cols.trade_intensity_zscore.tolist(), cols.signal_code.tolist(),
            cols.in_order.tolist(), strict=True,
        )  # fmt: skip
        for i, off, ts, px, size, seq, r, lm, xi, n, jump, bns, s2, std, cd, su, z, c, io in rows:
            value = dumps(
                {
                    "symbol": run.symbol, "date": date, "timestamp_ns": ts, "price": px,
                    "size": size, "seq": seq, "log_return": r, "lee_mykland_stat": lm,
                    "lm_xi": xi, "lm_n": n, "lm_n_rule": rule, "jump_detected": jump,
                    "bns_stat": bns, "garch_sigma2": s2, "standardized_return": std,
                    "conditional_duration": cd, "acd_surprise": su,
                    "trade_intensity_zscore": z, "trading_signal": SIGNAL_LABELS[c],
                    "in_order": io, "garch_params": garch, "acd_params": acd,
                    "provisional": True,
                }
            )  # fmt: skip
            out[i] = (key, value, [*base, ("input_offset", b"%d" % off), *params])

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
