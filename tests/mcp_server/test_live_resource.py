"""The live resource per symbol: read it, and be told when a new live BUY/SELL arrives.

Through the SDK's in-memory client (MCP 2026-07-28, ``subscriptions/listen``): live records
made by the live path's partition processor are loaded into a copy of the sample warehouse
by the real loader; a client listening for ``microstructure://live/XXX`` is notified once a
batch holding a new live BUY or SELL commits, and not for a batch without one.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import anyio
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_server.live_resource import live_uri, new_actions
from pipeline.kafka.offsets import OffsetRange
from pipeline.microbatch import shape_batch
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from tests.mcp_server.conftest import ServerFactory
from tests.mcp_server.running import serve_http
from tests.warehouse.factories import live_outputs, live_records

pytestmark = pytest.mark.anyio

TOKEN = "live-token-0123456789abcdef"

TOPIC = "trading-signals"


def test_a_new_action_is_a_larger_count_of_the_same_day_or_a_newer_day_with_one() -> None:
    d1, d2 = date(2018, 1, 2), date(2018, 1, 3)
    before = {"A": (d1, 2), "B": (d1, 1), "C": (d1, 3)}
    after = {"A": (d1, 3), "B": (d1, 1), "C": (d2, 0), "D": (d2, 1), "E": (d2, 0)}
    assert new_actions(before, after) == ["A", "D"]


def _load(path: Path, records: list, start: int) -> None:
    batch = shape_batch(records, OffsetRange(TOPIC, 0, start, start + len(records)))
    DuckDBWarehouse(path).load_batch(batch, expected_start=start, run_id=f"live-{start}")


async def test_a_listener_is_notified_of_a_new_live_buy_or_sell_and_reads_it(
    make_server: ServerFactory, warehouse_copy: Path
) -> None:
    records = live_records(live_outputs(3400, day=date(2018, 1, 3), bad_at=None), topic=TOPIC)
    labels = [orjson.loads(r.value or b"{}")["trading_signal"] for r in records]
    actions = [i for i, s in enumerate(labels) if s != "HOLD"]
    # The last quiet stretch between two actions: a batch of HOLDs, then one with actions.
    j = max(k for k in range(len(actions) - 1) if actions[k + 1] - actions[k] > 5)
    quiet_from, quiet_to = actions[j] + 1, actions[j + 1]
    _load(warehouse_copy, records[:quiet_from], 0)
    server = make_server(path=warehouse_copy, live_watch_s=0.05)
    uri = live_uri("XXX")
    async with Client(server) as client:
        first = orjson.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert first["live_signal"]["provisional"] is True
        n0 = first["live_buy_sell_today"]
        async with client.listen(resource_subscriptions=[uri]) as sub:
            assert uri in (sub.honored.resource_subscriptions or [])
            # A batch of HOLDs only: no notice.
            _load(warehouse_copy, records[quiet_from:quiet_to], quiet_from)
            with anyio.move_on_after(1.0) as quiet:
                async for _event in sub:
                    pytest.fail("notified without a new BUY/SELL")
            assert quiet.cancelled_caught
            # The batch with the day's next live actions: one notice for this URI.
            _load(warehouse_copy, records[quiet_to:], quiet_to)
            with anyio.fail_after(10):
                event = await sub.__anext__()
            assert getattr(event, "uri", None) == uri
        now = orjson.loads((await client.read_resource(uri)).contents[0].text)  # type: ignore[union-attr]
        assert n0 == j + 1
        assert now["live_buy_sell_today"] == len(actions)
        assert now["live_signal"]["timestamp_ns"] > first["live_signal"]["timestamp_ns"]


def _split(records: list) -> tuple[int, int, list[int]]:
    """Return a quiet stretch ``[a, b)`` of HOLDs followed by new live actions, and all actions."""
    labels = [orjson.loads(r.value or b"{}")["trading_signal"] for r in records]
    actions = [i for i, s in enumerate(labels) if s != "HOLD"]
    j = max(k for k in range(len(actions) - 1) if actions[k + 1] - actions[k] > 5)
    return actions[j] + 1, actions[j + 1], actions


async def test_over_streamable_http_a_listener_is_notified_by_the_servers_own_materializer(
    warehouse_copy: Path, tmp_path: Path
) -> None:
    """The served path: the HTTP server (stateless, JSON answers) and its child materializer."""
    records = live_records(live_outputs(3400, day=date(2018, 1, 3), bad_at=None), topic=TOPIC)
    quiet_from, _, _ = _split(records)
    _load(warehouse_copy, records[:quiet_from], 0)
    uri = live_uri("XXX")
    with serve_http(warehouse_copy, tmp_path / "http", env={"MCP_AUTH_TOKEN": TOKEN}) as server:
        async with (
            # A listen stream is silent between events: the client's read timeout (httpx2's
            # default is 5 s) must outlast the quiet, or the stream ends without a close.
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=httpx2.Timeout(10, read=60)
            ) as http,
            Client(streamable_http_client(server.mcp, http_client=http)) as client,
        ):
            async with client.listen(resource_subscriptions=[uri]) as sub:
                await anyio.to_thread.run_sync(
                    _load, warehouse_copy, records[quiet_from:], quiet_from
                )
                with anyio.fail_after(20):
                    event = await sub.__anext__()
            assert getattr(event, "uri", None) == uri
            read = await client.read_resource(uri)
    doc = orjson.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert doc["live_signal"]["provisional"] is True
