"""``live-signals`` service: a Kafka consumer group from market data to ``trading-signals``.

Instances of one group share the input topic's partitions (cooperative-sticky
assignment: a rebalance moves only the partitions that change owner). Per batch of
records: :class:`~pipeline.live.partition.PartitionProcessor` -> idempotent producer
(acks=all, :class:`~pipeline.kafka.producer.EventProducer`) -> wait for every
acknowledgement -> commit the consumer offsets with each partition's
:class:`~pipeline.live.partition.Checkpoint` as commit metadata. Never the other way
round, so a crash loses no signal.

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

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka import KafkaError as _LibKafkaError

from pipeline.errors import KafkaError
from pipeline.kafka.broker import client_conf
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange
from pipeline.kafka.producer import EventProducer
from pipeline.live.partition import Checkpoint, PartitionProcessor, PriorsSource, no_priors
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
    """What one run of the service did (counts by kind, partitions restored, commits)."""

    counts: Counter[str] = field(default_factory=Counter)
    restored: list[tuple[int, int, int]] = field(default_factory=list)
    commits: int = 0
    lost_commits: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {
            "counts": dict(sorted(self.counts.items())),
            "restored": [
                {"partition": p, "replay_from": a, "committed": b} for p, a, b in self.restored
            ],
            "commits": self.commits,
            "lost_commits": self.lost_commits,
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
    batch_size: int = 500
    poll_timeout_s: float = 0.2
    session_timeout_ms: int = 10_000
    flush_timeout_s: float = 60.0
    replay_timeout_s: float = 300.0


class LiveSignalsService:
    """One instance of the live-signals consumer group.

    Parameters
    ----------
    config
        Topics, group, batch size, timeouts.
    priors
        Source of each symbol-day's priors (provisional n, fitted parameters).
    """

    def __init__(self, config: LiveConfig, priors: PriorsSource = no_priors) -> None:
        self.config = config
        self._priors = priors
        self.summary = LiveSummary()
        self._procs: dict[int, PartitionProcessor] = {}
        self._committed_at_assign: dict[int, int] = {}
        self._healthy = True
        self._producer = EventProducer(
            config.bootstrap, config.output_topic, extra_conf=config.extra_conf
        )
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
            }
        )
        self._consumer = Consumer(conf)

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
        for r in records:
            proc.process(r.offset, r.value, r.headers, emit=False)
        self.summary.restored.append((tp.partition, checkpoint.replay_from, tp.offset))
        logger.info(
            "partition %d restored from %s (%d records replayed)", tp.partition, rng, len(records)
        )
        return proc

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Everything processed so far is produced: acknowledge it, commit, let go.
        if self._healthy:
            self._producer.flush(self.config.flush_timeout_s)
            self._commit([tp.partition for tp in partitions if tp.partition in self._procs])
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
        last_record = time.monotonic()
        try:
            while stop is None or not stop.is_set():
                if until is not None and self._reached(until):
                    break
                msgs = self._consumer.consume(cfg.batch_size, cfg.poll_timeout_s)
                if not msgs:
                    if idle_exit_s is not None and time.monotonic() - last_record >= idle_exit_s:
                        break
                    continue
                last_record = time.monotonic()
                self._process(msgs)
        except BaseException:
            # Records processed since the last commit may lack their signals: the revocation
            # in close() must not commit them (the next owner replays and emits them).
            self._healthy = False
            raise
        finally:
            # close() revokes what is still assigned: _on_revoke flushes and commits it.
            self._consumer.close()
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
        touched: set[int] = set()
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() == _LibKafkaError._PARTITION_EOF:
                    continue
                raise KafkaError(f"consumer error on {self.config.input_topic}: {err}")
            partition, offset = m.partition(), m.offset()
            if partition is None or offset is None:
                raise KafkaError(f"record of {self.config.input_topic} without partition or offset")
            proc = self._procs.get(partition)
            if proc is None:  # fetched before a revocation: its new owner processes it
                self.summary.counts["not_owned"] += 1
                continue
            # Consumed records carry their headers as a list of (name, value) pairs.
            headers = cast("list[tuple[str, bytes | None]] | None", m.headers())
            out = proc.process(offset, m.value(), headers)
            touched.add(partition)
            if out is not None:
                key, value, headers = out
                self._producer.produce_record(key, value, headers, "signal")
        self._producer.flush(self.config.flush_timeout_s)  # raises unless every record is acked
        self._commit(sorted(touched))

    def _commit(self, partitions: list[int]) -> None:
        offsets: list[TopicPartition] = []
        for p in partitions:
            proc = self._procs[p]
            if proc.next_offset is None:
                continue
            cp = proc.checkpoint()
            tp = TopicPartition(self.config.input_topic, p, proc.next_offset)
            if cp is not None:
                tp = TopicPartition(
                    self.config.input_topic, p, proc.next_offset, metadata=cp.encode()
                )
            offsets.append(tp)
        if not offsets:
            return
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, _LibKafkaError) and err.code() in _LOST_OWNERSHIP:
                self.summary.lost_commits += 1
                logger.warning(
                    "commit of %s lost to a rebalance (%s): the new owner replays", offsets, err
                )
                return
            raise KafkaError(f"commit of {offsets} for {self.config.group_id!r} failed: {e}") from e
        for tp in result or ():
            if tp.error is not None:
                raise KafkaError(f"commit of {tp} for {self.config.group_id!r} failed: {tp.error}")
        self.summary.commits += 1


def end_offsets(config: LiveConfig, timeout_s: float = 30.0) -> dict[int, int]:
    """Return ``{partition: high watermark}`` of the input topic now (``run(until=...)``)."""
    ends = watermarks(config.bootstrap, config.input_topic, timeout_s, config.extra_conf)
    return {p: high for p, (_, high) in ends.items()}
