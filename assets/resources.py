"""Dagster resources: typed wrappers of the pipeline's Kafka and warehouse adapters.

Values come from :class:`pipeline.settings.Settings` when the definitions are built
(``assets/definitions.py``), never from ``os.getenv`` here; the UI shows them per run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import dagster as dg
from pydantic import Field, PrivateAttr

from pipeline.errors import InjectedFault
from pipeline.kafka import broker, consumer
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import RecordColumns
from pipeline.settings import parse_kafka_config
from pipeline.warehouse import open_warehouse
from pipeline.warehouse.base import Warehouse

# URLs this process has already migrated: migrations run once per process, not per call.
_MIGRATED: set[str] = set()


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse (``duckdb:///path`` or ``vertica://...``), migrated before first use.

    ``fault_at`` (``after_read`` in the asset, or a step of the load transaction:
    ``after_insert``, ``before_commit``, ``after_commit``) injects a failure there, for
    crash-point tests and ``microstructure faults``; ``fault_kill`` makes it a ``kill -9``
    of the run process.
    """

    url: str
    lock_timeout_s: float = 30.0
    fault_at: str = ""
    fault_kill: bool = False

    def open(self, read_only: bool = False, lock_timeout_s: float | None = None) -> Warehouse:
        """Return the warehouse; writers get pending migrations applied first.

        Parameters
        ----------
        read_only
            Open for reading only.
        lock_timeout_s
            Override of :attr:`lock_timeout_s` (the sensor waits less).

        Returns
        -------
        Warehouse
            The backend chosen by :func:`pipeline.warehouse.open_warehouse`.
        """
        wh = open_warehouse(
            self.url,
            read_only,
            lock_timeout_s=self.lock_timeout_s if lock_timeout_s is None else lock_timeout_s,
        )
        if self.fault_at:
            wh.fault_hook = _fault_hook(self.fault_at, self.fault_kill)  # type: ignore[attr-defined]
        if not read_only and self.url not in _MIGRATED:
            wh.migrate()
            _MIGRATED.add(self.url)
        return wh

    def fault_point(self, step: str) -> None:
        """Inject the configured fault if ``step`` is :attr:`fault_at` (e.g. ``after_read``)."""
        if self.fault_at:
            _fault_hook(self.fault_at, self.fault_kill)(step)


def _fault_hook(at: str, kill: bool) -> Callable[[str], None]:
    def hook(step: str) -> None:
        if step != at:
            return
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        raise InjectedFault(f"fault injected at {step}")

    return hook


class KafkaResource(dg.ConfigurableResource):
    """The market-data topic on a Kafka cluster: watermarks, topic id, range reads, commits."""

    bootstrap_servers: str
    topic: str
    extra_config: str = ""  # librdkafka k=v;k=v (TLS/SASL), as MICROSTRUCTURE_KAFKA_CONFIG
    max_records: int = 200_000
    # Trades stamped further ahead of the loader's clock are future_timestamp rejects.
    future_tolerance_s: float = 300.0
    read_timeout_s: float = 120.0
    metadata_timeout_s: float = 10.0
    _extra: dict[str, str] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Parse the pass-through settings once."""
        self._extra = parse_kafka_config(self.extra_config)

    def _conf(self) -> dict[str, str]:
        return self._extra or parse_kafka_config(self.extra_config)

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """Return ``{partition: (low, high)}`` of the topic.

        Returns
        -------
        dict[int, tuple[int, int]]
            Low and high watermark per partition.
        """
        return consumer.watermarks(
            self.bootstrap_servers, self.topic, self.metadata_timeout_s, self._conf()
        )

    def topic_id(self) -> str | None:
        """Return Kafka's id of the topic (new when the topic is deleted and recreated).

        Returns
        -------
        str | None
            The id; None when the cluster has no topic ids (Kafka before 2.8).
        """
        return broker.topic_id(
            self.bootstrap_servers,
            self.topic,
            extra_conf=self._conf(),
            timeout_s=self.metadata_timeout_s,
        )

    def read_range(self, offsets: OffsetRange) -> RecordColumns:
        """Read exactly ``[start, stop)`` of one partition (assign + seek, no commits).

        Parameters
        ----------
        offsets
            The range.

        Returns
        -------
        RecordColumns
            The records in offset order, column by column (the loader's fast path).
        """
        return consumer.read_range_columns(
            self.bootstrap_servers, offsets, self.read_timeout_s, self._conf()
        )

    def commit_advisory(self, partition: int, stop_offset: int) -> None:
        """Commit ``stop_offset`` for lag dashboards; call only after the warehouse COMMIT.

        Parameters
        ----------
        partition
            Topic partition.
        stop_offset
            Exclusive end of the range just stored.
        """
        consumer.commit_advisory(
            self.bootstrap_servers,
            self.topic,
            partition,
            stop_offset,
            timeout_s=self.metadata_timeout_s,
            extra_conf=self._conf(),
        )


class QualityResource(dg.ConfigurableResource):
    """Settings of the quality gates (pipeline/quality.py)."""

    known_symbols: list[str] = Field(default_factory=list)  # empty: that gate is skipped
    max_reject_ratio: float = 0.5
    # Publish a day's signals even if a batch holding it failed its ingest gate.
    allow_failed_batches: bool = False
