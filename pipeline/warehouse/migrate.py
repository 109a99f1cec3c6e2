"""Forward-only migrations from ``sql/migrations``, recorded in ``schema_migrations``.

Files are named ``NNNN_<verb>_<object>.sql``; a ``NNNN_....vertica.sql`` sibling
replaces the portable file on Vertica (and ``.duckdb.sql`` on DuckDB) where the
dialects differ. Each file runs once, in order, inside its own transaction
together with its ledger row.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

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
            raise ValueError(f"migration file name {path.name!r} does not match NNNN_<verb>_<object>[.dialect].sql")
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
