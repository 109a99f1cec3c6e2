"""Jobs: ``ingest_job``, ``live_signals_job`` (a microbatch per run), ``signals_job`` (a day)."""

from __future__ import annotations

import dagster as dg

from assets.ingest import live_signals, market_data
from assets.signals import SIGNAL_GROUP

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets(market_data),
    description="Load one Kafka offset range into the warehouse (requested by market_data_sensor).",
)

live_signals_job = dg.define_asset_job(
    "live_signals_job",
    selection=dg.AssetSelection.assets(live_signals),
    description="Load one offset range of the trading-signals topic (live_signals_sensor).",
)

signals_job = dg.define_asset_job(
    "signals_job",
    # Partitioned by trading_days, inferred from the selected assets.
    selection=dg.AssetSelection.groups(SIGNAL_GROUP),
    description="Compute and publish the signal tables of one New York trading day.",
)
