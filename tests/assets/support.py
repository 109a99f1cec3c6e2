"""Helpers of the Dagster tests: produce sample trades, drive the sensor and the runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from confluent_kafka import Producer

from assets.definitions import build_defs
from assets.resources import KafkaResource, QualityResource, WarehouseResource
from pipeline.events import Event
from pipeline.kafka.broker import client_conf
from pipeline.kafka.producer import EventProducer


def produce(bootstrap: str, topic: str, events: Sequence[Event]) -> None:
    """Produce events through the real producer; every delivery acknowledged."""
    with EventProducer(bootstrap, topic) as producer:
        for event in events:
            producer.send(event)
        producer.flush(60.0)


def produce_outputs(
    bootstrap: str, topic: str, outputs: Sequence[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Send live records through the project's producer, every delivery acknowledged."""
    with EventProducer(bootstrap, topic) as producer:
        for key, value, headers in outputs:
            producer.produce_record(key, value, headers, "signal")
        producer.flush(60.0)


def produce_raw(
    bootstrap: str,
    topic: str,
    key: bytes,
    value: bytes,
    headers: list[tuple[str, bytes]],
    partition: int | None = None,
) -> None:
    """Produce one record that did not come from the codec (garbage on the topic)."""
    p = Producer({**client_conf(bootstrap), "enable.idempotence": True, "acks": "all"})
    errors: list[object] = []
    where = {} if partition is None else {"partition": partition}
    p.produce(
        topic,
        value=value,
        key=key,
        headers=headers,
        on_delivery=lambda err, msg: errors.append(err),
        **where,
    )
    assert p.flush(30.0) == 0
    assert errors == [None]


@dataclass
class Harness:
    """Definitions on a test broker and warehouse file, with a persistent test instance."""

    defs: dg.Definitions
    instance: dg.DagsterInstance
    bootstrap: str
    topic: str
    url: str

    def tick(self):
        """Evaluate one real sensor tick against the instance (its SensorExecutionData)."""
        sensor = self.defs.resolve_sensor_def("market_data_sensor")
        # evaluate_tick does not pull resources from the definitions: pass them explicitly.
        context = dg.build_sensor_context(
            instance=self.instance, definitions=self.defs, resources=dict(self.defs.resources or {})
        )
        return sensor.evaluate_tick(context)

    def requests(self) -> list[dg.RunRequest]:
        """Return the run requests of one tick (empty when it skipped)."""
        return list(self.tick().run_requests or [])

    def run(self, request: dg.RunRequest, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
        """Execute one requested ingest run in-process, tagged as the daemon would."""
        job = self.defs.resolve_job_def("ingest_job")
        tags = {**(request.tags or {}), "dagster/run_key": request.run_key or ""}
        return job.execute_in_process(
            run_config=request.run_config,
            instance=self.instance,
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def ingest_until_caught_up(self, max_ticks: int = 50) -> int:
        """Tick and run until the sensor has nothing to ask for; return the runs executed."""
        n = 0
        for _ in range(max_ticks):
            requests = self.requests()
            if not requests:
                return n
            for r in requests:
                self.run(r)
                n += 1
        raise AssertionError(f"not caught up after {max_ticks} ticks")


def harness(
    bootstrap: str,
    topic: str,
    duckdb_file: Path,
    instance: dg.DagsterInstance,
    max_records: int = 200_000,
    warehouse: WarehouseResource | None = None,
    quality: QualityResource | None = None,
    signals_kafka: KafkaResource | None = None,
) -> Harness:
    url = f"duckdb:///{duckdb_file}"
    defs = build_defs(
        kafka=KafkaResource(
            bootstrap_servers=bootstrap, topic=topic, max_records=max_records, read_timeout_s=60.0
        ),
        warehouse=warehouse or WarehouseResource(url=url),
        sensor_retry_base_s=0.0,
        quality=quality or QualityResource(),
        signals_kafka=signals_kafka,
    )
    return Harness(defs, instance, bootstrap, topic, url)


def kafka_without_broker(topic: str = "polygon-market-data") -> KafkaResource:
    """A Kafka resource whose broker never answers (port 9, discard), asked for 0.5 s at most.

    For signal runs that read no records: the run then cannot see any partition caught up,
    and finality rests on what each partition loaded (pipeline/warehouse/finality.py).
    """
    return KafkaResource(bootstrap_servers="127.0.0.1:9", topic=topic, metadata_timeout_s=0.5)
