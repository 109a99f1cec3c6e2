"""Jobs: ``ingest_job`` (one microbatch per run) and ``signals_job`` (one trading day per run)."""

from __future__ import annotations

import dagster as dg

from assets.ingest import market_data
from assets.signals import SIGNAL_GROUP

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(market_data),
    description="Load one Kafka offset range into the warehouse (requested by market_data_sensor).",
)

signals_job = dg.define_asset_job(
    "signals_job",
    # Partitioned by trading_days, inferred from the selected assets.
    selection=dg.AssetSelection.groups(SIGNAL_GROUP),
    description="Compute and publish the signal tables of one New York trading day.",
)
