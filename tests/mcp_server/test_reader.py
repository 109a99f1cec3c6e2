"""The read side: snapshots of a file that other processes write, never held, never written."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import duckdb
import pytest
from mcp import Client
from mcp.types import CallToolResult

from pipeline.warehouse.reads import WarehouseUnavailable, build_snapshot
from tests.mcp_server.conftest import ServerFactory, file_digest
from tests.mcp_server.running import writer

pytestmark = pytest.mark.anyio


def _text(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def test_a_writer_can_open_the_file_while_the_server_serves(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    snap = build_snapshot(warehouse_copy)
    try:
        # The snapshot is private: the file is not held, so another process may write.
        with writer(warehouse_copy, "add-symbol"):
            pass
    finally:
        snap.retire()


async def test_new_data_is_served_once_the_file_changes(
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


async def test_a_writer_holding_the_file_is_a_clear_busy_error_until_it_lets_go(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    server = make_server(warehouse_copy, reader_kwargs={"lock_attempts": 2})
    async with AsyncExitStack() as stack:
        with writer(warehouse_copy):
            # The server starts while the writer holds the file: no snapshot can exist.
            client = await stack.enter_async_context(Client(server))
            busy = await client.call_tool("list_symbols", {})
        after = await client.call_tool("list_symbols", {})
    text = " ".join(getattr(c, "text", "") for c in busy.content)
    assert busy.is_error
    assert "a writer held the warehouse file" in text
    assert "retry in a few seconds" in text
    assert not after.is_error


async def test_a_failed_refresh_keeps_serving_the_last_snapshot_marked_stale(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    server = make_server(warehouse_copy, reader_kwargs={"lock_attempts": 2})
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
    assert "writer held the warehouse file" in prov["stale_reason"]
    assert prov["as_of_ns"] == fresh["provenance"]["as_of_ns"]


async def test_a_missing_or_empty_warehouse_is_a_tool_error(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    missing = tmp_path / "nothing-here.duckdb"
    async with Client(make_server(missing)) as client:
        r = await client.call_tool("list_symbols", {})
    assert r.is_error
    assert "no warehouse file" in _text(r)
    assert not missing.exists(), "the reader never creates the file"
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    async with Client(make_server(empty)) as client:
        r = await client.call_tool("list_symbols", {})
    assert r.is_error
    assert "migrations not applied" in _text(r)


def test_the_snapshot_cannot_reach_any_file(warehouse_copy: Path, tmp_path: Path) -> None:
    before = file_digest(warehouse_copy)
    snap = build_snapshot(warehouse_copy)
    try:
        cur = snap.cursor()
        for sql in (
            f"ATTACH '{warehouse_copy}' AS w",
            f"COPY trades TO '{tmp_path / 'out.csv'}'",
            f"SELECT * FROM read_csv('{tmp_path / 'x.csv'}')",
            "SET enable_external_access = true",
        ):
            with pytest.raises(duckdb.Error):
                cur.execute(sql)
    finally:
        snap.retire()
    assert not (tmp_path / "out.csv").exists()
    assert file_digest(warehouse_copy) == before


def test_a_snapshot_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(WarehouseUnavailable, match="no warehouse file"):
        build_snapshot(tmp_path / "absent.duckdb")
