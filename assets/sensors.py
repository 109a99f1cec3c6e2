"""``market_data_sensor``: Kafka high watermarks vs. the warehouse ledger -> microbatch runs.

(``live_signals_sensor`` does the same for the trading-signals topic -> ``live_signals`` runs.)

(And ``stale_signals_sensor``: ledger batches a day's signals run did not read -> a recompute.)

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

import hashlib
import json
import time
from datetime import date

import dagster as dg

from assets.ingest import LIVE_ASSET, START_TAG, STOP_TAG, TP_TAG, tp_tag_value
from assets.jobs import ingest_job, live_signals_job, signals_job
from assets.resources import KafkaResource, WarehouseResource
from pipeline.errors import KafkaError, TopicRecreatedError, WarehouseLockedError
from pipeline.microbatch import plan_microbatches
from pipeline.warehouse.finality import RunRead, TradeBatch, days_to_recompute, parse_ledger_ends
from pipeline.warehouse.topic_identity import check_topic_identity

# A microbatch reads at most MICROSTRUCTURE_MAX_RECORDS (200,000) records: seconds of work.
MICROBATCH_MAX_RUNTIME_S = 900

SENSOR_INTERVAL_S = 15
STALE_INTERVAL_S = 60
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
    policy = (retry_base_s, retry_cap_s, max_attempts)

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
        return plan_requests(context, kafka, warehouse, ingest_job.name, "market_data", policy)

    return market_data_sensor


def build_live_signals_sensor(
    retry_base_s: float = RETRY_BASE_S,
    retry_cap_s: float = RETRY_CAP_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> dg.SensorDefinition:
    """Build ``live_signals_sensor``: the trading-signals topic's microbatches (issue 17.5).

    The market-data sensor's planning on the topic ``microstructure live-signals`` writes
    (resource ``signals_kafka``), requesting ``live_signals_job`` runs; same ledger, same
    run keys (they name the topic), same retries and stuck reports.

    Returns
    -------
    dagster.SensorDefinition
        The sensor, targeting ``live_signals_job``.
    """
    policy = (retry_base_s, retry_cap_s, max_attempts)

    @dg.sensor(
        name="live_signals_sensor",
        job=live_signals_job,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def live_signals_sensor(
        context: dg.SensorEvaluationContext,
        signals_kafka: KafkaResource,
        warehouse: WarehouseResource,
    ) -> dg.SensorResult | dg.SkipReason:
        """Request one microbatch run per lagging partition of the trading-signals topic."""
        return plan_requests(
            context, signals_kafka, warehouse, live_signals_job.name, LIVE_ASSET, policy
        )

    return live_signals_sensor


def plan_requests(
    context: dg.SensorEvaluationContext,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    job_name: str,
    op: str,
    policy: tuple[float, float, int],
) -> dg.SensorResult | dg.SkipReason:
    """Plan one microbatch run per lagging partition of ``kafka.topic`` (both sensors).

    Parameters
    ----------
    context
        The sensor's context (instance, logs).
    kafka, warehouse
        The topic and the warehouse whose ledger says where loading stands.
    job_name, op
        The job the runs execute and the asset (op) their config is for.
    policy
        ``(retry_base_s, retry_cap_s, max_attempts)``.

    Returns
    -------
    dagster.SensorResult | dagster.SkipReason
        The run requests, or why there are none.
    """
    retry_base_s, retry_cap_s, max_attempts = policy
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
        for run in context.instance.get_runs(dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS))
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
            microbatch_request(
                kafka.topic, batch.partition, batch.stop, attempt, batch.start, op=op
            )
        )
    if not requests:
        return dg.SkipReason(
            "; ".join(stuck)
            if stuck
            else "lagging partitions have a run queued, running or backing off"
        )
    return dg.SensorResult(run_requests=requests)


def microbatch_request(
    topic: str,
    partition: int,
    stop: int,
    attempt: int = 0,
    start: int | None = None,
    op: str = "market_data",
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
    op
        The asset whose config the request sets (``market_data`` or ``live_signals``).

    Returns
    -------
    dagster.RunRequest
        Keyed ``<topic>:<partition>:<stop>[:retry<n>]``.
    """
    return dg.RunRequest(
        run_key=run_key(topic, partition, stop, attempt),
        run_config={"ops": {op: {"config": {"partition": partition, "stop_offset": stop}}}},
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
live_signals_sensor = build_live_signals_sensor()


@dg.sensor(
    name="stale_signals_sensor",
    job=signals_job,
    minimum_interval_seconds=STALE_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def stale_signals_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    """Recompute a day whose signals run did not read trades loaded into its session since.

    The cursor is the ledger end per partition already looked at, so a tick reads only the
    batches committed since (one ranged query per partition) and the current runs of the
    days they touch: its cost follows the new batches, not the history. The rule is
    :func:`pipeline.warehouse.finality.days_to_recompute`; until the recompute commits,
    MCP shows the day as not final (the serving catalog applies the same rule).
    """
    seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    try:
        wh = warehouse.open(read_only=True, lock_timeout_s=SENSOR_LOCK_TIMEOUT_S)
        frontier = wh.ledger_frontier()
        batches: list[TradeBatch] = []
        cursor = dict(seen)
        for (topic, part), end in sorted(frontier.partitions.items()):
            key = f"{topic}:{part}"
            since = seen.get(key, 0)
            if end.next_offset < since:
                # The ledger went back: the topic was recreated and acknowledged, and its
                # partitions load from their new start again.
                since = 0
            if end.next_offset <= since:
                continue
            rows = wh.query_frame("trade_batches_after", (topic, part, since))
            new = [
                TradeBatch(str(t), int(p), int(stop), int(lo), int(hi))
                for t, p, stop, lo, hi in rows.itertuples(index=False)
            ]
            batches += new
            # Rows may have committed after the frontier was read: they were seen too.
            cursor[key] = max([end.next_offset, *(b.stop for b in new)])
        days = sorted({d for b in batches for d in b.days()})
        runs: dict[date, RunRead] = {}
        if days:
            latest = wh.query_frame("signal_runs_latest", (days[0], days[-1]))
            for r in latest.to_dict("records"):
                # DuckDB hands dates back as Timestamps, which hash unlike the date.
                d = date.fromisoformat(str(r["date"])[:10])
                runs[d] = RunRead(bool(r["final"]), parse_ledger_ends(r["ledger_ends"]))
    except WarehouseLockedError as e:
        return dg.SkipReason(f"not checked this tick: {e}")
    due = days_to_recompute(batches, runs, time.time_ns())
    tag = hashlib.sha256(json.dumps(cursor, sort_keys=True).encode()).hexdigest()[:12]
    requests = [
        dg.RunRequest(
            run_key=f"signals:{d.isoformat()}:stale:{tag}",
            partition_key=d.isoformat(),
            tags={"signals/kind": "stale"},
        )
        for d in due
    ]
    for d in due:
        context.log.info(f"{d}: trades loaded after its signals run; recomputing")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
