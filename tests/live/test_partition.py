"""One input partition, pure: rejects with reasons, counts, and the replay restart point."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import orjson
import pytest

from pipeline.errors import ParseError
from pipeline.events import Gap
from pipeline.kafka import codec
from pipeline.live.partition import Checkpoint, PartitionProcessor
from tests.warehouse.factories import sample_trades
from udx.kernels import Params

Record = tuple[int, bytes, codec.Headers]


def _records() -> list[Record]:
    trades = [*sample_trades(700, day=date(2018, 1, 2)), *sample_trades(600, day=date(2018, 1, 3))]
    out = []
    for i, t in enumerate(trades):
        _, value, headers = codec.encode(t)
        out.append((i, value, headers))
    return out


def _run(proc: PartitionProcessor, records: list[Record]) -> list[object]:
    return [proc.process(o, v, h) for o, v, h in records]


def test_a_restart_from_the_checkpoint_emits_what_the_uninterrupted_run_emits() -> None:
    records = _records()
    whole = _run(PartitionProcessor("t", 0, Params()), records)
    for cut in (350, 900, 1200):  # day 1, and twice on day 2 (replay from its first offset)
        first = PartitionProcessor("t", 0, Params())
        _run(first, records[:cut])
        cp = Checkpoint.decode(first.checkpoint().encode())  # type: ignore[union-attr]
        assert cp is not None
        resumed = PartitionProcessor("t", 0, Params(), checkpoint=cp)
        for o, v, h in records[cp.replay_from : cut]:
            assert resumed.process(o, v, h, emit=False) is None
        assert _run(resumed, records[cut:]) == whole[cut:]
    assert cp.date == "2018-01-03"
    assert cp.replay_from == 700


def test_bad_records_become_rejects_with_their_reason_and_others_are_counted() -> None:
    records = _records()
    proc = PartitionProcessor("t", 3, Params())
    _run(proc, records[700:710])  # the partition is on 2018-01-03
    stale = proc.process(710, records[5][1], records[5][2])
    assert stale is not None
    key, value, headers = stale
    assert key == codec.REJECT_KEY
    assert orjson.loads(value)["reason"].startswith("stale_day")
    assert dict(headers)["input_offset"] == b"710"
    junk = proc.process(711, b"not json", [("schema", codec.SCHEMA_TRADE)])
    assert junk is not None
    assert orjson.loads(junk[1])["reason"].startswith("undecodable record")
    gap = Gap("T.XXX", 1, 2, "disconnect", 3)
    _, gv, gh = codec.encode(gap)
    assert proc.process(712, gv, gh) is None
    bad = replace(sample_trades(1, day=date(2018, 1, 3), start_row=300)[0], price=0.0)
    _, bv, bh = codec.encode(bad)
    rejected = proc.process(713, bv, bh)
    assert rejected is not None
    assert orjson.loads(rejected[1])["reason"] == "price null, non-finite or <= 0"
    assert proc.counts["rejects:stale_day"] == 1
    assert proc.counts["rejects:undecodable record"] == 1
    assert proc.counts["not_a_trade:gap"] == 1
    assert proc.counts["signals"] + proc.counts["outside_session"] == 10


def test_commit_metadata_that_is_not_a_checkpoint_is_refused() -> None:
    assert Checkpoint.decode("") is None
    with pytest.raises(ParseError, match="not a live-signals checkpoint"):
        Checkpoint.decode('{"v": 1}')


def test_batches_of_records_give_what_records_one_by_one_give() -> None:
    records = _records()
    # Mixed in: a gap, an undecodable record, a bad price and a stale print, mid-day-change.
    gap = codec.encode(Gap("T.XXX", 1, 2, "disconnect", 3))
    bad = codec.encode(replace(sample_trades(1, day=date(2018, 1, 3), start_row=5)[0], price=-1.0))
    mixed = [*records[:690], (690, gap[1], gap[2]), (691, b"{", [("schema", codec.SCHEMA_TRADE)])]
    mixed += [(692 + k, v, h) for k, (_, v, h) in enumerate(records[690:710])]
    mixed += [(712, bad[1], bad[2]), (713, records[3][1], records[3][2])]  # 713: stale day
    mixed += [(714 + k, v, h) for k, (_, v, h) in enumerate(records[710:])]
    one = PartitionProcessor("t", 2, Params())
    whole = _run(one, mixed)
    for size in (1, 7, 64, 300, len(mixed)):
        proc = PartitionProcessor("t", 2, Params())
        got: list[object] = []
        for lo in range(0, len(mixed), size):
            got += proc.process_batch(mixed[lo : lo + size])
        assert got == whole, size
        assert proc.counts == one.counts
        assert proc.checkpoint() == one.checkpoint() == Checkpoint("2018-01-03", 702)
    assert one.counts["rejects:stale_day"] == one.counts["rejects:undecodable record"] == 1
    # A replay in batches rebuilds the same state: what follows is the same.
    resumed = PartitionProcessor("t", 2, Params(), checkpoint=Checkpoint("2018-01-03", 702))
    assert resumed.process_batch(mixed[702:900], emit=False) == [None] * 198
    assert resumed.process_batch(mixed[900:]) == whole[900:]
