"""The Dagster code location: ``defs`` (workspace.yaml loads ``assets.definitions:defs``)."""

from __future__ import annotations

import os

import dagster as dg

from assets.ingest import live_signals, market_data
from assets.jobs import ingest_job, live_signals_job, signals_job
from assets.resources import KafkaResource, QualityResource, WarehouseResource
from assets.schedules import signals_daily_schedule, signals_hourly_schedule
from assets.sensors import (
    build_live_signals_sensor,
    build_market_data_sensor,
    live_signals_sensor,
    market_data_sensor,
    stale_signals_sensor,
)
from assets.signals import signal_tables
from pipeline.errors import ConfigError
from pipeline.settings import Settings, parse_kafka_config

KAFKA_CONFIG_ENV = "MICROSTRUCTURE_KAFKA_CONFIG"
WAREHOUSE_URL_ENV = "MICROSTRUCTURE_WAREHOUSE_URL"

enriched_market_data = dg.AssetSpec(
    "enriched_market_data",
    deps=["market_data", "trading_signals"],
    group_name="serving",
    kinds={"duckdb"},
    description="View: every trade joined with its signal (what the MCP server reads).",
)


def _parsed_env(name: str) -> dict[str, str] | None:
    """Return the Kafka settings in environment variable ``name`` (None if unparsable)."""
    try:
        return parse_kafka_config(os.environ.get(name, ""))
    except ConfigError:
        return None


def resources_from_settings(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Return the ``kafka``, ``signals_kafka``, ``warehouse`` and ``quality`` resources.

    Parameters
    ----------
    settings
        Platform settings (environment).

    Returns
    -------
    dict[str, dagster.ConfigurableResource]
        Resource key -> resource.

    Notes
    -----
    The Dagster UI shows every resource's configured values. The Kafka pass-through settings
    (which may hold ``sasl.password``) and the warehouse URL are therefore handed over as
    ``dg.EnvVar`` references to the variables they came from: the UI shows the variable's
    name, and the run resolves it in its own process.
    """
    extra: str = ";".join(f"{k}={v}" for k, v in settings.kafka_extra.items())
    if settings.kafka_extra and _parsed_env(KAFKA_CONFIG_ENV) == dict(settings.kafka_extra):
        extra = dg.EnvVar(KAFKA_CONFIG_ENV)
    url: str = settings.warehouse_url
    if os.environ.get(WAREHOUSE_URL_ENV, "").strip() == url:
        url = dg.EnvVar(WAREHOUSE_URL_ENV)
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.bootstrap_servers,
            topic=settings.topic,
            extra_config=extra,
            max_records=settings.max_records,
            future_tolerance_s=settings.future_tolerance_s,
        ),
        # The live path's topic, loaded by the same microbatches (assets.ingest.live_signals).
        "signals_kafka": KafkaResource(
            bootstrap_servers=settings.bootstrap_servers,
            topic=settings.signals_topic,
            extra_config=extra,
            max_records=settings.max_records,
            future_tolerance_s=settings.future_tolerance_s,
        ),
        "warehouse": WarehouseResource(url=url),
        "quality": QualityResource(known_symbols=list(settings.symbols)),
    }


def build_defs(
    kafka: KafkaResource | None = None,
    warehouse: WarehouseResource | None = None,
    settings: Settings | None = None,
    sensor_retry_base_s: float | None = None,
    quality: QualityResource | None = None,
    signals_kafka: KafkaResource | None = None,
) -> dg.Definitions:
    """Build the definitions; tests pass their own broker and warehouse file.

    Parameters
    ----------
    kafka, warehouse, quality, signals_kafka
        Resources to use instead of the ones from ``settings``.
    settings
        Defaults for missing resources (the environment when omitted).
    sensor_retry_base_s
        Backoff base of the sensor's re-requests (default 30 s; tests use 0).

    Returns
    -------
    dagster.Definitions
        Assets, sensor, schedules, jobs and resources.
    """
    resources = resources_from_settings(settings or Settings.from_env())
    if kafka is not None:
        resources["kafka"] = kafka
    if warehouse is not None:
        resources["warehouse"] = warehouse
    if quality is not None:
        resources["quality"] = quality
    if signals_kafka is not None:
        resources["signals_kafka"] = signals_kafka
    return dg.Definitions(
        assets=[market_data, live_signals, signal_tables, enriched_market_data],
        jobs=[ingest_job, live_signals_job, signals_job],
        sensors=[
            market_data_sensor
            if sensor_retry_base_s is None
            else build_market_data_sensor(retry_base_s=sensor_retry_base_s),
            live_signals_sensor
            if sensor_retry_base_s is None
            else build_live_signals_sensor(retry_base_s=sensor_retry_base_s),
            stale_signals_sensor,
        ],
        schedules=[signals_hourly_schedule, signals_daily_schedule],
        resources=resources,
    )


defs = build_defs()
