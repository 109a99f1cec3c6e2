"""``bench stream`` prints its figures (a tiny run; benchmarks are never timed in tests)."""

from __future__ import annotations

import orjson
import pytest

from pipeline.cli import main

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(180)
def test_bench_stream_prints_exactly_the_four_figures(
    kafka_broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--rate", "2000", "--seconds", "1", "--warmup-s", "0", "--events", "5000"]
    code = main(["bench", "stream", "--json", "--bootstrap", kafka_broker, "--symbols", "5", *args])
    assert code == 0
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(out) == ["max_events_per_s", "p50_ms_at_10k", "p99_ms_at_10k", "max_ms_at_10k"]
    assert all(isinstance(v, float) and v > 0 for v in out.values())
