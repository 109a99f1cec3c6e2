"""The signal tables of one New York trading day, computed and published together.

``trading_signals``, ``symbol_day_metrics`` and ``trade_intensity`` are one multi-asset:
the day is read, computed by the kernels, audited and published in one warehouse
transaction (stage -> audit -> publish, architecture.md 5).
"""

# No `from __future__ import annotations`: Dagster reads the parameter annotations
# (config and resource types) at definition time.

import time
from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import dagster as dg

from assets.checks import SIGNAL_CHECK_SPECS, check_results
from assets.ingest import market_data
from assets.partitions import session_close_ns, trading_days
from assets.resources import KafkaResource, QualityResource, WarehouseResource
from pipeline.errors import KafkaError
from pipeline.nytime import day_bounds_ns
from pipeline.quality import QualityReport, audit_report, validate_signals
from pipeline.warehouse.base import InDatabaseRun, SignalAudit, Warehouse
from pipeline.warehouse.finality import LedgerFrontier, ingested_through, is_final
from pipeline.warehouse.provenance import build_signal_run, params_json
from pipeline.warehouse.queries import SIGNAL_PASSTHROUGH

if TYPE_CHECKING:
    from udx.kernels import Params

SIGNAL_GROUP = "signals"
# Lineage carried from market_data onto every per-trade row (and the enriched view's join).
PASSTHROUGH = SIGNAL_PASSTHROUGH

SIGNAL_SPECS = [
    dg.AssetSpec(
        "trading_signals",
        deps=[market_data],
        group_name=SIGNAL_GROUP,
        kinds={"duckdb"},
        description="Per regular-hours trade: returns, Lee-Mykland, GARCH, BNS, ACD, "
        "intensity z-score and the BUY/SELL/HOLD signal (rule v1).",
    ),
    dg.AssetSpec(
        "symbol_day_metrics",
        deps=[market_data],
        group_name=SIGNAL_GROUP,
        kinds={"duckdb"},
        description="Per symbol-day: daily BNS test, GARCH and ACD fits, VWAP, jump count.",
    ),
    dg.AssetSpec(
        "trade_intensity",
        deps=[market_data],
        group_name=SIGNAL_GROUP,
        kinds={"duckdb"},
        description="Per symbol, day and one-minute bucket: trade count and trailing z-score.",
    ),
]


@dg.multi_asset(
    specs=SIGNAL_SPECS,
    check_specs=SIGNAL_CHECK_SPECS,
    partitions_def=trading_days,
    can_subset=False,
    name="signal_tables",
)
def signal_tables(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    quality: QualityResource,
    kafka: KafkaResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Compute the day's signals from its regular-hours trades, audit them, publish the day.

    A failed audit publishes nothing: the last good version of the day stays visible. The
    day is final only when every partition is loaded past its close plus the grace
    (pipeline/warehouse/finality.py).
    """
    # Heavy imports (numba kernels) stay out of definition loading.
    from pipeline.signals.assemble import compute_frames
    from udx.kernels import KERNEL_VERSION, Params

    day = date.fromisoformat(context.partition_key)
    wh = warehouse.open()
    params = Params()
    failed_inputs = wh.failed_batches(*day_bounds_ns(day))
    if wh.computes_signals_in_database:
        # Vertica: batch_microstructure computes the day next to the data (udx/vertica).
        frontier = wh.ledger_frontier()
        yield from _in_database(
            context,
            wh,
            day,
            params,
            failed_inputs,
            quality.allow_failed_batches,
            frontier,
            _through(context, kafka, frontier),
        )
        return
    day_input = wh.read_day(day)
    trades, frontier = day_input.trades, day_input.frontier
    # Kafka's high watermarks are read after the ledger (finality.py's caught-up rule).
    through_ns = _through(context, kafka, frontier)
    frames = compute_frames(trades, params, passthrough=PASSTHROUGH)
    report = validate_signals(
        frames,
        day.isoformat(),
        n_input_trades=len(trades),
        n_input_symbols=len(trades["symbol"].unique()),
        n_buckets=params.n_buckets,
        failed_input_batches=failed_inputs,
        allow_failed_inputs=quality.allow_failed_batches,
    )
    wh.record_quality(context.run.run_id, report.rows())
    if not report.passed:
        yield from check_results(report)
        raise _audit_failure(day, report)
    run = build_signal_run(
        run_id=context.run.run_id,
        day=day,
        trades=trades,
        frames=frames,
        kernel_version=KERNEL_VERSION,
        params=params.to_dict(),
        computed_ns=time.time_ns(),
        session_close_ns=session_close_ns(day),
        ingested_through_ns=through_ns,
        ledger_ends_json=frontier.ends_json(),
        quality_passed=report.passed,
        quality_summary_json=report.summary_json(),
    )
    if trades.empty:
        context.log.warning(f"no regular-hours trades loaded for {day}; nothing published")
        published = None
    else:
        published = wh.publish_signals(day, frames, run)
    report_metadata = _report_metadata(context, frames, day) if published is not None else {}
    common = {
        "day": day.isoformat(),
        "kernel_version": KERNEL_VERSION,
        "content_hash": run.content_hash,
        "final": run.final,
        "input_offsets": run.input_offsets_json,
        "published": published is not None,
        "quality_s": round(report.elapsed_s, 4),
    }
    yield dg.MaterializeResult(
        asset_key="trading_signals",
        metadata={
            **common,
            "dagster/row_count": run.n_trades,
            "n_jumps": int(frames.trade_signals["jump_detected"].to_numpy(dtype=bool).sum()),
            **report_metadata,
        },
        check_results=check_results(report, "trading_signals"),
    )
    yield dg.MaterializeResult(
        asset_key="symbol_day_metrics",
        metadata={**common, "dagster/row_count": run.n_symbols},
        check_results=check_results(report, "symbol_day_metrics"),
    )
    yield dg.MaterializeResult(
        asset_key="trade_intensity",
        metadata={**common, "dagster/row_count": run.n_buckets},
        check_results=check_results(report, "trade_intensity"),
    )


def _through(
    context: dg.AssetExecutionContext, kafka: KafkaResource, frontier: LedgerFrontier
) -> int | None:
    """Return what every partition is loaded through; without Kafka, no partition is caught up."""
    try:
        watermarks = kafka.watermarks()
    except KafkaError as e:
        context.log.warning(f"high watermarks unavailable ({e}); quiet partitions hold finality")
        watermarks = None
    return ingested_through(frontier, kafka.topic, watermarks)


def _in_database(
    context: dg.AssetExecutionContext,
    wh: Warehouse,
    day: date,
    params: "Params",
    failed_inputs: list[str],
    allow_failed_inputs: bool,
    frontier: LedgerFrontier,
    ingested_through_ns: int | None,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Compute, audit and publish ``day`` inside the warehouse (the Vertica UDx path).

    The same checks as the Python path (:data:`pipeline.quality.SIGNAL_CHECKS`), judged by
    :func:`pipeline.quality.audit_report` on counts taken in the publishing transaction:
    a failed check rolls the day back, exactly as a failed frame audit publishes nothing.
    """
    from udx.kernels import KERNEL_VERSION

    reports: list[QualityReport] = []
    started = time.perf_counter()

    def judge(audit: SignalAudit) -> tuple[bool, str | None]:
        report = audit_report(
            audit,
            day.isoformat(),
            n_buckets=params.n_buckets,
            failed_input_batches=failed_inputs,
            allow_failed_inputs=allow_failed_inputs,
            elapsed_s=time.perf_counter() - started,
        )
        reports.append(report)
        return report.passed, report.summary_json()

    run = InDatabaseRun(
        run_id=context.run.run_id,
        kernel_version=KERNEL_VERSION,
        params_json=params_json(params.to_dict()),
        final=is_final(session_close_ns(day), ingested_through_ns),
        computed_ns=time.time_ns(),
        ingested_through_ns=ingested_through_ns,
        ledger_ends_json=frontier.ends_json(),
    )
    outcome = wh.publish_signals_in_database(day, run, judge)
    (report,) = reports
    wh.record_quality(context.run.run_id, report.rows())
    published = outcome.published
    if published is None:
        yield from check_results(report)
        raise _audit_failure(day, report)
    common = {
        "day": day.isoformat(),
        "kernel_version": KERNEL_VERSION,
        "computed_in": wh.dialect,
        "final": run.final,
        "published": True,
        "quality_s": round(report.elapsed_s, 4),
        "n_replaced": published.n_replaced,
    }
    rows = {
        "trading_signals": published.n_trade_signals,
        "symbol_day_metrics": published.n_symbol_days,
        "trade_intensity": published.n_intensity_buckets,
    }
    for asset, n in rows.items():
        yield dg.MaterializeResult(
            asset_key=asset,
            metadata={**common, "dagster/row_count": n},
            check_results=check_results(report, asset),
        )


def _audit_failure(day: date, report: QualityReport) -> dg.Failure:
    """Return the run failure of a day whose signal audit failed (nothing was published)."""
    return dg.Failure(
        description=f"signal audit of {day} failed ({', '.join(report.failed)}); "
        "nothing published, the last good version of the day stays visible",
        metadata={"quality": dg.MetadataValue.json(report.summary_json())},
    )


def _report_metadata(
    context: dg.AssetExecutionContext, frames: object, day: date
) -> dict[str, dg.MetadataValue]:
    """Picture of the day's most active symbol (`microstructure report`), shown in the UI.

    Drawn after publishing, so a drawing problem never holds back the day's signals.
    """
    from pipeline.errors import DataError
    from pipeline.report import markdown_image, render_partition

    try:
        rendered = render_partition(frames, day.isoformat())
    except (DataError, ValueError) as e:
        context.log.warning(f"no report picture for {day}: {e}")
        return {}
    if rendered is None:
        return {}
    return {
        "report": dg.MetadataValue.md(markdown_image(rendered)),
        "report_png_bytes": dg.MetadataValue.int(len(rendered.png)),
    }
