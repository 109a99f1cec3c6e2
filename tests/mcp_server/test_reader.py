"""The read side through the server: a file other processes write, never held, never written."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import duckdb
import pytest
from mcp import Client
from mcp.types import CallToolResult

from tests.mcp_server.conftest import ServerFactory, file_digest
from tests.mcp_server.running import writer

pytestmark = pytest.mark.anyio


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_a_writer_can_open_the_file_while_the_server_serves(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    server = make_server(warehouse_copy)
    async with Client(server) as client:
        assert not (await client.call_tool("list_symbols", {})).is_error
        # Between calls nothing holds the file: another process may open it for writing.
        with writer(warehouse_copy, "add-symbol"):
            pass
        assert not (await client.call_tool("list_symbols", {})).is_error


async def test_new_data_is_served_once_it_is_committed(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    server = make_server(warehouse_copy)
    async with Client(server) as client:
        first = (await client.call_tool("list_symbols", {})).structured_content
        with writer(warehouse_copy, "add-symbol"):
            pass
        second = (await client.call_tool("list_symbols", {})).structured_content
    assert first is not None
    assert second is not None
    assert "NEW" not in [r["symbol"] for r in first["rows"]]
    assert "NEW" in [r["symbol"] for r in second["rows"]]
    assert second["provenance"]["as_of_ns"] > first["provenance"]["as_of_ns"]
    # The as-of in offsets moved by exactly the committed batch.
    moved = {
        k: v - first["provenance"]["ledger_through"].get(k, 0)
        for k, v in second["provenance"]["ledger_through"].items()
    }
    assert sorted(moved.values())[-1] == 7
    assert sum(moved.values()) == 7


async def test_a_writer_holding_the_file_at_start_is_a_clear_busy_error_until_it_lets_go(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    server = make_server(warehouse_copy)
    async with AsyncExitStack() as stack:
        with writer(warehouse_copy):
            # The server starts while the writer holds the file: nothing can be served yet.
            client = await stack.enter_async_context(Client(server))
            busy = await client.call_tool("list_symbols", {})
        after = await client.call_tool("list_symbols", {})
    text = _text(busy)
    assert busy.is_error
    assert "indexing the warehouse for serving" in text
    assert "retry in a few seconds" in text
    assert str(warehouse_copy.parent) not in text, "client errors never name a path"
    assert not after.is_error


async def test_a_held_warehouse_keeps_serving_the_last_state_marked_stale(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    server = make_server(warehouse_copy)
    async with Client(server) as client:
        fresh = (
            await client.call_tool("get_real_time_data", {"symbols": ["XXX"]})
        ).structured_content
        with writer(warehouse_copy, "add-symbol"):
            stale = await client.call_tool("get_real_time_data", {"symbols": ["XXX"]})
    assert fresh is not None
    assert fresh["provenance"]["snapshot_stale"] is False
    assert not stale.is_error
    assert stale.structured_content is not None
    prov = stale.structured_content["provenance"]
    assert prov["snapshot_stale"] is True
    assert prov["stale_reason"]
    assert prov["ledger_through"] == fresh["provenance"]["ledger_through"]


async def test_a_missing_or_empty_warehouse_is_a_tool_error_that_names_no_path(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    missing = tmp_path / "nothing-here.duckdb"
    async with Client(make_server(missing)) as client:
        r = await client.call_tool("list_symbols", {})
    assert r.is_error
    assert "holds no data yet" in _text(r)
    assert str(tmp_path) not in _text(r)
    assert not missing.exists(), "the read side never creates the file"
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    async with Client(make_server(empty)) as client:
        r = await client.call_tool("list_symbols", {})
    assert r.is_error
    assert "migrations not applied" in _text(r)
    assert str(tmp_path) not in _text(r)


async def test_serving_never_writes_the_warehouse(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    before = file_digest(warehouse_copy)
    async with Client(make_server(warehouse_copy)) as client:
        for tool, args in (
            ("list_symbols", {}),
            ("get_enriched_data", {"symbol": "XXX", "limit": 5}),
            ("get_data_quality", {"symbol": "AAA"}),
        ):
            assert not (await client.call_tool(tool, args)).is_error
    assert file_digest(warehouse_copy) == before
