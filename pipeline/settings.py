"""Frozen settings, read from the environment once at an entry point.

Every setting has one environment variable with the ``MICROSTRUCTURE_`` prefix,
except the names fixed by other tools and providers (``KAFKA_BOOTSTRAP_SERVERS``,
``MASSIVE_API_KEY`` / ``POLYGON_API_KEY``, ``MCP_AUTH_TOKEN``, ``VERTICA_*``).
The README's settings table is generated from :data:`SETTINGS_DOC`; keep both
in one place.

Secrets (API keys, tokens, passwords) are held in :class:`Secret` so that
``repr`` and logging never show them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError

DEFAULT_TOPIC = "polygon-market-data"
DEFAULT_FEED_URL = "wss://socket.massive.com/stocks"
DEFAULT_REST_URL = "https://api.massive.com"
DEFAULT_SIGNALS_TOPIC = "trading-signals"
DEFAULT_LIVE_GROUP = "microstructure-live-signals"


class Secret:
    """A string that never shows itself in ``repr``/``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """Return the secret value."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# name -> (default shown in docs, description). Order = README order.
SETTINGS_DOC: dict[str, tuple[str, str]] = {
    "MICROSTRUCTURE_HOME": (
        "./var",
        "state directory: warehouse file, local broker, Dagster home, logs",
    ),
    "MICROSTRUCTURE_WAREHOUSE_URL": (
        "duckdb:///$MICROSTRUCTURE_HOME/warehouse.duckdb",
        "warehouse: duckdb:///path or vertica://user@host:5433/db (password from VERTICA_PASSWORD)",
    ),
    "KAFKA_BOOTSTRAP_SERVERS": (
        "(unset: local broker)",
        "use this Kafka cluster instead of the local broker",
    ),
    "MICROSTRUCTURE_KAFKA_PORT": (
        "19092",
        "client port of the local broker (controller = port + 1)",
    ),
    "MICROSTRUCTURE_KAFKA_VERSION": (
        "4.1.1",
        "Apache Kafka version of the local broker (Maven Central)",
    ),
    "MICROSTRUCTURE_KAFKA_CONFIG": (
        "",
        "extra librdkafka settings k=v;k=v (TLS/SASL pass-through); reaches Dagster as an "
        "environment reference, so its UI and reprs never show a password",
    ),
    "MICROSTRUCTURE_TOPIC": (DEFAULT_TOPIC, "market-data topic"),
    "MICROSTRUCTURE_TOPIC_PARTITIONS": ("4", "partitions when the topic is created"),
    "MICROSTRUCTURE_MAX_RECORDS": ("200000", "largest offset span of one microbatch"),
    "MICROSTRUCTURE_SIGNALS_TOPIC": (
        DEFAULT_SIGNALS_TOPIC,
        "topic of `live-signals`' provisional per-trade signals (signal.v1)",
    ),
    "MICROSTRUCTURE_LIVE_GROUP": (
        DEFAULT_LIVE_GROUP,
        "consumer group of `live-signals`; its instances share the market-data partitions",
    ),
    "MICROSTRUCTURE_FUTURE_TOLERANCE_S": (
        "300",
        "seconds a trade's SIP time may be ahead of the loader's clock; beyond, it is a "
        "future_timestamp reject",
    ),
    "MICROSTRUCTURE_FEED_URL": (
        DEFAULT_FEED_URL,
        "WebSocket URL of the provider (or a replay-server)",
    ),
    "MICROSTRUCTURE_REST_URL": (DEFAULT_REST_URL, "REST base URL for gap backfill"),
    "MASSIVE_API_KEY / POLYGON_API_KEY": ("(unset)", "provider API key (MASSIVE_ first)"),
    "MICROSTRUCTURE_SYMBOLS": ("", "comma list of symbols to stream"),
    "MICROSTRUCTURE_QUEUE_SIZE": ("10000", "bounded frame queue between socket reader and parser"),
    "MICROSTRUCTURE_QUEUE_BYTES": (
        "268435456",
        "the same queue's bound in frame bytes (256 MiB); the slow-consumer policy applies at "
        "either bound",
    ),
    "MCP_AUTH_TOKEN": ("(unset)", "bearer token required by the MCP HTTP transport"),
    "MICROSTRUCTURE_MCP_HOST": ("127.0.0.1", "MCP HTTP bind address"),
    "MICROSTRUCTURE_MCP_PORT": ("8765", "MCP HTTP port"),
    "MICROSTRUCTURE_LOG_LEVEL": ("INFO", "log level of services"),
    "VERTICA_HOST": ("(unset)", "Vertica host; with no warehouse URL set, selects Vertica"),
    "VERTICA_PORT": ("5433", "Vertica client port"),
    "VERTICA_DB": ("(unset)", "Vertica database name"),
    "VERTICA_USER": ("(unset)", "Vertica user (the MCP server should use the SELECT-only user)"),
    "VERTICA_PASSWORD": ("(unset)", "Vertica password (secret; never put it in the URL)"),
    "VERTICA_TLSMODE": ("prefer", "tlsmode: disable|prefer|require|verify-ca|verify-full"),
    "MICROSTRUCTURE_RETAIN_RAW_DAYS": ("(unset: keep)", "days of raw trades retention keeps"),
    "MICROSTRUCTURE_RETAIN_SIGNAL_DAYS": ("(unset: keep)", "days of signals retention keeps"),
}


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    """Read an integer setting; unset or empty gives ``default``.

    Parameters
    ----------
    env
        The environment.
    name
        The variable.
    default
        Its value when unset.
    minimum
        The smallest value allowed.

    Returns
    -------
    int
        The value.

    Raises
    ------
    ConfigError
        If it is not an integer or is below ``minimum`` (the message names the variable).
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} is {raw!r} and must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{name} is {value} and must be at least {minimum}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    """Read a number setting, as :func:`env_int` reads an integer one.

    Parameters
    ----------
    env, name, default, minimum
        As for :func:`env_int`.

    Returns
    -------
    float
        The value.

    Raises
    ------
    ConfigError
        If it is not a number or is below ``minimum``.
    """
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} is {raw!r} and must be a number") from None
    if value < minimum:
        raise ConfigError(f"{name} is {value} and must be at least {minimum}")
    return value


def env_csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Read a comma list setting (blank items dropped, order kept).

    Parameters
    ----------
    env, name
        As for :func:`env_int`.

    Returns
    -------
    tuple[str, ...]
        The items, stripped.
    """
    return tuple(p.strip() for p in env.get(name, "").split(",") if p.strip())


def _env_days(env: Mapping[str, str], name: str) -> int | None:
    """Read a retention horizon in days; unset or empty means keep everything."""
    if not env.get(name, "").strip():
        return None
    return env_int(env, name, 0, minimum=1)


def parse_kafka_config(raw: str) -> dict[str, str]:
    """Parse ``k=v;k=v`` librdkafka pass-through settings.

    Parameters
    ----------
    raw
        Semicolon-separated ``key=value`` pairs; empty means none.

    Returns
    -------
    dict[str, str]
        The settings, in order.
    """
    out: dict[str, str] = {}
    for part in raw.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"MICROSTRUCTURE_KAFKA_CONFIG entry {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Settings:
    """Every setting of the platform; build with :meth:`from_env`."""

    home: Path
    warehouse_url: str
    kafka_bootstrap: str | None
    kafka_port: int
    kafka_version: str
    # May hold sasl.password and the like: never in a repr or a log line.
    kafka_extra: Mapping[str, str] = field(repr=False)
    topic: str
    topic_partitions: int
    max_records: int
    feed_url: str
    rest_url: str
    api_key: Secret
    symbols: tuple[str, ...]
    queue_size: int
    queue_bytes: int
    mcp_auth_token: Secret
    mcp_host: str
    mcp_port: int
    log_level: str
    vertica: Mapping[str, str] = field(default_factory=dict)
    vertica_password: Secret = field(default_factory=lambda: Secret(""))
    retain_raw_days: int | None = None
    retain_signal_days: int | None = None
    future_tolerance_s: int = 300
    signals_topic: str = DEFAULT_SIGNALS_TOPIC
    live_group: str = DEFAULT_LIVE_GROUP

    @property
    def bootstrap_servers(self) -> str:
        """Return the external cluster if configured, else the local broker address."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_local_broker(self) -> bool:
        """Return True when no external cluster is configured."""
        return self.kafka_bootstrap is None

    @property
    def dagster_home(self) -> Path:
        """Return the Dagster instance directory under the state directory."""
        return self.home / "dagster"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``env`` (default: the process environment).

        Parameters
        ----------
        env
            Mapping to read; ``os.environ`` when omitted.

        Returns
        -------
        Settings
            Validated, frozen settings.

        Raises
        ------
        ConfigError
            If a value is malformed.
        """
        e: Mapping[str, str] = os.environ if env is None else env
        home = Path(e.get("MICROSTRUCTURE_HOME", "") or "var").expanduser().resolve()
        warehouse_url = e.get("MICROSTRUCTURE_WAREHOUSE_URL", "") or (
            # VERTICA_HOST alone selects Vertica; "vertica://" takes every part from VERTICA_*.
            "vertica://" if e.get("VERTICA_HOST") else f"duckdb:///{home / 'warehouse.duckdb'}"
        )
        bootstrap = e.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or None
        symbols = tuple(
            s.strip().upper() for s in e.get("MICROSTRUCTURE_SYMBOLS", "").split(",") if s.strip()
        )
        api_key = e.get("MASSIVE_API_KEY", "") or e.get("POLYGON_API_KEY", "")
        vertica = {
            k: e[k]
            for k in (
                "VERTICA_HOST",
                "VERTICA_PORT",
                "VERTICA_DB",
                "VERTICA_USER",
                "VERTICA_TLSMODE",
            )
            if e.get(k)
        }
        return cls(
            home=home,
            warehouse_url=warehouse_url,
            kafka_bootstrap=bootstrap,
            kafka_port=env_int(e, "MICROSTRUCTURE_KAFKA_PORT", 19092, minimum=1),
            kafka_version=e.get("MICROSTRUCTURE_KAFKA_VERSION", "") or "4.1.1",
            kafka_extra=parse_kafka_config(e.get("MICROSTRUCTURE_KAFKA_CONFIG", "")),
            topic=e.get("MICROSTRUCTURE_TOPIC", "") or DEFAULT_TOPIC,
            topic_partitions=env_int(e, "MICROSTRUCTURE_TOPIC_PARTITIONS", 4, minimum=1),
            max_records=env_int(e, "MICROSTRUCTURE_MAX_RECORDS", 200_000, minimum=1),
            future_tolerance_s=env_int(e, "MICROSTRUCTURE_FUTURE_TOLERANCE_S", 300, minimum=0),
            feed_url=e.get("MICROSTRUCTURE_FEED_URL", "") or DEFAULT_FEED_URL,
            rest_url=e.get("MICROSTRUCTURE_REST_URL", "") or DEFAULT_REST_URL,
            api_key=Secret(api_key),
            symbols=symbols,
            queue_size=env_int(e, "MICROSTRUCTURE_QUEUE_SIZE", 10_000, minimum=1),
            queue_bytes=env_int(e, "MICROSTRUCTURE_QUEUE_BYTES", 256 << 20, minimum=1),
            mcp_auth_token=Secret(e.get("MCP_AUTH_TOKEN", "")),
            mcp_host=e.get("MICROSTRUCTURE_MCP_HOST", "") or "127.0.0.1",
            mcp_port=env_int(e, "MICROSTRUCTURE_MCP_PORT", 8765, minimum=1),
            log_level=(e.get("MICROSTRUCTURE_LOG_LEVEL", "") or "INFO").upper(),
            vertica=vertica,
            vertica_password=Secret(e.get("VERTICA_PASSWORD", "")),
            retain_raw_days=_env_days(e, "MICROSTRUCTURE_RETAIN_RAW_DAYS"),
            retain_signal_days=_env_days(e, "MICROSTRUCTURE_RETAIN_SIGNAL_DAYS"),
            signals_topic=e.get("MICROSTRUCTURE_SIGNALS_TOPIC", "") or DEFAULT_SIGNALS_TOPIC,
            live_group=e.get("MICROSTRUCTURE_LIVE_GROUP", "") or DEFAULT_LIVE_GROUP,
        )
