"""The strict vertica-python stand-in: it answers with real rows and refuses as Vertica would.

The stand-in (``tests/support/vertica_standin.py``) is what the MCP server's Vertica read
side runs against here; these tests pin down that it refuses each thing it promises to
refuse, with the driver's own error class and Vertica's SQLSTATE, and that what it accepts
returns the rows DuckDB holds. The source warehouse is written by the project's own sample
writer, migrations and all.
"""

from __future__ import annotations

import queue
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from vertica_python import errors as verrors
from vertica_python.datatypes import VerticaType

from pipeline.bench.mcp_http import write_sample_warehouse
from tests.support.vertica_standin import (
    DENYLIST,
    PolicyViolation,
    StandInConnection,
    VerticaStandIn,
    count_markers,
    mask_sql,
    read_granted_relations,
    read_runtimecap_s,
)

KWARGS: dict[str, Any] = {
    "host": "vertica.example",
    "port": 5433,
    "database": "micro",
    "user": "micro_mcp",
    "password": "s3cret",
    "tlsmode": "verify-full",
    "autocommit": True,
    "connection_timeout": 30,
    "session_label": "micro-mcp",
}
SIGNALS_WINDOW = (
    "AT EPOCH {e} SELECT symbol, date, seq, timestamp_ns, price, size, jump_detected, "
    "trading_signal FROM trading_signals WHERE symbol = ? AND timestamp_ns >= ? "
    "AND timestamp_ns < ? ORDER BY timestamp_ns DESC, seq DESC LIMIT ?"
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DuckDB warehouse written as ingest and signals would write it."""
    path = tmp_path_factory.mktemp("standin") / "warehouse.duckdb"
    write_sample_warehouse(path, symbols=("XXX", "AAA"), trades_per_day=300, batch_records=200)
    return path


@pytest.fixture
def standin(warehouse: Path) -> Iterator[VerticaStandIn]:
    with VerticaStandIn(warehouse) as s:
        yield s


@pytest.fixture
def conn(standin: VerticaStandIn) -> StandInConnection:
    return standin.connect(**KWARGS)


def run(conn: StandInConnection, sql: str, params: list[Any] | None = None) -> list[Any]:
    cur = conn.cursor()
    cur.execute(sql, params, use_prepared_statements=True)
    return cur.fetchall()


def pinned(standin: VerticaStandIn, sql: str) -> str:
    return f"AT EPOCH {standin.current_epoch - 1} {sql}"


# --- real rows ------------------------------------------------------------------------------------


def test_a_prepared_select_returns_the_rows_duckdb_holds(warehouse, standin, conn) -> None:
    window = ["XXX", 0, 2**62, 25]
    got = run(conn, SIGNALS_WINDOW.format(e=standin.current_epoch - 1), window)
    with duckdb.connect(str(warehouse), read_only=True) as db:
        want = db.execute(SIGNALS_WINDOW.split(" ", 3)[3], window).fetchall()
    assert len(got) == 25
    assert got == [list(r) for r in want]
    symbol, day, seq, ts, price, size, jump, label = got[0]
    assert (type(symbol), type(day), type(seq), type(ts)) == (str, date, int, int)
    assert (type(price), type(size), type(jump), type(label)) == (float, int, bool, str)


def test_the_description_holds_the_drivers_columns_with_vertica_type_codes(standin, conn) -> None:
    cur = conn.cursor()
    cur.execute(SIGNALS_WINDOW.format(e=standin.current_epoch - 1), ["XXX", 0, 2**62, 1], True)
    assert [(c.name, c.type_code) for c in cur.description] == [
        ("symbol", VerticaType.VARCHAR),
        ("date", VerticaType.DATE),
        ("seq", VerticaType.INT8),
        ("timestamp_ns", VerticaType.INT8),
        ("price", VerticaType.FLOAT8),
        ("size", VerticaType.INT8),
        ("jump_detected", VerticaType.BOOL),
        ("trading_signal", VerticaType.VARCHAR),
    ]
    assert cur.description[0][0] == "symbol"  # a ColumnTuple, as the driver's Column


def test_rows_are_fetched_one_many_or_all_as_lists_or_dicts(standin, conn) -> None:
    cur = conn.cursor()
    sql = pinned(standin, "SELECT run_id, date FROM signal_runs ORDER BY date, run_id")
    cur.execute(sql, use_prepared_statements=True)
    everything = cur.fetchall()
    assert len(everything) >= 2
    cur.execute(sql, use_prepared_statements=True)
    assert cur.rowcount == -1  # counted as rows are fetched, as the driver does
    assert cur.fetchone() == everything[0]
    assert cur.rowcount == 1
    assert cur.fetchmany() == everything[1:2]  # arraysize 1
    assert cur.fetchall() == everything[2:]
    assert cur.rowcount == len(everything)
    assert cur.fetchone() is None
    cur = conn.cursor(cursor_type=dict)
    cur.execute(sql, use_prepared_statements=True)
    assert cur.fetchone() == dict(zip(["run_id", "date"], everything[0], strict=True))


def test_the_rejects_view_serves_a_160_character_prefix_of_raw(standin, conn) -> None:
    rows = run(conn, pinned(standin, "SELECT stage, reason, raw FROM market_data_rejects_served"))
    assert rows
    assert all(r[2] is None or len(r[2]) <= 160 for r in rows)


def test_casts_to_int_and_float_keep_verticas_64_bit_widths(standin, conn) -> None:
    sql = pinned(
        standin,
        "SELECT CAST(timestamp_ns AS INT) AS ts, price::FLOAT AS p FROM market_data "
        "WHERE symbol = ? ORDER BY timestamp_ns LIMIT ?",
    )
    [[ts, p]] = run(conn, sql, ["XXX", 1])
    assert ts > 2**60  # epoch ns: would overflow a 32-bit INTEGER
    assert isinstance(p, float)
    assert p == run(conn, sql.replace("::FLOAT", ""), ["XXX", 1])[0][1]


def test_bound_values_of_every_bindable_type_select_rows(standin, conn) -> None:
    sql = pinned(
        standin,
        "SELECT count(*) AS n FROM trading_signals WHERE symbol = ? AND date = ? "
        "AND price > ? AND size >= ? AND jump_detected = ? "
        "AND (kafka_partition = ? OR kafka_partition IS NOT NULL)",
    )
    [[n]] = run(conn, sql, ["XXX", date(2018, 1, 2), Decimal("0.5"), 1, False, None])
    assert n > 0


def test_a_pool_of_connections_reads_concurrently_from_threads(standin) -> None:
    sql = SIGNALS_WINDOW.format(e=standin.current_epoch - 1)
    conns = [standin.connect(**KWARGS) for _ in range(4)]
    idle: queue.Queue[StandInConnection] = queue.Queue()
    for c in conns:
        idle.put(c)

    def page(i: int) -> list[Any]:
        c = idle.get()  # a pool: one thread per connection at a time
        try:
            return run(c, sql, ["AAA" if i % 2 else "XXX", 0, 2**62, 10])
        finally:
            idle.put(c)

    with ThreadPoolExecutor(max_workers=4) as pool:
        pages = list(pool.map(page, range(16)))
    assert all(p == pages[i % 2] for i, p in enumerate(pages))
    assert pages[0] != pages[1]
    for c in conns:
        c.close()
    assert standin.open_connections == 0


def test_statements_are_recorded_with_values_epoch_and_masked_kwargs(standin, conn) -> None:
    sql = SIGNALS_WINDOW.format(e=standin.current_epoch - 1)
    run(conn, sql, ["XXX", 0, 2**62, 5])
    with pytest.raises(verrors.PermissionDenied):
        run(conn, pinned(standin, "SELECT * FROM market_data_rejects"))
    ok, refused = standin.statements[-2:]
    assert (ok.sql, ok.parameters, ok.use_prepared_statements) == (sql, ("XXX", 0, 2**62, 5), True)
    assert (ok.epoch, ok.outcome, ok.connection) == (standin.current_epoch - 1, "ok", conn.ident)
    assert ok.kwargs["password"] == "***"
    assert ok.kwargs["connection_timeout"] == 30
    assert refused.outcome == "PermissionDenied"


def test_the_source_file_is_free_for_a_writer_once_copied(warehouse, standin, conn) -> None:
    with duckdb.connect(str(warehouse)) as writer:  # read-write: no other process holds it
        writer.execute("SELECT count(*) FROM market_data").fetchall()
    assert run(conn, pinned(standin, "SELECT count(*) AS n FROM market_data"))[0][0] > 0


# --- the project's SQL files ----------------------------------------------------------------------


def test_the_runtimecap_and_the_grants_come_from_the_projects_sql_files() -> None:
    assert read_runtimecap_s() == 60.0
    granted = read_granted_relations()
    assert {"market_data", "trading_signals", "signal_evaluation"} <= granted
    assert "market_data_rejects_served" in granted
    assert "market_data_rejects" not in granted
    assert "schema_migrations" not in granted


# --- connect --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "missing", ["user", "host", "database", "autocommit", "connection_timeout"]
)
def test_connect_requires_user_host_database_autocommit_and_a_timeout(standin, missing) -> None:
    kwargs = {k: v for k, v in KWARGS.items() if k != missing}
    with pytest.raises(TypeError, match=missing):
        standin.connect(**kwargs)


@pytest.mark.parametrize("timeout", [0, -1, 60, 90, "30", True, None])
def test_the_connection_timeout_is_seconds_above_zero_and_below_the_runtimecap(
    standin, timeout
) -> None:
    with pytest.raises(ValueError, match="connection_timeout"):
        standin.connect(**{**KWARGS, "connection_timeout": timeout})


def test_a_timeout_just_below_the_runtimecap_is_accepted(standin) -> None:
    assert not standin.connect(**{**KWARGS, "connection_timeout": 59.5}).closed()


def test_options_the_driver_would_ignore_silently_are_refused(standin) -> None:
    with pytest.raises(TypeError, match="read_timeout"):
        standin.connect(**KWARGS, read_timeout=10)


def test_a_password_in_a_url_like_host_is_refused_without_echoing_it(standin) -> None:
    for host in ("vertica://micro_mcp:hunter2@db:5433/micro", "micro_mcp:hunter2@db"):
        with pytest.raises(verrors.ConnectionError) as info:
            standin.connect(**{**KWARGS, "host": host})
        assert "hunter2" not in str(info.value)


def test_a_dsn_is_refused_because_it_can_carry_the_password(standin) -> None:
    with pytest.raises(PolicyViolation, match="dsn"):
        standin.connect(dsn="vertica://micro_mcp:pw@db/micro")


def test_only_the_mcp_user_can_log_in(standin) -> None:
    with pytest.raises(verrors.ConnectionError, match="Authentication failed"):
        standin.connect(**{**KWARGS, "user": "dbadmin"})


# --- read statements only -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "relation"),
    [
        ("INSERT INTO market_data (symbol) VALUES ('X')", "market_data"),
        ("UPDATE trading_signals SET price = 1", "trading_signals"),
        ("DELETE FROM kafka_offsets", "kafka_offsets"),
        ("MERGE INTO signal_runs USING x ON 1 = 1 WHEN MATCHED THEN DELETE", "signal_runs"),
        ("COPY market_data FROM STDIN", "market_data"),
        ("TRUNCATE TABLE feed_gaps", "feed_gaps"),
        ("CREATE TABLE t (a INT)", "schema public"),
        ("DROP TABLE market_data", "schema public"),
        ("ALTER TABLE market_data ADD COLUMN x INT", "schema public"),
        ("GRANT SELECT ON market_data_rejects TO micro_mcp_reader", "GRANT"),
        ("SELECT symbol INTO market_copy FROM market_data", "schema public"),
        ("SELECT REFRESH('trading_signals')", "REFRESH"),
    ],
)
def test_writes_ddl_and_grants_are_permission_denied(conn, sql, relation) -> None:
    with pytest.raises(verrors.PermissionDenied, match=relation) as info:
        conn.cursor().execute(sql, use_prepared_statements=True)
    assert info.value.error_response.sqlstate == "42501"


def test_two_statements_in_one_prepared_string_are_a_syntax_error(conn) -> None:
    with pytest.raises(verrors.VerticaSyntaxError, match="multiple commands"):
        conn.cursor().execute("SELECT 1; SELECT 2", use_prepared_statements=True)
    conn.cursor().execute("SELECT 1 AS one;", use_prepared_statements=True)  # one is fine


def test_an_empty_prepared_statement_is_the_drivers_empty_query_error(conn) -> None:
    with pytest.raises(verrors.EmptyQueryError):
        conn.cursor().execute("-- nothing", use_prepared_statements=True)


def test_other_statement_kinds_are_not_the_read_sides_to_send(conn) -> None:
    for sql in ("EXPLAIN SELECT 1", "CREATE LOCAL TEMP TABLE t (a INT)", "SET ROLE dbadmin"):
        with pytest.raises(PolicyViolation):
            conn.cursor().execute(sql)


def test_the_sessions_set_statements_are_accepted(conn) -> None:
    cur = conn.cursor()
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cur.execute("SET SEARCH_PATH TO public")
    cur.execute("SET SESSION RUNTIMECAP '30 seconds'")
    conn.autocommit = False
    assert conn.session.read_only
    assert conn.session.runtimecap_s == 30.0
    assert conn.autocommit is False
    assert cur.fetchall() == []


def test_leaving_the_capped_pool_is_refused(conn) -> None:
    with pytest.raises(PolicyViolation, match="micro_mcp_pool"):
        conn.cursor().execute("SET SESSION RESOURCE_POOL = general")


# --- relations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "relation"),
    [
        ("SELECT * FROM market_data_rejects", "market_data_rejects"),
        ("SELECT version FROM schema_migrations", "schema_migrations"),
        (
            "SELECT s.symbol FROM trading_signals AS s JOIN market_quotes q ON q.symbol = s.symbol",
            "market_quotes",
        ),
        (
            "SELECT symbol FROM market_data WHERE symbol IN "
            "(SELECT symbol FROM market_data_rejects WHERE raw LIKE '%x%')",
            "market_data_rejects",
        ),
        (
            "WITH r AS (SELECT raw FROM market_data_rejects) SELECT raw FROM r",
            "market_data_rejects",
        ),
    ],
)
def test_relations_not_granted_are_permission_denied_by_name(standin, conn, sql, relation) -> None:
    with pytest.raises(verrors.PermissionDenied, match=rf"relation {relation}\b"):
        run(conn, pinned(standin, sql))


@pytest.mark.parametrize("sql", ["SELECT * FROM v_catalog.tables", "SELECT 1 AS one FROM dual"])
def test_system_tables_are_refused(standin, conn, sql) -> None:
    with pytest.raises(verrors.PermissionDenied, match="system tables"):
        run(conn, pinned(standin, sql))


def test_an_unknown_relation_is_missing(standin, conn) -> None:
    with pytest.raises(verrors.MissingRelation, match="trades"):
        run(conn, pinned(standin, "SELECT * FROM trades"))


def test_an_unknown_column_is_missing(standin, conn) -> None:
    with pytest.raises(verrors.MissingColumn, match="no_such_column"):
        run(conn, pinned(standin, "SELECT no_such_column FROM market_data"))


def test_cte_names_are_not_taken_for_relations(standin, conn) -> None:
    sql = pinned(
        standin,
        "WITH last_day AS (SELECT symbol, max(date) AS d FROM trading_signals GROUP BY symbol) "
        "SELECT l.symbol, l.d FROM last_day AS l ORDER BY l.symbol",
    )
    assert [r[0] for r in run(conn, sql)] == ["AAA", "XXX"]


# --- parameters -----------------------------------------------------------------------------------


def test_markers_are_counted_outside_literals_and_comments() -> None:
    sql = "SELECT '?' AS q /* ? */ FROM t WHERE a = ? -- ?\n AND b = 'it''s ?' AND c = ?"
    assert count_markers(sql) == 2
    assert len(mask_sql(sql)) == len(sql)


def test_the_number_of_values_must_equal_the_number_of_markers(standin, conn) -> None:
    sql = pinned(standin, "SELECT count(*) AS n FROM market_data WHERE symbol = ? AND size > ?")
    with pytest.raises(ValueError, match="Invalid number of parameters"):
        run(conn, sql, ["XXX"])
    with pytest.raises(ValueError, match="Invalid number of parameters"):
        run(conn, sql, ["XXX", 1, 2])
    with pytest.raises(ValueError, match="Invalid number of parameters"):
        run(conn, sql)


@pytest.mark.parametrize("value", [["XXX", "AAA"], ("XXX",), {"s": "XXX"}, {"XXX"}, b"XXX"])
def test_collections_and_bytes_are_not_bindable(standin, conn, value) -> None:
    sql = pinned(standin, "SELECT count(*) AS n FROM market_data WHERE symbol = ?")
    with pytest.raises(PolicyViolation, match="binds scalars"):
        run(conn, sql, [value])


def test_a_mapping_of_parameters_is_the_drivers_type_error(standin, conn) -> None:
    sql = pinned(standin, "SELECT count(*) AS n FROM market_data WHERE symbol = :s")
    with pytest.raises(TypeError, match="list/tuple"):
        conn.cursor().execute(sql, {"s": "XXX"}, use_prepared_statements=True)


def test_client_side_placeholders_are_refused_with_prepared_statements(standin, conn) -> None:
    sql = pinned(standin, "SELECT count(*) AS n FROM market_data WHERE symbol = %s")
    with pytest.raises(ValueError, match="Invalid SQL"):
        run(conn, sql, ["XXX"])
    with pytest.raises(verrors.VerticaSyntaxError):
        run(conn, pinned(standin, "SELECT count(*) AS n FROM market_data WHERE symbol = :s"))


def test_values_without_prepared_statements_are_refused_outright(standin, conn) -> None:
    sql = pinned(standin, "SELECT count(*) AS n FROM market_data WHERE symbol = ?")
    with pytest.raises(PolicyViolation, match="server-side"):
        conn.cursor().execute(sql, ["XXX"])
    with pytest.raises(PolicyViolation, match="server-side"):
        conn.cursor().execute(sql, ["XXX"], use_prepared_statements=False)


# --- syntax ---------------------------------------------------------------------------------------


def test_sql_the_vertica_grammar_refuses_is_a_syntax_error(standin, conn) -> None:
    with pytest.raises(verrors.VerticaSyntaxError):
        run(conn, pinned(standin, "SELECT symbol FROM market_data WHERE"))


# One example per denylist entry: the SQL reads granted tables, so only the construct fails.
DENIED: dict[str, str] = {
    "QUALIFY": "SELECT symbol FROM market_data QUALIFY row_number() OVER (ORDER BY size) = 1",
    "GROUP BY ALL": "SELECT symbol, count(*) AS n FROM market_data GROUP BY ALL",
    "SELECT * EXCLUDE / REPLACE / RENAME": "SELECT * EXCLUDE (price) FROM market_data",
    "COLUMNS(...)": "SELECT COLUMNS('p.*') FROM market_data",
    "DISTINCT ON": "SELECT DISTINCT ON (symbol) symbol, price FROM market_data",
    "FILTER (WHERE ...)": "SELECT count(*) FILTER (WHERE size > 100) AS n FROM market_data",
    "list() / array_agg() / list_*()": "SELECT list(price) AS p FROM market_data",
    "struct_pack() / struct literal": "SELECT struct_pack(a := price) AS s FROM market_data",
    "to_json() / JSON functions and operators": "SELECT to_json(price) AS j FROM market_data",
    "// integer division": "SELECT timestamp_ns // 60000000000 AS m FROM market_data",
    "isfinite() / isinf() / isnan()": "SELECT symbol FROM market_data WHERE isfinite(price)",
    "make_timestamp() / make_date() / make_time()": "SELECT make_date(2018, 1, 2) AS d",
    "strftime() / strptime()": "SELECT strftime(trade_date, '%Y') AS y FROM market_data",
    "epoch_ns() / epoch_ms() / epoch_us() / epoch()": "SELECT epoch_ns(now()) AS ns",
    "ANY(?) / ALL(?) / ANY(array)": "SELECT symbol FROM market_data WHERE symbol = ANY(?)",
    "TYPE[] / list literal": "SELECT symbol FROM market_data WHERE symbol IN ['XXX']",
    "LIKE / ILIKE ANY | ALL": "SELECT symbol FROM market_data WHERE symbol ILIKE ANY ('x%')",
    "arg_max() / arg_min() / argmax() / max_by() / min_by()": (
        "SELECT arg_max(price, timestamp_ns) AS p FROM market_data"
    ),
    "string_agg() / group_concat() / listagg()": (
        "SELECT string_agg(symbol, ',') AS s FROM market_data"
    ),
    "TRY_CAST()": "SELECT TRY_CAST(symbol AS INT) AS i FROM market_data",
    "cast to sized VARCHAR / CHAR": "SELECT symbol::VARCHAR(2) AS s FROM market_data",
    "IS [NOT] DISTINCT FROM": (
        "SELECT symbol FROM market_data WHERE conditions IS NOT DISTINCT FROM NULL"
    ),
    "ASOF / POSITIONAL / ANTI / SEMI JOIN": (
        "SELECT m.symbol FROM market_data m ASOF JOIN trading_signals s "
        "ON m.symbol = s.symbol AND m.timestamp_ns >= s.timestamp_ns"
    ),
    "USING SAMPLE": "SELECT symbol FROM market_data USING SAMPLE 10",
    "PIVOT / UNPIVOT": "SELECT * FROM market_data PIVOT (count(*) FOR symbol IN ('XXX'))",
    "file readers": "SELECT * FROM read_csv('/etc/passwd')",
    "$n placeholders": "SELECT symbol FROM market_data WHERE symbol = $1",
    "DuckDB-only integer types": "SELECT size::HUGEINT AS s FROM market_data",
    "DuckDB string helpers": "SELECT count_if(size > 100) AS n FROM market_data",
    "FOR UPDATE": "SELECT symbol FROM market_data FOR UPDATE",
}


def test_every_denylist_entry_has_an_example_here() -> None:
    assert sorted(DENIED) == sorted(c.name for c in DENYLIST)
    for c in DENYLIST:
        assert c.reason, c.name
        assert c.source, c.name


@pytest.mark.parametrize("construct", DENYLIST, ids=lambda c: c.name)
def test_each_denylisted_construct_is_refused_as_vertica_would(standin, conn, construct) -> None:
    sql = pinned(standin, DENIED[construct.name])
    assert construct.search(mask_sql(sql)) is not None
    if construct.sqlstate is None:
        with pytest.raises(PolicyViolation, match=re.escape(construct.name)):
            run(conn, sql, ["XXX"] if "?" in sql else None)
    else:
        with pytest.raises(verrors.QueryError) as info:
            run(conn, sql, ["XXX"] if "?" in sql else None)
        assert info.value.error_response.sqlstate == construct.sqlstate
        assert construct.name in str(info.value)


def test_denylisted_words_inside_literals_and_comments_are_not_refused(standin, conn) -> None:
    sql = pinned(
        standin,
        "SELECT count(*) AS n FROM market_data -- QUALIFY // list(\n"
        "WHERE symbol <> 'GROUP BY ALL // [] $1' AND symbol = ?",
    )
    assert run(conn, sql, ["XXX"])[0][0] > 0


# --- epochs ---------------------------------------------------------------------------------------


def test_the_epoch_function_answers_the_open_epoch(standin, conn) -> None:
    cur = conn.cursor()
    cur.execute("SELECT GET_CURRENT_EPOCH()", use_prepared_statements=True)
    assert cur.description[0].name == "GET_CURRENT_EPOCH"
    assert cur.fetchall() == [[100]]
    assert standin.advance_epoch() == 101
    assert run(conn, "SELECT GET_CURRENT_EPOCH() AS e") == [[101]]


def test_a_statement_at_an_epoch_below_the_open_one_or_at_latest_is_answered(standin, conn) -> None:
    sql = "AT EPOCH {} SELECT count(*) AS n FROM trading_signals WHERE symbol = ?"
    below = run(conn, sql.format(standin.current_epoch - 1), ["XXX"])
    assert below == run(conn, sql.format("LATEST"), ["XXX"])
    assert below == run(conn, sql.format(standin.ancient_history_mark), ["XXX"])
    assert [s.epoch for s in standin.statements] == [99, "LATEST", 1]


@pytest.mark.parametrize("ahead", [0, 1, 1000])
def test_an_epoch_at_or_beyond_the_open_one_is_out_of_range(standin, conn, ahead) -> None:
    sql = f"AT EPOCH {standin.current_epoch + ahead} SELECT count(*) AS n FROM market_data"
    with pytest.raises(verrors.QueryError, match="Epoch number out of range") as info:
        run(conn, sql)
    assert type(info.value) is verrors.QueryError


def test_an_epoch_before_the_ancient_history_mark_is_refused(warehouse) -> None:
    with VerticaStandIn(warehouse, epoch=50, ancient_history_mark=40) as s:
        c = s.connect(**KWARGS)
        with pytest.raises(verrors.QueryError, match="Ancient History Mark"):
            run(c, "AT EPOCH 39 SELECT count(*) AS n FROM market_data")
        assert run(c, "AT EPOCH 40 SELECT count(*) AS n FROM market_data")[0][0] > 0


@pytest.mark.parametrize("prefix", ["AT EPOCH ?", "AT EPOCH -1", "AT EPOCH 1.5", "AT EPOCH"])
def test_an_epoch_that_is_not_an_integer_literal_is_a_syntax_error(conn, prefix) -> None:
    with pytest.raises(verrors.VerticaSyntaxError):
        conn.cursor().execute(f"{prefix} SELECT 1 AS one", use_prepared_statements=True)


def test_a_select_of_the_warehouse_without_an_epoch_is_refused(conn) -> None:
    with pytest.raises(PolicyViolation, match="AT EPOCH"):
        run(conn, "SELECT count(*) AS n FROM market_data")


def test_at_time_and_the_epoch_function_inside_a_query_are_refused(conn) -> None:
    with pytest.raises(PolicyViolation, match="AT TIME"):
        run(conn, "AT TIME '2018-01-02 10:00:00' SELECT count(*) AS n FROM market_data")
    with pytest.raises(PolicyViolation, match="meta-function"):
        run(conn, "SELECT GET_CURRENT_EPOCH() - 1 AS e")


# --- time -----------------------------------------------------------------------------------------


def test_a_statement_running_past_the_connection_timeout_times_out_and_closes(
    standin, conn
) -> None:
    standin.stall_next_statement(KWARGS["connection_timeout"])
    cur = conn.cursor()
    with pytest.raises(verrors.ConnectionError, match="timed out"):
        cur.execute(SIGNALS_WINDOW.format(e=99), ["XXX", 0, 2**62, 5], True)
    assert conn.closed()
    with pytest.raises(verrors.InterfaceError, match="Cursor is closed"):
        cur.execute("SELECT GET_CURRENT_EPOCH()", use_prepared_statements=True)
    with pytest.raises(verrors.ConnectionError, match="Connection is closed"):
        conn.cancel()
    assert standin.statements[-1].outcome == "ConnectionError"  # the closed cursor sent nothing
    fresh = standin.connect(**KWARGS)  # the next statement runs normally
    assert len(run(fresh, SIGNALS_WINDOW.format(e=99), ["XXX", 0, 2**62, 5])) == 5


def test_a_statement_past_a_lower_session_runtimecap_is_canceled_by_the_server(
    standin, conn
) -> None:
    conn.cursor().execute("SET SESSION RUNTIMECAP '5 seconds'")
    standin.stall_next_statement(10)
    with pytest.raises(verrors.QueryCanceled, match="run time cap"):
        run(conn, "SELECT GET_CURRENT_EPOCH()")
    assert not conn.closed()


def test_a_statement_within_both_limits_just_answers(standin, conn) -> None:
    standin.stall_next_statement(KWARGS["connection_timeout"] - 1)
    assert run(conn, "SELECT GET_CURRENT_EPOCH()") == [[100]]


def test_an_injected_server_error_reaches_the_caller_as_the_drivers_class(standin, conn) -> None:
    standin.fail_next_statement("53000", "Insufficient resources to execute plan on pool")
    with pytest.raises(verrors.InsufficientResources):
        run(conn, "SELECT GET_CURRENT_EPOCH()")
    assert run(conn, "SELECT GET_CURRENT_EPOCH()") == [[100]]


# --- the connection's lifecycle -------------------------------------------------------------------


def test_connection_and_cursor_lifecycle_follow_the_driver(standin) -> None:
    with standin.connect(**KWARGS) as c:
        with c.cursor() as cur, pytest.raises(verrors.MessageError):
            cur.fetchone()  # nothing executed yet
        assert cur.closed()
        assert c.cursor() is cur  # one cursor per connection, reopened
        assert not cur.closed()
        c.commit()
        c.rollback()
        c.cancel()
        with pytest.raises(verrors.NotSupportedError):
            cur.cancel()
    assert c.closed()
    assert c.calls == ["commit", "rollback", "cancel", "close"]
    with pytest.raises(verrors.ConnectionError, match="Connection is closed"):
        c.cursor()
