"""Every tool and its error paths through the SDK's in-memory client."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from pydantic import ValidationError

from mcp_server.server import TOOL_NAMES, Runtime, runtime_of
from mcp_server.toolspec import TOOL_BY_NAME, TOOLS
from pipeline.bench.mcp_http import SampleFacts
from tests.mcp_server.conftest import ServerFactory

pytestmark = pytest.mark.anyio

NY = ZoneInfo("America/New_York")


async def ok(client: Client, name: str, **args: Any) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert not result.is_error, text
    assert result.structured_content is not None
    # The text block repeats the answer compactly: a summary line, CSV rows, one meta line.
    assert text.splitlines()[-1].startswith("meta {")
    return result.structured_content


async def err(client: Client, name: str, **args: Any) -> str:
    result = await client.call_tool(name, args)
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert result.is_error, f"expected a tool error, got {text[:200]}"
    assert "Traceback" not in text
    assert 'File "' not in text
    return text


def source_rows(sample: SampleFacts, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(sample.path), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def envelope_is_complete(data: dict[str, Any]) -> None:
    prov, comp, page = data["provenance"], data["completeness"], data["paging"]
    assert prov["as_of"].endswith("Z")
    assert prov["as_of_ns"] > 0
    assert prov["data_lag_s"] is None or prov["data_lag_s"] > 0
    assert comp["status"] in {"complete", "incomplete", "unknown"}
    assert "feed_gaps" in comp["measured_from"]
    assert page["returned"] <= page["total"]


async def test_the_seven_tools_are_listed_read_only_and_idempotent(
    server: MCPServer[Runtime],
) -> None:
    async with Client(server) as client:
        tools = (await client.list_tools()).tools
    assert [t.name for t in tools] == list(TOOL_NAMES)
    for t in tools:
        assert t.annotations is not None
        assert t.annotations.read_only_hint is True
        assert t.annotations.idempotent_hint is True
        assert t.annotations.destructive_hint is False
        assert t.output_schema is not None
        assert "provenance" in t.output_schema["properties"]
    windowed = {"get_enriched_data", "get_trading_signals", "get_jump_events"}
    for t in tools:
        if t.name in windowed:
            assert "counts back from the newest data of the symbol unless start/end" in (
                t.description or ""
            )


async def test_each_tool_is_declared_once_by_its_table_row(server: MCPServer[Runtime]) -> None:
    """Schema, argument order and output model of every tool come from mcp_server.toolspec."""
    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for spec in TOOLS:
        listed = tools[spec.name]
        assert listed.title == spec.title
        assert listed.description == spec.description
        # The input model's fields, in its order, are the tool's arguments: one order for all.
        assert list(listed.input_schema["properties"]) == list(spec.args.model_fields)
        assert set(listed.input_schema.get("required", [])) == {
            n for n, f in spec.args.model_fields.items() if f.is_required()
        }
        assert listed.output_schema == spec.output.model_json_schema()
    window = ["limit", "hours_back", "start", "end", "cursor"]
    for name in ("get_enriched_data", "get_trading_signals", "get_jump_events"):
        assert list(TOOL_BY_NAME[name].args.model_fields)[-5:] == window


async def test_arguments_the_input_model_refuses_are_refused_on_every_path(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    runtime = runtime_of(server)
    async with Client(server) as client:
        # Through MCP (the SDK validates the signature made from the input model) ...
        text = await err(client, "get_jump_events", symbol=sample.symbols[0], limit=0)
        assert "limit" in text
        # ... and through ToolService.call, the benchmark's and the contract tests' way in.
        view = runtime.port.wait_ready(30.0)
        with pytest.raises(ValidationError, match="limit"):
            runtime.service.call(view, "get_jump_events", {"symbol": sample.symbols[0], "limit": 0})
        with pytest.raises(ValidationError, match="limt"):
            runtime.service.call(view, "get_jump_events", {"symbol": "X", "limt": 5})
        # A valid call answers through the same method the MCP tool uses.
        answer = runtime.service.call(view, "get_jump_events", {"symbol": sample.symbols[0]})
        assert answer.data == await ok(client, "get_jump_events", symbol=sample.symbols[0]) | {
            "provenance": answer.data["provenance"]
        }


async def test_list_symbols_names_every_symbol_with_its_days(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    async with Client(server) as client:
        data = await ok(client, "list_symbols")
    assert [r["symbol"] for r in data["rows"]] == sorted(sample.symbols)
    assert all(r["days"] == list(sample.days) for r in data["rows"])
    assert sum(r["trades"] for r in data["rows"]) == sample.n_trades
    envelope_is_complete(data)


async def test_enriched_data_counts_back_from_the_symbols_newest_trade(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    (newest,) = source_rows(
        sample, "SELECT max(timestamp_ns) FROM market_data WHERE symbol = 'AAA'", []
    )[0:1]
    async with Client(server) as client:
        data = await ok(client, "get_enriched_data", symbol="AAA", limit=5, hours_back=2)
    w = data["window"]
    assert w["anchor"] == "newest_data"
    assert w["end_ns"] == newest[0] + 1
    assert w["end_ns"] - w["start_ns"] == 2 * 3600 * 10**9
    assert data["rows"][0]["timestamp_ns"] == newest[0]
    assert data["provenance"]["newest_trade_ns"] == newest[0]
    envelope_is_complete(data)


async def test_enriched_data_matches_the_warehouse_view_row_for_row(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    start, end = "2018-01-03T10:00:00", "2018-01-03T10:05:00"
    async with Client(server) as client:
        data = await ok(client, "get_enriched_data", symbol="XXX", limit=40, start=start, end=end)
    lo = int(datetime(2018, 1, 3, 10, tzinfo=NY).timestamp()) * 10**9
    hi = lo + 300 * 10**9
    expected = source_rows(
        sample,
        "SELECT timestamp_ns, price, size, kafka_partition, kafka_offset, trading_signal, "
        "lee_mykland_stat FROM enriched_market_data WHERE symbol = ? AND timestamp_ns >= ? "
        "AND timestamp_ns < ? ORDER BY timestamp_ns DESC, kafka_partition DESC, kafka_offset DESC",
        ["XXX", lo, hi],
    )
    assert data["window"]["anchor"] == "explicit"
    assert data["window"]["start_ns"] == lo
    assert data["paging"]["total"] == len(expected)
    got = [
        (
            r["timestamp_ns"],
            r["price"],
            r["size"],
            r["kafka_partition"],
            r["kafka_offset"],
            r["trading_signal"],
        )
        for r in data["rows"]
    ]
    assert got == [e[:6] for e in expected[: len(got)]]
    for r, e in zip(data["rows"], expected, strict=False):
        assert r["lee_mykland_stat"] == pytest.approx(e[6], rel=1e-5, abs=1e-12)


async def test_pages_of_a_window_cover_it_exactly_once_newest_first(
    server: MCPServer[Runtime],
) -> None:
    seen: list[int] = []
    async with Client(server) as client:
        data = await ok(client, "get_enriched_data", symbol="BBB", limit=25, hours_back=0.5)
        total = data["paging"]["total"]
        assert total > 25
        while True:
            seen.extend(r["timestamp_ns"] for r in data["rows"])
            cursor = data["paging"]["next_cursor"]
            if cursor is None:
                break
            assert data["paging"]["truncated"]
            assert data["paging"]["truncated_by"] == "limit"
            assert "next_cursor" in data["paging"]["hint"]
            data = await ok(client, "get_enriched_data", symbol="BBB", limit=25, cursor=cursor)
            assert data["window"]["anchor"] == "cursor"
    assert len(seen) == total
    assert seen == sorted(seen, reverse=True)


async def test_a_byte_cap_cuts_the_page_and_hands_out_a_cursor(make_server: ServerFactory) -> None:
    server = make_server(max_bytes=3000)
    async with Client(server) as client:
        data = await ok(client, "get_enriched_data", symbol="XXX", limit=200, hours_back=24)
        assert data["paging"]["truncated_by"] == "max_bytes"
        assert 0 < data["paging"]["returned"] < 200
        first = [r["timestamp_ns"] for r in data["rows"]]
        nxt = await ok(
            client,
            "get_enriched_data",
            symbol="XXX",
            limit=200,
            cursor=data["paging"]["next_cursor"],
        )
    assert nxt["rows"][0]["timestamp_ns"] <= first[-1]


async def test_trading_signals_filter_by_type_and_count_every_type(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    async with Client(server) as client:
        buys = await ok(
            client,
            "get_trading_signals",
            symbol="XXX",
            signal_type="BUY",
            limit=1000,
            hours_back=48,
        )
        every = await ok(
            client, "get_trading_signals", symbol="XXX", signal_type="ALL", limit=5, hours_back=48
        )
    assert all(r["trading_signal"] == "BUY" for r in buys["rows"])
    lo, hi = buys["window"]["start_ns"], buys["window"]["end_ns"]
    counts = dict(
        source_rows(
            sample,
            "SELECT trading_signal, count(*) FROM trading_signals WHERE symbol = ? "
            "AND timestamp_ns >= ? AND timestamp_ns < ? GROUP BY ALL",
            ["XXX", lo, hi],
        )
    )
    assert buys["counts"] == {k: counts.get(k, 0) for k in ("BUY", "SELL", "HOLD")}
    assert buys["paging"]["total"] == counts.get("BUY", 0) == len(buys["rows"])
    assert every["paging"]["total"] == sum(counts.values())
    assert every["provenance"]["kernel_versions"]
    assert every["provenance"]["params"]


async def test_jump_events_are_jumps_with_the_daily_bns_test(server: MCPServer[Runtime]) -> None:
    async with Client(server) as client:
        data = await ok(client, "get_jump_events", symbol="XXX", limit=10)
    assert all(r["jump_detected"] for r in data["rows"])
    assert [d["date"] for d in data["daily_bns"]] == ["2018-01-03", "2018-01-02"]
    envelope_is_complete(data)


async def test_symbol_metrics_give_daily_fits_newest_day_first(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    async with Client(server) as client:
        data = await ok(client, "get_symbol_metrics", symbol="CCC")
        one = await ok(
            client, "get_symbol_metrics", symbol="CCC", start_day="2018-01-02", end_day="2018-01-02"
        )
    assert [r["date"] for r in data["rows"]] == ["2018-01-03", "2018-01-02"]
    (n,) = source_rows(
        sample,
        "SELECT n_trades FROM symbol_day_metrics WHERE symbol = 'CCC' AND date = '2018-01-03'",
        [],
    )[0]
    row = data["rows"][0]
    assert row["n_trades"] == n
    assert set(row["bns"]) >= {"z", "p_value", "jump"}
    assert set(row["garch"]) >= {"alpha", "beta"}
    assert [r["date"] for r in one["rows"]] == ["2018-01-02"]


async def test_real_time_data_reports_the_newest_rows_and_unknown_symbols(
    server: MCPServer[Runtime],
) -> None:
    async with Client(server) as client:
        data = await ok(client, "get_real_time_data", symbols=["XXX", "aaa", "NOPE"])
    assert [r["symbol"] for r in data["rows"]] == ["XXX", "AAA"]
    assert data["unknown_symbols"] == ["NOPE"]
    for r in data["rows"]:
        assert r["last_trade"]["age_s"] > 0
        assert r["last_signal"]["trading_signal"] in {"BUY", "SELL", "HOLD"}
        assert r["trades_today"] > 0


async def test_data_quality_reports_the_failed_batch_gap_and_rejects(
    server: MCPServer[Runtime], sample: SampleFacts
) -> None:
    async with Client(server) as client:
        answers = {
            (s, d): await ok(client, "get_data_quality", symbol=s, day=d)
            for s in sample.symbols
            for d in sample.days
        }
    checks = {k: {c["check"]: c for c in a["checks"]} for k, a in answers.items()}
    assert any(
        c["ingest batches passed their quality suite"]["passed"] is False for c in checks.values()
    )
    assert any(c["no feed gaps in the regular session"]["passed"] is False for c in checks.values())
    assert any(a["gaps"] and a["gaps"][0]["seconds"] == 40.0 for a in answers.values())
    assert all(c["signals published for the day"]["passed"] for c in checks.values())
    failed_exp = [n for c in checks.values() for n in c if n.startswith("ingest: expect_")]
    assert failed_exp, "the failed expectation recorded in quality_results is reported"
    with_rejects = [a for a in answers.values() if a["rejects_by_reason"]]
    assert with_rejects
    assert any(a["reject_samples"] for a in with_rejects)
    assert all(
        0 < a["minutes_with_trades"] <= a["session_minutes"] == 390 for a in answers.values()
    )


async def test_completeness_names_the_gap_in_a_window_that_holds_it(
    server: MCPServer[Runtime],
) -> None:
    async with Client(server) as client:
        q = await ok(client, "get_data_quality", symbol="BBB", day="2018-01-03")
        found = [a for a in [q] if a["gaps"]]
        if not found:  # the gap belongs to another symbol of the fixture: find it
            for s in ("XXX", "AAA", "CCC"):
                q = await ok(client, "get_data_quality", symbol=s, day="2018-01-03")
                if q["gaps"]:
                    break
        gap = q["gaps"][0]
        data = await ok(
            client,
            "get_enriched_data",
            symbol=q["symbol"],
            start=gap["start"],
            end=gap["end"],
            limit=1,
        )
    assert data["completeness"]["status"] == "incomplete"
    assert data["completeness"]["feed_gaps"] == 1
    assert any("gap" in r for r in data["completeness"]["reasons"])


async def test_fixable_input_comes_back_as_a_readable_tool_error(
    server: MCPServer[Runtime],
) -> None:
    async with Client(server) as client:
        assert "unknown symbol 'ZZZ'" in await err(client, "get_enriched_data", symbol="ZZZ")
        assert "see list_symbols" in await err(client, "get_trading_signals", symbol="ZZZ")
        assert "not a ticker" in await err(client, "get_enriched_data", symbol="A B")
        assert "greater than or equal to 1" in await err(
            client, "get_enriched_data", symbol="XXX", limit=0
        )
        assert "less than or equal to 1000" in await err(
            client, "get_enriched_data", symbol="XXX", limit=5000
        )
        assert "either hours_back or start" in await err(
            client, "get_enriched_data", symbol="XXX", hours_back=1, start="2018-01-03"
        )
        assert "window is empty" in await err(
            client,
            "get_enriched_data",
            symbol="XXX",
            start="2018-01-03T12:00",
            end="2018-01-03T11:00",
        )
        assert "not an ISO 8601 time" in await err(
            client, "get_jump_events", symbol="XXX", start="yesterday"
        )
        assert "longer than 31 days" in await err(
            client, "get_enriched_data", symbol="XXX", start="2017-01-01", end="2018-01-03"
        )
        assert "greater than 0" in await err(
            client, "get_enriched_data", symbol="XXX", hours_back=-1
        )
        assert "Input should be 'BUY', 'SELL', 'HOLD' or 'ALL'" in await err(
            client, "get_trading_signals", symbol="XXX", signal_type="buy"
        )
        assert "cursor is not one this server issued" in await err(
            client, "get_enriched_data", symbol="XXX", cursor="not-a-cursor"
        )
        page = await ok(client, "get_enriched_data", symbol="XXX", limit=1)
        assert "belongs to another query" in await err(
            client, "get_enriched_data", symbol="AAA", cursor=page["paging"]["next_cursor"]
        )
        assert "is not a day" in await err(
            client, "get_data_quality", symbol="XXX", day="03/01/2018"
        )
        assert "has no data on 2018-01-05" in await err(
            client, "get_data_quality", symbol="XXX", day="2018-01-05"
        )
        assert "after end_day" in await err(
            client, "get_symbol_metrics", symbol="XXX", start_day="2018-01-03", end_day="2018-01-02"
        )
        assert "at least 1 item" in await err(client, "get_real_time_data", symbols=[])
        assert "none of NOPE" in await err(client, "get_real_time_data", symbols=["NOPE"])
        assert "Unknown tool" in await err(client, "drop_everything")


async def test_a_window_with_no_trades_is_an_empty_answer_not_an_error(
    server: MCPServer[Runtime],
) -> None:
    async with Client(server) as client:
        data = await ok(
            client, "get_enriched_data", symbol="XXX", start="2017-12-28", end="2017-12-29"
        )
    assert data["rows"] == []
    assert data["paging"]["total"] == 0
    assert not data["paging"]["truncated"]
    assert data["completeness"]["status"] == "unknown"


def test_new_york_and_utc_inputs_name_the_same_instant() -> None:
    from mcp_server.tools import parse_time

    ny = parse_time("2018-01-03T10:00:00", "start")
    utc = parse_time("2018-01-03T15:00:00Z", "start")
    assert ny == utc == int(datetime(2018, 1, 3, 15, tzinfo=UTC).timestamp()) * 10**9
    assert parse_time("2018-01-03", "end") - parse_time("2018-01-03", "start") == 24 * 3600 * 10**9
