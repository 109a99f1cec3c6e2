"""The Dagster code location: ``defs`` (workspace.yaml loads ``assets.definitions:defs``)."""

from __future__ import annotations

import dagster as dg

from assets.ingest import market_data
from assets.jobs import ingest_job, signals_job
from assets.resources import KafkaResource, QualityResource, WarehouseResource
from assets.schedules import signals_daily_schedule, signals_hourly_schedule
from assets.sensors import build_market_data_sensor, market_data_sensor
from assets.signals import signal_tables
from pipeline.settings import Settings

enriched_market_data = dg.AssetSpec(
    "enriched_market_data",
    deps=["market_data", "trading_signals"],
    group_name="serving",
    kinds={"duckdb"},
    description="View: every trade joined with its signal (what the MCP server reads).",
)


def resources_from_settings(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Return the ``kafka``, ``warehouse`` and ``quality`` resources from ``settings``.

    Parameters
    ----------
    settings
        Platform settings (environment).

    Returns
    -------
    dict[str, dagster.ConfigurableResource]
        Resource key -> resource.
    """
    extra = ";".join(f"{k}={v}" for k, v in settings.kafka_extra.items())
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.bootstrap_servers,
            topic=settings.topic,
            extra_config=extra,
            max_records=settings.max_records,
            future_tolerance_s=settings.future_tolerance_s,
        ),
        "warehouse": WarehouseResource(url=settings.warehouse_url),
        "quality": QualityResource(known_symbols=list(settings.symbols)),
    }


def build_defs(
    kafka: KafkaResource | None = None,
    warehouse: WarehouseResource | None = None,
    settings: Settings | None = None,
    sensor_retry_base_s: float | None = None,
    quality: QualityResource | None = None,
) -> dg.Definitions:
    """Build the definitions; tests pass their own broker and warehouse file.

    Parameters
    ----------
    kafka, warehouse, quality
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
    return dg.Definitions(
        assets=[market_data, signal_tables, enriched_market_data],
        jobs=[ingest_job, signals_job],
        sensors=[
            market_data_sensor
            if sensor_retry_base_s is None
            else build_market_data_sensor(retry_base_s=sensor_retry_base_s)
        ],
        schedules=[signals_hourly_schedule, signals_daily_schedule],
        resources=resources,
    )


defs = build_defs()
