"""Streamable HTTP: the SDK's app behind a thin gate that every request passes.

The gate (a plain ASGI callable, cheaper than Starlette middleware) applies, in order,
to ``/mcp`` and ``/metrics``:

1. ``Host`` and ``Origin`` checks (DNS rebinding: a bad ``Host`` is 421, a bad
   ``Origin`` 403; loopback names plus the configured allow-lists);
2. bearer authentication (401 with ``WWW-Authenticate``) unless started for
   unauthenticated local development; the token names the client;
3. a per-client token-bucket rate limit (429 with ``Retry-After``);
4. a request-size limit (413).

``/health`` is open. Then a POST to ``/mcp`` whose JSON body has no ``jsonrpc`` member
is the original design's plain request, ``{"method": TOOL, "params": {...}, "id": ...}``,
answered here with ``{"id": ..., "result": <the tool's structured content>}`` (errors:
``{"id": ..., "error": {"code", "message"}}`` with a 4xx status). Everything else goes to
the SDK unchanged (the body is replayed), which serves MCP 2025-11-25 and 2026-07-28
clients statelessly with JSON responses.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.transport_security import TransportSecuritySettings

from mcp_server import telemetry as tm
from mcp_server.console import MCP_PATH, configure_logging, describe
from mcp_server.server import (
    CURRENT_CLIENT,
    TOOL_NAMES,
    Runtime,
    StaticTokenVerifier,
    build_server,
    record_rejection,
)
from mcp_server.settings import LOOPBACK_HOSTS, McpSettings

logger = logging.getLogger("microstructure.mcp")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PROTECTED = frozenset({MCP_PATH, "/metrics"})
_OPEN = frozenset({"/health"})


def _host_patterns(settings: McpSettings) -> list[str]:
    """Return the allowed ``Host`` values: loopback names, the bind address, the allow-list."""
    names = [*LOOPBACK_HOSTS, *settings.allowed_hosts]
    if settings.host not in ("0.0.0.0", "::"):  # noqa: S104 - a wildcard bind is no name
        names.append(settings.host)
    out: list[str] = []
    for n in dict.fromkeys(names):
        if n.count(":") > 1 and not n.startswith("["):
            n = f"[{n}]"  # a bare IPv6 literal
        if (n.startswith("[") and "]:" in n) or (not n.startswith("[") and ":" in n):
            out.append(n)  # an explicit host:port
        else:
            out.extend([n, f"{n}:*"])
    return out


def _origin_patterns(settings: McpSettings) -> list[str]:
    out: list[str] = []
    for n in ("127.0.0.1", "localhost", "[::1]"):
        out.extend([f"http://{n}", f"http://{n}:*", f"https://{n}", f"https://{n}:*"])
    out.extend(settings.allowed_origins)
    return out


def _matches(value: str, patterns: list[str]) -> bool:
    for p in patterns:
        if p.endswith(":*"):
            if value.startswith(p[:-1]) and value[len(p) - 1 :].isdigit():
                return True
        elif value == p:
            return True
    return False


class RateLimiter:
    """Token buckets per client: ``rate`` per second, up to ``burst`` at once (0 = off)."""

    def __init__(self, rate: float, burst: int, max_clients: int = 10_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            # Forget the longest-idle clients: a full bucket is what they would get anyway.
            for k, _ in sorted(self._buckets.items(), key=lambda kv: kv[1][1])[
                : self.max_clients // 10
            ]:
                del self._buckets[k]
        return (1.0 - tokens) / self.rate


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope["headers"]:
        if k == name:
            return v.decode("latin-1")
    return None


async def _send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


async def _send_text(send: Send, status: int, text: str) -> None:
    raw = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class _BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, list[Message]]:
    """Read the whole body (at most ``limit`` bytes); return it and the messages to replay."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks), []


class Gate:
    """The ASGI app served by uvicorn: security and plain requests in front of the SDK app.

    Parameters
    ----------
    app
        The SDK's Starlette app (``MCPServer.streamable_http_app``).
    server
        The MCP server (plain requests call its tools).
    settings
        Auth, limits, allow-lists.
    """

    def __init__(self, app: ASGIApp, server: MCPServer[Runtime], settings: McpSettings) -> None:
        self.app = app
        self.server = server
        self.settings = settings
        self.verifier = StaticTokenVerifier(settings.tokens) if settings.auth_required else None
        self.limiter = RateLimiter(settings.rate_per_s, settings.burst)
        self.hosts = _host_patterns(settings)
        self.origins = _origin_patterns(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan: the SDK's, which runs ours
            return
        path = scope["path"]
        if path in _OPEN:
            await self.app(scope, receive, send)
            return
        if path not in _PROTECTED:
            await _send_json(
                send, 404, {"error": "not_found", "paths": [MCP_PATH, "/health", "/metrics"]}
            )
            return
        host = _header(scope, b"host")
        if host is None or not _matches(host, self.hosts):
            tm.HTTP_REJECTED.labels("host").inc()
            await _send_text(send, 421, "Invalid Host header")
            return
        origin = _header(scope, b"origin")
        if origin is not None and not _matches(origin, self.origins):
            tm.HTTP_REJECTED.labels("origin").inc()
            await _send_text(send, 403, "Invalid Origin header")
            return
        client = self._authenticate(scope)
        if client is None:
            tm.HTTP_REJECTED.labels("auth").inc()
            await _send_json(
                send,
                401,
                {"error": "invalid_token", "error_description": "Authentication required"},
                [
                    (
                        b"www-authenticate",
                        b'Bearer error="invalid_token", '
                        b'error_description="Authentication required"',
                    )
                ],
            )
            return
        wait_s = self.limiter.take(client)
        if wait_s > 0:
            tm.HTTP_REJECTED.labels("rate").inc()
            await _send_json(
                send,
                429,
                {"error": "rate_limited", "retry_after_s": round(wait_s, 3)},
                [(b"retry-after", str(max(1, math.ceil(wait_s))).encode())],
            )
            return
        state = scope.setdefault("state", {})
        state["mcp_client"] = client
        if path != MCP_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.settings.max_body_bytes
        ):
            tm.HTTP_REJECTED.labels("size").inc()
            await _send_text(send, 413, "Request body too large")
            return
        try:
            body, trailing = await _read_body(receive, self.settings.max_body_bytes)
        except _BodyTooLarge:
            tm.HTTP_REJECTED.labels("size").inc()
            await _send_text(send, 413, "Request body too large")
            return
        plain = _plain_request(body)
        if plain is not None:
            await self._plain(scope, send, client, plain)
            return
        replay: list[Message] = [
            {"type": "http.request", "body": body, "more_body": False},
            *trailing,
        ]

        async def replay_receive() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replay_receive, send)

    def _authenticate(self, scope: Scope) -> str | None:
        if self.verifier is None:
            client = scope.get("client")
            return f"anonymous@{client[0]}" if client else "anonymous"
        auth = _header(scope, b"authorization")
        if not auth or auth[:7].lower() != "bearer ":
            return None
        return self.verifier.client_id(auth[7:].strip())

    async def _plain(self, scope: Scope, send: Send, client: str, req: dict[str, Any]) -> None:
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params", {})
        remote = scope["client"][0] if scope.get("client") else None
        if method is None:
            tm.PLAIN_REQUESTS.labels("unknown").inc()
            await _send_json(
                send,
                400,
                {
                    "id": rid,
                    "error": {
                        "code": -32600,
                        "message": 'a request needs "method" (a tool name) and "params"; MCP '
                        'clients send JSON-RPC 2.0 ("jsonrpc": "2.0") instead',
                    },
                },
            )
            return
        if not isinstance(method, str) or method not in TOOL_NAMES:
            tm.PLAIN_REQUESTS.labels("unknown").inc()
            await _send_json(
                send,
                404,
                {
                    "id": rid,
                    "error": {
                        "code": -32601,
                        "message": f"unknown method {str(method)[:64]!r}; "
                        f"methods: {', '.join(TOOL_NAMES)}",
                    },
                },
            )
            return
        tm.PLAIN_REQUESTS.labels(method).inc()
        if params is None:
            params = {}
        if not isinstance(params, dict):
            await _send_json(
                send,
                400,
                {"id": rid, "error": {"code": -32602, "message": "params must be an object"}},
            )
            return
        t0 = time.perf_counter()
        token = CURRENT_CLIENT.set((client, remote, "http-plain"))
        try:
            result = await self.server.call_tool(method, params)
        except UnexpectedToolError:
            logger.exception("plain request %s failed", method)
            await _send_json(
                send, 500, {"id": rid, "error": {"code": -32603, "message": "internal error"}}
            )
            return
        except ToolError as e:
            if not _reached_tool(e):
                record_rejection(
                    tool=method,
                    arguments=params,
                    client=(client, remote, "http-plain"),
                    error=str(e),
                    ms=(time.perf_counter() - t0) * 1e3,
                )
            await _send_json(send, 400, {"id": rid, "error": {"code": -32602, "message": str(e)}})
            return
        finally:
            CURRENT_CLIENT.reset(token)
        if getattr(result, "is_error", False):
            text = " ".join(getattr(c, "text", "") for c in result.content)  # type: ignore[union-attr]
            await _send_json(send, 400, {"id": rid, "error": {"code": -32602, "message": text}})
            return
        await _send_json(send, 200, {"id": rid, "result": result.structured_content})  # type: ignore[union-attr]


def _reached_tool(e: ToolError) -> bool:
    # The SDK re-raises a tool's own ToolError with the tool's as __cause__; argument
    # validation failures carry a pydantic ValidationError instead (audited here).
    return isinstance(e.__cause__, ToolError)


def _plain_request(body: bytes) -> dict[str, Any] | None:
    """Return the decoded body if it is a plain request (a JSON object without ``jsonrpc``)."""
    if not body or body.lstrip()[:1] != b"{":
        return None
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None  # the SDK answers the parse error
    if isinstance(decoded, dict) and "jsonrpc" not in decoded:
        return decoded
    return None


def transport_security(settings: McpSettings) -> TransportSecuritySettings:
    """Return the SDK's Host/Origin settings matching the gate's (defence in depth)."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=_host_patterns(settings),
        allowed_origins=_origin_patterns(settings),
    )


def create_app(settings: McpSettings, server: MCPServer[Runtime] | None = None) -> Gate:
    """Return the ASGI app: the gate in front of the SDK's streamable HTTP app.

    Parameters
    ----------
    settings
        Server settings.
    server
        A server from :func:`~mcp_server.server.build_server` (default: built here).

    Returns
    -------
    Gate
        Serve it with uvicorn as the top-level app (its lifespan starts the reader).
    """
    server = server or build_server(settings)
    sdk_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        # Stateless JSON: every POST is answered in its own exchange, no session state,
        # so any worker can answer any request and nothing leaks between clients.
        json_response=True,
        stateless_http=True,
        transport_security=transport_security(settings),
        host=settings.host,
        max_request_body_size=settings.max_body_bytes,
    )
    return Gate(sdk_app, server, settings)


def create_app_from_env() -> Gate:
    """Build the app in a uvicorn worker from the settings the command handed over."""
    settings = McpSettings.from_worker_env()
    configure_logging(settings.log_level)
    return create_app(settings)


__all__ = [
    "Gate",
    "RateLimiter",
    "configure_logging",
    "create_app",
    "create_app_from_env",
    "describe",
]
