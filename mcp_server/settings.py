"""Settings of the MCP server: frozen, read once at the entry point.

The shared settings (warehouse URL, ``MCP_AUTH_TOKEN``, ``MICROSTRUCTURE_MCP_HOST`` /
``_PORT``, log level) come from :class:`pipeline.settings.Settings`; the variables
below are the server's own and are listed in :data:`MCP_SETTINGS_DOC` for the README.
Command-line flags override the environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Secret, Settings, env_csv, env_float, env_int

# name -> (default shown in docs, description).
MCP_SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "MICROSTRUCTURE_MCP_TOKENS_FILE": (
        "(unset)",
        "file of `client_id:token` lines, one identity per client (besides MCP_AUTH_TOKEN)",
    ),
    "MICROSTRUCTURE_MCP_ALLOWED_ORIGINS": (
        "(loopback only)",
        "comma list of extra allowed Origin values, e.g. https://app.example.com",
    ),
    "MICROSTRUCTURE_MCP_ALLOWED_HOSTS": (
        "(loopback only)",
        "comma list of extra allowed Host values (name or name:port)",
    ),
    "MICROSTRUCTURE_MCP_MAX_ROWS": ("1000", "most rows in one tool answer"),
    "MICROSTRUCTURE_MCP_MAX_BYTES": ("24000", "most bytes of rows (JSON) in one tool answer"),
    "MICROSTRUCTURE_MCP_RATE": ("20", "requests/s allowed per client (token bucket, per worker)"),
    "MICROSTRUCTURE_MCP_BURST": ("40", "burst size of the per-client token bucket"),
    "MICROSTRUCTURE_MCP_MAX_BODY": ("65536", "largest HTTP request body in bytes"),
    "MICROSTRUCTURE_MCP_WORKERS": ("1", "uvicorn worker processes for --http"),
    "MICROSTRUCTURE_MCP_QUERY_TIMEOUT_S": (
        "10",
        "time limit of a call that runs in a worker thread (Vertica queries, charts, long "
        "windows); below the Vertica pool's RUNTIMECAP (60 s)",
    ),
    "MICROSTRUCTURE_MCP_HEAVY_CONCURRENCY": (
        "2",
        "worker threads for heavy calls per server process (others queue within the time limit)",
    ),
    "MICROSTRUCTURE_MCP_INLINE_SCAN_ROWS": (
        "200000",
        "rows a call may scan on the event loop before it moves to a worker thread",
    ),
    "MICROSTRUCTURE_MCP_STORE": (
        "<warehouse file>.serving",
        "DuckDB only: the serving store directory (immutable Arrow files the server reads)",
    ),
    "MICROSTRUCTURE_MCP_CURSOR_SECRET": (
        "(random per start)",
        "hex key (>= 32 hex digits) signing paging cursors; set it to share cursors across "
        "restarts or servers",
    ),
    "MICROSTRUCTURE_MCP_VERTICA_POOL": ("4", "Vertica only: connections per server process"),
}

_ENV_SETTINGS = "MICROSTRUCTURE_MCP_RESOLVED"  # handed from the command to uvicorn workers

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")


def read_tokens_file(path: Path) -> dict[str, str]:
    """Read ``client_id:token`` lines (``#`` comments, blank lines ignored).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    dict[str, str]
        ``sha256(token) -> client_id``; tokens themselves are not kept.

    Raises
    ------
    ConfigError
        If the file cannot be read or a line is malformed (the line number is named,
        never its content).
    """
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read MCP tokens file {path}: {e.strerror}") from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        client, sep, token = line.partition(":")
        if not sep or not client.strip() or len(token.strip()) < 16:
            raise ConfigError(
                f"MCP tokens file {path} line {n}: expected client_id:token "
                "(token of at least 16 characters)"
            )
        out[token_digest(token.strip())] = client.strip()
    return out


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a bearer token is kept in memory."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class McpSettings:
    """Everything the MCP server needs; build with :meth:`from_env`."""

    warehouse_url: str
    host: str = "127.0.0.1"
    port: int = 8765
    tokens: Mapping[str, str] = field(default_factory=dict[str, str])
    """``sha256(token) -> client_id``."""
    allow_unauthenticated: bool = False
    certfile: Path | None = None
    keyfile: Path | None = None
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_rows: int = 1000
    max_bytes: int = 24_000
    rate_per_s: float = 20.0
    burst: int = 40
    max_body_bytes: int = 65_536
    workers: int = 1
    log_level: str = "INFO"
    query_timeout_s: float = 10.0
    heavy_concurrency: int = 2
    inline_scan_rows: int = 200_000
    wait_first_s: float = 15.0
    live_watch_s: float = 0.5  # how often the live resources' watcher looks for new BUY/SELL
    store: Path | None = None
    vertica_pool: int = 4
    insecure_public_http: bool = False
    cursor_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    materialize: str = "process"

    @property
    def tls(self) -> bool:
        """Return True when serving HTTPS."""
        return self.certfile is not None

    @property
    def auth_required(self) -> bool:
        """Return True unless unauthenticated local development was asked for."""
        return not self.allow_unauthenticated

    @property
    def base_url(self) -> str:
        """Return the server's own URL (scheme, host, port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> McpSettings:
        """Read the settings from ``env`` (default: the process environment).

        Parameters
        ----------
        env
            Mapping to read; ``os.environ`` when omitted.
        **overrides
            Values from command-line flags (None values are ignored).

        Returns
        -------
        McpSettings
            Validated settings.

        Raises
        ------
        ConfigError
            If a value is malformed or the combination is unsafe (no token without the
            local-development flag; that flag off loopback; a certificate without a key).
        """
        e: Mapping[str, str] = os.environ if env is None else env
        base = Settings.from_env(e)
        tokens: dict[str, str] = {}
        if base.mcp_auth_token:
            token = base.mcp_auth_token.get()
            if len(token) < 16:
                raise ConfigError("MCP_AUTH_TOKEN must be at least 16 characters")
            tokens[token_digest(token)] = "default"
        tokens_file = e.get("MICROSTRUCTURE_MCP_TOKENS_FILE", "").strip()
        if tokens_file:
            tokens.update(read_tokens_file(Path(tokens_file)))
        values: dict[str, Any] = {
            "warehouse_url": base.warehouse_url,
            "host": base.mcp_host,
            "port": base.mcp_port,
            "tokens": tokens,
            "allowed_origins": env_csv(e, "MICROSTRUCTURE_MCP_ALLOWED_ORIGINS"),
            "allowed_hosts": env_csv(e, "MICROSTRUCTURE_MCP_ALLOWED_HOSTS"),
            "max_rows": env_int(e, "MICROSTRUCTURE_MCP_MAX_ROWS", 1000, minimum=1),
            "max_bytes": env_int(e, "MICROSTRUCTURE_MCP_MAX_BYTES", 24_000, minimum=2_000),
            "rate_per_s": env_float(e, "MICROSTRUCTURE_MCP_RATE", 20.0, minimum=0.0),
            "burst": env_int(e, "MICROSTRUCTURE_MCP_BURST", 40, minimum=1),
            "max_body_bytes": env_int(e, "MICROSTRUCTURE_MCP_MAX_BODY", 65_536, minimum=1024),
            "workers": env_int(e, "MICROSTRUCTURE_MCP_WORKERS", 1, minimum=1),
            "log_level": base.log_level,
            "query_timeout_s": env_float(
                e, "MICROSTRUCTURE_MCP_QUERY_TIMEOUT_S", 10.0, minimum=0.1
            ),
            "heavy_concurrency": env_int(e, "MICROSTRUCTURE_MCP_HEAVY_CONCURRENCY", 2, minimum=1),
            "inline_scan_rows": env_int(
                e, "MICROSTRUCTURE_MCP_INLINE_SCAN_ROWS", 200_000, minimum=0
            ),
            "vertica_pool": env_int(e, "MICROSTRUCTURE_MCP_VERTICA_POOL", 4, minimum=1),
        }
        store = e.get("MICROSTRUCTURE_MCP_STORE", "").strip()
        if store:
            values["store"] = Path(store)
        secret = e.get("MICROSTRUCTURE_MCP_CURSOR_SECRET", "").strip()
        if secret:
            try:
                key = bytes.fromhex(secret)
            except ValueError:
                raise ConfigError(
                    "MICROSTRUCTURE_MCP_CURSOR_SECRET must be hex digits "
                    "(e.g. from openssl rand -hex 32)"
                ) from None
            if len(key) < 16:
                raise ConfigError(
                    "MICROSTRUCTURE_MCP_CURSOR_SECRET must have at least 32 hex digits"
                )
            values["cursor_secret"] = key
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("certfile", "keyfile", "store"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values).validated()

    def serving_options(self) -> dict[str, Any]:
        """Return the keyword arguments of :func:`pipeline.serving.open_serving`."""
        if self.warehouse_url.lower().startswith("vertica"):
            return {"pool_size": self.vertica_pool, "timeout_s": self.query_timeout_s}
        return {"store": self.store, "materialize": self.materialize}

    def check_http(self) -> None:
        """Fail unless HTTP serving is safe to start: a token, and TLS off loopback.

        Raises
        ------
        ConfigError
            If no token is configured and auth is required, or the bind address is not
            loopback and neither TLS nor the explicitly insecure flag is given.
        """
        self.require_tokens()
        if self.host not in LOOPBACK_HOSTS and not self.tls and not self.insecure_public_http:
            raise ConfigError(
                f"--http on {self.host!r} (not loopback) would send bearer tokens and answers "
                "in clear text: give --certfile and --keyfile, or, when a TLS-terminating "
                "proxy on the same host fronts the server, pass "
                "--insecure-http-on-public-address"
            )

    def validated(self) -> McpSettings:
        """Check the combination of values and return self.

        Raises
        ------
        ConfigError
            As described in :meth:`from_env`.
        """
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("--certfile and --keyfile go together")
        if self.allow_unauthenticated and self.host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"--allow-unauthenticated-local-dev is only allowed on a loopback address, "
                f"not {self.host!r}"
            )
        return self

    def require_tokens(self) -> None:
        """Fail unless HTTP can authenticate someone (or auth is off for local dev).

        Raises
        ------
        ConfigError
            If no token is configured and auth is required.
        """
        if self.auth_required and not self.tokens:
            raise ConfigError(
                "the MCP HTTP transport needs a bearer token: set MCP_AUTH_TOKEN (or "
                "MICROSTRUCTURE_MCP_TOKENS_FILE), or pass --allow-unauthenticated-local-dev "
                "on 127.0.0.1"
            )

    def to_env(self) -> dict[str, str]:
        """Return an environment entry that carries these settings to worker processes.

        Token digests travel, tokens never do.
        """
        data = asdict(self)
        data["tokens"] = dict(self.tokens)
        data["cursor_secret"] = self.cursor_secret.hex()
        for key in ("certfile", "keyfile", "store"):
            data[key] = None if data[key] is None else str(data[key])
        return {_ENV_SETTINGS: json.dumps(data)}

    @classmethod
    def from_worker_env(cls, env: Mapping[str, str] | None = None) -> McpSettings:
        """Rebuild the settings a parent process handed over with :meth:`to_env`."""
        e: Mapping[str, str] = os.environ if env is None else env
        raw = e.get(_ENV_SETTINGS)
        if not raw:
            return cls.from_env(e)
        data = json.loads(raw)
        data["cursor_secret"] = bytes.fromhex(data["cursor_secret"])
        for key in ("certfile", "keyfile", "store"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        data["allowed_origins"] = tuple(data["allowed_origins"])
        data["allowed_hosts"] = tuple(data["allowed_hosts"])
        return cls(**data).validated()

    def with_port(self, port: int) -> McpSettings:
        """Return a copy bound to ``port`` (the one chosen for an ephemeral port)."""
        return replace(self, port=port)

    def __repr__(self) -> str:
        # Digests are not secrets, but nothing about tokens belongs in logs.
        return (
            f"McpSettings(warehouse_url={self.warehouse_url!r}, host={self.host!r}, "
            f"port={self.port}, clients={len(self.tokens)}, tls={self.tls}, "
            f"auth_required={self.auth_required})"
        )


__all__ = ["LOOPBACK_HOSTS", "MCP_SETTINGS_DOC", "McpSettings", "Secret", "token_digest"]
