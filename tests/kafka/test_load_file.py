"""load-file: a trades file into the topic through the same codec/producer path."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson
import pytest

from pipeline.cli import main
from pipeline.commands.load_file import load_file
from pipeline.events import Reject, Trade
from pipeline.feed.files import FLAT_FILE_COLUMNS
from pipeline.kafka.codec import decode
from pipeline.kafka.consumer import read_range, watermarks
from pipeline.kafka.offsets import OffsetRange

pytestmark = pytest.mark.kafka

SAMPLE = (
    Path(__file__).parents[2] / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
)


def _events(bootstrap: str, topic: str) -> list[object]:
    out: list[object] = []
    for p, (low, high) in watermarks(bootstrap, topic, 10.0).items():
        out.extend(
            decode(r.value, r.headers)
            for r in read_range(bootstrap, OffsetRange(topic, p, low, high), 30.0)
        )
    return out


def test_the_whole_sample_loads_once_with_every_message_acknowledged(
    kafka_broker: str, kafka_topic: str
) -> None:
    summary = load_file(SAMPLE, bootstrap=kafka_broker, topic=kafka_topic)
    assert (summary["rows"], summary["trades"], summary["delivered"], summary["rejects"]) == (
        77_263,
        77_263,
        77_263,
        {},
    )
    assert summary["unmapped_exchanges"] == {}
    assert summary["unmapped_conditions"] == {}
    marks = watermarks(kafka_broker, kafka_topic, 10.0)
    assert sum(hi for _, hi in marks.values()) == 77_263
    assert sum(1 for _, hi in marks.values() if hi) == 1  # one symbol, one partition


def test_invalid_and_unreadable_rows_are_produced_as_rejects(
    kafka_broker: str, kafka_topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    path = tmp_path / "day.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(",".join(FLAT_FILE_COLUMNS) + "\n")
        f.write('AAPL,"12,37",0,11,1,1704186000005000000,187.5,1001,1704186000010000000,5,3,,\n')
        f.write("AAPL,,0,4,2,1,0,1002,1704207600123456789,100,3,201,1704207600120000000\n")
        f.write("AAPL,,0,4,3,1,abc,1003,1704207600123456790,100,3,0,0\n")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_broker)
    monkeypatch.setenv("MICROSTRUCTURE_TOPIC", kafka_topic)
    assert main(["load-file", str(path), "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["format"] == "flatfile"
    assert (summary["trades"], summary["delivered"]) == (1, 3)
    assert summary["rejects"] == {"non_positive_price": 1, "mistyped_field": 1}
    events = _events(kafka_broker, kafka_topic)
    assert Counter(type(e).__name__ for e in events) == Counter({"Trade": 1, "Reject": 2})
    rejects = [e for e in events if isinstance(e, Reject)]
    assert {r.stage for r in rejects} == {"file"}
    [trade] = [e for e in events if isinstance(e, Trade)]
    assert (trade.sip_timestamp_ns, trade.conditions, trade.source) == (
        1_704_186_000_010_000_000,
        (12, 37),
        "file",
    )
