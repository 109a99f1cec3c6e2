"""``microstructure serve-mcp``: stdio for a real client, refusals of unsafe HTTP setups,
and settings that never show a token."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from mcp_server.http import RateLimiter, _host_patterns, _matches
from mcp_server.settings import McpSettings, read_tokens_file
from pipeline.bench.mcp_http import SampleFacts
from pipeline.cli import main
from pipeline.errors import ConfigError


@pytest.mark.anyio
async def test_stdio_serves_a_real_client_and_keeps_stdout_for_mcp(
    sample: SampleFacts, anyio_backend: str
) -> None:
    del anyio_backend
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_")}
    env["MICROSTRUCTURE_WAREHOUSE_URL"] = f"duckdb:///{sample.path}"
    params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server"], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        tools = (await client.list_tools()).tools
        result = await client.call_tool("get_trading_signals", {"symbol": "XXX", "limit": 2})
    assert len(tools) == 8
    assert not result.is_error
    assert result.structured_content is not None
    assert len(result.structured_content["rows"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve-mcp", "--http"], "needs a bearer token"),
        (
            ["serve-mcp", "--http", "--host", "0.0.0.0", "--allow-unauthenticated-local-dev"],
            "only allowed on a loopback address",
        ),
        (["serve-mcp", "--http", "--certfile", "cert.pem"], "go together"),
    ],
)
def test_unsafe_http_setups_are_refused_before_binding(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MCP_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("MICROSTRUCTURE_MCP_TOKENS_FILE", raising=False)
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_settings_keep_digests_not_tokens(tmp_path: Path) -> None:
    token = "s3cret-token-value-0123456789"
    tokens = tmp_path / "tokens"
    tokens.write_text(f"carol:{token}\n")
    s = McpSettings.from_env(
        {
            "MCP_AUTH_TOKEN": "another-secret-0123456789",
            "MICROSTRUCTURE_MCP_TOKENS_FILE": str(tokens),
        }
    )
    assert set(s.tokens.values()) == {"default", "carol"}
    assert token not in repr(s)
    assert token not in str(s.to_env())
    assert "another-secret" not in str(s.to_env())
    back = McpSettings.from_worker_env(s.to_env())
    assert back.tokens == s.tokens


def test_a_bad_tokens_file_names_the_line_not_its_content(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("ok:0123456789abcdef0123\nbroken-line-with-secret\n")
    with pytest.raises(ConfigError, match="line 2") as e:
        read_tokens_file(tokens)
    assert "secret" not in str(e.value)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        McpSettings.from_env({"MCP_AUTH_TOKEN": "short"})


def test_the_rate_limiter_refills_at_its_rate() -> None:
    rl = RateLimiter(rate=2.0, burst=2)
    assert [rl.take("a", now=0.0) for _ in range(2)] == [0.0, 0.0]
    assert rl.take("a", now=0.0) == pytest.approx(0.5)
    assert rl.take("b", now=0.0) == 0.0
    assert rl.take("a", now=0.5) == 0.0
    assert RateLimiter(rate=0, burst=1).take("a") == 0.0


def test_allowed_hosts_cover_loopback_and_named_hosts_only() -> None:
    s = McpSettings(warehouse_url="duckdb:///x", allowed_hosts=("mcp.internal", "api.example:8443"))
    patterns = _host_patterns(s)
    for ok in (
        "127.0.0.1:8765",
        "localhost",
        "[::1]:8765",
        "mcp.internal:9000",
        "api.example:8443",
    ):
        assert _matches(ok, patterns), ok
    for bad in ("evil.example", "127.0.0.1.evil:80", "api.example:9999", "localhost:80x"):
        assert not _matches(bad, patterns), bad
