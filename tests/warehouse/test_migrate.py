"""Forward-only migrations recorded in schema_migrations, on real DuckDB files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.errors import MigrationError
from pipeline.warehouse.duckdb_backend import DuckDBWarehouse
from pipeline.warehouse.migrate import MIGRATIONS_DIR, apply_migrations, discover, split_statements
from pipeline.warehouse.queries import DAY_COMPLETENESS, ENRICHED_MARKET_DATA, TABLES, TRADE_MINUTES


def test_a_fresh_file_gets_every_migration_once_with_checksums(duckdb_file):
    wh = DuckDBWarehouse(duckdb_file)
    applied = wh.migrate()

    files = discover("duckdb")
    assert [m.version for m in applied] == [m.version for m in files]
    assert [m.checksum for m in wh.applied_migrations()] == [m.checksum for m in files]
    assert wh.migrate() == []
    assert set(wh.table_counts()) == set(TABLES)


def test_every_platform_table_and_the_view_exist_after_migrating(duckdb_file):
    wh = DuckDBWarehouse(duckdb_file)
    wh.migrate()
    with wh.transaction() as s:
        names = {r[0] for r in s.execute("SELECT table_name FROM information_schema.tables")}
    views = {ENRICHED_MARKET_DATA, TRADE_MINUTES, DAY_COMPLETENESS}
    assert {*TABLES, *views, "schema_migrations"} <= names


def _copy_migrations(tmp_path: Path) -> Path:
    d = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, d)
    return d


def test_a_changed_applied_migration_is_an_error(duckdb_file, tmp_path):
    d = _copy_migrations(tmp_path)
    wh = DuckDBWarehouse(duckdb_file)
    apply_migrations(wh.transaction, "duckdb", d)
    first = sorted(d.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after release\n")

    with pytest.raises(MigrationError, match="changed after it was applied"):
        apply_migrations(wh.transaction, "duckdb", d)


def test_a_new_migration_file_is_applied_on_top(duckdb_file, tmp_path):
    d = _copy_migrations(tmp_path)
    wh = DuckDBWarehouse(duckdb_file)
    apply_migrations(wh.transaction, "duckdb", d)
    (d / "0099_create_extra.sql").write_text(
        "CREATE TABLE extra (a INTEGER);\nINSERT INTO extra VALUES (1);\n"
    )

    [row] = apply_migrations(wh.transaction, "duckdb", d)
    assert row.version == "0099"
    with wh.transaction() as s:
        assert s.execute("SELECT a FROM extra") == [(1,)]


def test_a_failing_migration_rolls_back_its_own_statements_only(duckdb_file, tmp_path):
    d = _copy_migrations(tmp_path)
    (d / "0098_create_broken.sql").write_text(
        "CREATE TABLE half (a INTEGER);\nSELECT * FROM nowhere;\n"
    )
    wh = DuckDBWarehouse(duckdb_file)

    with pytest.raises(MigrationError, match=r"0098_create_broken\.sql failed"):
        apply_migrations(wh.transaction, "duckdb", d)
    versions = [m.version for m in wh.applied_migrations()]
    assert "0098" not in versions
    assert "0008" in versions
    with wh.transaction() as s:
        assert s.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'half'"
        ) == [(0,)]


def test_a_dialect_sibling_replaces_the_portable_file(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "0001_create_a.sql").write_text("portable;")
    (d / "0001_create_a.vertica.sql").write_text("vertica;")
    assert [m.sql for m in discover("vertica", d)] == ["vertica;"]
    assert [m.sql for m in discover("duckdb", d)] == ["portable;"]


def test_statements_split_on_semicolons_at_line_ends_and_drop_comments():
    sql = "-- header\nCREATE TABLE a (x VARCHAR DEFAULT ';');\n\n-- only a comment;\nSELECT 1;"
    assert split_statements(sql) == [
        "-- header\nCREATE TABLE a (x VARCHAR DEFAULT ';')",
        "SELECT 1",
    ]
