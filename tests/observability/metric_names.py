"""Every metric name the code defines: read from the real collectors, not from a list."""

from __future__ import annotations

from functools import cache

from prometheus_client.core import Metric

from pipeline.metrics import (
    LagRow,
    LatencyHistograms,
    PipelineMetrics,
    PipelineSnapshot,
    StreamMetrics,
    StreamSnapshot,
)


def _names(fam: Metric) -> set[str]:
    """Names a family is queried by in PromQL (family name, typed suffixes, samples)."""
    out = {fam.name} | {s.name for s in fam.samples}
    if fam.type == "counter":
        out.add(f"{fam.name}_total")
    if fam.type == "histogram":
        out |= {f"{fam.name}_bucket", f"{fam.name}_sum", f"{fam.name}_count"}
    return out


def stream_families() -> list[Metric]:
    """The streamer's families, with every labelled family populated."""
    latency = LatencyHistograms()
    latency.observe_sip_to_receipt("trade", 1_000)
    latency.record_ack("trade", 1_000, 2_000, 3_000)
    snap = StreamSnapshot(
        events_in={"trade": 1.0},
        rejects={"bad_json": 1.0},
        reconnects=0.0,
        gaps={"backfilled": 1.0},
        gap_seconds=0.0,
        backfilled=0.0,
        duplicates_skipped=0.0,
        blocked_s={"reader": 0.0},
        slow_consumer=0.0,
        watchdog_reconnects=0.0,
        frame_bytes=0.0,
        queue_depth=0.0,
        queue_capacity=1.0,
        in_flight=0.0,
        connected=1.0,
        last_frame_age_s=0.0,
        open_gaps=0.0,
        buffer_bytes={"queue": 0.0},
        buffer_limit_bytes={"queue": 1.0},
    )
    return list(StreamMetrics(lambda: snap, latency).collect())


def exporter_families() -> list[Metric]:
    """The metrics-exporter's families, every optional source present."""
    snap = PipelineSnapshot(
        lag=[LagRow("t", 0, 10, 5)],
        last_commit_s=1.0,
        last_signal_run_s=1.0,
        dagster_runs={("ingest_job", "FAILURE"): 1.0},
        gap_today_s={"AAPL": 1.0},
        gaps_today={"AAPL": 1.0},
        signal_runs={("true", "passed"): 1.0},
        batches={"passed": 1.0},
        refresh_errors={"kafka": 1.0},
    )
    return list(PipelineMetrics(lambda: snap).collect())


def mcp_families() -> list[Metric]:
    """The MCP server's families (module-level collectors of mcp_server.telemetry)."""
    from prometheus_client import REGISTRY

    import mcp_server.telemetry  # noqa: F401 - registers the MCP metrics

    return [f for f in REGISTRY.collect() if f.name.startswith("microstructure_mcp")]


@cache
def defined_metric_names() -> frozenset[str]:
    """Return every queryable metric name of the streamer, the exporter and the MCP server."""
    names: set[str] = set()
    for fam in (*stream_families(), *exporter_families(), *mcp_families()):
        names |= _names(fam)
    return frozenset(names)
