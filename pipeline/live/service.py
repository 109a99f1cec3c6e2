"""``live-signals`` service: a Kafka consumer group from market data to ``trading-signals``.

Instances of one group share the input topic's partitions (cooperative-sticky
assignment: a rebalance moves only the partitions that change owner). Per batch of
records (what the consumer holds, up to ``batch_size``; it does not wait to fill a
batch): :class:`~pipeline.live.partition.PartitionProcessor` -> idempotent producer
(acks=all, :class:`~pipeline.kafka.producer.EventProducer`) -> the next batch. Batches
are not flushed one by one: each keeps the consumer offsets and
:class:`~pipeline.live.partition.Checkpoint` it reached, and those are committed (as
commit metadata, asynchronously, at most every ``commit_interval_s``) once every record
of that batch *and of every earlier batch* is acknowledged. Never the other way round,
so a crash loses no signal.

Recovery. On assignment, each partition's state is rebuilt by reading
``[checkpoint.replay_from, committed)`` (:func:`pipeline.kafka.consumer.read_range`) and
processing it without emitting; consuming then resumes at the committed offset. The
statistics are a deterministic function of those records, so what a restarted or new
owner emits is what an uninterrupted instance would have emitted. Output is
at-least-once: records produced and acknowledged after the last commit of a killed
instance are produced again, with identical values; the idempotent key of a signal is its
input ``(topic, partition, offset)`` (headers ``input_*``).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _LibKafkaError

from pipeline.errors import KafkaError
from pipeline.kafka import codec
from pipeline.kafka.broker import client_conf
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import EventProducer, PendingAcks
from pipeline.live.partition import (
    Checkpoint,
    PartitionProcessor,
    PriorsSource,
    Record,
    no_priors,
)
from pipeline.settings import DEFAULT_LIVE_GROUP
from udx.kernels import Params

logger = logging.getLogger(__name__)

# Commit errors that mean "this member no longer owns the partition": the new owner
# replays from the last commit and produces the same records again (identical values).
_LOST_OWNERSHIP = {
    _LibKafkaError.REBALANCE_IN_PROGRESS,
    _LibKafkaError.ILLEGAL_GENERATION,
    _LibKafkaError.UNKNOWN_MEMBER_ID,
    _LibKafkaError._STATE,
}


@dataclass
class LiveSummary:
    """What one run of the service did (counts by kind, partitions restored, commits).

    ``first_record_ns`` and ``last_acked_ns`` (UTC epoch ns) bound the work: the first
    batch consumed and the last time a batch was found fully acknowledged.
    """

    counts: Counter[str] = field(default_factory=Counter)
    restored: list[tuple[int, int, int]] = field(default_factory=list)
    commits: int = 0
    lost_commits: int = 0
    consumed: int = 0
    first_record_ns: int = 0
    last_acked_ns: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {
            "counts": dict(sorted(self.counts.items())),
            "restored": [
                {"partition": p, "replay_from": a, "committed": b} for p, a, b in self.restored
            ],
            "commits": self.commits,
            "lost_commits": self.lost_commits,
            "consumed": self.consumed,
            "first_record_ns": self.first_record_ns,
            "last_acked_ns": self.last_acked_ns,
        }


@dataclass(frozen=True)
class LiveConfig:
    """Settings of one service instance."""

    bootstrap: str
    input_topic: str
    output_topic: str
    group_id: str = DEFAULT_LIVE_GROUP
    extra_conf: Mapping[str, str] = field(default_factory=dict[str, str])
    params: Params = field(default_factory=Params)
    batch_size: int = 2000
    poll_timeout_s: float = 0.2
    session_timeout_ms: int = 10_000
    flush_timeout_s: float = 60.0
    replay_timeout_s: float = 300.0
    commit_interval_s: float = 0.2
    linger_ms: float = 1.0
    gc_interval_s: float = 10.0
    fetch_wait_max_ms: int = 10


@dataclass(slots=True)
class _Batch:
    """A produced batch: its acknowledgements and the offsets/checkpoints it reached."""

    acks: PendingAcks
    reached: dict[int, tuple[int, Checkpoint | None]]


class LiveSignalsService:
    """One instance of the live-signals consumer group.

    Parameters
    ----------
    config
        Topics, group, batch size, timeouts.
    priors
        Source of each symbol-day's priors (provisional n, fitted parameters).
    on_ack
        Called with each acknowledged output message (benchmarks time them).
    """

    def __init__(
        self,
        config: LiveConfig,
        priors: PriorsSource = no_priors,
        on_ack: Callable[[Message], None] | None = None,
    ) -> None:
        self.config = config
        self._priors = priors
        self._on_ack = on_ack
        self.summary = LiveSummary()
        self._procs: dict[int, PartitionProcessor] = {}
        self._committed_at_assign: dict[int, int] = {}
        self._healthy = True
        self._inflight: deque[_Batch] = deque()
        self._to_commit: dict[int, tuple[int, Checkpoint | None]] = {}
        self._last_commit = 0.0
        self._commit_error: str | None = None
        self._producer = EventProducer(
            config.bootstrap, config.output_topic, extra_conf=config.extra_conf,
            linger_ms=config.linger_ms,
        )  # fmt: skip
        conf = client_conf(config.bootstrap, config.extra_conf)
        conf.update(
            {
                "group.id": config.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # A new group starts at the beginning of the topic: the first day's states
                # must see every print from the open.
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": config.session_timeout_ms,
                "heartbeat.interval.ms": max(100, config.session_timeout_ms // 5),
                "on_commit": self._on_commit,
                # Fetches, commits and heartbeats share a broker's connection: a small request
                # must not wait for the previous one's ACK (Nagle + delayed ACK, ~40 ms).
                "socket.nagle.disable": True,
                # A fetch the broker holds for data came back after its whole wait here, with
                # the records appended meanwhile (batches of 2,000 at 10,000/s, the thread idle
                # in consume 79% of the time): a short wait bounds that delay. An instance
                # fed at 10,000/s, alternating: input append -> consumed p50 33-162 ms at the
                # default 500 ms, 17-55 ms at 10 ms (load 3-9, noisy).
                "fetch.wait.max.ms": config.fetch_wait_max_ms,
            }
        )
        self._consumer = Consumer(conf)

    @property
    def assigned(self) -> list[int]:
        """Return the input partitions this instance owns now (restored and consuming)."""
        return sorted(self._procs)

    # -- rebalance callbacks (run inside consume()) ----------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if not partitions:
            return
        committed = consumer.committed(partitions, timeout=self.config.replay_timeout_s)
        for tp in committed:
            self._procs[tp.partition] = self._restore(tp)
            self._committed_at_assign[tp.partition] = tp.offset
        logger.info("assigned partitions %s", sorted(tp.partition for tp in partitions))

    def _restore(self, tp: TopicPartition) -> PartitionProcessor:
        cfg = self.config
        metadata: str | None = getattr(tp, "metadata", None)
        checkpoint = Checkpoint.decode(metadata) if tp.offset >= 0 else None
        proc = PartitionProcessor(
            cfg.input_topic, tp.partition, cfg.params, self._priors, checkpoint
        )
        if checkpoint is None or checkpoint.replay_from >= tp.offset:
            return proc
        rng = OffsetRange(cfg.input_topic, tp.partition, checkpoint.replay_from, tp.offset)
        records = read_range(
            cfg.bootstrap, rng, cfg.replay_timeout_s, cfg.extra_conf,
            group_id=f"{cfg.group_id}-restore",
        )  # fmt: skip
        step = max(1, cfg.batch_size)
        for lo in range(0, len(records), step):
            proc.process_batch(
                [(r.offset, r.value, r.headers) for r in records[lo : lo + step]], emit=False
            )
        self.summary.restored.append((tp.partition, checkpoint.replay_from, tp.offset))
        logger.info(
            "partition %d restored from %s (%d records replayed)", tp.partition, rng, len(records)
        )
        return proc

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Everything processed so far is produced: acknowledge it, commit, let go.
        if self._healthy:
            self._producer.flush(self.config.flush_timeout_s)  # raises unless all acked
            self._collect_acked()
            self._commit(asynchronous=False)
        for tp in partitions:
            self._forget(tp.partition)
        if partitions:
            logger.info("revoked partitions %s", sorted(tp.partition for tp in partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own them already: no commit; it replays from the last one.
        for tp in partitions:
            self._forget(tp.partition)

    def _forget(self, partition: int) -> None:
        proc = self._procs.pop(partition, None)
        if proc is not None:
            self.summary.counts.update(proc.counts)
        self._to_commit.pop(partition, None)
        for batch in self._inflight:
            batch.reached.pop(partition, None)

    def _on_commit(self, err: _LibKafkaError | None, partitions: list[TopicPartition]) -> None:
        # Result of an asynchronous commit (served inside consume()).
        failed = [tp for tp in partitions if tp.error is not None]
        error = err if err is not None else (failed[0].error if failed else None)
        if error is None:
            return
        if isinstance(error, _LibKafkaError) and error.code() in _LOST_OWNERSHIP:
            self.summary.lost_commits += 1
            logger.warning("commit lost to a rebalance (%s): the new owner replays", error)
            return
        self._commit_error = f"commit for {self.config.group_id!r} failed: {error}"

    # -- the loop --------------------------------------------------------------------------------
    def run(
        self,
        *,
        idle_exit_s: float | None = None,
        stop: threading.Event | None = None,
        until: Mapping[int, int] | None = None,
    ) -> LiveSummary:
        """Consume until ``stop`` is set, no record came for ``idle_exit_s``, or ``until``.

        Parameters
        ----------
        idle_exit_s
            Stop after this long without a record (None: run until ``stop``).
        stop
            Set it (e.g. from a signal handler) for a clean stop: flush and commit.
        until
            ``{partition: end offset}``: stop once this instance's position on every one of
            them is at or past its end (:func:`end_offsets`; meant for one instance).

        Returns
        -------
        LiveSummary
            Counts by kind, partitions restored, commits.

        Raises
        ------
        KafkaError
            On a consumer error, a failed delivery (:class:`DeliveryError`) or a failed commit.
        """
        cfg = self.config
        self._consumer.subscribe(
            [cfg.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )  # fmt: skip
        last_record = last_gc = time.monotonic()
        consume = self._consumer.consume
        # The cyclic garbage collector, run by allocation counts, cost ~30% of the CPU at
        # full rate (a batch's records, their headers and output tuples): it runs on a
        # clock instead, over what was allocated since start-up (gc.freeze), and pauses
        # the loop for milliseconds every gc_interval_s. Nothing here makes reference cycles
        # per record; refcounting frees the records.
        gc_enabled = gc.isenabled()
        gc.disable()
        gc.freeze()
        try:
            while stop is None or not stop.is_set():
                if until is not None and self._reached(until):
                    break
                # Whatever is already fetched, without waiting to fill a batch; with nothing,
                # wait for one record (briefly while acknowledgements are outstanding).
                msgs = consume(cfg.batch_size, 0)
                if not msgs:
                    wait = 0.001 if self._inflight else cfg.poll_timeout_s
                    msgs = consume(1, wait)
                    if msgs:
                        msgs += consume(cfg.batch_size - 1, 0)
                if msgs:
                    last_record = time.monotonic()
                    # Reports that came while the last batch was processed: served now, so
                    # an ack's time is not the end of the next batch's processing.
                    self._producer.poll(0)
                    self._process(msgs)
                elif (
                    idle_exit_s is not None
                    and not self._inflight
                    and time.monotonic() - last_record >= idle_exit_s
                ):
                    break
                self._producer.poll(0)  # delivery reports
                self._producer.raise_if_failed()
                if self._commit_error is not None:
                    raise KafkaError(self._commit_error)
                self._collect_acked()
                now = time.monotonic()
                if self._to_commit and now - self._last_commit >= cfg.commit_interval_s:
                    self._commit(asynchronous=True)
                if now - last_gc >= cfg.gc_interval_s:
                    gc.collect()
                    last_gc = now
        except BaseException:
            # Records processed since the last commit may lack their signals: the revocation
            # in close() must not commit them (the next owner replays and emits them).
            self._healthy = False
            raise
        finally:
            # close() revokes what is still assigned: _on_revoke flushes and commits it.
            try:
                self._consumer.close()
            finally:
                gc.unfreeze()
                if gc_enabled:
                    gc.enable()
        if self._commit_error is not None:
            raise KafkaError(self._commit_error)
        self._producer.close(cfg.flush_timeout_s)
        return self.summary

    def _reached(self, until: Mapping[int, int]) -> bool:
        """Return True when this instance has consumed every partition of ``until`` to its end."""
        # A partition committed at its end when assigned is done before any record comes.
        done = {p for p, o in self._committed_at_assign.items() if p in self._procs and o >= 0}
        done = {p for p in done if self._committed_at_assign[p] >= until.get(p, 0)}
        tps = [
            TopicPartition(self.config.input_topic, p)
            for p, end in until.items()
            if end > 0 and p not in done
        ]
        if not tps:
            return True
        # Unassigned or not yet fetched partitions have an invalid (negative) position.
        return all(tp.offset >= until[tp.partition] for tp in self._consumer.position(tps))

    def _process(self, msgs: list[Message]) -> None:
        by_partition: dict[int, list[Record]] = {}
        summary = self.summary
        if not summary.first_record_ns:
            summary.first_record_ns = time.time_ns()
        summary.consumed += len(msgs)
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == _LibKafkaError._PARTITION_EOF:
                    continue
                raise KafkaError(f"consumer error on {self.config.input_topic}: {err}")
            partition, offset = m.partition(), m.offset()
            if partition is None or offset is None:
                raise KafkaError(f"record of {self.config.input_topic} without partition or offset")
            records = by_partition.get(partition)
            if records is None:
                if partition not in self._procs:  # fetched before a revocation: not ours
                    summary.counts["not_owned"] += 1
                    continue
                records = by_partition[partition] = []
            # Consumed records carry their headers as a list of (name, value) pairs.
            records.append(
                (offset, m.value(), cast("list[tuple[str, bytes | None]] | None", m.headers()))
            )
        out: list[tuple[bytes, bytes, codec.Headers]] = []
        reached: dict[int, tuple[int, Checkpoint | None]] = {}
        for partition, records in by_partition.items():
            proc = self._procs[partition]
            out.extend(o for o in proc.process_batch(records) if o is not None)
            if proc.next_offset is not None:
                reached[partition] = (proc.next_offset, proc.checkpoint())
        acks = self._producer.produce_batch(out, self._on_ack)
        self._inflight.append(_Batch(acks, reached))

    def _collect_acked(self) -> None:
        """Move the offsets of leading, fully acknowledged batches to the commit set."""
        inflight = self._inflight
        found = False
        while inflight and inflight[0].acks.left == 0:
            self._to_commit.update(inflight.popleft().reached)
            found = True
        if found:
            self.summary.last_acked_ns = time.time_ns()

    def _commit(self, *, asynchronous: bool) -> None:
        offsets: list[TopicPartition] = []
        for p, (next_offset, cp) in sorted(self._to_commit.items()):
            if p not in self._procs:
                continue
            if cp is None:
                offsets.append(TopicPartition(self.config.input_topic, p, next_offset))
            else:
                offsets.append(
                    TopicPartition(self.config.input_topic, p, next_offset, metadata=cp.encode())
                )
        self._to_commit.clear()
        self._last_commit = time.monotonic()
        if not offsets:
            return
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, _LibKafkaError) and err.code() in _LOST_OWNERSHIP:
                self.summary.lost_commits += 1
                logger.warning(
                    "commit of %s lost to a rebalance (%s): the new owner replays", offsets, err
                )
                return
            raise KafkaError(f"commit of {offsets} for {self.config.group_id!r} failed: {e}") from e
        self.summary.commits += 1
        if asynchronous:
            return
        for tp in cast("list[TopicPartition]", result or ()):
            if tp.error is not None:
                raise KafkaError(f"commit of {tp} for {self.config.group_id!r} failed: {tp.error}")


def end_offsets(config: LiveConfig, timeout_s: float = 30.0) -> dict[int, int]:
    """Return ``{partition: high watermark}`` of the input topic now (``run(until=...)``)."""
    ends = watermarks(config.bootstrap, config.input_topic, timeout_s, config.extra_conf)
    return {p: high for p, (_, high) in ends.items()}
