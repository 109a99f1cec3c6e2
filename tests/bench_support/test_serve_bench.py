"""The pieces of ``bench serve`` that decide its figures, checked on small inputs.

The benchmark itself runs on a 20,000,000-trade warehouse (``microstructure bench serve``);
here: its query mix covers every tool over the whole history, a working copy shares the
store's files without copying them, and freshness is the first answer after a commit that
shows the batch.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from mcp_server.server import TOOL_NAMES
from pipeline.bench.serve import Prober, _rate, serve_mix, working_copy


def test_the_mix_calls_every_tool_but_the_evaluation_over_every_day_and_symbol() -> None:
    symbols = [f"S{i:02d}" for i in range(25)]
    days = [f"2018-01-{d:02d}" for d in range(2, 22)]
    calls = serve_mix(symbols, days)
    assert {t for t, _ in calls} == set(TOOL_NAMES) - {"get_signal_evaluation"}
    asked_days = {a.get("day") or a.get("start", "")[:10] for _, a in calls} - {""}
    assert len(asked_days & set(days)) >= 10, "history is asked, not only the newest day"
    assert {a["symbol"] for _, a in calls if "symbol" in a} == set(symbols)
    assert serve_mix(symbols, days) == calls, "reproducible"


def test_a_working_copy_copies_the_warehouse_and_links_the_store(tmp_path: Path) -> None:
    wh = tmp_path / "cache" / "w.duckdb"
    store = tmp_path / "cache" / "w.duckdb.serving"
    (store / "days" / "2018-01-02").mkdir(parents=True)
    wh.write_bytes(b"warehouse")
    seg = store / "days" / "2018-01-02" / "t1.arrow"
    seg.write_bytes(b"segment")
    (store / "CURRENT").write_text("gens/g1.json")
    copy = working_copy(wh, tmp_path / "run")
    assert copy.read_bytes() == b"warehouse"
    assert os.stat(copy).st_ino != os.stat(wh).st_ino, "the warehouse is copied: loads change it"
    linked = copy.with_name(copy.name + ".serving") / "days" / "2018-01-02" / "t1.arrow"
    assert os.stat(linked).st_ino == os.stat(seg).st_ino, "store files are never modified"


def test_freshness_is_the_first_answer_after_the_commit_that_shows_the_batch() -> None:
    probe = Prober.__new__(Prober)
    probe.seen = [(100, 5), (150, 7), (210, 9), (260, 12)]  # (wall ns, newest marker ts)
    batches = [
        SimpleNamespace(committed_wall_ns=140, marker_ts_ns=7),  # seen at 150
        SimpleNamespace(committed_wall_ns=200, marker_ts_ns=12),  # not before 260
        SimpleNamespace(committed_wall_ns=300, marker_ts_ns=20),  # never seen
    ]
    assert probe.freshness_s(batches) == [10 / 1e9, 60 / 1e9]


def test_the_ingest_rate_of_a_mode_pools_its_runs() -> None:
    runs = [
        {"server": "none", "rows": 100, "seconds": 1.0},
        {"server": "load", "rows": 90, "seconds": 1.0},
        {"server": "none", "rows": 300, "seconds": 2.0},
    ]
    assert _rate(runs, "none") == 400 / 3.0
    assert _rate(runs, "load") == 90.0
