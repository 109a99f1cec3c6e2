"""Latency decomposition per trade, measured from the stamps the warehouse stores.

Every loaded trade carries four clocks (``sql/migrations/0001``): ``timestamp_ns`` (SIP
time, set by the exchange's processor), ``receipt_ns`` (the streamer received the frame),
``kafka_ts_ns`` (Kafka's LogAppendTime: the broker appended the record) and
``loaded_ns`` (the microbatch's load transaction). ``signal_runs.computed_ns`` adds the
moment a signals run computed the trade's day. So the path

    SIP -> receipt -> Kafka append -> warehouse commit -> signal computed

is measured per trade, not estimated. The last hop to an AI client (signal -> served) is
measured where it happens, in the MCP server.

Two readers use this module: ``microstructure status`` (exact quantiles over a recent
window, :func:`measure_window`) and ``microstructure metrics-exporter`` (Prometheus
histograms grown one committed microbatch and one signals run at a time,
:func:`batch_stage_durations`, :func:`run_stage_durations`). SQL is portable (DuckDB and
Vertica): plain selects with bound values; the arithmetic is numpy.

Clocks: receipt and SIP come from different machines (the provider's and ours), so
SIP -> receipt includes clock skew; receipt, append and commit are stamped on the same host
in the single-machine setup (and on NTP-synchronised hosts otherwise). A replayed recording
keeps its historical SIP stamps, so its SIP stages measure the recording's age, not a
latency: :attr:`StageSample.replayed` says so (median above one day).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline._typing import Int64Array
from pipeline.metrics import sample_quantile
from pipeline.warehouse.base import SqlSession

NS_PER_S = 1_000_000_000
# A SIP stage whose median is above this is a replay of history, not a latency.
REPLAY_AGE_NS = 86_400 * NS_PER_S


@dataclass(frozen=True, slots=True)
class Stage:
    """One hop of the per-trade path.

    Attributes
    ----------
    name
        Label value of the ``stage`` label (``receipt_to_append``).
    title
        What a person reads (``receipt -> Kafka append``).
    realtime
        True where the hop is meant to be real-time (alerted at p99 > 50 ms): a stage with
        a queue we own and no batching. False for the microbatch and the signals schedule,
        whose latency is their period by design.
    from_sip
        Starts at the SIP stamp (upstream clock; replayed history makes it meaningless).
    """

    name: str
    title: str
    realtime: bool
    from_sip: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("sip_to_receipt", "SIP -> receipt (provider + network)", False, from_sip=True),
    Stage("receipt_to_append", "receipt -> Kafka append", True),
    Stage("append_to_commit", "Kafka append -> warehouse commit (microbatch)", False),
    Stage("commit_to_signal", "warehouse commit -> signal computed (signals run)", False),
    Stage("sip_to_commit", "end to end: SIP -> warehouse commit", False, from_sip=True),
    Stage("sip_to_signal", "end to end: SIP -> signal computed", False, from_sip=True),
)
STAGE_BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
REALTIME_STAGES: tuple[str, ...] = tuple(s.name for s in STAGES if s.realtime)

# Portable statements (DuckDB, Vertica): bound values only, identifiers fixed here.
_BATCH_STAMPS = (
    "SELECT timestamp_ns, receipt_ns, kafka_ts_ns, loaded_ns FROM market_data "
    "WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ? AND kafka_offset < ?"
)
_WINDOW_STAMPS = (
    "SELECT timestamp_ns, receipt_ns, kafka_ts_ns, loaded_ns, trade_date, in_regular_hours "
    "FROM market_data WHERE loaded_ns >= ? ORDER BY loaded_ns DESC, kafka_offset DESC LIMIT ?"
)
_NEWEST_COMMIT = "SELECT max(loaded_ns), count(*) FROM market_data"
_RUNS_OF_DAYS = "SELECT date, computed_ns FROM signal_runs WHERE date >= ? AND date <= ?"
_PREVIOUS_RUN = "SELECT max(computed_ns) FROM signal_runs WHERE date = ? AND computed_ns < ?"
# Trades whose first signals run is the one computed at the second bound: committed after
# the day's previous run and no later than this one. loaded_ns is one value per microbatch,
# so the grouping returns one row per batch, not per trade.
_FIRST_SIGNALLED = (
    "SELECT loaded_ns, count(*) FROM market_data "
    "WHERE trade_date = ? AND in_regular_hours AND loaded_ns > ? AND loaded_ns <= ? "
    "GROUP BY loaded_ns"
)


@dataclass
class StageSample:
    """Durations (ns) of one stage over a set of trades."""

    stage: Stage
    values_ns: Int64Array = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    weights: Int64Array | None = None
    pending: int = 0  # trades that have not reached the stage's end yet (no signal run)

    @property
    def n(self) -> int:
        """Return the number of trades measured."""
        if self.weights is not None:
            return int(self.weights.sum())
        return int(self.values_ns.shape[0])

    def quantile_s(self, q: float) -> float | None:
        """Return the ``q`` quantile in seconds (None when nothing was measured).

        Parameters
        ----------
        q
            Quantile in [0, 1].

        Returns
        -------
        float or None
            Seconds; weighted samples use the inverted empirical distribution.
        """
        if self.n == 0:
            return None
        if self.weights is None:
            return sample_quantile(self.values_ns, q) / NS_PER_S
        order = np.argsort(self.values_ns, kind="stable")
        v, w = self.values_ns[order], np.cumsum(self.weights[order])
        k = int(np.searchsorted(w, q * w[-1], side="left"))
        return float(v[min(k, v.shape[0] - 1)]) / NS_PER_S

    @property
    def replayed(self) -> bool:
        """Return True when a SIP stage measures the age of replayed history."""
        p50 = self.quantile_s(0.5)
        return self.stage.from_sip and p50 is not None and p50 * NS_PER_S > REPLAY_AGE_NS


def _stamp_arrays(rows: Sequence[tuple[Any, ...]]) -> tuple[Int64Array, ...]:
    """Columns of stamp rows as int64 arrays; a missing stamp (NULL) becomes -1."""
    if not rows:
        return tuple(np.empty(0, dtype=np.int64) for _ in range(4))
    cols = list(zip(*rows, strict=True))
    return tuple(
        np.array([-1 if v is None else int(v) for v in col], dtype=np.int64) for col in cols[:4]
    )


def _hop(start: Int64Array, end: Int64Array) -> Int64Array:
    """Durations ``end - start`` where both stamps exist (streamer-less loads have none)."""
    ok = (start > 0) & (end > 0)
    return (end[ok] - start[ok]).astype(np.int64)


def ingest_hops(
    sip: Int64Array, receipt: Int64Array, append: Int64Array, commit: Int64Array
) -> dict[str, Int64Array]:
    """Return the per-trade durations of the ingest stages.

    Parameters
    ----------
    sip, receipt, append, commit
        ``timestamp_ns``, ``receipt_ns``, ``kafka_ts_ns``, ``loaded_ns`` per trade (-1 or 0
        where unknown, e.g. a file load has no receipt).

    Returns
    -------
    dict[str, numpy.ndarray]
        Stage name -> durations in ns, for ``sip_to_receipt``, ``receipt_to_append``,
        ``append_to_commit`` and ``sip_to_commit``.
    """
    return {
        "sip_to_receipt": _hop(sip, receipt),
        "receipt_to_append": _hop(receipt, append),
        "append_to_commit": _hop(append, commit),
        "sip_to_commit": _hop(sip, commit),
    }


def batch_stage_durations(
    session: SqlSession, topic: str, partition: int, start_offset: int, stop_offset: int
) -> dict[str, Int64Array]:
    """Return the ingest-stage durations of the trades of one committed microbatch.

    Parameters
    ----------
    session
        An open (read) transaction.
    topic, partition, start_offset, stop_offset
        The ledger row's half-open offset range.

    Returns
    -------
    dict[str, numpy.ndarray]
        See :func:`ingest_hops`.
    """
    rows = session.execute(_BATCH_STAMPS, (topic, partition, start_offset, stop_offset))
    return ingest_hops(*_stamp_arrays(rows))


@dataclass(frozen=True, slots=True)
class RunDurations:
    """Commit -> signal durations of the trades a signals run computed first.

    ``commit_to_signal_ns[i]`` applies to ``weights[i]`` trades (one entry per microbatch).
    """

    commit_to_signal_ns: Int64Array
    weights: Int64Array


def run_stage_durations(session: SqlSession, day: Any, computed_ns: int) -> RunDurations:
    """Return commit -> signal durations for the trades a signals run was the first to cover.

    A trade's signal is computed by the first signals run of its day stamped after the
    trade's commit. A trade committed while that run was computing is attributed to it (an
    error bounded by the run's duration); the next run covers it for real.

    Parameters
    ----------
    session
        An open (read) transaction.
    day
        The run's trading day (``datetime.date``).
    computed_ns
        The run's ``signal_runs.computed_ns``.

    Returns
    -------
    RunDurations
        One entry per microbatch commit stamp, weighted by its trades.
    """
    prev = session.execute(_PREVIOUS_RUN, (day, computed_ns))
    prev_ns = int(prev[0][0]) if prev and prev[0][0] is not None else -1
    rows = session.execute(_FIRST_SIGNALLED, (day, prev_ns, computed_ns))
    loaded = np.array([int(r[0]) for r in rows], dtype=np.int64)
    weights = np.array([int(r[1]) for r in rows], dtype=np.int64)
    return RunDurations(computed_ns - loaded, weights)


@dataclass
class WindowMeasurement:
    """Stage samples over the trades committed in a recent window (``status``)."""

    start_ns: int | None
    end_ns: int | None
    n_trades: int
    capped: bool
    stages: dict[str, StageSample]


def measure_window(
    session: SqlSession, window_s: float = 900.0, max_trades: int = 500_000
) -> WindowMeasurement:
    """Measure every stage over the trades committed in the last ``window_s`` of commits.

    The window ends at the newest commit, not at the wall clock, so a warehouse that is
    idle (a replayed day, a weekend) still shows how its last load went.

    Parameters
    ----------
    session
        An open (read) transaction.
    window_s
        Window length in seconds of commit time.
    max_trades
        At most this many trades, the newest commits first (bounds memory and time).

    Returns
    -------
    WindowMeasurement
        Exact quantiles per stage are then :meth:`StageSample.quantile_s`.
    """
    newest = session.execute(_NEWEST_COMMIT)
    end_ns = newest[0][0] if newest else None
    empty = {s.name: StageSample(s) for s in STAGES}
    if end_ns is None:
        return WindowMeasurement(None, None, 0, False, empty)
    end_ns = int(end_ns)
    start_ns = end_ns - int(window_s * NS_PER_S)
    rows = session.execute(_WINDOW_STAMPS, (start_ns, max_trades))
    capped = len(rows) >= max_trades
    if capped:
        start_ns = int(rows[-1][3])
    sip, receipt, append, commit = _stamp_arrays(rows)
    hops = ingest_hops(sip, receipt, append, commit)
    samples = {name: StageSample(STAGE_BY_NAME[name], v) for name, v in hops.items()}
    # commit -> signal: the first run of the trade's day stamped at or after its commit.
    rth = np.array([bool(r[5]) for r in rows], dtype=bool)
    days = np.array([r[4] for r in rows], dtype=object)
    c2s: list[Int64Array] = []
    s2s: list[Int64Array] = []
    pending = 0
    if rows and rth.any():
        rth_days = sorted(set(days[rth].tolist()))
        runs = session.execute(_RUNS_OF_DAYS, (rth_days[0], rth_days[-1]))
        for d in rth_days:
            mask = rth & (days == d)
            computed = np.sort(np.array([int(c) for rd, c in runs if rd == d], dtype=np.int64))
            k = np.searchsorted(computed, commit[mask], side="left")
            done = k < computed.shape[0]
            pending += int((~done).sum())
            first_run = computed[k[done]]
            c2s.append(first_run - commit[mask][done])
            sip_d = sip[mask][done]
            s2s.append((first_run - sip_d)[sip_d > 0])
    cat = lambda parts: (  # noqa: E731
        np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)
    )
    samples["commit_to_signal"] = StageSample(
        STAGE_BY_NAME["commit_to_signal"], cat(c2s), pending=pending
    )
    samples["sip_to_signal"] = StageSample(
        STAGE_BY_NAME["sip_to_signal"], cat(s2s), pending=pending
    )
    ordered = {s.name: samples[s.name] for s in STAGES}
    return WindowMeasurement(start_ns, end_ns, len(rows), capped, ordered)
