"""One contract, two read sides: every tool answers the same from DuckDB's store and from Vertica.

The DuckDB side is real (the materializer follows the warehouse file into a serving store
of Arrow files, read by the store view). The Vertica side runs its real SQL through a
strict stand-in for ``vertica_python.connect`` (``tests/support/vertica_standin.py``):
no Vertica server can run on this machine, so the stand-in executes each statement on a
DuckDB copy of the same warehouse after refusing what Vertica or the MCP user's grants
would refuse (non-Vertica syntax, unbound values, tables not granted, unpinned epochs).
``make test-vertica`` runs the same calls against a real server.

For the same data, every tool's rows, paging (cursors included), provenance and
completeness must be identical; only the times an answer is taken at differ (``as_of``,
``data_lag_s`` and the ages of the newest rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from mcp_server.tools import ToolService
from pipeline.bench.mcp_http import SampleFacts
from pipeline.serving.store_view import StorePort
from pipeline.serving.vertica import VerticaPort
from pipeline.settings import Secret
from pipeline.warehouse.vertica_backend import VerticaConfig
from tests.serving.conftest import SYMBOLS
from tests.support.vertica_standin import VerticaStandIn

SECRET = b"contract-tests-cursor-secret-0001"
MOVING = {"as_of", "as_of_ns", "data_lag_s", "age_s", "emitted_age_s"}

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("list_symbols", {}),
    ("list_symbols", {"limit": 2}),
    ("get_real_time_data", {"symbols": [*SYMBOLS, "NOPE"]}),
    ("get_signal_evaluation", {}),
    ("get_signal_evaluation", {"symbol": "XXX"}),
]
for _s in SYMBOLS:
    CALLS += [
        ("get_enriched_data", {"symbol": _s, "limit": 7}),
        (
            "get_enriched_data",
            {"symbol": _s, "limit": 40, "start": "2018-01-02T15:58:00", "end": "2018-01-03T09:31"},
        ),
        ("get_jump_events", {"symbol": _s, "limit": 3}),
        ("get_jump_events", {"symbol": _s, "start": "2018-01-02", "end": "2018-01-02"}),
        ("get_symbol_metrics", {"symbol": _s}),
        ("get_symbol_metrics", {"symbol": _s, "days": 1}),
        ("get_data_quality", {"symbol": _s}),
        ("get_data_quality", {"symbol": _s, "day": "2018-01-02"}),
    ]
    for _t in ("ALL", "BUY", "SELL", "HOLD"):
        CALLS.append(("get_trading_signals", {"symbol": _s, "signal_type": _t, "limit": 4}))
    CALLS.append(("get_trading_signals", {"symbol": _s, "hours_back": 48, "limit": 3}))

# The live path's history (tests/serving/conftest.py): XXX's live tail after the run of
# 2018-01-03, and AAA's 2018-01-04 that only the live path has.
for _t in ("ALL", "BUY", "SELL", "HOLD"):
    CALLS.append(
        (
            "get_trading_signals",
            {"symbol": "XXX", "signal_type": _t, "start": "2018-01-03", "end": "2018-01-03"},
        )
    )
CALLS += [
    ("get_trading_signals", {"symbol": "XXX", "start": "2018-01-03T09:54", "limit": 30}),
    ("get_trading_signals", {"symbol": "AAA", "start": "2018-01-03", "end": "2018-01-04"}),
    ("get_jump_events", {"symbol": "XXX", "start": "2018-01-03", "end": "2018-01-03"}),
]

ERRORS: list[tuple[str, dict[str, Any]]] = [
    ("get_enriched_data", {"symbol": "NOPE"}),
    ("get_enriched_data", {"symbol": "XXX", "cursor": "forged.cursor"}),
    ("get_trading_signals", {"symbol": "XXX", "start": "2018-01-03", "end": "2018-01-02"}),
    ("get_data_quality", {"symbol": "XXX", "day": "2017-12-29"}),
    ("get_symbol_metrics", {"symbol": "XXX", "days": 99}),
]


def steady(value: Any) -> Any:
    """Drop what depends on when an answer was taken, not on the data."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in MOVING}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


@pytest.fixture(scope="module")
def standin(served: SampleFacts) -> Iterator[VerticaStandIn]:
    with VerticaStandIn(served.path) as vs:
        yield vs


def vertica_port(standin: VerticaStandIn, **kwargs: Any) -> VerticaPort:
    config = VerticaConfig(
        host="vertica.example", database="micro", user="micro_mcp", password=Secret("pw")
    )
    return VerticaPort(config, connect=standin.connect, **kwargs)


@pytest.fixture(scope="module")
def sides(
    served: SampleFacts, standin: VerticaStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    store = StorePort(
        served.path, store=tmp_path_factory.mktemp("contract-store"), materialize="inline"
    )
    store.start()
    vertica = vertica_port(standin)
    vertica.refresh()
    try:
        yield {"duckdb": store.view(), "vertica": vertica.view()}
    finally:
        store.close()
        vertica.close()


def answer(view: Any, tool: str, args: dict[str, Any]) -> dict[str, Any] | str:
    svc = ToolService(cursor_secret=SECRET)
    try:
        return svc.call(view, tool, args).data
    except ToolError as e:
        return f"ToolError: {e}"
    except ValidationError as e:  # the tool's input model (mcp_server.toolspec) refused it
        return f"ValidationError: {e.errors(include_url=False)}"


@pytest.mark.parametrize(
    ("tool", "args"), CALLS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(CALLS)]
)
def test_every_tool_answers_the_same_on_duckdb_and_vertica(
    sides: dict[str, Any], tool: str, args: dict[str, Any]
) -> None:
    duck = answer(sides["duckdb"], tool, args)
    vert = answer(sides["vertica"], tool, args)
    assert isinstance(duck, dict), duck
    assert steady(vert) == steady(duck)
    rows = duck.get("rows") or duck.get("checks")
    assert rows, "every call of the contract returns rows"


@pytest.mark.parametrize(("tool", "args"), ERRORS)
def test_bad_input_is_refused_the_same_on_duckdb_and_vertica(
    sides: dict[str, Any], tool: str, args: dict[str, Any]
) -> None:
    duck = answer(sides["duckdb"], tool, args)
    assert isinstance(duck, str)
    assert duck.startswith(("ToolError", "ValidationError"))
    assert answer(sides["vertica"], tool, args) == duck


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("get_enriched_data", {"symbol": "XXX", "limit": 700, "hours_back": 5}),
        ("get_trading_signals", {"symbol": "AAA", "signal_type": "BUY", "limit": 2}),
        ("get_trading_signals", {"symbol": "BBB", "signal_type": "ALL", "limit": 900}),
        ("get_jump_events", {"symbol": "CCC", "limit": 2, "hours_back": 400}),
        ("list_symbols", {"limit": 1}),
        # Across the run's last row of XXX's 2018-01-03 into its live tail, and a live-only day.
        ("get_trading_signals", {"symbol": "XXX", "start": "2018-01-03", "limit": 500}),
        ("get_trading_signals", {"symbol": "XXX", "signal_type": "HOLD", "limit": 333}),
        ("get_trading_signals", {"symbol": "AAA", "start": "2018-01-04", "end": "2018-01-04"}),
    ],
)
def test_paging_to_the_end_visits_the_same_rows_once_on_both(
    sides: dict[str, Any], tool: str, args: dict[str, Any]
) -> None:
    pages: dict[str, list[Any]] = {}
    for side, view in sides.items():
        seen: list[Any] = []
        cursor = None
        for _ in range(100):
            a = answer(view, tool, {**args, **({"cursor": cursor} if cursor else {})})
            assert isinstance(a, dict), a
            seen.append(steady(a))
            cursor = a["paging"]["next_cursor"]
            if cursor is None:
                break
        else:
            pytest.fail("paging did not end")
        pages[side] = seen
    assert pages["vertica"] == pages["duckdb"]
    rows = [r for page in pages["duckdb"] for r in page["rows"]]
    keys = [
        tuple(
            r.get(k) for k in ("symbol", "timestamp_ns", "kafka_partition", "kafka_offset", "seq")
        )
        for r in rows
    ]
    assert len(keys) == len(set(keys)), "no row twice"
    first = pages["duckdb"][0]["paging"]
    assert len(rows) == first["total"], "every row of the window, once"


def test_every_vertica_statement_is_pinned_bound_and_within_the_grants(
    sides: dict[str, Any], standin: VerticaStandIn
) -> None:
    for tool, args in CALLS:
        answer(sides["vertica"], tool, args)
    selects = [s for s in standin.statements if not s.sql.startswith("SET ")]
    reads = [s for s in selects if "GET_CURRENT_EPOCH" not in s.sql]
    assert reads
    assert all(s.sql.startswith("AT EPOCH ") for s in reads)
    assert all(s.use_prepared_statements for s in selects)
    assert all(s.outcome == "ok" for s in standin.statements), [
        (s.sql[:80], s.outcome) for s in standin.statements if s.outcome != "ok"
    ]
    epochs = {s.epoch for s in reads}
    assert len(epochs) == 1, "one view, one epoch"
    kwargs = standin.statements[0].kwargs
    assert kwargs["user"] == "micro_mcp"
    assert 0 < kwargs["connection_timeout"] < 60
    sets = {s.sql for s in standin.statements if s.sql.startswith("SET")}
    assert "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY" in sets
    assert any(s.startswith("SET SESSION RUNTIMECAP") for s in sets)


def test_the_stores_answers_equal_the_warehouse_rows_themselves(
    sides: dict[str, Any], served: SampleFacts
) -> None:
    import duckdb

    data = answer(
        sides["duckdb"], "get_enriched_data", {"symbol": "AAA", "limit": 1000, "hours_back": 2}
    )
    assert isinstance(data, dict)
    w = data["window"]
    with duckdb.connect(str(served.path), read_only=True) as con:
        want = con.execute(
            "SELECT timestamp_ns, kafka_partition, kafka_offset, size FROM market_data "
            "WHERE symbol = 'AAA' AND timestamp_ns >= ? AND timestamp_ns < ? "
            "ORDER BY timestamp_ns DESC, kafka_partition DESC, kafka_offset DESC",
            [w["start_ns"], w["end_ns"]],
        ).fetchall()
    got = [
        (r["timestamp_ns"], r["kafka_partition"], r["kafka_offset"], r["size"])
        for r in data["rows"]
    ]
    assert got == want[: len(got)]
    assert data["paging"]["total"] == len(want)


def test_a_vertica_statement_over_the_time_limit_is_a_timeout_and_its_connection_is_dropped(
    standin: VerticaStandIn,
) -> None:
    from pipeline.serving.port import ServingTimeout

    port = vertica_port(standin, timeout_s=5.0, pool_size=1)
    port.refresh()
    view = port.view()
    standin.stall_next_statement(30.0)
    with pytest.raises(ServingTimeout):
        view.trades_page("XXX", 0, 2**62, None, 5)
    # The pool opened a fresh connection for the next statement.
    assert view.trades_page("XXX", 0, 2**62, None, 5).rows
    port.close()


def test_the_vertica_catalog_follows_only_new_batches(
    standin: VerticaStandIn, tmp_path: Path
) -> None:
    port = vertica_port(standin)
    port.refresh()
    n = len(standin.statements)
    standin.advance_epoch()
    port.refresh()
    again = [s.sql for s in standin.statements[n:]]
    # Nothing changed: no per-minute facts, no signal facts, no gap reads.
    assert not any("GROUP BY l.start_offset" in s for s in again)
    assert not any("FROM trading_signals" in s for s in again)
    assert port.view().epoch == standin.current_epoch - 1
    port.close()


def test_a_reject_received_in_the_new_york_evening_belongs_to_that_day_on_both(
    served_copy: Path, tmp_path: Path
) -> None:
    """Issue 14.13: rejects received after 19:00 New York (the next day in UTC) were
    attributed to the next day (a naive UTC time read as New York wall time), so their
    samples disagreed with the counts. Both sides judge by the New York day's bounds."""
    from dataclasses import replace
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from tests.serving.test_materialize import load, shifted

    ny = ZoneInfo("America/New_York")

    def at(hh: int, mm: int) -> int:
        return int(datetime(2018, 1, 5, hh, mm, tzinfo=ny).timestamp()) * 10**9

    good = shifted(40, days=2)  # trades of 2018-01-05
    bad = [
        replace(good[0], trade_id=f"bad-{i}", price=0.0, receipt_ns=r)
        for i, r in enumerate((at(13, 0), at(20, 30), at(23, 59)))
    ]
    start, _stop = load(served_copy, [*good, *bad])
    store = StorePort(served_copy, store=tmp_path / "store", materialize="inline")
    store.start()
    try:
        with VerticaStandIn(served_copy) as vs:
            vertica = vertica_port(vs)
            vertica.refresh()
            try:
                for side, view in (("duckdb", store.view()), ("vertica", vertica.view())):
                    q = answer(view, "get_data_quality", {"symbol": "XXX", "day": "2018-01-05"})
                    assert isinstance(q, dict), (side, q)
                    assert sum(q["rejects_by_reason"].values()) == 3, (side, q["rejects_by_reason"])
                    assert sorted(s["kafka_offset"] for s in q["reject_samples"]) == [
                        start + 40,
                        start + 41,
                        start + 42,
                    ], side
            finally:
                vertica.close()
    finally:
        store.close()


@pytest.mark.parametrize("side", ["duckdb", "vertica"])
def test_live_rows_follow_the_runs_last_row_provisional_and_counted(
    sides: dict[str, Any], served: SampleFacts, side: str
) -> None:
    """Issue 17.5: the batch is served to its last row, the live path's rows after it."""
    import duckdb

    view = sides[side]
    day = {"symbol": "XXX", "start": "2018-01-03", "end": "2018-01-03", "limit": 1000}
    a = answer(view, "get_trading_signals", day)
    assert isinstance(a, dict)
    rows = list(a["rows"])
    cursor = a["paging"]["next_cursor"]
    while cursor:
        more = answer(view, "get_trading_signals", {**day, "cursor": cursor})
        assert isinstance(more, dict)
        rows += more["rows"]
        cursor = more["paging"]["next_cursor"]
    with duckdb.connect(str(served.path), read_only=True) as con:
        [(n_batch, last_ts, last_seq)] = con.execute(
            "SELECT count(*), max(timestamp_ns), arg_max(seq, (timestamp_ns, seq)) "
            "FROM trading_signals WHERE symbol = 'XXX' AND date = DATE '2018-01-03'"
        ).fetchall()
        [(n_tail, n_tail_buy)] = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE trading_signal = 'BUY') FROM live_signals "
            "WHERE symbol = 'XXX' AND date = DATE '2018-01-03' "
            "AND (timestamp_ns, seq) > (?, ?)",
            [last_ts, last_seq],
        ).fetchall()
        [(newest_live,)] = con.execute(
            "SELECT max(timestamp_ns) FROM live_signals WHERE symbol = 'XXX'"
        ).fetchall()
    assert n_tail > 100
    assert a["paging"]["total"] == len(rows) == n_batch + n_tail
    live = [r for r in rows if r["source"] == "live"]
    batch = [r for r in rows if r["source"] == "batch"]
    assert len(live) == n_tail
    assert all(r["provisional"] for r in live)
    assert all((r["timestamp_ns"], r["seq"]) > (last_ts, last_seq) for r in live)
    assert rows[: len(live)] == live, "newest first: the live tail, then the batch"
    assert len(batch) == n_batch
    assert all(r["provisional"] for r in batch), "the sample's 2018-01-03 run is not final"
    assert a["counts"]["BUY"] >= n_tail_buy
    assert sum(a["counts"].values()) == n_batch + n_tail

    # A day only the live path has: every row live and provisional.
    b = answer(view, "get_trading_signals", {"symbol": "AAA", "start": "2018-01-04", "limit": 5})
    assert isinstance(b, dict)
    assert b["rows"]
    assert {r["source"] for r in b["rows"]} == {"live"}
    assert b["paging"]["total"] == 499

    rt = answer(view, "get_real_time_data", {"symbols": ["XXX", "BBB"]})
    assert isinstance(rt, dict)
    xxx, bbb = rt["rows"]
    assert bbb["live_signal"] is None
    ls = xxx["live_signal"]
    assert ls["provisional"] is True
    assert ls["timestamp_ns"] == newest_live
    assert ls["provenance"] == {
        "lm_n": ls["seq"],
        "lm_n_rule": "running",
        "garch_params": None,
        "acd_params": None,
        "kernel_version": "1.0.0",
    }
    assert ls["batch"] is None, "the newest live signal is a trade no run has read"
    assert ls["emitted"] is not None
