"""Prometheus metrics and the audit log of the MCP server.

With several uvicorn workers, the command sets ``PROMETHEUS_MULTIPROC_DIR`` before any
worker starts, and ``/metrics`` aggregates every worker's values
(``prometheus_client`` multiprocess mode); with one process the default registry is used.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

audit_logger = logging.getLogger("microstructure.mcp.audit")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

TOOL_CALLS = Counter(
    "microstructure_mcp_tool_calls",
    "Tool calls by tool and outcome (ok, rejected = fixable input, error, busy)",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram(
    "microstructure_mcp_tool_seconds",
    "Time to answer a tool call, in the server (excludes HTTP)",
    ["tool"],
    buckets=_LATENCY_BUCKETS,
)
QUERY_SECONDS = Histogram(
    "microstructure_mcp_query_seconds",
    "Warehouse snapshot query time per tool call",
    ["tool"],
    buckets=_LATENCY_BUCKETS,
)
ROWS = Counter("microstructure_mcp_rows", "Rows returned by tool", ["tool"])
SIGNAL_TO_SERVED = Histogram(
    "microstructure_mcp_signal_to_served_seconds",
    "Signal computed -> served: age of the newest signals run behind an answer carrying "
    "signals, when it is sent (the last stage of the per-trade latency decomposition)",
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400, 604800),
)
CHART_SECONDS = Histogram(
    "microstructure_mcp_chart_seconds",
    "Time to draw a get_symbol_metrics chart (chart=true), off the event loop",
    buckets=(*_LATENCY_BUCKETS, 5.0, 10.0),
)
HTTP_REJECTED = Counter(
    "microstructure_mcp_http_rejected",
    "HTTP requests refused before any tool ran, by reason",
    ["reason"],
)
PLAIN_REQUESTS = Counter(
    "microstructure_mcp_plain_requests",
    "Plain (non-JSON-RPC) requests to /mcp, by method",
    ["method"],
)
SNAPSHOT_AGE = Gauge(
    "microstructure_mcp_snapshot_age_seconds",
    "Age of the warehouse snapshot being served",
    multiprocess_mode="livemax",
)
DATA_LAG = Gauge(
    "microstructure_mcp_data_lag_seconds",
    "Snapshot time minus the newest trade in it",
    multiprocess_mode="livemax",
)
SNAPSHOT_REFRESHES = Gauge(
    "microstructure_mcp_snapshot_refreshes",
    "Snapshots built by this process",
    multiprocess_mode="livesum",
)
SNAPSHOT_FAILURES = Gauge(
    "microstructure_mcp_snapshot_failures",
    "Snapshot refreshes that failed (lock held, file missing) in this process",
    multiprocess_mode="livesum",
)


def render_metrics() -> tuple[bytes, str]:
    """Return the exposition text of every metric (all workers in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def _short(value: Any) -> Any:
    # Arguments are the caller's text: keep them, but bounded (and JSON-escaped below,
    # so a newline cannot forge a log line).
    if isinstance(value, str):
        return value if len(value) <= 120 else value[:120] + "..."
    if isinstance(value, list | tuple):
        return [_short(v) for v in value[:20]]
    return value


def audit(
    *,
    client: str,
    remote: str | None,
    transport: str,
    tool: str,
    arguments: Mapping[str, Any],
    outcome: str,
    rows: int,
    nbytes: int,
    ms: float,
    query_ms: float,
    error: str | None = None,
) -> None:
    """Write one audit line (JSON) for a tool call."""
    if not audit_logger.isEnabledFor(logging.INFO):
        return
    line = {
        "client": client,
        "remote": remote,
        "transport": transport,
        "tool": tool,
        "args": {k: _short(v) for k, v in arguments.items()},
        "outcome": outcome,
        "rows": rows,
        "bytes": nbytes,
        "ms": round(ms, 3),
        "query_ms": round(query_ms, 3),
    }
    if error is not None:
        line["error"] = error[:300]
    audit_logger.info(orjson.dumps(line, default=str).decode())
