"""``bench live`` prints its figures, and its causal comparison catches a difference.

Tiny runs against the session's broker; figures are never asserted against targets.
"""

from __future__ import annotations

from datetime import date

import orjson
import pytest

from pipeline.bench.live_causal import batch_rows
from pipeline.cli import main
from pipeline.kafka import codec
from pipeline.live.partition import PartitionProcessor
from pipeline.live.reconcile import collect_live, reconcile
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
    assert out["causal"]["signals"] == out["causal"]["compared"] > 30_000
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


def test_the_batch_rows_reconcile_with_live_records_and_a_difference_is_counted() -> None:
    trades = sample_trades(3000, day=date(2018, 1, 2))
    proc = PartitionProcessor("t", 0, Params())
    outs = proc.process_batch([(k, *codec.encode(t)[1:]) for k, t in enumerate(trades)])
    raw = [(o[2], o[1]) for o in outs if o is not None]
    batch = batch_rows((0, k, t) for k, t in enumerate(trades))
    assert len(raw) == len(batch) > 500
    rec = reconcile(collect_live(raw, "2018-01-02", "t"), batch, "2018-01-02")
    assert (rec.causal_mismatches, rec.compared) == (0, len(batch))
    # One print's BNS off by 1e-8 relative, one record missing: two mismatches.
    bad = [orjson.loads(v) for _, v in raw]
    k = next(i for i, v in enumerate(bad) if v["bns_stat"] is not None)
    bad[k]["bns_stat"] *= 1 + 1e-8
    changed = [(h, orjson.dumps(v)) for (h, _), v in zip(raw, bad, strict=True)][:-1]
    rec = reconcile(collect_live(changed, "2018-01-02", "t"), batch, "2018-01-02")
    assert rec.causal_mismatches == 2
    assert rec.missing_live == 1
