"""``bench live`` prints its figures, and its causal comparison catches a difference.

Tiny runs against the session's broker; figures are never asserted against targets.
"""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from pipeline.bench.live_causal import (
    all_causal_mismatches,
    batch_causal,
    causal_mismatches,
    live_in_batch_order,
)
from pipeline.cli import main
from pipeline.kafka import codec
from pipeline.live.partition import PartitionProcessor
from tests.warehouse.factories import sample_trades
from udx.kernels import Params


@pytest.mark.kafka
@pytest.mark.timeout(240)
def test_bench_live_prints_the_five_figures_and_the_ratio_to_the_bare_loop(
    kafka_broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--events", "3000", "--rounds", "1", "--rate", "2000", "--seconds", "1"]
    args += ["--warmup-s", "0", "--symbols", "5", "--warmup-events", "0"]
    # Exit code 0 also means every run moved every record: one output per input,
    # offsets committed to the end of the input.
    assert main(["bench", "live", "--json", "--bootstrap", kafka_broker, *args]) == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out)[:5] == ["p50_ms", "p99_ms", "max_ms", "max_events_per_s", "causal_mismatches"]
    assert out["causal_mismatches"] == 0
    assert out["causal"]["signals"] == out["causal"]["batch_prints"] > 30_000
    for key in ("p50_ms", "p99_ms", "max_ms", "max_events_per_s", "baseline_events_per_s"):
        assert isinstance(out[key], float), key
        assert out[key] > 0, key
    assert out["p50_ms"] <= out["p99_ms"] <= out["max_ms"]
    assert out["fixed"]["signals"] == 2000
    assert {(r["who"], r["volume"]) for r in out["runs"]} == {
        ("baseline", 3000),
        ("live", 3000),
        ("baseline", 1500),
        ("live", 1500),
    }


def test_the_causal_comparison_counts_every_differing_print() -> None:
    trades = sample_trades(3000, day=date(2018, 1, 2))
    proc = PartitionProcessor("t", 0, Params())
    outs = proc.process_batch([(k, *codec.encode(t)[1:]) for k, t in enumerate(trades)])
    live = [(0, k, orjson.loads(o[1])) for k, o in enumerate(outs) if o is not None]
    assert len(live) > 500
    batch = batch_causal(trades)
    assert all_causal_mismatches(live_in_batch_order(live), batch) == 0
    ((key, rows),) = live_in_batch_order(live).items()
    bad = [dict(r) for r in rows]
    bad[400]["bns_stat"] = (bad[400]["bns_stat"] or 1.0) * (1 + 1e-9)
    bad[401]["lee_mykland_stat"] = None
    assert causal_mismatches(bad, batch[key]) == 2
    assert causal_mismatches(rows[:-3], batch[key]) == 3  # missing prints count too
