"""Asset check specs around the quality gates (pipeline/quality.py): blocking, one per gate."""

from __future__ import annotations

import dagster as dg

from pipeline.quality import INGEST_CHECKS, SIGNAL_CHECKS, CheckOutcome, QualityReport

_SEVERITY = {"ERROR": dg.AssetCheckSeverity.ERROR, "WARN": dg.AssetCheckSeverity.WARN}

INGEST_CHECK_SPECS = [
    dg.AssetCheckSpec(c.name, asset=c.asset, blocking=True, description=c.description)
    for c in INGEST_CHECKS
]
# The same gates on the live path's loads (asset live_signals: assets/ingest.py).
LIVE_CHECK_SPECS = [
    dg.AssetCheckSpec(c.name, asset="live_signals", blocking=True, description=c.description)
    for c in INGEST_CHECKS
]
SIGNAL_CHECK_SPECS = [
    dg.AssetCheckSpec(c.name, asset=c.asset, blocking=True, description=c.description)
    for c in SIGNAL_CHECKS
]


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """Return the Dagster check result of one gate outcome."""
    return dg.AssetCheckResult(
        asset_key=outcome.asset,
        check_name=outcome.name,
        passed=outcome.passed,
        severity=_SEVERITY[outcome.severity],
        metadata={"observed": dg.MetadataValue.json(outcome.observed)},
    )


def check_results(report: QualityReport, asset: str | None = None) -> list[dg.AssetCheckResult]:
    """Return the check results of a report (only those of ``asset`` when given)."""
    return [check_result(o) for o in report.outcomes if asset is None or o.asset == asset]


def skipped_results(specs: list[dg.AssetCheckSpec], reason: str) -> list[dg.AssetCheckResult]:
    """Return passing results for runs that validated nothing (e.g. an already loaded range)."""
    return [
        dg.AssetCheckResult(
            asset_key=s.asset_key, check_name=s.name, passed=True, metadata={"skipped": reason}
        )
        for s in specs
    ]
