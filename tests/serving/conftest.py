"""Fixtures of the read-side tests: a warehouse written as ingest and signals write one.

The warehouse is the MCP sample (4 symbols x 2 days, microbatches with ledger rows,
rejects, a failed quality check, a feed gap, signals from the real kernels) plus a stored
signal evaluation, written once per session; tests that write use their own copy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.bench.mcp_http import SampleFacts, write_sample_warehouse
from pipeline.cli import main

SYMBOLS = ("XXX", "AAA", "BBB", "CCC")


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> SampleFacts:
    """The sample warehouse with an evaluation stored by ``microstructure evaluate``."""
    home = tmp_path_factory.mktemp("serving-warehouse")
    facts = write_sample_warehouse(
        home / "warehouse.duckdb", symbols=SYMBOLS, trades_per_day=3000, batch_records=2000
    )
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("MICROSTRUCTURE_WAREHOUSE_URL", f"duckdb:///{facts.path}")
        mp.setenv("MICROSTRUCTURE_HOME", str(home))
        assert main(["evaluate", "--start", "2018-01-02", "--end", "2018-01-03"]) == 0
    finally:
        mp.undo()
    return facts


@pytest.fixture
def served_copy(served: SampleFacts, tmp_path: Path) -> Path:
    """A private copy of the served warehouse (for tests that write it)."""
    dst = tmp_path / "warehouse.duckdb"
    shutil.copy(served.path, dst)
    return dst
