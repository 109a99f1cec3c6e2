"""Backup and restore of the embedded DuckDB warehouse (Vertica: ``vbr``, see docs/vertica.md).

A backup is a consistent snapshot: the warehouse file is attached read-only (which waits,
with the same bounded retry as every warehouse operation, while a writer holds it) and
``COPY FROM DATABASE`` copies every table, view, key and the offset ledger into a new file
in one transaction. Because the ledger travels with the rows it describes, a restored
warehouse resumes ingest exactly where the snapshot ended: the next load of each partition
starts at the restored ``max(stop_offset)``, and Kafka still holds what came after (within
its retention), so nothing is lost or loaded twice.

Next to the backup file, ``<file>.manifest.json`` records the row counts, the ledger's next
offsets, the applied migrations and the DuckDB version; restore checks the counts before it
replaces anything. Restore is offline: it refuses to run while another process holds the
target file, writes the copy beside the target and renames it into place (removing a stale
``.wal``), so a crash mid-restore leaves the old file intact.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from pipeline.errors import ConfigError, WarehouseError, WarehouseLockedError
from pipeline.retry import Backoff
from pipeline.warehouse import duckdb_path
from pipeline.warehouse import queries as q
from pipeline.warehouse.duckdb_backend import is_lock_error

DEFAULT_LOCK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BackupManifest:
    """What a backup holds, written beside it as JSON."""

    source: str
    created_ns: int
    duckdb_version: str
    table_counts: dict[str, int]
    next_offsets: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> offset
    migrations: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """Return the manifest as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def read(cls, path: Path) -> BackupManifest:
        """Read ``path`` (a ``.manifest.json``)."""
        return cls(**json.loads(path.read_text()))


def manifest_path(backup: Path) -> Path:
    """Return where the manifest of ``backup`` lives."""
    return backup.with_name(backup.name + ".manifest.json")


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _attach_read_only(
    conn: duckdb.DuckDBPyConnection, path: Path, alias: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    backoff = Backoff(initial_s=0.005, max_s=0.25)
    attempt = 0
    while True:
        try:
            conn.execute(f"ATTACH {_quote(path)} AS {alias} (READ_ONLY)")
            return
        except duckdb.Error as e:
            if not is_lock_error(e):
                raise WarehouseError(f"cannot open warehouse {path}: {e}") from e
            attempt += 1
            delay_s = backoff.delay_s(attempt)
            if time.monotonic() + delay_s > deadline:
                raise WarehouseLockedError(
                    f"warehouse {path} stayed locked by a writer for {timeout_s:g} s ({e})"
                ) from e
            time.sleep(delay_s)


def _describe(conn: duckdb.DuckDBPyConnection, alias: str, source: str) -> BackupManifest:
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [alias]
        ).fetchall()
    }
    counts = {
        t: int(conn.execute(f"SELECT count(*) FROM {alias}.{t}").fetchall()[0][0])  # noqa: S608
        for t in q.TABLES
        if t in tables
    }
    offsets: dict[str, int] = {}
    if q.KAFKA_OFFSETS in tables:
        for topic, partition, nxt in conn.execute(
            f"SELECT kafka_topic, kafka_partition, max(stop_offset) FROM {alias}.{q.KAFKA_OFFSETS} "  # noqa: S608
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            offsets[f"{topic}:{partition}"] = int(nxt)
    migrations: list[str] = []
    if q.SCHEMA_MIGRATIONS in tables:
        migrations = [
            str(r[0])
            for r in conn.execute(
                f"SELECT name FROM {alias}.{q.SCHEMA_MIGRATIONS} ORDER BY version"  # noqa: S608
            ).fetchall()
        ]
    return BackupManifest(
        source=source,
        created_ns=time.time_ns(),
        duckdb_version=duckdb.__version__,
        table_counts=counts,
        next_offsets=offsets,
        migrations=migrations,
    )


def _duckdb_file(url: str) -> Path:
    if not url.startswith("duckdb://"):
        raise ConfigError(
            f"backup/restore handle the embedded DuckDB warehouse; {url.split('://')[0]}:// "
            "warehouses are backed up with their own tools (Vertica: vbr, see docs/vertica.md)"
        )
    return duckdb_path(url)


def backup_warehouse(
    url: str, dest: Path, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
) -> BackupManifest:
    """Write a consistent snapshot of the DuckDB warehouse at ``url`` to ``dest``.

    Parameters
    ----------
    url
        ``duckdb:///path`` of the warehouse.
    dest
        The backup file to create (must not exist); its manifest goes beside it.
    lock_timeout_s
        How long to wait while a writer holds the warehouse.

    Returns
    -------
    BackupManifest
        Counts and ledger of the snapshot.

    Raises
    ------
    ConfigError
        For a non-DuckDB URL or an existing ``dest``.
    WarehouseError
        If the warehouse cannot be read.
    """
    source = _duckdb_file(url)
    dest = Path(dest)
    if dest.exists():
        raise ConfigError(f"backup file {dest} exists; choose a new name")
    if not source.exists():
        raise WarehouseError(f"warehouse file {source} does not exist")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    # A scratch in-memory catalog only hosts the two attached files; the warehouse itself
    # is a real file, opened read-only so that readers are never blocked.
    conn = duckdb.connect()
    try:
        _attach_read_only(conn, source, "src", lock_timeout_s)
        conn.execute(f"ATTACH {_quote(partial)} AS dst")
        conn.execute("COPY FROM DATABASE src TO dst")
        manifest = _describe(conn, "src", str(source))
        copied = _describe(conn, "dst", str(source))
        conn.execute("DETACH dst")
        conn.execute("DETACH src")
    except duckdb.Error as e:
        partial.unlink(missing_ok=True)
        raise WarehouseError(f"backup of {source} failed: {e}") from e
    finally:
        conn.close()
    if copied.table_counts != manifest.table_counts:
        partial.unlink(missing_ok=True)
        raise WarehouseError(
            f"backup of {source} is incomplete: {copied.table_counts} != {manifest.table_counts}"
        )
    os.replace(partial, dest)
    manifest_path(dest).write_text(manifest.to_json())
    return manifest


def restore_warehouse(url: str, backup: Path, *, force: bool = False) -> BackupManifest:
    """Replace the DuckDB warehouse at ``url`` with ``backup``.

    Parameters
    ----------
    url
        ``duckdb:///path`` of the warehouse to replace (or create).
    backup
        A file written by :func:`backup_warehouse`, with its manifest.
    force
        Replace an existing warehouse file (otherwise refuse).

    Returns
    -------
    BackupManifest
        The manifest of the restored snapshot.

    Raises
    ------
    ConfigError
        For a non-DuckDB URL, a missing backup or manifest, or an existing target
        without ``force``.
    WarehouseError
        If the backup does not match its manifest, or another process holds the target.
    """
    target = _duckdb_file(url)
    backup = Path(backup)
    if not backup.exists() or not manifest_path(backup).exists():
        raise ConfigError(f"{backup} or its manifest {manifest_path(backup).name} is missing")
    manifest = BackupManifest.read(manifest_path(backup))
    check = duckdb.connect()
    try:
        _attach_read_only(check, backup, "bk", 0.0)
        found = _describe(check, "bk", manifest.source)
    finally:
        check.close()
    if found.table_counts != manifest.table_counts or found.next_offsets != manifest.next_offsets:
        raise WarehouseError(f"backup {backup} does not match its manifest; not restored")
    if target.exists():
        if not force:
            raise ConfigError(f"warehouse {target} exists; pass force=True (--force) to replace it")
        try:  # a writable open fails while any other process holds the file
            duckdb.connect(str(target)).close()
        except duckdb.IOException as e:
            raise WarehouseLockedError(
                f"warehouse {target} is in use ({e}); stop its writers and readers first"
            ) from e
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(target.name + ".restoring")
    shutil.copyfile(backup, staged)
    wal = target.with_name(target.name + ".wal")
    wal.unlink(missing_ok=True)  # a WAL of the old file must never be replayed onto the new one
    os.replace(staged, target)
    return manifest


def describe_backup(backup: Path) -> dict[str, Any]:
    """Return the manifest of ``backup`` as a dict (for the command line)."""
    return asdict(BackupManifest.read(manifest_path(Path(backup))))
