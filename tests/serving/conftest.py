"""Fixtures of the read-side tests: a warehouse written as ingest and signals write one.

The warehouse is the MCP sample (4 symbols x 2 days, microbatches with ledger rows,
rejects, a failed quality check, a feed gap, signals from the real kernels) plus a stored
signal evaluation, written once per session; tests that write use their own copy.

It also holds the live path's history (issue 17.5), loaded by the real loader from records
the live path's own partition processor made: XXX's 2018-01-03 from its first print to
beyond the prints the batch computed (a live tail no run has read yet), and a 2018-01-04
of AAA that only the live path has (a day without trades loaded or a run).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from pipeline.bench.mcp_http import SampleFacts, write_sample_warehouse
from pipeline.cli import main
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.warehouse.factories import live_outputs, live_records, sample_trades

SYMBOLS = ("XXX", "AAA", "BBB", "CCC")
LIVE_TOPIC = "trading-signals"
LIVE_TAIL_PRINTS = 3400
"""XXX's 2018-01-03 live records cover this many prints; the batch has the first 3,000."""
DAY_NS = 86_400 * 1_000_000_000


def add_live_history(path: Path) -> int:
    """Load live records into the warehouse as ``live_signals`` runs would; return the rows."""
    xxx = live_outputs(LIVE_TAIL_PRINTS, day=date(2018, 1, 3), bad_at=None)
    aaa = [
        replace(t, symbol="AAA", sip_timestamp_ns=t.sip_timestamp_ns + DAY_NS)
        for t in sample_trades(600, day=date(2018, 1, 3))
    ]
    aaa_out = live_outputs(0, trades=aaa, bad_at=None, input_partition=1)
    wh = DuckDBWarehouse(path)
    n = 0
    for partition, outputs in ((0, xxx), (1, aaa_out)):
        records = live_records(outputs, topic=LIVE_TOPIC, partition=partition)
        for lo in range(0, len(records), 1500):
            part = records[lo : lo + 1500]
            batch = shape_batch(part, OffsetRange(LIVE_TOPIC, partition, lo, lo + len(part)))
            n += wh.load_batch(batch, expected_start=lo, run_id=f"live-{partition}-{lo}").n_signals
    return n


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> SampleFacts:
    """The sample warehouse with an evaluation stored by ``microstructure evaluate``."""
    home = tmp_path_factory.mktemp("serving-warehouse")
    facts = write_sample_warehouse(
        home / "warehouse.duckdb", symbols=SYMBOLS, trades_per_day=3000, batch_records=2000
    )
    assert add_live_history(facts.path) > 3000
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
