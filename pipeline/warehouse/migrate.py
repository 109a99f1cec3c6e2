"""Forward-only migrations from ``sql/migrations``, recorded in ``schema_migrations``.

Files are named ``NNNN_<verb>_<object>.sql``; a ``NNNN_....vertica.sql`` sibling
replaces the portable file on Vertica (and ``.duckdb.sql`` on DuckDB) where the
dialects differ. Each file runs once, in order, inside its own transaction
together with its ledger row.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import MigrationError
from pipeline.warehouse.base import AppliedMigration, SqlSession

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+(\.(vertica|duckdb))?\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration for one dialect."""

    version: str
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        """Return the SHA-256 of the SQL text (recorded; a changed applied file is an error)."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(dialect: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """List the migrations of ``dialect`` in version order.

    Parameters
    ----------
    dialect
        ``duckdb`` or ``vertica``.
    directory
        Where the ``.sql`` files live.

    Returns
    -------
    list[Migration]
        One migration per version: the dialect sibling if present, else the portable file.
    """
    chosen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise ValueError(
                f"migration file name {path.name!r} does not match "
                "NNNN_<verb>_<object>[.dialect].sql"
            )
        version, suffix = m.group(1), m.group(3)
        if suffix is None:
            chosen.setdefault(version, path)
        elif suffix == dialect:
            chosen[version] = path
    return [
        Migration(version=v, name=p.name, path=p, sql=p.read_text())
        for v, p in sorted(chosen.items())
    ]


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements on ``;`` at line ends, dropping comment-only parts.

    Parameters
    ----------
    sql
        The file's text. Statements end with ``;`` followed by a newline or the end.

    Returns
    -------
    list[str]
        Non-empty statements without the trailing semicolon.
    """
    out: list[str] = []
    for chunk in re.split(r";\s*(?:\n|$)", sql):
        lines = [ln for ln in chunk.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if lines:
            out.append(chunk.strip())
    return out


SCHEMA_MIGRATIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version VARCHAR NOT NULL PRIMARY KEY, "
    "name VARCHAR NOT NULL, "
    "checksum VARCHAR NOT NULL, "
    "applied_ns BIGINT NOT NULL)"
)
_SELECT_APPLIED = (
    "SELECT version, name, checksum, applied_ns FROM schema_migrations ORDER BY version"
)
_INSERT_APPLIED = (
    "INSERT INTO schema_migrations (version, name, checksum, applied_ns) VALUES (?, ?, ?, ?)"
)


def read_applied(session: SqlSession) -> list[AppliedMigration]:
    """Return the recorded migrations (creating ``schema_migrations`` if needed).

    Parameters
    ----------
    session
        An open transaction.

    Returns
    -------
    list[AppliedMigration]
        Rows in version order.
    """
    session.execute(SCHEMA_MIGRATIONS_DDL)
    return [
        AppliedMigration(version=str(v), name=str(n), checksum=str(c), applied_ns=int(a))
        for v, n, c, a in session.execute(_SELECT_APPLIED)
    ]


def check_applied(
    applied: Sequence[AppliedMigration], migrations: Sequence[Migration]
) -> list[Migration]:
    """Verify recorded migrations against the files and return the pending ones.

    Parameters
    ----------
    applied
        Rows of ``schema_migrations``.
    migrations
        The files of this dialect (:func:`discover`).

    Returns
    -------
    list[Migration]
        Migrations not applied yet, in version order.

    Raises
    ------
    MigrationError
        If an applied file changed (checksum), was renamed, or is missing: migrations are
        forward-only, so a change must be a new file.
    """
    by_version = {m.version: m for m in migrations}
    for row in applied:
        m = by_version.get(row.version)
        if m is None:
            raise MigrationError(
                f"migration {row.version} ({row.name}) is recorded as applied "
                "but its file is missing"
            )
        if m.checksum != row.checksum or m.name != row.name:
            raise MigrationError(
                f"migration {m.name} changed after it was applied (recorded {row.name} "
                f"sha256 {row.checksum[:12]}, file sha256 {m.checksum[:12]}); "
                "migrations are forward-only: add a new NNNN_ file instead"
            )
    done = {row.version for row in applied}
    return [m for m in migrations if m.version not in done]


def apply_migrations(
    transaction: Callable[[], AbstractContextManager[SqlSession]],
    dialect: str,
    directory: Path = MIGRATIONS_DIR,
    now_ns: Callable[[], int] = time.time_ns,
) -> list[AppliedMigration]:
    """Apply every pending migration, each in its own transaction with its ledger row.

    Parameters
    ----------
    transaction
        Opens a transaction on the warehouse (commit on exit, rollback on error).
    dialect
        ``duckdb`` or ``vertica`` (chooses ``.dialect.sql`` siblings).
    directory
        Where the files live.
    now_ns
        Clock for ``applied_ns``.

    Returns
    -------
    list[AppliedMigration]
        The migrations applied by this call (empty when the schema is current).

    Raises
    ------
    MigrationError
        If an applied file changed, or a statement fails (the failing file rolls back,
        earlier files stay applied).
    """
    migrations = discover(dialect, directory)
    with transaction() as session:
        pending = check_applied(read_applied(session), migrations)
    done: list[AppliedMigration] = []
    for m in pending:
        try:
            with transaction() as session:
                # Re-check inside the transaction: another process may have applied it meanwhile.
                if any(r.version == m.version for r in read_applied(session)):
                    continue
                for statement in split_statements(m.sql):
                    session.execute(statement)
                row = AppliedMigration(m.version, m.name, m.checksum, now_ns())
                session.execute(
                    _INSERT_APPLIED, (row.version, row.name, row.checksum, row.applied_ns)
                )
        except MigrationError:
            raise
        except Exception as e:  # the driver's own error types differ per backend
            raise MigrationError(f"migration {m.name} failed and was rolled back: {e}") from e
        done.append(row)
    return done
