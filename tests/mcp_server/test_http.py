"""Streamable HTTP on an ephemeral port: auth, Origin/Host, the plain requests of the
original design, real MCP clients, caps and pagination, /health, /metrics, TLS, limits."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from pipeline.bench.mcp_http import SampleFacts
from tests.mcp_server.running import RunningServer, serve_http, writer
from tests.support.wait import wait_until

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


PLAIN = {"method": "get_enriched_data", "params": {"symbol": "XXX", "limit": 3}, "id": "1"}


@pytest.fixture(scope="module")
def server(
    sample: SampleFacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    work = tmp_path_factory.mktemp("http-a")
    tokens = work / "tokens"
    tokens.write_text(f"alice:{ALICE}\n# a comment\nbob:{BOB}\n")
    with serve_http(sample.path, work, env={"MICROSTRUCTURE_MCP_TOKENS_FILE": str(tokens)}) as s:
        yield s


def test_mcp_without_a_valid_token_is_401(server: RunningServer) -> None:
    for headers in ({}, auth("wrong-token-0123456789"), {"Authorization": "Basic abc"}):
        r = httpx.post(server.mcp, json=PLAIN, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer ")
        assert r.json()["error"] == "invalid_token"
    assert httpx.get(f"{server.base}/metrics").status_code == 401


def test_a_foreign_origin_is_403_and_a_foreign_host_is_421(server: RunningServer) -> None:
    evil = httpx.post(
        server.mcp, json=PLAIN, headers={**auth(ALICE), "Origin": "https://evil.example"}
    )
    assert evil.status_code == 403
    local = httpx.post(
        server.mcp, json=PLAIN, headers={**auth(ALICE), "Origin": "http://localhost:3000"}
    )
    assert local.status_code == 200
    rebound = httpx.post(
        server.mcp, json=PLAIN, headers={**auth(ALICE), "Host": "attacker.example"}
    )
    assert rebound.status_code == 421


def test_health_is_open_and_reports_reachability_and_lag(server: RunningServer) -> None:
    r = httpx.get(f"{server.base}/health")
    doc = r.json()
    assert r.status_code == 200
    assert doc["status"] == "ok"
    assert doc["warehouse_reachable"] is True
    assert doc["symbols"] == 4
    assert doc["data_lag_s"] > 0
    assert doc["newest_trade"].startswith("2018-01-0")


def test_the_original_plain_request_answers_with_the_tools_result(server: RunningServer) -> None:
    r = httpx.post(
        server.mcp,
        content=json.dumps(PLAIN),
        headers={**auth(ALICE), "Content-Type": "application/json"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == "1"
    result = body["result"]
    assert result["symbol"] == "XXX"
    assert len(result["rows"]) == 3
    assert result["paging"]["truncated"]
    assert result["paging"]["next_cursor"]
    assert {"provenance", "completeness", "window"} <= set(result)
    nxt = httpx.post(
        server.mcp,
        json={
            "method": "get_enriched_data",
            "params": {"symbol": "XXX", "limit": 3, "cursor": result["paging"]["next_cursor"]},
            "id": 2,
        },
        headers=auth(ALICE),
    ).json()
    assert nxt["id"] == 2
    assert nxt["result"]["rows"][0]["timestamp_ns"] <= result["rows"][-1]["timestamp_ns"]


def test_plain_request_errors_say_what_to_fix(server: RunningServer) -> None:
    unknown = httpx.post(
        server.mcp, json={"method": "drop_table", "params": {}, "id": 7}, headers=auth(ALICE)
    )
    assert unknown.status_code == 404
    assert "get_enriched_data" in unknown.json()["error"]["message"]
    bad = httpx.post(
        server.mcp,
        json={"method": "get_enriched_data", "params": {"symbol": "XXX", "limit": 0}, "id": 8},
        headers=auth(ALICE),
    )
    assert bad.status_code == 400
    assert bad.json()["id"] == 8
    assert "greater than or equal to 1" in bad.json()["error"]["message"]
    nosym = httpx.post(
        server.mcp,
        json={"method": "get_trading_signals", "params": {"symbol": "ZZZ"}, "id": 9},
        headers=auth(ALICE),
    )
    assert nosym.status_code == 400
    assert "unknown symbol" in nosym.json()["error"]["message"]
    nomethod = httpx.post(server.mcp, json={"params": {}, "id": 11}, headers=auth(ALICE))
    assert nomethod.status_code == 400
    assert '"method"' in nomethod.json()["error"]["message"]
    notobj = httpx.post(
        server.mcp, json={"method": "list_symbols", "params": [1], "id": 10}, headers=auth(ALICE)
    )
    assert notobj.status_code == 400


def test_an_oversized_body_is_413(server: RunningServer) -> None:
    big = {"method": "list_symbols", "params": {"cursor": "x" * 70_000}, "id": 1}
    assert httpx.post(server.mcp, json=big, headers=auth(ALICE)).status_code == 413


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_real_mcp_client_pages_through_a_window_over_http(
    server: RunningServer, mode: str, anyio_backend: str
) -> None:
    del anyio_backend
    async with (
        httpx2.AsyncClient(headers=auth(BOB)) as http,
        Client(streamable_http_client(server.mcp, http_client=http), mode=mode) as client,
    ):
        names = [t.name for t in (await client.list_tools()).tools]
        first = await client.call_tool(
            "get_enriched_data", {"symbol": "AAA", "limit": 4, "hours_back": 1}
        )
        assert not first.is_error
        assert first.structured_content
        page = first.structured_content["paging"]
        second = await client.call_tool(
            "get_enriched_data", {"symbol": "AAA", "limit": 4, "cursor": page["next_cursor"]}
        )
        refused = await client.call_tool("get_enriched_data", {"symbol": "AAA'--"})
    assert len(names) == 8
    assert page["truncated"]
    assert page["truncated_by"] == "limit"
    assert second.structured_content is not None
    assert (
        second.structured_content["rows"][0]["timestamp_ns"]
        <= first.structured_content["rows"][-1]["timestamp_ns"]
    )
    assert refused.is_error


def test_metrics_count_calls_and_the_audit_log_names_clients_not_tokens(
    server: RunningServer,
) -> None:
    httpx.post(server.mcp, json=PLAIN, headers=auth(ALICE))
    text = httpx.get(f"{server.base}/metrics", headers=auth(ALICE)).text
    assert 'microstructure_mcp_tool_calls_total{outcome="ok",tool="get_enriched_data"}' in text
    assert 'microstructure_mcp_http_rejected_total{reason="auth"}' in text
    log = server.log_text()
    audit = [
        json.loads(line.split("microstructure.mcp.audit: ", 1)[1])
        for line in log.splitlines()
        if "microstructure.mcp.audit: " in line
    ]
    assert {"alice", "bob"} <= {a["client"] for a in audit}
    assert all({"tool", "args", "rows", "ms", "outcome"} <= set(a) for a in audit)
    assert any(a["outcome"] == "rejected" for a in audit)
    assert ALICE not in log
    assert BOB not in log


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


def test_https_and_the_per_client_rate_limit(sample: SampleFacts, tmp_path: Path) -> None:
    certfile, keyfile = _self_signed(tmp_path)
    env = {
        "MCP_AUTH_TOKEN": ALICE,
        "MICROSTRUCTURE_MCP_RATE": "0.1",
        "MICROSTRUCTURE_MCP_BURST": "3",
    }
    args = ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    with serve_http(sample.path, tmp_path / "b", env=env, args=args) as server:
        assert server.scheme == "https"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(certfile))) as https:
            statuses = [
                https.post(server.mcp, json=PLAIN, headers=auth(ALICE)).status_code
                for _ in range(6)
            ]
            limited = https.post(server.mcp, json=PLAIN, headers=auth(ALICE))
            assert https.get(f"{server.base}/health").status_code == 200
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1


def test_local_development_mode_needs_no_token_and_serves_new_data_as_it_lands(
    warehouse_copy: Path, tmp_path: Path
) -> None:
    def symbols() -> list[str]:
        r = httpx.post(server.mcp, json={"method": "list_symbols", "id": "x"})
        assert r.status_code == 200
        return [row["symbol"] for row in r.json()["result"]["rows"]]

    with serve_http(
        warehouse_copy, tmp_path / "c", args=["--allow-unauthenticated-local-dev"]
    ) as server:
        before = symbols()
        # Another process writes while the server serves: the file is not held.
        with writer(warehouse_copy, "add-symbol"):
            pass
        wait_until(lambda: "NEW" in symbols(), timeout_s=90, what="the new symbol served")
        log = server.log_text()
    assert before == ["AAA", "BBB", "CCC", "XXX"]
    assert "NO AUTH (local development)" in log
    assert '"client":"anonymous@127.0.0.1"' in log
