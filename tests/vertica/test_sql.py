"""Every Vertica SQL text of the project, checked without a Vertica server.

sqlfluff's ``vertica`` dialect parses every Vertica SQL file (values bound as ``:name``
are read by sqlfluff's placeholder templater) and every statement the Vertica backend
sends. It cannot parse some statements that Vertica accepts (checked with sqlfluff 4.5):
``CREATE LIBRARY``, ``CREATE TRANSFORM FUNCTION`` (and ``GRANT EXECUTE`` on one),
``USING PARAMETERS``, ``COPY ...
SOURCE KafkaSource(...)``, ``COPY ... NO COMMIT``, ``CREATE RESOURCE POOL``, ``CREATE USER
... IDENTIFIED BY``, ``GRANT USAGE ON RESOURCE POOL``, ``ALTER USER ... DEFAULT ROLE``. Those
live in files of their own (``udx/vertica/install.sql``, ``sql/vertica/mcp_user_and_pool.sql``)
or, for ``COPY ... NO COMMIT``, are parsed without the clause; narrower string assertions
below check them instead. Parsing proves syntax only: whether Vertica accepts the objects
and types is for the opt-in suite on a real instance (``make test-vertica``).

The ``.vertica.sql`` migration siblings must also define exactly the tables, columns,
nullability and keys of their portable twins (applied here to a DuckDB file), so the two
dialects cannot drift apart unnoticed.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import duckdb
import pytest
from sqlfluff.core import FluffConfig, Linter

from pipeline.warehouse import vertica_backend as vb
from pipeline.warehouse.migrate import MIGRATIONS_DIR, discover, split_statements
from tests.vertica.conftest import ROOT, load_udx

UNPARSABLE: dict[str, str] = {
    "udx/vertica/install.sql": (
        "CREATE LIBRARY, CREATE TRANSFORM FUNCTION, GRANT EXECUTE ON TRANSFORM FUNCTION, "
        "USING PARAMETERS"
    ),
    "sql/vertica/mcp_user_and_pool.sql": (
        "CREATE RESOURCE POOL, CREATE USER ... IDENTIFIED BY, GRANT USAGE ON RESOURCE POOL, "
        "ALTER USER ... DEFAULT ROLE"
    ),
}
# Statement openings sqlfluff refuses and that may therefore appear in UNPARSABLE files.
UNPARSABLE_OPENINGS = (
    "CREATE OR REPLACE LIBRARY",
    "CREATE OR REPLACE TRANSFORM FUNCTION",
    "GRANT EXECUTE ON TRANSFORM FUNCTION",
    "CREATE RESOURCE POOL",
    "CREATE USER",
    "GRANT USAGE ON RESOURCE POOL",
    "ALTER USER",
    "SELECT BATCH_MICROSTRUCTURE(",  # ... USING PARAMETERS ...
)


def vertica_sql_files() -> list[str]:
    files = [
        *sorted(MIGRATIONS_DIR.glob("*.vertica.sql")),
        *sorted((ROOT / "sql" / "vertica").glob("*.sql")),
        *sorted((ROOT / "udx" / "vertica").glob("*.sql")),
    ]
    return [str(p.relative_to(ROOT)) for p in files]


@cache
def linter() -> Linter:
    config = FluffConfig(
        overrides={"dialect": "vertica", "templater": "placeholder"},
        configs={"templater": {"placeholder": {"param_style": "colon"}}},
    )
    return Linter(config=config)


def parse_problems(sql: str) -> list[str]:
    parsed = linter().parse_string(sql if sql.rstrip().endswith(";") else sql + ";\n")
    problems = [str(v.desc()) for v in parsed.violations]
    if parsed.tree is None:
        problems.append("no parse tree")
    elif "unparsable" in parsed.tree.type_set():
        problems.append("unparsable section")
    return problems


def test_the_vertica_sql_files_are_found() -> None:
    files = vertica_sql_files()
    assert "sql/migrations/0001_create_market_data.vertica.sql" in files
    assert "udx/vertica/signals.sql" in files
    assert set(UNPARSABLE) <= set(files)


@pytest.mark.parametrize("path", [f for f in vertica_sql_files() if f not in UNPARSABLE])
def test_every_vertica_sql_file_parses_with_the_sqlfluff_vertica_dialect(path: str) -> None:
    assert parse_problems((ROOT / path).read_text()) == []


@pytest.mark.parametrize("path", sorted(UNPARSABLE))
def test_files_sqlfluff_cannot_parse_hold_only_the_statements_it_cannot_parse(path: str) -> None:
    """Why a file is exempt: each statement either parses or is one sqlfluff refuses."""
    statements = split_statements((ROOT / path).read_text())
    refused = [s for s in statements if parse_problems(s)]
    assert refused, f"{path} parses now: move it back under the sqlfluff test"
    for s in refused:
        opening = re.sub(r"\s+", " ", _strip_comments(s)).upper()
        assert opening.startswith(UNPARSABLE_OPENINGS), opening[:80]


def _strip_comments(sql: str) -> str:
    return "\n".join(ln for ln in sql.splitlines() if not ln.strip().startswith("--")).strip()


# --- install.sql, pools and grants: string checks ---------------------------------------------


def test_install_sql_registers_the_library_with_depends_and_every_factory() -> None:
    text = (ROOT / "udx/vertica/install.sql").read_text()
    assert re.search(
        r"CREATE OR REPLACE LIBRARY micro_udx\s+AS :library\s+DEPENDS :depends\s+"
        r"LANGUAGE 'Python';",
        text,
    )
    udx = load_udx()
    registered = re.findall(
        r"CREATE OR REPLACE TRANSFORM FUNCTION (\w+)\s+AS LANGUAGE 'Python' NAME '(\w+)' "
        r"LIBRARY micro_udx FENCED;",
        text,
    )
    assert registered == [
        ("batch_microstructure", "BatchMicrostructureFactory"),
        ("batch_microstructure", "BatchMicrostructureLineageFactory"),
        ("batch_microstructure_metrics", "BatchMicrostructureMetricsFactory"),
        ("batch_microstructure_intensity", "BatchMicrostructureIntensityFactory"),
    ]
    for _, factory in registered:
        assert issubclass(getattr(udx, factory), udx.vertica_sdk.TransformFunctionFactory)
    assert "USING PARAMETERS lm_window = 270, alpha = 0.01" in text
    assert set(udx.INT_PARAMS) | set(udx.FLOAT_PARAMS) >= {"lm_window", "alpha"}


def test_the_mcp_user_lives_in_a_capped_pool_with_select_only() -> None:
    pool = (ROOT / "sql/vertica/mcp_user_and_pool.sql").read_text()
    mcp_pool = re.search(r"CREATE RESOURCE POOL micro_mcp_pool(.*?);", pool, re.S)
    assert mcp_pool is not None
    for clause in ("MEMORYSIZE", "MAXMEMORYSIZE", "MAXCONCURRENCY", "RUNTIMECAP", "QUEUETIMEOUT"):
        assert clause in mcp_pool.group(1)
    assert re.search(
        r"CREATE USER micro_mcp\s+IDENTIFIED BY :mcp_password\s+RESOURCE POOL micro_mcp_pool", pool
    )
    assert "ALTER USER micro_mcp DEFAULT ROLE micro_mcp_reader;" in pool
    grants = (ROOT / "sql/vertica/mcp_grants.sql").read_text()
    privileges = re.findall(r"^GRANT (\w+) ON", grants, re.M)
    assert set(privileges) == {"USAGE", "SELECT"}
    # The rejects table itself (raw payloads) is never granted; its view
    # market_data_rejects_served (0011) is.
    assert not re.search(r"\bmarket_data_rejects\b", re.sub(r"--.*", "", grants))
    for verb in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "CREATE ON", "ALL PRIVILEGES"):
        assert verb not in re.sub(r"--.*", "", grants)


def test_retention_drops_whole_days_with_force_split_for_each_dated_table() -> None:
    statements = vb.read_named_sql(ROOT / "sql/vertica/retention.sql")
    assert sorted(statements) == sorted(
        [
            "market_data",
            "trading_signals",
            "symbol_day_metrics",
            "trade_intensity",
            "signal_runs",
            "live_signals",
        ]
    )
    for table, sql in statements.items():
        assert sql == f"SELECT DROP_PARTITIONS('{table}', :first_day, :last_day, 'true')"


# --- migrations: sibling == portable ----------------------------------------------------------


def _kind(type_text: str) -> str:
    t = type_text.upper()
    for prefix, kind in (
        ("LONG VARCHAR", "text"),
        ("VARCHAR", "text"),
        ("BIGINT", "int"),
        ("INTEGER", "int"),
        ("INT", "int"),
        ("DOUBLE", "float"),
        ("FLOAT", "float"),
        ("BOOLEAN", "bool"),
        ("DATE", "date"),
    ):
        if t.startswith(prefix):
            return kind
    raise AssertionError(f"unmapped type {type_text}")


Schema = dict[str, list[tuple[str, str, bool]]]


@cache
def portable_schema(tmp_dir: str) -> tuple[Schema, dict[str, tuple[str, ...]]]:
    path = Path(tmp_dir) / "portable.duckdb"
    conn = duckdb.connect(str(path))
    try:
        for m in discover("duckdb"):
            for s in split_statements(m.sql):
                conn.execute(s)
        rows = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable = 'YES' "
            "FROM information_schema.columns WHERE table_schema = 'main' "
            "ORDER BY table_name, ordinal_position"
        ).fetchall()
        keys = conn.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    finally:
        conn.close()
    schema: Schema = {}
    for table, column, dtype, nullable in rows:
        schema.setdefault(table, []).append((column, _kind(dtype), bool(nullable)))
    return schema, {t: tuple(cols) for t, cols in keys}


def vertica_schema() -> tuple[Schema, dict[str, tuple[str, ...]], dict[str, str]]:
    """Tables, views, ENABLED keys and the DDL text of the Vertica migrations."""
    tables: Schema = {}
    keys: dict[str, tuple[str, ...]] = {}
    ddl: dict[str, str] = {}
    for m in discover("vertica"):
        tree = linter().parse_string(m.sql).tree
        assert tree is not None
        for stmt in tree.recursive_crawl("create_table_statement"):
            name = next(stmt.recursive_crawl("table_reference")).raw
            ddl[name] = stmt.raw
            bracket = next(s for s in stmt.segments if s.is_type("bracketed"))
            cols: list[tuple[str, str, bool]] = []
            current: list[str] = []
            for seg in bracket.segments:
                if seg.is_type("column_reference"):
                    current = [seg.raw]
                    cols.append((seg.raw, "", True))
                elif seg.is_type("data_type") and current:
                    cols[-1] = (cols[-1][0], _kind(seg.raw), True)
                elif seg.is_type("column_constraint_segment") and "NOT NULL" in seg.raw.upper():
                    cols[-1] = (cols[-1][0], cols[-1][1], False)
                elif seg.is_type("table_constraint") and "PRIMARY KEY" in seg.raw.upper():
                    assert seg.raw.upper().rstrip().endswith("ENABLED"), seg.raw
                    inner = re.search(r"\((.*)\)", seg.raw)
                    assert inner is not None
                    keys[name] = tuple(c.strip() for c in inner.group(1).split(","))
            tables[name] = cols
        # Columns added to an earlier migration's table (nullable: ADD COLUMN IF NOT EXISTS).
        for stmt in tree.recursive_crawl("alter_table_statement"):
            name = next(stmt.recursive_crawl("table_reference")).raw
            column = next(stmt.recursive_crawl("column_reference")).raw
            dtype = next(stmt.recursive_crawl("data_type")).raw
            assert "NOT NULL" not in stmt.raw.upper(), stmt.raw
            tables[name].append((column, _kind(dtype), True))
        for view in tree.recursive_crawl("create_view_statement"):
            name = next(view.recursive_crawl("table_reference")).raw
            # The view's columns are the select list of its primary query only: not those of
            # derived tables inside it, nor of CTEs (their selects come first; the primary
            # query is the last select not nested in another).
            primary = list(view.recursive_crawl("select_statement", recurse_into=False))[-1]
            clause = next(s for s in primary.segments if s.is_type("select_clause"))
            names = []
            for el in (s for s in clause.segments if s.is_type("select_clause_element")):
                alias = list(el.recursive_crawl("alias_expression"))
                ident = list((alias[0] if alias else el).recursive_crawl("naked_identifier"))
                names.append(ident[-1].raw)
            tables[name] = [(n, "", True) for n in names]
    return tables, keys, ddl


def test_each_vertica_sibling_defines_the_portable_tables_columns_and_nullability(
    tmp_path: Path,
) -> None:
    portable, _ = portable_schema(str(tmp_path))
    vertica, _, _ = vertica_schema()
    assert sorted(vertica) == sorted(portable)
    for table, cols in portable.items():
        got = vertica[table]
        if not got[0][1]:  # a view: names only
            assert [c for c, _, _ in got] == [c for c, _, _ in cols], table
        else:
            assert got == cols, table


def test_trade_minutes_puts_a_print_just_before_a_boundary_in_its_own_minute_on_both() -> None:
    """Epoch ns exceed 2^53: a DOUBLE quotient rounds, so both dialects use integer arithmetic."""
    minute = 60_000_000_000
    k = 25_248_430  # 2018-01-02 15:10 UTC (10:10 New York), in minutes since the epoch
    expression = "timestamp_ns - (timestamp_ns % 60000000000)"
    for dialect in ("duckdb", "vertica"):
        [m] = [m for m in discover(dialect) if m.version == "0008"]
        assert m.sql.count(expression) == 2, m.name  # select list and GROUP BY
    conn = duckdb.connect()
    try:
        for m in discover("duckdb"):
            for s in split_statements(m.sql):
                conn.execute(s)
        stamps = [k * minute - 1, k * minute]
        for offset, ts in enumerate(stamps):
            conn.execute(
                "INSERT INTO market_data (symbol, timestamp_ns, price, size, exchange, trade_id, "
                "trf_id, trade_date, in_regular_hours, ns_from_open, source, loaded_ns, "
                "kafka_topic, kafka_partition, kafka_offset) "
                "VALUES ('XXX', ?, 1.0, 1, 4, ?, 0, DATE '2018-01-02', true, ?, 'file', 0, "
                "'t', 0, ?)",
                [ts, str(offset), ts - k * minute + 40 * minute, offset],
            )
        rows = conn.execute(
            "SELECT minute_start_ns, minute_of_session, n_trades FROM trade_minutes ORDER BY 1"
        ).fetchall()
    finally:
        conn.close()
    assert rows == [((k - 1) * minute, 39, 1), (k * minute, 40, 1)]


def test_every_portable_primary_key_is_declared_enabled_in_vertica(tmp_path: Path) -> None:
    _, portable_keys = portable_schema(str(tmp_path))
    _, vertica_keys, _ = vertica_schema()
    portable_keys = {t: k for t, k in portable_keys.items() if t != "schema_migrations"}
    assert vertica_keys == portable_keys


def test_tick_and_signal_tables_are_segmented_by_symbol_and_partitioned_by_day() -> None:
    _, _, ddl = vertica_schema()
    flat = {t: re.sub(r"\s+", " ", sql) for t, sql in ddl.items()}
    assert flat["market_data"].endswith(
        "ORDER BY symbol, timestamp_ns SEGMENTED BY HASH(symbol) ALL NODES "
        "PARTITION BY trade_date GROUP BY CALENDAR_HIERARCHY_DAY(trade_date, 2, 2)"
    )
    for table in ("trading_signals", "symbol_day_metrics", "trade_intensity"):
        assert "SEGMENTED BY HASH(symbol) ALL NODES" in flat[table]
        assert flat[table].endswith("PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2)")
    assert "UNSEGMENTED ALL NODES" in flat["kafka_offsets"]
    for table, time in (("market_quotes", "sip_timestamp_ns"), ("market_aggregates", "start_ns")):
        assert flat[table].endswith(
            f"ORDER BY symbol, {time} SEGMENTED BY HASH(symbol) ALL NODES "
            "PARTITION BY trade_date GROUP BY CALENDAR_HIERARCHY_DAY(trade_date, 2, 2)"
        ), table


@pytest.mark.parametrize("migration", discover("vertica"), ids=lambda m: m.name)
def test_the_migration_runner_splits_each_sibling_into_the_statements_sqlfluff_sees(migration):
    tree = linter().parse_string(migration.sql).tree
    assert tree is not None
    n_statements = len(list(tree.recursive_crawl("statement", recurse_into=False)))
    assert len(split_statements(migration.sql)) == n_statements
    # Vertica DDL auto-commits, so every statement must be safe to re-run after a crash.
    for s in split_statements(migration.sql):
        body = _strip_comments(s).upper()
        assert body.startswith(
            (
                "CREATE TABLE IF NOT EXISTS",
                "CREATE OR REPLACE VIEW",
                "CREATE PROJECTION IF NOT EXISTS",
                "SELECT REFRESH(",  # refreshing up-to-date projections does nothing
            )
        ) or re.match(r"ALTER TABLE \w+ ADD COLUMN IF NOT EXISTS \w+ ", body), body[:60]


# --- the backend's own statements ---------------------------------------------------------------


def backend_statements() -> dict[str, str]:
    out = {
        name: value
        for name, value in vars(vb).items()
        if name.isupper()
        and isinstance(value, str)
        and re.match(r"^(SELECT|INSERT|DELETE|CREATE)", value)
    }
    # sqlfluff 4.5 refuses a temporary table's projection clause after ON COMMIT (Vertica's
    # CREATE TEMPORARY TABLE grammar allows ORDER BY and a segmentation spec there): the
    # rest of that statement must parse (the clause: test_the_signal_stage_...).
    ddl = vb.CREATE_SIGNAL_DAY_TRADES
    out["CREATE_SIGNAL_DAY_TRADES"] = ddl.removesuffix(f" {vb.SIGNAL_DAY_TRADES_PROJECTION}")
    out["insert_trades_sql"] = vb.insert_trades_sql()
    out["insert_quotes_sql"] = vb.insert_quotes_sql()
    out["insert_aggregates_sql"] = vb.insert_aggregates_sql()
    for table, sql in vb.DELETE_DAY.items():
        out[f"DELETE_DAY[{table}]"] = sql
    for table, sql in vb.COUNT.items():
        out[f"COUNT[{table}]"] = sql
    for name, (sql, _) in vb.READS.items():
        out[f"READS[{name}]"] = sql
    for name, sql in vb.read_named_sql(vb.SIGNALS_SQL).items():
        out[f"signals.sql:{name}"] = sql
    return out


@pytest.mark.parametrize(("name", "sql"), sorted(backend_statements().items()))
def test_every_statement_of_the_vertica_backend_parses(name: str, sql: str) -> None:
    assert parse_problems(sql) == []


def test_the_backend_answers_every_named_read_of_the_duckdb_backend() -> None:
    from pipeline.warehouse import queries as q

    assert sorted(vb.READS) == sorted(q.READS)
    for name, (sql, names) in vb.READS.items():
        assert q.READS[name].count("?") == len(names), name
        for param in names:
            assert f":{param}" in sql, (name, param)


@pytest.mark.parametrize(
    "table",
    [
        "market_data_stage",
        "market_quotes_stage",
        "market_aggregates_stage",
        "market_data_rejects",
        "feed_gaps",
    ],
)
def test_copy_statements_end_with_no_commit_and_parse_without_it(table: str) -> None:
    """sqlfluff 4.5 refuses ``NO COMMIT`` after COPY options; the rest must parse."""
    sql = vb.copy_statement(table, ["a", "b"])
    assert sql.endswith(" ABORT ON ERROR NO COMMIT")
    assert "ENFORCELENGTH" in sql
    assert parse_problems(sql.removesuffix(" NO COMMIT")) == []


def test_the_signal_stage_is_a_session_temporary_table_segmented_like_market_data() -> None:
    """The clause sqlfluff cannot parse, checked against the migration of market_data."""
    ddl = vb.CREATE_SIGNAL_DAY_TRADES
    assert ddl.startswith("CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS signal_day_trades (")
    assert ddl.endswith(f") ON COMMIT PRESERVE ROWS {vb.SIGNAL_DAY_TRADES_PROJECTION}")
    assert vb.SIGNAL_DAY_TRADES_PROJECTION == (
        "ORDER BY symbol, timestamp_ns, kafka_partition, kafka_offset "
        "SEGMENTED BY HASH(symbol) ALL NODES"
    )
    tables, _, ddl = vertica_schema()
    assert "SEGMENTED BY HASH(symbol) ALL NODES" in re.sub(r"\s+", " ", ddl["market_data"])
    columns = re.search(r"\((.*)\) ON COMMIT", vb.CREATE_SIGNAL_DAY_TRADES)
    assert columns is not None
    staged = [c.split()[0] for c in columns.group(1).split(", ")]
    assert set(staged) <= {c for c, _, _ in tables["market_data"]}


def test_the_load_lock_is_the_documented_lock_table_form_sqlfluff_cannot_parse() -> None:
    """sqlfluff 4.5's vertica dialect has no LOCK statement; the grammar is Vertica's
    (docs.vertica.com 24.x, LOCK TABLE): ``LOCK [TABLE] table IN lock-type MODE [NOWAIT]``,
    INSERT VALIDATE among the lock types."""
    assert parse_problems(vb.LOCK_LOADS) != []
    assert vb.LOCK_LOADS == "LOCK TABLE kafka_offsets IN INSERT VALIDATE MODE"


# --- serving (0011): the signals projection, the rejects view, the MCP role's grants ----------


def _serving_migration(dialect: str) -> str:
    [m] = [m for m in discover(dialect) if m.version == "0011"]
    return m.sql


def test_signals_get_a_projection_in_time_order_segmented_like_their_table() -> None:
    flat = re.sub(r"\s+", " ", _strip_comments(_serving_migration("vertica")))
    projection = re.search(
        r"CREATE PROJECTION IF NOT EXISTS trading_signals_by_time \((.*?)\) AS SELECT (.*?) "
        r"FROM trading_signals ORDER BY symbol, timestamp_ns SEGMENTED BY HASH\(symbol\) "
        r"ALL NODES;",
        flat,
    )
    assert projection is not None
    names = [c.strip() for c in projection.group(1).split(",")]
    assert names == [c.strip() for c in projection.group(2).split(",")]
    tables, _, ddl = vertica_schema()
    assert names == [c for c, _, _ in tables["trading_signals"]]  # every column, date included
    # Synchronous refresh: the projection serves queries once the migration is done.
    assert "SELECT REFRESH('trading_signals');" in flat
    # market_data needs none: its superprojection is already in (symbol, timestamp_ns) order.
    assert "ORDER BY symbol, timestamp_ns SEGMENTED BY HASH(symbol)" in re.sub(
        r"\s+", " ", ddl["market_data"]
    )


def test_the_rejects_view_is_the_same_on_both_backends_and_cuts_raw_to_160_characters() -> None:
    views = {}
    for dialect in ("duckdb", "vertica"):
        statements = split_statements(_serving_migration(dialect))
        bodies = [_strip_comments(s) for s in statements]
        [view] = [s for s in bodies if s.startswith("CREATE OR REPLACE VIEW")]
        views[dialect] = re.sub(r"\s+", " ", view)
    assert views["duckdb"] == views["vertica"]
    assert views["duckdb"].startswith("CREATE OR REPLACE VIEW market_data_rejects_served AS")
    assert "LEFT(raw, 160) AS raw FROM market_data_rejects" in views["duckdb"]
    assert len(split_statements(_serving_migration("duckdb"))) == 1  # no projections in DuckDB


def test_the_mcp_role_may_read_what_the_server_reads_and_no_raw_rejects() -> None:
    from pipeline.serving.vertica import SERVED_RELATIONS
    from tests.support.vertica_standin import read_granted_relations

    granted = read_granted_relations()
    assert granted >= SERVED_RELATIONS
    assert "market_data_rejects" not in granted
    relations, _, _ = vertica_schema()
    assert granted <= set(relations)  # every grant names a table or view of the migrations
