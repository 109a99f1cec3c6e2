"""`microstructure faults load --short`: every crash point, a broker restart, reruns and two
sensors on a real broker, real DuckDB files and real `microstructure ingest` processes."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.errors import BrokerError
from pipeline.faults.load import CASES, CaseResult, format_table
from tests.support.kafka import broker_unavailable

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(900)
def test_the_short_campaign_loses_nothing_doubles_nothing_and_keeps_the_signals(tmp_path, capsys):
    argv = ["faults", "load", "--short", "--json", "--keep", str(tmp_path / "faults")]
    try:
        code = main(argv)
    except BrokerError as e:
        broker_unavailable(str(e))
        return
    out = capsys.readouterr().out

    # --json: exactly one object on stdout, progress on stderr.
    report = json.loads(out)
    assert report == {
        "cases": [
            {"step": step, "lost": 0, "duplicated": 0, "signals_equal": True} for step in CASES
        ]
    }
    assert code == 0
    # Each case left its children's logs: the kills happened, the recoveries ran.
    killed = (tmp_path / "faults" / "after_commit").glob("*.log")
    assert any("marked failed" in p.read_text() for p in killed)


def test_the_table_names_each_step_and_what_went_wrong():
    table = format_table(
        [CaseResult("after_read", 0, 0, True), CaseResult("two_sensors", 3, 1, False, "boom")]
    )
    assert table.splitlines() == [
        "step              lost  duplicated  signals equal",
        "after_read           0           0  yes",
        "two_sensors          3           1  NO  (boom)",
    ]
