"""``market_data_sensor``: Kafka high watermarks vs. the warehouse ledger -> microbatch runs.

The sensor never consumes messages and never commits offsets: it reads the watermarks
and the topic id (two metadata calls), the ledger (two small queries) and the instance's
runs, and asks for ``stop`` only (architecture.md 4). A topic whose Kafka id is not the
ledger's (deleted and recreated) is not planned: the skip reason names both ids and the
command that acknowledges the new topic. The run key ``<topic>:<partition>:<stop>`` makes idle
ticks free; a partition with a queued or running run is skipped, and a failed range is
re-requested as ``<key>:retry<n>`` with capped backoff until it is declared stuck.
Attempts are counted per start offset (the ledger position a run was planned from): a
batch that always fails keeps its start while new trades move its stop.
"""

# No `from __future__ import annotations`: Dagster reads the parameter annotations
# (config and resource types) at definition time.

import time

import dagster as dg

from assets.ingest import START_TAG, STOP_TAG, TP_TAG, tp_tag_value
from assets.jobs import ingest_job
from assets.resources import KafkaResource, WarehouseResource
from pipeline.errors import KafkaError, TopicRecreatedError, WarehouseLockedError
from pipeline.microbatch import plan_microbatches
from pipeline.warehouse.topic_identity import check_topic_identity

# A microbatch reads at most MICROSTRUCTURE_MAX_RECORDS (200,000) records: seconds of work.
MICROBATCH_MAX_RUNTIME_S = 900

SENSOR_INTERVAL_S = 15
MAX_ATTEMPTS = 5
RETRY_BASE_S = 30.0
RETRY_CAP_S = 600.0
# The sensor must stay far below Dagster's 60 s evaluation deadline.
SENSOR_LOCK_TIMEOUT_S = 10.0

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def run_key(topic: str, partition: int, stop: int, attempt: int = 0) -> str:
    """Return the run key of a microbatch request (``:retry<n>`` after ``n`` earlier runs)."""
    base = f"{topic}:{partition}:{stop}"
    return base if attempt == 0 else f"{base}:retry{attempt}"


def build_market_data_sensor(
    retry_base_s: float = RETRY_BASE_S,
    retry_cap_s: float = RETRY_CAP_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> dg.SensorDefinition:
    """Build ``market_data_sensor`` with a retry policy (tests shorten the backoff).

    Parameters
    ----------
    retry_base_s, retry_cap_s
        Backoff before re-requesting a range whose run did not move the ledger:
        ``min(cap, base * 2 ** (attempt - 1))`` after the last run ended.
    max_attempts
        Runs per range before the partition is reported stuck and left alone.

    Returns
    -------
    dagster.SensorDefinition
        The sensor, targeting ``ingest_job``.
    """

    @dg.sensor(
        name="market_data_sensor",
        job=ingest_job,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def market_data_sensor(
        context: dg.SensorEvaluationContext,
        kafka: KafkaResource,
        warehouse: WarehouseResource,
    ) -> dg.SensorResult | dg.SkipReason:
        """Request one microbatch run per lagging topic-partition (upper offset only)."""
        try:
            marks = kafka.watermarks()
            wh = warehouse.open(lock_timeout_s=SENSOR_LOCK_TIMEOUT_S)
            # A recreated topic (another Kafka topic id than the ledger's) is not planned:
            # its runs would fail until an operator acknowledges it, so say so instead.
            check_topic_identity(wh.topic_incarnation(kafka.topic), kafka.topic_id())
            ledger = wh.next_offsets(kafka.topic)
        except (KafkaError, WarehouseLockedError) as e:
            return dg.SkipReason(f"not planned this tick: {e}")
        except TopicRecreatedError as e:
            context.log.error(str(e))
            return dg.SkipReason(str(e))
        planned, warnings = plan_microbatches(marks, ledger, kafka.max_records)
        for w in warnings:
            context.log.warning(w)
        if not planned:
            return dg.SkipReason(f"{kafka.topic}: every partition is loaded to its high watermark")
        busy = {
            run.tags.get(TP_TAG)
            for run in context.instance.get_runs(
                dg.RunsFilter(job_name=ingest_job.name, statuses=IN_PROGRESS)
            )
        }
        requests: list[dg.RunRequest] = []
        stuck: list[str] = []
        now = time.time()
        for batch in planned:
            tp = tp_tag_value(kafka.topic, batch.partition)
            if tp in busy:
                continue
            # Runs planned from this start that did not move the ledger (a run that had
            # committed would have moved it past this start).
            earlier = context.instance.get_run_records(
                dg.RunsFilter(tags={TP_TAG: tp, START_TAG: str(batch.start)}), limit=max_attempts
            )
            attempt = len(earlier)
            if attempt >= max_attempts:
                message = (
                    f"{tp} is stuck: {attempt} runs from offset {batch.start} left the ledger "
                    "there; see the failed ingest_job runs"
                )
                context.log.error(message)
                stuck.append(message)
                continue
            if attempt:
                last_end = max(r.end_time or r.create_timestamp.timestamp() for r in earlier)
                if now - last_end < min(retry_cap_s, retry_base_s * 2 ** (attempt - 1)):
                    continue
            requests.append(
                microbatch_request(kafka.topic, batch.partition, batch.stop, attempt, batch.start)
            )
        if not requests:
            return dg.SkipReason(
                "; ".join(stuck)
                if stuck
                else "lagging partitions have a run queued, running or backing off"
            )
        return dg.SensorResult(run_requests=requests)

    return market_data_sensor


def microbatch_request(
    topic: str, partition: int, stop: int, attempt: int = 0, start: int | None = None
) -> dg.RunRequest:
    """Return the run request of one microbatch: two integers of config and the tp tags.

    Parameters
    ----------
    topic, partition
        The topic-partition.
    stop
        Exclusive upper offset.
    attempt
        Earlier runs from the same start (0 for the first request).
    start
        The ledger position the request was planned from (tagged: retries count per start;
        the run itself reads its start from the ledger).

    Returns
    -------
    dagster.RunRequest
        Keyed ``<topic>:<partition>:<stop>[:retry<n>]``.
    """
    return dg.RunRequest(
        run_key=run_key(topic, partition, stop, attempt),
        run_config={
            "ops": {"market_data": {"config": {"partition": partition, "stop_offset": stop}}}
        },
        tags={
            TP_TAG: tp_tag_value(topic, partition),
            STOP_TAG: str(stop),
            **({} if start is None else {START_TAG: str(start)}),
            # Run monitoring (docker/dagster.yaml) fails a run past this bound, so a hung
            # broker read cannot hold the partition's one-run slot forever.
            "dagster/max_runtime": str(MICROBATCH_MAX_RUNTIME_S),
        },
    )


market_data_sensor = build_market_data_sensor()
