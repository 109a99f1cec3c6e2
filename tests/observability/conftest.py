"""Fixtures of the observability tests: a published warehouse and ``compute`` outputs."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import cast

import pandas as pd
import pytest

from pipeline.bench.mcp_http import SampleFacts, write_sample_warehouse
from pipeline.commands.compute import read_trades, write_outputs
from pipeline.signals.assemble import compute_frames
from pipeline.signals.provenance import provenance_json
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.warehouse.factories import SAMPLE

DAY1 = date(2018, 1, 2)
DAY2 = date(2018, 1, 3)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def published_sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFacts:
    """Both sample days of XXX and a derived AAA, loaded and published as the pipeline does."""
    path = tmp_path_factory.mktemp("obs-warehouse") / "warehouse.duckdb"
    facts = write_sample_warehouse(path, symbols=("XXX", "AAA"))
    DuckDBWarehouse(path).migrate()  # tables added after the bench's writer (evaluation)
    return facts


@pytest.fixture
def warehouse(published_sample: SampleFacts, tmp_path: Path) -> Path:
    """A private copy of the published warehouse (tests may write it)."""
    dst = tmp_path / "warehouse.duckdb"
    shutil.copy(published_sample.path, dst)
    return dst


@pytest.fixture(scope="session")
def compute_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``microstructure compute`` outputs of the shipped sample (XXX, two days)."""
    from udx.kernels import Params

    out = tmp_path_factory.mktemp("obs-compute")
    params = Params()
    write_outputs(compute_frames(read_trades(SAMPLE), params), out, provenance_json(params))
    return out


def signal_rows(compute_dir: Path, day: date) -> pd.DataFrame:
    """The trade signals of one day of the compute outputs."""
    frame = pd.read_parquet(compute_dir / "trade_signals.parquet")
    rows = cast("pd.DataFrame", frame[frame["date"].astype(str) == day.isoformat()])
    return rows.reset_index(drop=True)
