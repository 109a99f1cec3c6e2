"""What ``serve-mcp`` prints and where the server logs: nothing heavy to import.

A ``--workers N`` supervisor process only binds the socket and starts the workers; it
imports this module, not the MCP SDK, so it is up in a fraction of a second.
"""

from __future__ import annotations

import logging
import os
import sys

from mcp_server.settings import McpSettings

MCP_PATH = "/mcp"


def configure_logging(level: str) -> None:
    """Log to stderr only (stdout belongs to the stdio transport)."""
    root = logging.getLogger()
    if not any(getattr(h, "stream", None) is sys.stderr for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO")


def describe(settings: McpSettings, port: int) -> str:
    """Return the line announcing where the server listens (no secrets)."""
    scheme = "https" if settings.tls else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    auth = "bearer token required" if settings.auth_required else "NO AUTH (local development)"
    return f"MCP server listening on {scheme}://{host}:{port}{MCP_PATH} ({auth}; pid {os.getpid()})"


__all__ = ["MCP_PATH", "configure_logging", "describe"]
