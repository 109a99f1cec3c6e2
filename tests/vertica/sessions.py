"""A strict stand-in for concurrent Vertica write sessions (loads, staging), run on DuckDB.

``tests/support/vertica_standin.py`` stands in for the MCP server's read-only sessions;
this one stands in for the writers, where what matters is what two sessions see of each
other while both are open. Each connection is a Vertica session with autocommit off, and
the rules modelled are Vertica's (each says where it was read):

- **READ COMMITTED, per statement.** Every statement sees what was committed before it
  started plus its own transaction's writes, never another session's uncommitted rows
  ("Transactions": a SELECT in READ COMMITTED sees the latest committed data, takes no
  lock). DuckDB's own isolation is per transaction, so a session's DuckDB transaction is
  rebuilt on the latest commit (its own inserted rows re-applied) whenever another
  session committed since the last statement.
- **No key is enforced unless ENABLED.** ``market_data`` has none, so two sessions can
  both insert the same trade; a table whose Vertica DDL declares ``PRIMARY KEY ...
  ENABLED`` (read from ``sql/migrations/*.vertica.sql``) refuses a duplicate key with
  SQLSTATE 23505.
- **Table locks** ("Lock modes", "Constraint enforcement and locking"): an INSERT or
  COPY takes an I lock, which any number of sessions hold together; an INSERT into a table
  with an enabled key also takes an IV lock, which one session at a time holds, until
  COMMIT or ROLLBACK. ``LOCK TABLE t IN {INSERT | INSERT VALIDATE} MODE [NOWAIT]`` takes
  the same locks explicitly. A lock not granted within the LockTimeout fails with 55V03
  (``LockFailure``). Other lock modes are not modelled (:class:`StandInLimitation`).
- **DDL commits** the open transaction; ``CREATE LOCAL TEMPORARY TABLE`` is private to
  its session and, ``ON COMMIT DELETE ROWS`` (the default), empty after each commit.
- **COPY ... FROM STDIN** takes exactly the project's options (``ENFORCELENGTH ABORT ON
  ERROR``): a value longer than its column fails the statement (22001); without ``NO
  COMMIT`` the COPY commits.
- **Syntax**: a statement must parse with sqlfluff's ``vertica`` dialect after the
  driver's client-side binding, except the two forms sqlfluff cannot parse (``LOCK
  TABLE``, and a temporary table's projection clause), which are checked against the
  documented grammar instead.

Not modelled: DELETE or UPDATE of rows another session then commits around (a rebuild
with such deletes pending fails with :class:`StandInLimitation`), and user-defined
functions (the UDx runs through ``tests/support/vertica_sdk`` instead).
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import pandas as pd
from vertica_python import errors as verrors
from vertica_python.vertica.cursor import Cursor as DriverCursor

from tests.support.vertica_standin import (
    StandInLimitation,
    _duckdb_error,
    mask_sql,
    parse_vertica,
    vertica_error,
)
from tests.vertica.test_vertica_backend import _enforce_lengths, decode_copy_line, split_records

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "sql" / "migrations"
DEFAULT_LOCK_TIMEOUT_S = 5.0  # Vertica's LockTimeout is 300 s; a test waits less
# Pairs (requested, held by another session) that Vertica grants together.
COMPATIBLE: frozenset[tuple[str, str]] = frozenset({("I", "I"), ("I", "IV"), ("IV", "I")})
LOCK_TYPES = {"INSERT": "I", "INSERT VALIDATE": "IV"}
_LOCK = re.compile(
    r"^\s*LOCK\s+(?:TABLE\s+)?([A-Za-z_]\w*)\s+IN\s+([A-Z ]+?)\s+MODE(\s+NOWAIT)?\s*;?\s*$", re.I
)
_TEMP_DDL = re.compile(
    r"^\s*CREATE\s+LOCAL\s+TEMP(?:ORARY)?\s+TABLE\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_]\w*)\s*"
    r"\((.*)\)\s*ON\s+COMMIT\s+(DELETE|PRESERVE)\s+ROWS"
    r"(\s+ORDER\s+BY\s+[\w\s,]+?)?(\s+SEGMENTED\s+BY\s+HASH\(\w+(?:,\s*\w+)*\)\s+ALL\s+NODES)?"
    r"\s*;?\s*$",
    re.I | re.S,
)
_COPY = re.compile(
    r"^COPY ([A-Za-z_]\w*) \(([^)]*)\) FROM STDIN DELIMITER ',' ENCLOSED BY '\"' NULL '' "
    r"ENFORCELENGTH ABORT ON ERROR( NO COMMIT)?$"
)


def read_enabled_keys(directory: Path = MIGRATIONS) -> dict[str, tuple[str, ...]]:
    """Return ``table -> key columns`` of every ENABLED primary or unique key of the DDL.

    Parameters
    ----------
    directory
        Where the ``*.vertica.sql`` migrations are.

    Returns
    -------
    dict[str, tuple[str, ...]]
        The tables Vertica enforces a key on, and the key.
    """
    keys: dict[str, tuple[str, ...]] = {}
    for path in sorted(directory.glob("*.vertica.sql")):
        text = re.sub(r"--[^\n]*", "", path.read_text())
        for table, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\)", text, re.S):
            m = re.search(r"(?:PRIMARY KEY|UNIQUE)\s*\(([^)]*)\)\s*ENABLED", body)
            if m:
                keys[table] = tuple(c.strip() for c in m.group(1).split(","))
    return keys


def bind(sql: str, params: Mapping[str, Any] | None) -> str:
    """Return the text vertica-python sends for ``:name`` values bound on the client."""
    if not params:
        return sql
    cursor = DriverCursor(None, logging.getLogger(__name__))  # pyright: ignore[reportArgumentType]
    return cursor.format_operation_with_parameters(sql, dict(params))


@dataclass(frozen=True)
class Executed:
    """One statement as a session ran it: the text sent and the commit it read."""

    session: int
    sql: str
    read_epoch: int | None


@dataclass
class _Txn:
    epoch: int  # the last commit this transaction's statements see
    inserted: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    deleted_rows: bool = False


class SessionsStandIn:
    """Concurrent Vertica sessions over one DuckDB file of the project's schema.

    Parameters
    ----------
    source
        A migrated DuckDB warehouse file (the same tables and columns as the Vertica
        migrations); the stand-in owns it while open.
    lock_timeout_s
        Vertica's LockTimeout.
    """

    def __init__(self, source: Path, *, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> None:
        self._db = duckdb.connect(str(source))
        self.lock_timeout_s = lock_timeout_s
        self.enabled_keys = read_enabled_keys()
        self.epoch = 0
        self._commit = threading.Lock()  # a commit and the start of a snapshot never overlap
        self._cv = threading.Condition()
        self._held: dict[str, dict[int, set[str]]] = {}
        self._waiting: dict[int, tuple[str, str]] = {}
        self._ids = itertools.count(1)
        self.executed: list[Executed] = []

    # -- test controls and checks ------------------------------------------------------------

    def connect(self, **kwargs: Any) -> SessionConnection:
        """Open a session (the keyword arguments of ``vertica_python.connect``)."""
        if kwargs.get("autocommit") is not False:
            raise StandInLimitation("the writers run with autocommit off; only that is modelled")
        return SessionConnection(self, next(self._ids), self._db.cursor())

    def committed(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a read on what is committed now (for the test's own checks)."""
        with self._commit:
            return [tuple(r) for r in self._db.cursor().execute(sql).fetchall()]

    def wait_for_lock_waiter(self, timeout_s: float = 10.0) -> tuple[str, str]:
        """Block until some session waits for a lock; return ``(table, mode)`` it waits for."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while not self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no session is waiting for a lock")
                self._cv.wait(left)
            return next(iter(self._waiting.values()))

    def close(self) -> None:
        """Close the DuckDB file."""
        self._db.close()

    def __enter__(self) -> SessionsStandIn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- locks -------------------------------------------------------------------------------

    def _acquire(self, session: int, table: str, mode: str, nowait: bool) -> None:
        deadline = time.monotonic() + self.lock_timeout_s
        with self._cv:
            while True:
                held = self._held.setdefault(table, {})
                others = {m for sid, modes in held.items() if sid != session for m in modes}
                if all((mode, other) in COMPATIBLE for other in others):
                    held.setdefault(session, set()).add(mode)
                    self._waiting.pop(session, None)
                    self._cv.notify_all()
                    return
                left = deadline - time.monotonic()
                if nowait or left <= 0:
                    self._waiting.pop(session, None)
                    self._cv.notify_all()
                    raise vertica_error(
                        "55V03",
                        f"Locking failure: Timed out {mode} locking Table:public.{table}. "
                        f"{'/'.join(sorted(others))} held by another session. Your current "
                        "transaction isolation level is READ COMMITTED",
                        None,
                    )
                self._waiting[session] = (table, mode)
                self._cv.notify_all()
                self._cv.wait(left)

    def _release(self, session: int) -> None:
        with self._cv:
            for held in self._held.values():
                held.pop(session, None)
            self._waiting.pop(session, None)
            self._cv.notify_all()


class SessionConnection:
    """One session: a DuckDB connection of its own (so its temporary tables are its own)."""

    def __init__(self, standin: SessionsStandIn, session: int, duck: duckdb.DuckDBPyConnection):
        self.standin = standin
        self.session = session
        self._duck = duck
        self._txn: _Txn | None = None
        self._temp: dict[str, bool] = {}  # name -> rows deleted at commit
        self._closed = False

    def cursor(self) -> SessionCursor:
        """Return a cursor of this session."""
        return SessionCursor(self)

    def commit(self) -> None:
        """Commit: own rows become visible to every later statement, locks are released."""
        self._check_open()
        if self._txn is not None:
            with self.standin._commit:
                self._duck.execute("COMMIT")
                self.standin.epoch += 1
            self._txn = None
        for name, delete_rows in self._temp.items():
            if delete_rows:
                self._duck.execute(f"DELETE FROM {name}")
        self.standin._release(self.session)

    def rollback(self) -> None:
        """Roll back: nothing of the transaction stays, locks are released."""
        self._check_open()
        if self._txn is not None:
            self._duck.execute("ROLLBACK")
            self._txn = None
        self.standin._release(self.session)

    def close(self) -> None:
        """End the session: an open transaction rolls back, temporary tables go."""
        if self._closed:
            return
        self.rollback()
        self._duck.close()
        self._closed = True

    def closed(self) -> bool:
        """Return True once closed."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise verrors.InterfaceError("Connection is closed")

    # -- the transaction, READ COMMITTED -----------------------------------------------------

    def _snapshot(self) -> int:
        """Begin, or rebuild on the latest commit, this session's DuckDB transaction."""
        standin = self.standin
        with standin._commit:
            if self._txn is None:
                self._duck.execute("BEGIN TRANSACTION")
                self._txn = _Txn(standin.epoch)
            elif self._txn.epoch != standin.epoch:
                if self._txn.deleted_rows:
                    raise StandInLimitation(
                        "another session committed while this one has deleted rows pending"
                    )
                self._duck.execute("ROLLBACK")
                self._duck.execute("BEGIN TRANSACTION")
                for table, rows in self._txn.inserted:
                    self._append(table, rows)
                self._txn.epoch = standin.epoch
            return self._txn.epoch

    def _append(self, table: str, rows: pd.DataFrame) -> None:
        self._duck.register("__standin_rows", rows)
        try:
            self._duck.execute(f"INSERT INTO {table} SELECT * FROM __standin_rows")
        finally:
            self._duck.unregister("__standin_rows")

    def _undo_statement(self) -> None:
        """Drop a failed statement's effects (Vertica rolls back the statement only)."""
        assert self._txn is not None
        self._txn.epoch = -1
        self._snapshot()

    def _insert(self, table: str, sql: str) -> int:
        """Run an INSERT with Vertica's locks and key check; return the rows inserted."""
        assert self._txn is not None
        temp = table in self._temp
        if not temp:
            self.standin._acquire(self.session, table, "I", nowait=False)
        key = self.standin.enabled_keys.get(table)
        if key is not None:
            self.standin._acquire(self.session, table, "IV", nowait=False)
            self._snapshot()  # validation reads what committed while this session waited
        try:
            rows = self._duck.execute(f"{sql} RETURNING *").fetchdf()
        except duckdb.ConstraintException as e:
            self._undo_statement()
            raise vertica_error("23505", f"Duplicate key values: {e}", sql) from e
        if key is not None:
            cols = ", ".join(key)
            dup = self._duck.execute(
                f"SELECT {cols} FROM {table} GROUP BY {cols} HAVING COUNT(*) > 1 LIMIT 1"
            ).fetchall()
            if dup:
                self._undo_statement()
                raise vertica_error(
                    "23505",
                    f"Duplicate key values: '{dup[0]}' -- violates constraint "
                    f"'public.{table}' ({cols})",
                    sql,
                )
        self._txn.inserted.append((table, rows))
        return len(rows)


class SessionCursor:
    """The cursor calls the backend makes: ``execute``, ``fetchall``, ``description``, ``copy``."""

    def __init__(self, conn: SessionConnection) -> None:
        self.conn = conn
        self.description: list[tuple[str]] | None = None
        self._rows: list[list[Any]] = []

    def fetchall(self) -> list[list[Any]]:
        """Return the rows of the last statement."""
        rows, self._rows = self._rows, []
        return rows

    def _result(self, rows: Sequence[Sequence[Any]], names: Sequence[str] | None) -> None:
        self.description = None if names is None else [(n,) for n in names]
        self._rows = [list(r) for r in rows]

    def execute(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        use_prepared_statements: bool = False,
    ) -> None:
        """Run one statement as the session would, values bound on the client."""
        conn = self.conn
        conn._check_open()
        if use_prepared_statements or not (parameters is None or isinstance(parameters, Mapping)):
            raise StandInLimitation("only client-side :name binding is modelled (the writers')")
        text = bind(sql, parameters)
        flat = re.sub(r"\s+", " ", mask_sql(text)).strip().rstrip(";").strip()
        word = flat.split(" ", 1)[0].upper()
        if word == "LOCK":
            self._lock(text)
            return
        if word == "CREATE":
            self._create_temp(text)
            return
        if word not in ("SELECT", "WITH", "INSERT", "DELETE"):
            raise StandInLimitation(f"{word}: not a statement the writers send")
        problems = parse_vertica(text.strip().rstrip(";")).problems
        if problems:
            raise vertica_error("42601", f"Syntax error: {problems[0]}", text)
        epoch = conn._snapshot()
        conn.standin.executed.append(Executed(conn.session, text, epoch))
        try:
            if word == "INSERT":
                m = re.match(r"\s*INSERT\s+INTO\s+(\w+)", text, re.I)
                assert m is not None, text
                self._result([[conn._insert(m.group(1).lower(), text)]], ["OUTPUT"])
                return
            if word == "DELETE":
                n = len(conn._duck.execute(f"{text} RETURNING *").fetchall())
                assert conn._txn is not None
                conn._txn.deleted_rows = conn._txn.deleted_rows or n > 0
                self._result([[n]], ["OUTPUT"])
                return
            cur = conn._duck.execute(text)
            self._result(cur.fetchall(), [str(d[0]) for d in cur.description or ()])
        except duckdb.Error as e:
            conn._undo_statement()
            raise _duckdb_error(e, text) from e

    def copy(self, sql: str, data: str) -> None:
        """Run ``COPY ... FROM STDIN`` with the project's options on ``data``."""
        conn = self.conn
        conn._check_open()
        m = _COPY.match(sql)
        if m is None:
            raise StandInLimitation(f"COPY not of the project's form: {sql[:120]}")
        table, columns = m.group(1), [c.strip() for c in m.group(2).split(",")]
        _enforce_lengths(sql, data)  # ENFORCELENGTH ABORT ON ERROR
        records = [decode_copy_line(r) for r in split_records(data)]
        frame = pd.DataFrame(records, columns=columns, dtype=object)
        conn._snapshot()
        if table not in conn._temp:
            conn.standin._acquire(conn.session, table, "I", nowait=False)
        names = ", ".join(columns)
        conn._duck.register("__standin_copy", frame)
        try:
            rows = conn._duck.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM __standin_copy RETURNING *"
            ).fetchdf()
        finally:
            conn._duck.unregister("__standin_copy")
        assert conn._txn is not None
        conn._txn.inserted.append((table, rows))
        if not m.group(3):  # COPY without NO COMMIT commits its transaction
            conn.commit()

    def _lock(self, text: str) -> None:
        m = _LOCK.match(mask_sql(text))
        if m is None:
            raise vertica_error("42601", "Syntax error at or near LOCK", text)
        mode = LOCK_TYPES.get(re.sub(r"\s+", " ", m.group(2).strip().upper()))
        if mode is None:
            raise StandInLimitation(f"lock type {m.group(2)!r} is not modelled")
        self.conn._snapshot()
        self.conn.standin.executed.append(Executed(self.conn.session, text, None))
        self.conn.standin._acquire(self.conn.session, m.group(1).lower(), mode, bool(m.group(3)))
        self._result([], None)

    def _create_temp(self, text: str) -> None:
        m = _TEMP_DDL.match(text)
        if m is None:
            raise StandInLimitation(f"DDL other than a local temporary table: {text[:80]}")
        conn = self.conn
        ddl = re.sub(
            r"\s+(ORDER\s+BY|SEGMENTED\s+BY)\b.*$", "", text.strip().rstrip(";"), flags=re.S
        )
        problems = parse_vertica(ddl).problems
        if problems:
            raise vertica_error("42601", f"Syntax error: {problems[0]}", text)
        if conn._txn is not None:  # Vertica DDL commits the open transaction
            conn.commit()
        name, columns = m.group(1).lower(), m.group(2)
        columns = re.sub(r"\bLONG\s+VARCHAR\b", "VARCHAR", columns, flags=re.I)
        columns = re.sub(r"\bINT\b", "BIGINT", columns, flags=re.I)
        columns = re.sub(r"\bFLOAT\b", "DOUBLE", columns, flags=re.I)
        conn._duck.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
        conn._temp.setdefault(name, m.group(3).upper() == "DELETE")
        conn.standin.executed.append(Executed(conn.session, text, None))
        self._result([], None)


def migrated_duckdb(path: Path) -> Path:
    """Create a migrated DuckDB warehouse file at ``path`` (the stand-in's tables)."""
    from pipeline.warehouse import open_warehouse

    open_warehouse(f"duckdb:///{path}").migrate()
    return path


def iter_statements(standin: SessionsStandIn, session: int) -> Iterator[Executed]:
    """Yield the statements one session executed, in order."""
    return (e for e in standin.executed if e.session == session)
