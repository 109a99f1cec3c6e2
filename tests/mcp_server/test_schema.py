"""The tools' public contract (names, descriptions, input and output schemas), pinned.

A change here changes what every MCP client sees: update the snapshot on purpose
(``pytest --snapshot-update``) and say so in the change.
"""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from syrupy.assertion import SnapshotAssertion

from mcp_server.server import Runtime

pytestmark = pytest.mark.anyio


async def test_tool_schemas_match_the_snapshot(
    server: MCPServer[Runtime], snapshot: SnapshotAssertion
) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    contract: list[dict[str, Any]] = [
        {
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "annotations": t.annotations.model_dump(by_alias=True, exclude_none=True)
            if t.annotations
            else None,
            "input_schema": t.input_schema,
            "output_schema": t.output_schema,
        }
        for t in tools
    ]
    assert contract == snapshot
