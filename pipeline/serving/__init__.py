"""The read side: what the MCP server (and ``report``, ``evaluate``) read, on either warehouse.

One port (:class:`~pipeline.serving.port.ServingPort`), two implementations, picked in one
place (:func:`open_serving`):

- **DuckDB** (``duckdb:///file``): the embedded file admits one writing process and shuts
  readers out while it writes, so the server never queries it. A materializer
  (:mod:`pipeline.serving.materialize`) follows the offset ledger and ``signal_runs``: each
  refresh attaches the file read-only for a few milliseconds, copies only what changed
  (new ledger ranges, new signal runs) and publishes it into a serving store of immutable
  Arrow files (:mod:`pipeline.serving.store`) that any number of server processes read
  without locks (:mod:`pipeline.serving.store_view`). Memory is what is asked, not what is
  kept; start-up reads a manifest.
- **Vertica** (``vertica://``): queries go straight to the database as the SELECT-only user
  in its capped resource pool, pinned to one epoch per answer
  (:mod:`pipeline.serving.vertica`).

Both keep the same catalog of symbol-days (:mod:`pipeline.serving.catalog`), built from
the same facts, and format rows with the same functions (:mod:`pipeline.serving.format`),
so for the same data they give the same answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError, DataError
from pipeline.serving.port import ServingError, ServingPort, ServingView


def duckdb_path(url: str) -> Path:
    """Return the file of a ``duckdb:///path`` warehouse URL.

    Raises
    ------
    ConfigError
        If the URL names no file.
    """
    rest = url[len("duckdb://") :]
    if not rest or rest in ("/", "/:memory:", ":memory:"):
        raise ConfigError(f"warehouse URL {url!r} must name a file: duckdb:///path/to/file")
    if rest.startswith("//"):
        rest = "/" + rest.lstrip("/")
    return Path(rest).expanduser()


def open_serving(url: str, **kwargs: Any) -> ServingPort:
    """Return the read side for a warehouse URL (nothing is opened until ``start``).

    Parameters
    ----------
    url
        ``duckdb:///path`` or ``vertica://...`` (``MICROSTRUCTURE_WAREHOUSE_URL``).
    **kwargs
        Passed to the implementation (:class:`~pipeline.serving.store_view.StorePort` or
        :class:`~pipeline.serving.vertica.VerticaPort`).

    Returns
    -------
    ServingPort
        The port.

    Raises
    ------
    ConfigError
        For any other scheme.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "duckdb":
        from pipeline.serving.store_view import StorePort

        return StorePort(duckdb_path(url), **kwargs)
    if scheme == "vertica":
        from pipeline.serving.vertica import VerticaPort

        return VerticaPort.from_url(url, **kwargs)
    raise ConfigError(f"warehouse URL {url!r}: the scheme must be duckdb:// or vertica://")


@contextmanager
def read_view(url: str, *, store: Path | None = None) -> Iterator[ServingView]:
    """Open the read side once, for a command: the newest state, then close.

    On DuckDB the command brings the serving store up to date itself (inline) unless a
    running server's materializer holds it, in which case it reads what that one
    published; a store that does not exist yet is built first (cost grows with history,
    once). On Vertica it reads the catalog at the current epoch.

    Parameters
    ----------
    url
        The warehouse URL.
    store
        DuckDB only: the serving store (default: beside the warehouse file).

    Yields
    ------
    ServingView
        The state to read.

    Raises
    ------
    DataError
        If there is nothing to read (no warehouse, no tables, no published state).
    """
    scheme = urlsplit(url).scheme.lower()
    port: Any
    if scheme == "vertica":
        from pipeline.serving.vertica import VerticaPort

        port = VerticaPort.from_url(url)
    else:
        port = open_serving(url, store=store, materialize="inline")
    try:
        if scheme == "vertica":
            port.refresh()
        else:
            port.start()
        try:
            view = port.view()
        except ServingError as e:
            raise DataError(e.client_message) from e
        yield view
    finally:
        port.close()


__all__ = ["ServingPort", "duckdb_path", "open_serving", "read_view"]
