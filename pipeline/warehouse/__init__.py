"""The warehouse: one port (:mod:`.base`), one place that picks its backend (here).

``duckdb:///path/to/file.duckdb`` opens the embedded file (the default);
``vertica://user@host:5433/db`` opens Vertica (password and omitted parts from ``VERTICA_*``).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.warehouse.base import Warehouse

__all__ = ["Warehouse", "open_warehouse"]


def duckdb_path(url: str) -> Path:
    """Return the file of a ``duckdb:///path`` URL.

    Parameters
    ----------
    url
        ``duckdb:///absolute/path`` (also ``duckdb:////absolute/path``, what
        ``duckdb:///$MICROSTRUCTURE_HOME/...`` expands to) or ``duckdb://relative/path``.

    Returns
    -------
    pathlib.Path
        The database file.

    Raises
    ------
    ConfigError
        If the URL has no path or asks for ``:memory:`` (the platform needs a file that
        several processes open in turn).
    """
    rest = url[len("duckdb://") :]
    if not rest or rest in ("/", "/:memory:", ":memory:"):
        raise ConfigError(
            f"warehouse URL {url!r} must name a file: duckdb:///path/to/warehouse.duckdb"
        )
    if rest.startswith("//"):
        rest = "/" + rest.lstrip("/")
    return Path(rest).expanduser()


def open_warehouse(
    url: str, read_only: bool = False, *, lock_timeout_s: float | None = None
) -> Warehouse:
    """Open the warehouse named by ``url``; the only place that chooses a backend.

    Parameters
    ----------
    url
        ``duckdb:///path`` (embedded file) or ``vertica://user@host:port/db``.
    read_only
        Open for reading only (the MCP server).
    lock_timeout_s
        DuckDB: how long to wait for another process's file lock (default 30 s).

    Returns
    -------
    Warehouse
        A backend; connections open per operation.

    Raises
    ------
    ConfigError
        For an unknown scheme, or a ``vertica://`` URL lacking host, database or user.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "duckdb":
        from pipeline.warehouse.duckdb_backend import DEFAULT_LOCK_TIMEOUT_S, DuckDBWarehouse

        return DuckDBWarehouse(
            duckdb_path(url),
            read_only=read_only,
            lock_timeout_s=DEFAULT_LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s,
        )
    if scheme == "vertica":
        from pipeline.warehouse.vertica_backend import VerticaConfig, VerticaWarehouse

        # Parts the URL omits (and the password) come from VERTICA_*.
        return VerticaWarehouse(VerticaConfig.from_url(url), read_only=read_only)
    raise ConfigError(
        f"warehouse URL {url!r} has unknown scheme {scheme!r}; expected duckdb:// or vertica://"
    )
