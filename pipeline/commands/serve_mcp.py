"""``microstructure serve-mcp``: the MCP server over stdio (default) or streamable HTTP.

Top-level imports stay light: ``mcp``, uvicorn and the server package load inside the
handler, so other commands never pay for them. Logs go to stderr only; on stdio, stdout
carries MCP messages and nothing else.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``serve-mcp`` subcommand."""
    p = sub.add_parser(
        "serve-mcp",
        help="serve the MCP tools (stdio by default, --http for streamable HTTP on /mcp)",
        description=(
            "Serve read-only analytics tools over the warehouse to MCP clients. stdio by "
            "default (for Claude Desktop / Claude Code); --http serves streamable HTTP at /mcp "
            "with /health and /metrics, requiring the bearer token in MCP_AUTH_TOKEN."
        ),
    )
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8765; 0 = any free port)")
    p.add_argument(
        "--allow-unauthenticated-local-dev",
        action="store_true",
        help="serve HTTP without a bearer token (only on a loopback address)",
    )
    p.add_argument("--certfile", type=Path, default=None, help="TLS certificate (PEM): serve HTTPS")
    p.add_argument("--keyfile", type=Path, default=None, help="TLS private key (PEM)")
    p.add_argument(
        "--insecure-http-on-public-address",
        action="store_true",
        help="allow plain HTTP on a non-loopback --host (only behind a TLS-terminating proxy "
        "on the same host: tokens and answers travel in clear text otherwise)",
    )
    p.add_argument("--workers", type=int, default=None, help="uvicorn worker processes (default 1)")
    p.add_argument("--warehouse-url", default=None, help="override MICROSTRUCTURE_WAREHOUSE_URL")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from mcp_server.settings import McpSettings

    settings = McpSettings.from_env(
        host=args.host,
        port=args.port,
        allow_unauthenticated=True if args.allow_unauthenticated_local_dev else None,
        certfile=args.certfile,
        keyfile=args.keyfile,
        workers=args.workers,
        warehouse_url=args.warehouse_url,
        insecure_public_http=True if args.insecure_http_on_public_address else None,
    )
    if not args.http:
        return _serve_stdio(settings)
    settings.check_http()
    return _serve_http(settings)


def _serve_stdio(settings: Any) -> int:
    import anyio

    from mcp_server.console import configure_logging
    from mcp_server.server import build_server

    configure_logging(settings.log_level)
    server = build_server(settings)
    anyio.run(server.run_stdio_async)
    return 0


def _serve_http(settings: Any) -> int:
    import uvicorn

    from mcp_server.console import configure_logging, describe

    configure_logging(settings.log_level)
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # uvloop + httptools: the fast event loop and HTTP parser (uvicorn[standard]).
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "access_log": False,  # the audit log has one line per tool call
        "log_level": settings.log_level.lower(),
        "timeout_graceful_shutdown": 5,
        "ssl_certfile": None if settings.certfile is None else str(settings.certfile),
        "ssl_keyfile": None if settings.keyfile is None else str(settings.keyfile),
    }
    if settings.workers > 1:
        # Workers are separate processes that build the app from the environment; token
        # digests travel there, tokens do not. Metrics aggregate over a shared directory.
        metrics_dir = tempfile.mkdtemp(prefix="microstructure-mcp-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ.update(settings.to_env())
        config = uvicorn.Config(
            "mcp_server.http:create_app_from_env", factory=True, workers=settings.workers, **common
        )
    else:
        from mcp_server.http import create_app

        config = uvicorn.Config(create_app(settings), **common)
    sock = config.bind_socket()
    port = sock.getsockname()[1]
    # A fixed, parseable line (the bench and tests read the port from it).
    print(describe(settings, port), file=sys.stderr, flush=True)
    if settings.workers > 1:
        import shutil

        from uvicorn.supervisors import Multiprocess

        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
    else:
        uvicorn.Server(config).run(sockets=[sock])
    return 0
