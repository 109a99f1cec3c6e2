"""The MCP server's part: signal -> served on its real /metrics, charts when asked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.types import ImageContent

from mcp_server.server import build_server
from mcp_server.settings import McpSettings
from pipeline.commands.status import collect_status
from pipeline.settings import Settings
from tests.mcp_server.running import serve_http
from tests.observability.scrape import scrape, value

pytestmark = pytest.mark.anyio
SERVED = "microstructure_mcp_signal_to_served_seconds"


def _server(path: Path):

    settings = McpSettings(
        warehouse_url=f"duckdb:///{path}", allow_unauthenticated=True, materialize="inline"
    )
    return build_server(settings)


async def test_get_symbol_metrics_returns_the_chart_only_when_asked(warehouse: Path) -> None:
    async with Client(_server(warehouse)) as client:
        plain = await client.call_tool("get_symbol_metrics", {"symbol": "XXX"})
        charted = await client.call_tool("get_symbol_metrics", {"symbol": "XXX", "chart": True})
    assert not plain.is_error
    assert not charted.is_error
    assert not any(isinstance(c, ImageContent) for c in plain.content)
    [image] = [c for c in charted.content if isinstance(c, ImageContent)]
    assert image.mime_type == "image/png"
    assert base64.b64decode(image.data).startswith(b"\x89PNG\r\n\x1a\n")
    captions = [getattr(c, "text", "") for c in charted.content]
    assert any(t.startswith("chart: XXX 2018-01-03") for t in captions)  # the newest day
    # The same answer; only the as-of moves on between two calls (the warehouse was seen
    # unchanged later), and the data lag with it.
    moving = {"as_of", "as_of_ns", "data_lag_s"}

    def fixed(d: dict) -> dict:
        return {**d, "provenance": {k: v for k, v in d["provenance"].items() if k not in moving}}

    assert charted.structured_content is not None
    assert plain.structured_content is not None
    assert fixed(charted.structured_content) == fixed(plain.structured_content)


def test_signal_to_served_moves_on_the_real_metrics_endpoint(
    warehouse: Path, tmp_path: Path
) -> None:
    with serve_http(warehouse, tmp_path / "mcp", args=["--allow-unauthenticated-local-dev"]) as srv:
        metrics = f"{srv.base}/metrics"
        before = value(scrape(metrics), f"{SERVED}_count")
        for i in range(3):
            r = httpx.post(
                srv.mcp,
                content=json.dumps(
                    {
                        "method": "get_trading_signals",
                        "params": {"symbol": "XXX", "limit": 2},
                        "id": str(i),
                    }
                ),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
        after = scrape(metrics)
        assert value(after, f"{SERVED}_count") == before + 3
        # The sample's signals were computed when it was written: seconds to minutes ago.
        assert value(after, f"{SERVED}_sum") > 0
        # `status` reads the same endpoint for the last stage.
        report = collect_status(
            Settings.from_env(
                {
                    "MICROSTRUCTURE_WAREHOUSE_URL": f"duckdb:///{warehouse}",
                    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                }
            ),
            stream_metrics=None,
            mcp_metrics=metrics,
            dagster=False,
        )
    served = {s.stage: s for s in report.stages}["signal_to_served"]
    assert served.n == 3
    assert served.p50_s is not None
