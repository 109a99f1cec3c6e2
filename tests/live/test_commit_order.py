"""live-signals commits a batch's offsets only once it and every earlier batch are acknowledged.

No broker: the service's bookkeeping of produced batches, driven by hand.
"""

from __future__ import annotations

from pipeline.kafka.producer import PendingAcks
from pipeline.live.partition import Checkpoint
from pipeline.live.service import LiveConfig, LiveSignalsService, _Batch


def _service() -> LiveSignalsService:
    # Clients are created but never connect: nothing here polls them.
    return LiveSignalsService(LiveConfig("127.0.0.1:1", "in", "out"))


def test_offsets_wait_for_every_earlier_batch_and_a_failed_record_holds_them_back() -> None:
    svc = _service()
    acks = [PendingAcks(svc._producer, n, None) for n in (2, 1, 3)]
    cp = Checkpoint("2018-01-02", 0)
    svc._inflight.extend(
        [
            _Batch(acks[0], {0: (10, cp), 1: (5, cp)}),
            _Batch(acks[1], {0: (20, cp)}),
            _Batch(acks[2], {1: (9, cp)}),
        ]
    )
    acks[1].left = 0  # the second batch is acknowledged, the first is not: nothing moves
    svc._collect_acked()
    assert svc._to_commit == {}
    acks[0].left = 0
    svc._collect_acked()  # now both: the later offset of partition 0 wins
    assert svc._to_commit == {0: (20, cp), 1: (5, cp)}
    acks[2].left = 1  # one record of the third batch unacknowledged (or failed): held back
    svc._collect_acked()
    assert svc._to_commit == {0: (20, cp), 1: (5, cp)}
    assert len(svc._inflight) == 1


def test_a_lost_partition_leaves_the_commit_set_and_every_pending_batch() -> None:
    svc = _service()
    cp = Checkpoint("2018-01-02", 0)
    svc._to_commit = {0: (3, cp), 2: (7, cp)}
    svc._inflight.append(_Batch(PendingAcks(svc._producer, 1, None), {0: (4, cp), 2: (8, cp)}))
    svc._on_lost(svc._consumer, [])  # nothing lost: nothing changes
    svc._forget(2)
    assert svc._to_commit == {0: (3, cp)}
    assert svc._inflight[0].reached == {0: (4, cp)}
