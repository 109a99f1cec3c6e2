"""Gap bookkeeping: outages -> one gap window per subscription -> repair windows (pure).

Every way a connection ends is an outage (the supervisor reports it in stream order,
after the last frame of the old connection). An outage opens one gap per subscribed
channel; data after the reconnect closes them:

- ``K.*`` closes at the first event of kind ``K`` after the outage;
- ``K.SYM`` closes at the first ``K`` event of ``SYM``, or, for a quiet symbol, once the
  stream's SIP clock has moved ``close_after_ns`` past the resumption (its
  ``first_after_ns`` is then None: nothing of it arrived yet).

Several failed attempts before any data are one outage (one gap), and an outage that
happens while gaps of the previous one are still open closes those first (the feed was
live in between, so their window ended at the previous resumption).

A **restart** (:meth:`GapBook.restart`) knows each symbol's last trade in Kafka, and
symbols differ by hours (an illiquid one last printed long before the liquid ones). Its
gaps are therefore per symbol, each window starting at that symbol's own last trade: a
``T.*`` subscription becomes one ``T.SYM`` gap per symbol known from the tail (gap id
``<detected>:T.*:SYM``), all ending at the subscription's first trade after the restart.
A window too long to repair then fails alone, visibly, instead of stretching every
symbol's window past the backfill limit.

A gap still open when the stream stops (the feed had not resumed) keeps no end
(``repair_to_ns`` None): the streamer then repairs it up to the provider's latest trade,
since nothing more will arrive live.

The **repair window** of a trade gap is ``[before - late_margin, end]``: ``before`` is
the stream's SIP clock at the outage (the latest SIP time seen on any subscription: the
feed delivered everything up to it), ``end`` the first trade of the symbol after the
outage (``K.SYM``) or the resumption (``K.*``, quiet symbols), widened to the end of its
millisecond because the WebSocket truncates to ms and REST answers in ns. The margin
covers prints published late with older SIP times; whatever the window holds that was
already produced is removed by the dedup guard (:mod:`pipeline.feed.dedup`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pipeline.feed.messages import CHANNEL_TRADES

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class ClosedGap:
    """One subscription's gap, closed: what the Gap record and the repair need."""

    channel: str
    kind: str
    symbol: str  # "*" for a wildcard subscription
    last_before_ns: int | None
    first_after_ns: int | None
    reason: str
    detected_ns: int
    gap_id: str
    repair_from_ns: int | None
    repair_to_ns: int | None
    symbols: tuple[str, ...]  # what to backfill (the symbol, or every known one for "*")

    @property
    def seconds(self) -> float:
        """Return the SIP time between the last event before and the first after (0 if unknown)."""
        if self.last_before_ns is None or self.first_after_ns is None:
            return 0.0
        return max(0, self.first_after_ns - self.last_before_ns) / 1e9


@dataclass
class _Outage:
    reason: str
    detected_ns: int
    before_sip: int | None
    last_by_channel: dict[str, int | None]
    known_symbols: tuple[str, ...]
    open_channels: set[str]
    attempts: int = 1
    resume_sip: int | None = None
    max_after_sip: int | None = None
    restart_last: dict[str, int] | None = None  # a restart's last trade per symbol (Kafka)


@dataclass
class GapBook:
    """The open outage and its gaps, per subscribed channel.

    Parameters
    ----------
    channels
        Subscriptions (``T.AAPL``, ``Q.*``, ...).
    late_margin_ns
        Widening of a repair window's start (late prints).
    close_after_ns
        SIP time after the resumption that closes a quiet symbol's gap.
    """

    channels: list[str]
    late_margin_ns: int = 1_000_000_000
    close_after_ns: int = 5_000_000_000
    last_sip: dict[str, dict[str, int]] = field(default_factory=lambda: {})
    outage: _Outage | None = None

    def __post_init__(self) -> None:
        for ch in self.channels:
            kind = ch.partition(".")[0]
            self.last_sip.setdefault(kind, {})

    @property
    def open(self) -> bool:
        """Return True while an outage has gaps not yet closed."""
        return self.outage is not None

    def stream_clock(self) -> int | None:
        """Return the latest SIP time seen on any subscription (None before any event)."""
        best: int | None = None
        for table in self.last_sip.values():
            if table:
                m = max(table.values())
                if best is None or m > best:
                    best = m
        return best

    def _last_for(self, channel: str) -> int | None:
        kind, _, sym = channel.partition(".")
        table = self.last_sip.get(kind, {})
        if sym == "*":
            return max(table.values()) if table else None
        return table.get(sym)

    def on_disconnect(self, reason: str, detected_ns: int) -> list[ClosedGap]:
        """Open (or extend) the outage; return gaps of a previous outage this closes.

        Parameters
        ----------
        reason
            Why the connection ended.
        detected_ns
            When (UTC epoch ns).

        Returns
        -------
        list[ClosedGap]
            Gaps of the previous outage that were still open (quiet symbols).
        """
        closed: list[ClosedGap] = []
        out = self.outage
        if out is not None and out.resume_sip is None:
            # No data since the last outage: the same window, one more attempt.
            out.attempts += 1
            if reason not in out.reason:
                out.reason = f"{out.reason}; then {reason}"
            return closed
        if out is not None:
            closed = self._close_remaining(out)
        self.outage = _Outage(
            reason=reason,
            detected_ns=detected_ns,
            before_sip=self.stream_clock(),
            last_by_channel={ch: self._last_for(ch) for ch in self.channels},
            known_symbols=tuple(sorted(self.last_sip.get(CHANNEL_TRADES, {}))),
            open_channels=set(self.channels),
        )
        return closed

    def restart(
        self,
        reason: str,
        detected_ns: int,
        before_sip: int,
        last_by_symbol: Mapping[str, int],
    ) -> None:
        """Open the outage of a restart: the feed was unwatched since ``before_sip`` (from Kafka).

        Unlike a live outage, where the feed had delivered everything up to the stream
        clock, a killed run may have had each partition acknowledged up to a different
        point, and an illiquid symbol's last trade may be hours older than the others'.
        Each symbol's gap and window therefore start at its own last record in Kafka (a
        symbol's acknowledged records are a prefix of what was produced), a wildcard
        subscription's too (one gap per symbol); a subscribed symbol with nothing in the
        tail starts at the earliest of those.

        Parameters
        ----------
        reason
            Text for the gap records.
        detected_ns
            Start of this run.
        before_sip
            Latest SIP time already in Kafka.
        last_by_symbol
            Latest trade SIP time per symbol already in Kafka.
        """
        trades = self.last_sip.setdefault(CHANNEL_TRADES, {})
        for sym, sip in last_by_symbol.items():
            if sip > trades.get(sym, -1):
                trades[sym] = sip
        earliest = min(last_by_symbol.values(), default=before_sip)
        self.outage = _Outage(
            reason=reason,
            detected_ns=detected_ns,
            before_sip=earliest,
            last_by_channel={ch: self._last_for(ch) for ch in self.channels},
            known_symbols=tuple(sorted(trades)),
            open_channels=set(self.channels),
            restart_last=dict(last_by_symbol),
        )

    def on_data(self, kind: str, symbol: str, sip: int) -> list[ClosedGap]:
        """Feed one data event while :attr:`open`; return the gaps it closes.

        Parameters
        ----------
        kind
            ``T``, ``Q``, ``A`` or ``AM``.
        symbol
            The event's ticker.
        sip
            Its SIP time (ns; the bar end for aggregates).

        Returns
        -------
        list[ClosedGap]
            Gaps closed by this event (possibly none).
        """
        out = self.outage
        if out is None:
            return []
        if out.resume_sip is None:
            out.resume_sip = sip
        if out.max_after_sip is None or sip > out.max_after_sip:
            out.max_after_sip = sip
        closed: list[ClosedGap] = []
        for ch in (f"{kind}.*", f"{kind}.{symbol}"):
            if ch in out.open_channels:
                out.open_channels.discard(ch)
                closed.extend(self._close(out, ch, sip))
        if out.open_channels and out.max_after_sip - out.resume_sip >= self.close_after_ns:
            closed.extend(self._close_remaining(out))
        if not out.open_channels:
            self.outage = None
        return closed

    def close_all(self) -> list[ClosedGap]:
        """Close every open gap (the stream is stopping); return them."""
        out = self.outage
        if out is None:
            return []
        self.outage = None
        return self._close_remaining(out)

    def _close_remaining(self, out: _Outage) -> list[ClosedGap]:
        closed: list[ClosedGap] = []
        for ch in sorted(out.open_channels):
            closed.extend(self._close(out, ch, None))
        out.open_channels.clear()
        return closed

    def _close(self, out: _Outage, channel: str, first_after: int | None) -> list[ClosedGap]:
        """Close ``channel``'s gap: one gap, or one per symbol for a restart's ``T.*``."""
        kind, _, sym = channel.partition(".")
        last = out.restart_last
        if last is None or kind != CHANNEL_TRADES:
            return [self._closed(out, channel, first_after, out.before_sip)]
        if sym != "*":
            # A subscribed symbol with nothing in the tail starts at the earliest one.
            before = last.get(sym, out.before_sip)
            return [self._closed(out, channel, first_after, before, last.get(sym))]
        # The subscription's first trade after the restart ends every symbol's gap: from
        # there on the wildcard delivered each of them live.
        end = first_after if first_after is not None else out.resume_sip
        return [
            self._closed(
                out, f"{kind}.{s}", end, last[s], last[s], f"{out.detected_ns}:{channel}:{s}"
            )
            for s in out.known_symbols
            if s in last
        ]

    def _closed(
        self,
        out: _Outage,
        channel: str,
        first_after: int | None,
        before_sip: int | None,
        last_before: int | None = None,
        gap_id: str | None = None,
    ) -> ClosedGap:
        kind, _, sym = channel.partition(".")
        end = first_after if first_after is not None else out.resume_sip
        window_from = None if before_sip is None else before_sip - self.late_margin_ns
        window_to = None if end is None else end - end % NS_PER_MS + NS_PER_MS - 1
        if window_from is not None and window_to is not None and window_to < window_from:
            window_to = window_from
        symbols: tuple[str, ...] = out.known_symbols if sym == "*" else (sym,)
        return ClosedGap(
            channel=channel,
            kind=kind,
            symbol=sym,
            last_before_ns=out.last_by_channel.get(channel) if last_before is None else last_before,
            first_after_ns=first_after,
            reason=out.reason if out.attempts == 1 else f"{out.reason} ({out.attempts} attempts)",
            detected_ns=out.detected_ns,
            gap_id=gap_id or f"{out.detected_ns}:{channel}",
            repair_from_ns=window_from,
            repair_to_ns=window_to,
            symbols=symbols,
        )


def symbols_of(channels: Iterable[str], kind: str = CHANNEL_TRADES) -> list[str]:
    """Return the symbols subscribed with ``kind`` (``*`` included)."""
    return [ch.partition(".")[2] for ch in channels if ch.partition(".")[0] == kind]
