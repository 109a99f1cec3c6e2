"""When a day's signals are final, and when a published day has gone stale (pure).

A day is *final* when no partition of the market-data topic can still deliver trades of
its regular session. Each partition is judged on its own and the day takes the weakest:

* a partition with trades loaded is through the latest SIP time it loaded
  (``max(max_timestamp_ns)`` of its ledger rows);
* a partition that is *caught up* (its ledger end has reached the Kafka high watermark read
  after the ledger) is through the latest SIP time loaded on *any* partition: every record
  the producer wrote before that trade's record reached the broker before the watermark was
  read, and the partition has loaded all of them. A quiet partition thus follows the stream
  instead of blocking finality forever, and never runs ahead of what was durable;
* a partition behind its high watermark with nothing loaded, or whose high watermark could
  not be read, holds the day back (``None`` when it has loaded nothing).

The bound is read from one snapshot of the ledger (the same transaction as the day's trades
on DuckDB; before the trades on Vertica, so the trades hold at least what the bound
counts). The day is final when the bound is ``grace_ns`` past the close: late prints and the
consolidated tape's settling get that long.

A published day is *stale* when a batch committed after the run's snapshot loaded trades
inside the day's regular-session window: the run stored the ledger end of every partition
(``signal_runs.ledger_ends``), and a batch that starts at or beyond that end was not read.
MCP then reports the day as not final, and ``stale_signals_sensor`` recomputes it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.nytime import ny_date, wall_time_ns

# After the close, ingest must be through this much later before a day is final
# (late prints and the consolidated tape's settling).
DEFAULT_FINAL_GRACE_NS = 15 * 60 * 1_000_000_000

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class PartitionEnd:
    """One partition's ledger: where loading stands and the latest SIP time it loaded."""

    next_offset: int
    max_timestamp_ns: int | None


@dataclass(frozen=True, slots=True)
class LedgerFrontier:
    """The ledger of every partition, read in one snapshot."""

    partitions: Mapping[TopicPartition, PartitionEnd]

    def latest_ns(self) -> int | None:
        """Return the latest SIP time loaded on any partition (None when nothing is)."""
        stamps = [e.max_timestamp_ns for e in self.partitions.values()]
        known = [t for t in stamps if t is not None]
        return max(known) if known else None

    def ends_json(self) -> str:
        """Return ``{"topic:partition": next_offset}`` as stored in ``signal_runs.ledger_ends``."""
        return json.dumps(
            {f"{t}:{p}": e.next_offset for (t, p), e in sorted(self.partitions.items())},
            sort_keys=True,
        )

    @staticmethod
    def from_rows(rows: Iterable[tuple[object, object, object, object]]) -> LedgerFrontier:
        """Build from ``(topic, partition, next_offset, max_ts)`` rows (``q.LEDGER_FRONTIER``)."""
        return LedgerFrontier(
            {
                (str(t), int(str(p))): PartitionEnd(
                    int(str(n)), None if ts is None else int(str(ts))
                )
                for t, p, n, ts in rows
            }
        )


def ingested_through(
    frontier: LedgerFrontier,
    topic: str,
    watermarks: Mapping[int, tuple[int, int]] | None,
) -> int | None:
    """Return the SIP time every partition of ``topic`` is loaded through (module rule).

    Parameters
    ----------
    frontier
        The ledger, read before ``watermarks``.
    topic
        The market-data topic; its partitions are Kafka's (``watermarks``) and the ledger's.
    watermarks
        ``partition -> (low, high)`` read from Kafka after the ledger; None when Kafka
        could not be asked (then no partition counts as caught up).

    Returns
    -------
    int | None
        UTC epoch ns, None when some partition has loaded nothing and is not caught up.
    """
    latest = frontier.latest_ns()
    ledger = {p: e for (t, p), e in frontier.partitions.items() if t == topic}
    partitions = set(ledger) | set(watermarks or {})
    if not partitions:
        return None
    through: list[int] = []
    for p in sorted(partitions):
        end = ledger.get(p)
        low, high = (watermarks or {}).get(p, (None, None))
        loaded_to = end.next_offset if end is not None else low
        caught_up = high is not None and loaded_to is not None and loaded_to >= high
        own = end.max_timestamp_ns if end is not None else None
        # The frontier is the latest time on any partition, so never behind this one's own.
        best = latest if caught_up else own
        if best is None:
            return None
        through.append(best)
    return min(through)


def loaded_watermarks(frontier: LedgerFrontier, topic: str) -> dict[int, tuple[int, int]]:
    """Return the watermarks of a topic that holds exactly what the ledger loaded.

    For warehouses written without a broker (benchmark fixtures, file loads): each of the
    topic's partitions is then caught up by construction.
    """
    return {p: (0, e.next_offset) for (t, p), e in frontier.partitions.items() if t == topic}


def is_final(
    session_close_ns: int, ingested_through_ns: int | None, grace_ns: int = DEFAULT_FINAL_GRACE_NS
) -> bool:
    """Return True when every partition is loaded ``grace_ns`` past the day's close.

    Parameters
    ----------
    session_close_ns
        The day's close (UTC epoch ns; 13:00 New York on half days).
    ingested_through_ns
        :func:`ingested_through` when the day was read.
    grace_ns
        How far past the close ingest must be.

    Returns
    -------
    bool
        Whether a computation of the day now is final.
    """
    return ingested_through_ns is not None and ingested_through_ns >= session_close_ns + grace_ns


def parse_ledger_ends(raw: object) -> dict[TopicPartition, int] | None:
    """Return ``signal_runs.ledger_ends`` as a dict; None for runs stored before it existed."""
    if raw is None:
        return None
    out: dict[TopicPartition, int] = {}
    for key, end in json.loads(str(raw)).items():
        topic, _, partition = str(key).rpartition(":")
        out[(topic, int(partition))] = int(end)
    return out


def read_by_run(ends: Mapping[TopicPartition, int], topic: str, partition: int, stop: int) -> bool:
    """Return True when the batch ending at ``stop`` was in the run's snapshot."""
    return stop <= ends.get((topic, partition), 0)


def session_window_ns(day: date) -> tuple[int, int]:
    """Return ``[09:30, 16:00)`` New York of ``day``: where a batch can change its signals.

    Half days close at 13:00; their window is kept at 16:00, which only costs a recompute
    for a late after-hours print, never a missed one.
    """
    return wall_time_ns(day, 9, 30), wall_time_ns(day, 16, 0)


def touches_session(day: date, min_ns: int, max_ns: int) -> bool:
    """Return True when a batch's SIP range ``[min_ns, max_ns]`` meets ``day``'s session."""
    open_ns, close_ns = session_window_ns(day)
    return min_ns < close_ns and max_ns >= open_ns


@dataclass(frozen=True, slots=True)
class TradeBatch:
    """A committed ledger batch that inserted trades, with their SIP time range."""

    topic: str
    partition: int
    stop: int
    min_ns: int
    max_ns: int

    def days(self) -> list[date]:
        """Return the New York days whose session the batch's time range meets."""
        first, last = ny_date(self.min_ns), ny_date(self.max_ns)
        out, d = [], first
        while d <= last:
            if touches_session(d, self.min_ns, self.max_ns):
                out.append(d)
            d += timedelta(days=1)
        return out


@dataclass(frozen=True, slots=True)
class RunRead:
    """What a day's current signals run read and concluded."""

    final: bool
    ledger_ends: Mapping[TopicPartition, int] | None


def days_to_recompute(
    batches: Iterable[TradeBatch],
    runs: Mapping[date, RunRead],
    now_ns: int,
    grace_ns: int = DEFAULT_FINAL_GRACE_NS,
) -> list[date]:
    """Return the days whose current run missed a batch and is due again (ascending).

    A day is due when a batch loaded trades in its session after its run's snapshot, and
    either the run was final (it is stale now) or the day's close plus the grace has
    passed (a past day gets its final run without waiting for a schedule). A day still
    in session is left to the hourly schedule: recomputing it on every batch would redo
    the whole day each few seconds. Days without a run, or whose run recorded no ledger
    ends (stored before ``signal_runs.ledger_ends``), are not judged.

    Parameters
    ----------
    batches
        Ledger batches committed since the last look.
    runs
        The current run of each day those batches touch.
    now_ns
        The time of the decision (UTC epoch ns).
    grace_ns
        The finality grace after the close.

    Returns
    -------
    list[date]
        Days to recompute.
    """
    due: set[date] = set()
    for b in batches:
        for day in b.days():
            run = runs.get(day)
            if run is None or run.ledger_ends is None or day in due:
                continue
            if read_by_run(run.ledger_ends, b.topic, b.partition, b.stop):
                continue
            if run.final or now_ns >= session_window_ns(day)[1] + grace_ns:
                due.add(day)
    return sorted(due)


__all__ = [
    "DEFAULT_FINAL_GRACE_NS",
    "LedgerFrontier",
    "PartitionEnd",
    "RunRead",
    "TopicPartition",
    "TradeBatch",
    "days_to_recompute",
    "ingested_through",
    "is_final",
    "loaded_watermarks",
    "parse_ledger_ends",
    "read_by_run",
    "session_window_ns",
    "touches_session",
]
