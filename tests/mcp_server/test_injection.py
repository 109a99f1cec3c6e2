"""SQL-injection strings in every string argument: a tool error or an empty answer, and the
warehouse file is byte-for-byte unchanged (the server never holds it writable anyway)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.mcp_server.conftest import ServerFactory, file_digest

pytestmark = pytest.mark.anyio

PAYLOADS = (
    "XXX'; DROP TABLE market_data; --",
    "XXX' OR '1'='1",
    "1; ATTACH 'x.db' AS x; --",
    "XXX/*",
    "') UNION SELECT * FROM kafka_offsets --",
    "XXX\x00",
    "COPY market_data TO '/tmp/pwned.csv'",
    "$(rm -rf /)",
    "X" * 5000,
)

# Every string argument of every tool (cursor strings are parsed, never spliced either).
CALLS = (
    ("get_enriched_data", lambda p: {"symbol": p}),
    ("get_enriched_data", lambda p: {"symbol": "XXX", "start": p}),
    ("get_enriched_data", lambda p: {"symbol": "XXX", "end": p}),
    ("get_enriched_data", lambda p: {"symbol": "XXX", "cursor": p}),
    ("get_trading_signals", lambda p: {"symbol": p}),
    ("get_trading_signals", lambda p: {"symbol": "XXX", "signal_type": p}),
    ("get_trading_signals", lambda p: {"symbol": "XXX", "start": p}),
    ("get_trading_signals", lambda p: {"symbol": "XXX", "end": p}),
    ("get_trading_signals", lambda p: {"symbol": "XXX", "cursor": p}),
    ("get_jump_events", lambda p: {"symbol": p}),
    ("get_jump_events", lambda p: {"symbol": "XXX", "start": p}),
    ("get_jump_events", lambda p: {"symbol": "XXX", "end": p}),
    ("get_jump_events", lambda p: {"symbol": "XXX", "cursor": p}),
    ("get_symbol_metrics", lambda p: {"symbol": p}),
    ("get_symbol_metrics", lambda p: {"symbol": "XXX", "start_day": p}),
    ("get_symbol_metrics", lambda p: {"symbol": "XXX", "end_day": p}),
    ("get_real_time_data", lambda p: {"symbols": [p]}),
    ("get_real_time_data", lambda p: {"symbols": ["XXX", p]}),
    ("get_data_quality", lambda p: {"symbol": p}),
    ("get_data_quality", lambda p: {"symbol": "XXX", "day": p}),
    ("list_symbols", lambda p: {"cursor": p}),
)


async def test_injection_strings_are_refused_or_find_nothing_and_change_nothing(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    before = file_digest(warehouse_copy)
    server = make_server(warehouse_copy)
    outcomes: dict[str, int] = {"error": 0, "empty": 0}
    async with Client(server) as client:
        for name, build in CALLS:
            for payload in PAYLOADS:
                result = await client.call_tool(name, build(payload))
                if result.is_error:
                    outcomes["error"] += 1
                    continue
                data = result.structured_content or {}
                # Only a partial answer is acceptable: the real symbol answered, the
                # payload listed as unknown (get_real_time_data with one good symbol).
                assert name == "get_real_time_data", (name, payload[:40], data)
                assert data["unknown_symbols"]
                assert [r["symbol"] for r in data["rows"]] == ["XXX"]
                outcomes["empty"] += 1
    assert outcomes["error"] >= len(CALLS) * len(PAYLOADS) - len(PAYLOADS)
    assert file_digest(warehouse_copy) == before
    assert not _exists("/tmp/pwned.csv")


def _exists(path: str) -> bool:
    return Path(path).exists()
