"""The serving contract against a real Vertica server (``make test-vertica``; opt-in).

Runs when ``VERTICA_HOST``, ``VERTICA_DB``, ``VERTICA_USER`` (and ``VERTICA_PASSWORD``)
are set; no Vertica server can run on the development machines or in CI, where the same
calls run against the strict stand-in (``test_contract.py``). Here the same batches and
signals are loaded by the real loader into a fresh Vertica schema and into a DuckDB file,
and every call of the contract must give the same answer from Vertica as from the DuckDB
serving store.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.serving.store_view import StorePort
from pipeline.serving.vertica import VerticaPort
from pipeline.warehouse import open_warehouse
from pipeline.warehouse.base import Warehouse
from tests.serving.test_contract import CALLS, answer, steady
from tests.warehouse.factories import as_records, sample_trades

pytestmark = pytest.mark.vertica

TOPIC = "polygon-market-data"
VERTICA_VARS = ("VERTICA_HOST", "VERTICA_DB", "VERTICA_USER")


def _load_same(whs: list[Warehouse]) -> None:
    """Load the same microbatches and publish the same signals into every warehouse."""
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pipeline.signals.assemble import compute_frames
    from pipeline.warehouse.finality import ingested_through
    from pipeline.warehouse.provenance import build_signal_run
    from udx.kernels import KERNEL_VERSION, Params

    days = (date(2018, 1, 2), date(2018, 1, 3))
    for part, day in enumerate(days):
        trades = sample_trades(3000, day=day)
        for start in range(0, len(trades), 1000):
            records = as_records(
                trades[start : start + 1000], topic=TOPIC, partition=part, start=start
            )
            batch = shape_batch(records, OffsetRange(TOPIC, part, start, start + len(records)))
            for wh in whs:
                wh.load_batch(batch, expected_start=start, run_id=f"contract-{part}-{start}")
    computed = time.time_ns()
    for day in days:
        for wh in whs:
            day_input = wh.read_day(day)
            trades = day_input.trades
            frames = compute_frames(
                trades, Params(), passthrough=("kafka_partition", "kafka_offset")
            )
            close = datetime(day.year, day.month, day.day, 16, tzinfo=ZoneInfo("America/New_York"))
            run = build_signal_run(
                run_id=f"contract-{day}",
                day=day,
                trades=trades,
                frames=frames,
                kernel_version=KERNEL_VERSION,
                params=Params().to_dict(),
                computed_ns=computed,
                session_close_ns=int(close.timestamp()) * 10**9,
                ingested_through_ns=ingested_through(day_input.frontier, TOPIC, None),
                ledger_ends_json=day_input.frontier.ends_json(),
                quality_passed=True,
            )
            wh.publish_signals(day, frames, run)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not all(os.environ.get(v) for v in VERTICA_VARS):
        pytest.skip(f"set {', '.join(VERTICA_VARS)} (and VERTICA_PASSWORD) to run on Vertica")
    from pipeline.warehouse.vertica_backend import VerticaConfig, VerticaWarehouse

    schema = f"micro_serve_{uuid.uuid4().hex[:12]}"
    admin = VerticaWarehouse(VerticaConfig.from_url("vertica://"))
    with admin.transaction() as s:
        s.execute(f"CREATE SCHEMA {schema}")
    tmp = tmp_path_factory.mktemp("vertica-contract")
    try:
        vertica = open_warehouse(f"vertica://?search_path={schema}")
        duck = open_warehouse(f"duckdb:///{tmp / 'w.duckdb'}")
        for wh in (vertica, duck):
            wh.migrate()
        _load_same([duck, vertica])
        store = StorePort(Path(tmp / "w.duckdb"), store=tmp / "store", materialize="inline")
        store.start()
        port = VerticaPort.from_url(f"vertica://?search_path={schema}")
        port.refresh()
        yield {"duckdb": store.view(), "vertica": port.view()}
        store.close()
        port.close()
    finally:
        with admin.transaction() as s:
            s.execute(f"DROP SCHEMA {schema} CASCADE")


# The real sample holds one symbol (XXX); the contract's calls about the others would only
# compare two "unknown symbol" errors.
XXX_CALLS = [(t, a) for t, a in CALLS if a.get("symbol", "XXX") == "XXX"]


@pytest.mark.parametrize(("tool", "args"), XXX_CALLS)
def test_a_real_vertica_answers_as_the_duckdb_store_does(
    both: dict[str, Any], tool: str, args: dict[str, Any]
) -> None:
    assert steady(answer(both["vertica"], tool, args)) == steady(answer(both["duckdb"], tool, args))
