"""``market_data`` and ``live_signals``: one Kafka microbatch per run, loaded exactly once.

Both assets are the same loader (architecture.md 4) on two topics: ``market_data`` reads the
market-data topic, ``live_signals`` the trading-signals topic that ``microstructure
live-signals`` writes (issue 17.5). Each run reads ``[ledger end, stop)`` of one partition,
shapes it (``pipeline.microbatch.shape_batch`` files every record by its schema), runs the
ingest gates and commits the rows with their ledger row in one warehouse transaction.
"""

# No `from __future__ import annotations`: Dagster reads the parameter annotations
# (config and resource types) at definition time.

from dataclasses import replace

import dagster as dg

from assets.checks import (
    INGEST_CHECK_SPECS,
    LIVE_CHECK_SPECS,
    check_results,
    skipped_results,
)
from assets.resources import KafkaResource, QualityResource, WarehouseResource
from pipeline.errors import KafkaError
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.quality import validate_batch
from pipeline.warehouse.topic_identity import TopicIncarnation, check_topic_identity

INGEST_GROUP = "ingest"
LIVE_ASSET = "live_signals"
TP_TAG = "ingest/tp"
STOP_TAG = "ingest/stop"
# The ledger position a run was planned from: retries are counted per start, because the
# stop moves with every tick while new trades arrive and would reset a count kept per stop.
START_TAG = "ingest/start"


class MicrobatchConfig(dg.Config):
    """Run config: two integers, never payloads; the lower bound comes from the ledger."""

    partition: int
    stop_offset: int


def tp_tag_value(topic: str, partition: int) -> str:
    """Return the ``ingest/tp`` tag value (one queued or running run per value)."""
    return f"{topic}-{partition}"


@dg.asset(group_name=INGEST_GROUP, kinds={"kafka", "duckdb"}, check_specs=INGEST_CHECK_SPECS)
def market_data(
    context: dg.AssetExecutionContext,
    config: MicrobatchConfig,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    quality: QualityResource,
) -> dg.MaterializeResult:
    """Trades from the market-data topic, loaded exactly once per Kafka offset.

    Each run reads ``[ledger end, stop_offset)`` of one partition, runs the ingest gates
    and writes trades, quotes, aggregates, rejects, gaps (with their repair state), verdict
    and ledger row in one warehouse transaction. A topic recreated under the ledger's name
    (another Kafka topic id) fails the run with ``TopicRecreatedError`` and writes nothing.
    """
    return load_microbatch(context, config, kafka, warehouse, quality, "market_data")


@dg.asset(
    name=LIVE_ASSET,
    group_name=INGEST_GROUP,
    kinds={"kafka", "duckdb"},
    check_specs=LIVE_CHECK_SPECS,
)
def live_signals(
    context: dg.AssetExecutionContext,
    config: MicrobatchConfig,
    signals_kafka: KafkaResource,
    warehouse: WarehouseResource,
    quality: QualityResource,
) -> dg.MaterializeResult:
    """Load the live path's provisional signals (trading-signals topic) exactly once.

    The loader of ``market_data`` on the topic ``microstructure live-signals`` writes: each
    run loads ``[ledger end, stop_offset)`` of one partition into ``live_signals`` (and the
    input records the live path refused into ``live_signal_rejects``) with its ledger row in
    one transaction. A record repeated by the at-least-once producer (same input key) is
    stored once and counted in ``n_signal_duplicates``; a record that is not a valid live
    record is a ``market_data_rejects`` row with its reason.
    """
    return load_microbatch(context, config, signals_kafka, warehouse, quality, LIVE_ASSET)


def load_microbatch(
    context: dg.AssetExecutionContext,
    config: MicrobatchConfig,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    quality: QualityResource,
    asset: str,
) -> dg.MaterializeResult:
    """Load one offset range of ``kafka.topic`` exactly once (the body of both assets).

    Parameters
    ----------
    context
        The run's context (logs, run id).
    config
        Partition and exclusive stop offset; the start comes from the ledger.
    kafka, warehouse, quality
        The topic, the warehouse and the ingest gates' settings.
    asset
        The asset the run materializes (its checks carry this key).

    Returns
    -------
    dagster.MaterializeResult
        Counts as committed and one check result per ingest gate.
    """
    wh = warehouse.open()
    # The topic's identity, before anything is read: the ledger's offsets are the offsets
    # of the topic it loaded, and a recreated topic's must not be read from the old end.
    incarnation = wh.topic_incarnation(kafka.topic)
    topic_id = kafka.topic_id()
    check_topic_identity(incarnation, topic_id)
    start = wh.next_offset(kafka.topic, config.partition)
    if start is None:
        start = kafka.watermarks()[config.partition][0]
    if start >= config.stop_offset:
        context.log.info(
            f"{kafka.topic}:{config.partition} already loaded to {start} >= {config.stop_offset}"
        )
        return dg.MaterializeResult(
            metadata={"noop": True, "partition": config.partition, "next_offset": start},
            check_results=skipped_results(
                LIVE_CHECK_SPECS if asset == LIVE_ASSET else INGEST_CHECK_SPECS,
                "range already loaded",
            ),
        )
    offsets = OffsetRange(kafka.topic, config.partition, start, config.stop_offset)
    batch = shape_batch(
        kafka.read_range(offsets), offsets, future_tolerance_s=kafka.future_tolerance_s
    )
    # Recreated while the range was read: the records may be the new topic's. Checked again
    # after the read (the load transaction checks the ledger's side once more).
    epoch = 0 if incarnation is None else incarnation.epoch
    check_topic_identity(TopicIncarnation(kafka.topic, epoch, topic_id), kafka.topic_id())
    warehouse.fault_point("after_read")
    # The gates judge the batch; it commits either way (its bad records are already
    # rejects) and a failed verdict blocks the signals of the days it holds.
    report = validate_batch(batch, quality.known_symbols, quality.max_reject_ratio)
    loaded = wh.load_batch(
        batch,
        expected_start=start,
        run_id=context.run.run_id,
        quality=report.verdict(),
        topic_id=topic_id,
    )
    advisory = "committed"
    try:
        kafka.commit_advisory(config.partition, config.stop_offset)
    except KafkaError as e:
        # The rows and the ledger are durable; the group offset only feeds lag dashboards.
        advisory = f"failed: {e}"
        context.log.warning(f"advisory commit of {offsets} failed after COMMIT: {e}")
    return dg.MaterializeResult(
        metadata={
            "noop": False,
            "offsets": str(offsets),
            "partition": config.partition,
            "start_offset": start,
            "stop_offset": config.stop_offset,
            "n_messages": loaded.n_messages,
            "n_trades": loaded.n_trades,
            "n_duplicates": loaded.n_duplicates,
            "n_rejects": loaded.n_rejects,
            "n_gaps": loaded.n_gaps,
            "n_quotes": loaded.n_quotes,
            "n_quote_duplicates": loaded.n_quote_duplicates,
            "n_aggregates": loaded.n_aggregates,
            "n_aggregate_duplicates": loaded.n_aggregate_duplicates,
            "n_signals": loaded.n_signals,
            "n_signal_duplicates": loaded.n_signal_duplicates,
            "n_signal_rejects": loaded.n_signal_rejects,
            "dagster/row_count": loaded.n_signals if asset == LIVE_ASSET else loaded.n_trades,
            "advisory_commit": advisory,
            "quality_passed": report.passed,
            "quality_s": round(report.elapsed_s, 4),
        },
        check_results=check_results(
            replace(report, outcomes=tuple(replace(o, asset=asset) for o in report.outcomes))
        ),
    )
