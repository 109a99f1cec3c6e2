"""The stream fault campaign in a short form: disconnects, a broker restart, kill -9, restart."""

from __future__ import annotations

import orjson
import pytest

from pipeline.cli import main

pytestmark = [pytest.mark.kafka, pytest.mark.replay]


@pytest.mark.timeout(240)
def test_kafka_holds_each_source_print_once_after_every_fault(
    kafka_broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # kafka_broker: only to skip (or fail under CI) when no broker can run here; the
    # campaign starts and restarts its own.
    code = main(["faults", "stream", "--json", "--events", "30000", "--rate", "2000",
                 "--symbols", "8", "--drop-every-s", "2.5", "--broker-restart-at-s", "6",
                 "--kill-at-s", "2", "--restart-after-s", "0.5"])  # fmt: skip
    out = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) == {"source", "delivered", "lost", "duplicated", "gaps_backfilled"}
    assert (out["source"], out["delivered"], out["lost"], out["duplicated"]) == (30000, 30000, 0, 0)
    # At least the restart's gap per symbol; drops add more when they catch a connection.
    assert out["gaps_backfilled"] >= 8
    assert code == 0
