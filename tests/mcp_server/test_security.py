"""Security of the serving side: signed cursors, time limits, health without internals, TLS."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError

from mcp_server.server import build_server, runtime_of
from mcp_server.settings import McpSettings
from mcp_server.tools import Cursor, ToolService, query_id
from pipeline.bench.mcp_http import SampleFacts
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.serving.store_view import StorePort
from tests.mcp_server.conftest import ServerFactory

pytestmark = pytest.mark.anyio


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def _first_page(client: Client) -> dict[str, Any]:
    r = await client.call_tool("get_enriched_data", {"symbol": "XXX", "limit": 3})
    assert r.structured_content is not None
    return r.structured_content


async def test_a_cursor_edited_by_the_client_is_refused(make_server: ServerFactory) -> None:
    async with Client(make_server()) as client:
        first = await _first_page(client)
        cursor = first["paging"]["next_cursor"]
        payload, mac = cursor.split(".")
        doc = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        doc["w"][0] -= 30 * 86_400 * 10**9  # widen the window by a month
        forged = base64.urlsafe_b64encode(orjson.dumps(doc)).decode().rstrip("=") + "." + mac
        bad = await client.call_tool(
            "get_enriched_data", {"symbol": "XXX", "limit": 3, "cursor": forged}
        )
        good = await client.call_tool(
            "get_enriched_data", {"symbol": "XXX", "limit": 3, "cursor": cursor}
        )
    assert bad.is_error
    assert "not one this server issued" in _text(bad)
    assert not good.is_error


async def test_a_cursor_of_another_server_is_refused(make_server: ServerFactory) -> None:
    async with Client(make_server(cursor_secret=b"a" * 32)) as a:
        cursor = (await _first_page(a))["paging"]["next_cursor"]
    async with Client(make_server(cursor_secret=b"b" * 32)) as b:
        r = await b.call_tool("get_enriched_data", {"symbol": "XXX", "limit": 3, "cursor": cursor})
    assert r.is_error
    assert "not one this server issued" in _text(r)


def test_even_a_validly_signed_cursor_cannot_widen_a_window_beyond_the_caps() -> None:
    secret = b"s" * 32
    q = query_id("get_enriched_data", "XXX")
    wide = Cursor(q, 0, 40 * 86_400 * 10**9, (1, 0, 0)).encode(secret)
    with pytest.raises(ToolError, match="not one this server issued"):
        Cursor.decode(wide, q, secret, 3)
    wrong_key = Cursor(q, 0, 10, (1, 2)).encode(secret)
    with pytest.raises(ToolError):
        Cursor.decode(wrong_key, q, secret, 3)
    for junk in ("", ".", "a.b.c", "x" * 500, "!!!.???"):
        with pytest.raises(ToolError):
            Cursor.decode(junk, q, secret, 3)


def test_workers_share_the_cursor_secret_and_it_never_shows() -> None:
    s = McpSettings(warehouse_url="duckdb:///x.duckdb", cursor_secret=b"k" * 32)
    again = McpSettings.from_worker_env(s.to_env())
    assert again.cursor_secret == s.cursor_secret
    assert "6b6b" not in repr(s)
    assert "kkkk" not in repr(s)
    env = {"MICROSTRUCTURE_MCP_CURSOR_SECRET": "zz"}
    with pytest.raises(ConfigError, match="hex"):
        McpSettings.from_env(env)


class _Blocking:
    """A serving port whose pages block until released (a query that runs long)."""

    def __init__(self, inner: StorePort, release: threading.Event) -> None:
        self._inner = inner
        self._release = release
        self.backend = inner.backend

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def view(self) -> Any:
        view = self._inner.view()
        release = self._release

        class Slow:
            def __getattr__(self, name: str) -> Any:
                return getattr(view, name)

            def signals_page(self, *args: Any) -> Any:
                from pipeline.serving.port import check_scan

                check_scan(10**12)  # a huge window: never on the event loop
                release.wait(30)
                return view.signals_page(*args)

        return Slow()


async def test_a_slow_call_times_out_and_does_not_stall_other_clients(
    sample: SampleFacts, tmp_path: Path
) -> None:
    release = threading.Event()
    port = StorePort(sample.path, store=tmp_path / "store", materialize="inline")
    settings = McpSettings(
        warehouse_url=f"duckdb:///{sample.path}",
        allow_unauthenticated=True,
        query_timeout_s=1.0,
        heavy_concurrency=1,
    )
    server = build_server(settings, port=_Blocking(port, release))  # type: ignore[arg-type]
    results: dict[str, Any] = {}
    try:
        async with Client(server) as client:
            assert not (await client.call_tool("list_symbols", {})).is_error

            async def slow() -> None:
                results["slow"] = await client.call_tool(
                    "get_jump_events", {"symbol": "XXX", "hours_back": 700}
                )

            async def fast() -> None:
                results["fast"] = await client.call_tool("list_symbols", {})
                results["fast_done_first"] = "slow" not in results

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                tg.start_soon(fast)
    finally:
        release.set()
    assert results["fast_done_first"], "a slow call must not hold up the event loop"
    assert not results["fast"].is_error
    assert results["slow"].is_error
    assert "took longer than 1 s" in _text(results["slow"])


def _contains_path(doc: Any, paths: list[str]) -> bool:
    text = orjson.dumps(doc).decode()
    return any(p in text for p in paths)


async def test_health_shows_states_and_ages_never_paths_or_error_texts(
    make_server: ServerFactory, sample: SampleFacts, tmp_path: Path
) -> None:
    server = make_server()
    async with Client(server) as client:
        await client.call_tool("list_symbols", {})
        doc = runtime_of(server).health()
    assert doc["status"] == "ok"
    assert {"as_of", "as_of_age_s", "data_lag_s", "last_load", "stale"} <= set(doc)
    assert not _contains_path(doc, [str(sample.path.parent), str(tmp_path), "/tmp"])
    missing = make_server(tmp_path / "nowhere" / "w.duckdb")
    async with Client(missing) as client:
        await client.call_tool("list_symbols", {})
        doc = runtime_of(missing).health()
    assert doc["status"] == "no_data"
    assert not _contains_path(doc, [str(tmp_path), "nowhere"])
    empty = tmp_path / "empty.duckdb"
    import duckdb

    duckdb.connect(str(empty)).close()
    broken = make_server(empty)
    async with Client(broken) as client:
        await client.call_tool("list_symbols", {})
        doc = runtime_of(broken).health()
    assert doc["status"] == "no_data"
    assert doc["error"] == "no_tables"
    assert not _contains_path(doc, [str(tmp_path), "empty.duckdb"])


def test_plain_http_off_loopback_needs_tls_or_an_explicitly_insecure_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("MCP_AUTH_TOKEN", "t" * 32)
    assert main(["serve-mcp", "--http", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "clear text" in err
    assert "--certfile" in err
    assert "t" * 32 not in err
    ok = McpSettings(
        warehouse_url="duckdb:///w.duckdb",
        host="0.0.0.0",
        tokens={"d": "c"},
        insecure_public_http=True,
    )
    ok.check_http()
    tls = McpSettings(
        warehouse_url="duckdb:///w.duckdb",
        host="10.0.0.5",
        tokens={"d": "c"},
        certfile=tmp_path / "c.pem",
        keyfile=tmp_path / "k.pem",
    )
    tls.check_http()
    McpSettings(warehouse_url="duckdb:///w.duckdb", tokens={"d": "c"}).check_http()


def test_the_tool_service_never_trusts_a_cursor_for_another_query() -> None:
    svc = ToolService(cursor_secret=b"q" * 32)
    c = Cursor(query_id("get_enriched_data", "AAA"), 0, 10, (1, 0, 0)).encode(svc.cursor_secret)
    with pytest.raises(ToolError, match="another query"):
        Cursor.decode(c, query_id("get_enriched_data", "XXX"), svc.cursor_secret, 3)
