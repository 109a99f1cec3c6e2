"""Fixtures of the MCP server tests: a sample warehouse and servers over it.

The warehouse is written once per session by the same code the benchmark uses (schema
from the migration runner, microbatches with ledger rows, rejects, a failed quality
check and a feed gap, signals from the real kernels published by the warehouse), small
enough to build in seconds. Tests only read it; the ones that write use their own copy.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer

from mcp_server.server import Runtime, build_server
from mcp_server.settings import McpSettings
from pipeline.bench.mcp_http import SampleFacts, write_sample_warehouse
from pipeline.serving.store_view import StorePort

SYMBOLS = ("XXX", "AAA", "BBB", "CCC")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFacts:
    """A warehouse of 4 symbols x 2 days, 3,000 trades per symbol-day, 2,000-record batches."""
    path = tmp_path_factory.mktemp("mcp-warehouse") / "warehouse.duckdb"
    return write_sample_warehouse(path, symbols=SYMBOLS, trades_per_day=3000, batch_records=2000)


@pytest.fixture
def warehouse_copy(sample: SampleFacts, tmp_path: Path) -> Path:
    """A private copy of the sample warehouse (for tests that write or lock it)."""
    dst = tmp_path / "warehouse.duckdb"
    shutil.copy(sample.path, dst)
    return dst


def file_digest(path: Path) -> str:
    """SHA-256 of the warehouse file and its WAL (if any)."""
    h = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        h.update(wal.read_bytes())
    return h.hexdigest()


ServerFactory = Callable[..., MCPServer[Runtime]]


@pytest.fixture
def make_server(sample: SampleFacts, tmp_path: Path) -> ServerFactory:
    """Build a server over the sample (or ``path``); the store refreshes inline per call.

    Inline refreshes make the tests deterministic: a call sees every commit made before
    it. The server processes of ``serve_http`` use the real child materializer.
    """
    stores = iter(range(1_000_000))

    def make(
        path: Path | None = None, port_kwargs: dict[str, Any] | None = None, **overrides: Any
    ) -> MCPServer[Runtime]:
        target = path or sample.path
        settings = McpSettings(
            warehouse_url=f"duckdb:///{target}", allow_unauthenticated=True, **overrides
        )
        kwargs: dict[str, Any] = {
            "store": tmp_path / f"store-{next(stores)}",
            "materialize": "inline",
            **(port_kwargs or {}),
        }
        return build_server(settings, port=StorePort(target, **kwargs))

    return make


@pytest.fixture
def server(make_server: ServerFactory) -> MCPServer[Runtime]:
    return make_server()
