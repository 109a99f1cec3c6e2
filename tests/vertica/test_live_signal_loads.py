"""The live path's records through the Vertica backend (strict concurrent-session stand-in).

The same batches as the DuckDB tests (tests/assets/test_live_signals.py): ``signal.v1`` records
made by the live path's partition processor, a repeat of a block of them in a later batch (the
at-least-once producer), and a live reject. Each input key is stored once, on Vertica as on
DuckDB, and the ledger row counts what was stored and what was skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse import vertica_backend as vb
from tests.vertica.sessions import SessionsStandIn, migrated_duckdb
from tests.vertica.test_vertica_backend import ENV
from tests.warehouse.factories import live_outputs, live_records

TOPIC = "trading-signals"


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[SessionsStandIn]:
    with SessionsStandIn(migrated_duckdb(tmp_path / "w.duckdb"), lock_timeout_s=10.0) as s:
        yield s


def test_live_records_are_stored_once_per_input_key_and_the_ledger_counts_repeats(
    standin: SessionsStandIn,
) -> None:
    outputs = live_outputs(300)
    n_signals = len(outputs) - 1
    records = live_records([*outputs, *outputs[-40:]], topic=TOPIC)
    wh = vb.VerticaWarehouse(vb.VerticaConfig.from_url("vertica://", ENV), connect=standin.connect)
    cut = len(outputs) - 20  # the repeats span both batches: 20 in the first, 40 in the second
    first = shape_batch(records[:cut], OffsetRange(TOPIC, 0, 0, cut))
    second = shape_batch(records[cut:], OffsetRange(TOPIC, 0, cut, len(records)))
    a = wh.load_batch(first, expected_start=0, run_id="a")
    b = wh.load_batch(second, expected_start=cut, run_id="b")
    assert (a.n_signals, a.n_signal_rejects, a.n_signal_duplicates) == (cut - 1, 1, 0)
    assert (b.n_signals, b.n_signal_rejects, b.n_signal_duplicates) == (n_signals - cut + 1, 0, 40)
    assert standin.committed(
        "SELECT COUNT(*), COUNT(DISTINCT input_offset), MIN(seq), MAX(seq) FROM live_signals"
    ) == [(n_signals, n_signals, 0, n_signals - 1)]
    assert standin.committed("SELECT reason, input_offset FROM live_signal_rejects") == [
        ("price null, non-finite or <= 0", 7)
    ]
    assert standin.committed(
        "SELECT SUM(n_messages), SUM(n_signals), SUM(n_signal_duplicates), SUM(n_signal_rejects), "
        "SUM(n_trades) FROM kafka_offsets"
    ) == [(len(records), n_signals, 40, 1, 0)]
