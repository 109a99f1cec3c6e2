"""The embedded DuckDB warehouse: one file, short connections, one writing process at a time.

DuckDB lets one process open a file for writing (or several read-only); the lock is
held as long as a connection is open. So every operation opens a connection, does
its work in one transaction and closes it: the MCP server can open the file
read-only between writes, and a Dagster run and the ``microstructure`` commands take
turns. When the lock is held by another process, opening waits for it
(:class:`FileLocks`) up to ``lock_timeout_s`` and then fails with
:class:`WarehouseLockedError`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from pipeline.errors import DataError, OffsetConflict, WarehouseError, WarehouseLockedError
from pipeline.microbatch import Microbatch
from pipeline.warehouse import queries as q
from pipeline.warehouse.base import (
    AppliedMigration,
    AuditJudge,
    DayInput,
    InDatabaseOutcome,
    InDatabaseRun,
    LoadResult,
    PartitionProgress,
    PublishResult,
    QualityResultRow,
    QualityVerdict,
    SignalRun,
    SignalTables,
)
from pipeline.warehouse.finality import LedgerFrontier
from pipeline.warehouse.fit_states import with_fit_states
from pipeline.warehouse.migrate import apply_migrations, read_applied
from pipeline.warehouse.topic_identity import (
    TopicIncarnation,
    acknowledgement_rows,
    check_topic_identity,
    incarnation_of,
)

logger = logging.getLogger(__name__)

DIALECT = "duckdb"
DEFAULT_LOCK_TIMEOUT_S = 30.0
DEFAULT_LOAD_THREADS = 1
# Steps at which a fault hook is called inside load_batch (fault injection, tests).
FAULT_STEPS: tuple[str, ...] = ("after_insert", "before_commit", "after_commit")

FaultHook = Callable[[str], None]


class DuckDBSession:
    """A transaction on one DuckDB connection (the :class:`SqlSession` of this backend)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement with bound values and return its rows."""
        cur = self.conn.execute(sql, list(params)) if params else self.conn.execute(sql)
        # Always drain the result: DuckDB refuses register() while one is unfinished.
        return cur.fetchall()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run a statement and return the first column of its first row (None if no row)."""
        rows = self.execute(sql, params)
        return rows[0][0] if rows else None

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a statement and return its rows as a pandas frame."""
        cur = self.conn.execute(sql, list(params)) if params else self.conn.execute(sql)
        return cur.fetch_df()


def is_lock_error(e: duckdb.Error) -> bool:
    """Return True if ``e`` says another connection holds the file: retry later, not a fault.

    Parameters
    ----------
    e
        An error from ``duckdb.connect`` or ``ATTACH``.

    Returns
    -------
    bool
        True for a lock held by another process (DuckDB's IOException naming the lock) and
        for a file this very process has attached already (a loader thread beside an
        in-process serving store).
    """
    if isinstance(e, duckdb.IOException) and "lock" in str(e).lower():
        return True
    return "already attached" in str(e)


class FileLocks:
    """Wait for a DuckDB file's lock the way the kernel hands it over, not by retrying.

    DuckDB locks its file with POSIX record locks when a connection opens it, and a
    second process that asks while the lock is held gets an error at once. Retrying the
    connect with a backoff oversleeps the holder's release (up to the backoff's step, and
    each failed connect costs a millisecond). Instead, before connecting, this asks the
    kernel for the same lock without blocking every half millisecond (a system call) and
    connects in the moment it is granted: a writer waits for a reader's few milliseconds,
    a reader for a writer's transaction, and no longer.

    The wait is a hint, not a guarantee: DuckDB's connect opens and closes the file twice
    before locking it, and the first close drops this lock, so another process can take the
    file in between; :meth:`DuckDBWarehouse._open` then waits again (DuckDB's own lock is
    what keeps a reader out of a write).

    POSIX locks belong to the process, and closing any descriptor of the file releases all
    of them, DuckDB's included. So one descriptor per file is kept while any connection of
    this process uses it, and closed only after the last of them (whose close has released
    the locks anyway).
    """

    def __init__(self, poll_s: float = 0.0005) -> None:
        self.poll_s = poll_s
        self._held: dict[Path, tuple[list[int], list[int]]] = {}  # path -> (fds, [users])
        self._lock = threading.Lock()

    def acquire(self, path: Path, *, exclusive: bool, timeout_s: float) -> None:
        """Take the file's lock for this process (waiting up to ``timeout_s``).

        Raises
        ------
        WarehouseLockedError
            If another process held it for ``timeout_s``.
        """
        import fcntl

        key = Path(os.path.realpath(path))
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held[1][0] += 1  # this process has the file open already
                return
            if not key.exists():
                # DuckDB creates the file (it refuses an empty one): nothing to wait for.
                self._held[key] = ([], [1])
                return
        fd = os.open(key, os.O_RDWR if exclusive else os.O_RDONLY)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.lockf(fd, mode | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WarehouseLockedError(
                        f"warehouse {path} stayed locked by another process for "
                        f"{timeout_s:g} s; DuckDB allows one writing process: stop the other "
                        "writer or use a server warehouse"
                    ) from None
                time.sleep(self.poll_s)
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                # Another thread of this process got there meanwhile. Keep this descriptor
                # too: closing it now would release every lock of the process on the file.
                held[0].append(fd)
                held[1][0] += 1
                return
            self._held[key] = ([fd], [1])

    def release(self, path: Path) -> None:
        """Give up one use of the file; the last one closes the descriptor."""
        key = Path(os.path.realpath(path))
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return
            held[1][0] -= 1
            if held[1][0] > 0:
                return
            del self._held[key]
        for fd in held[0]:
            os.close(fd)


_FILE_LOCKS = FileLocks()

# Loads of one file take turns within this process too (issue 14.6). Other processes wait
# for the file lock, but threads of one process share DuckDB's database instance and run
# their transactions side by side; each dedup anti-join then misses the other's uncommitted
# rows, and one trade arriving on two partitions at once was stored twice. Reentrant: a load
# started from inside another's fault hook (the tests' way to commit a rival in between) is
# the same thread and runs, as a second process's load would have before the first commit.
_LOAD_TURNS: dict[Path, threading.RLock] = {}
_LOAD_TURNS_GUARD = threading.Lock()


def _load_turn(path: Path) -> threading.RLock:
    """Return the lock that loads of ``path`` in this process hold until their COMMIT."""
    key = Path(os.path.realpath(path))
    with _LOAD_TURNS_GUARD:
        return _LOAD_TURNS.setdefault(key, threading.RLock())


class DuckDBWarehouse:
    """The :class:`~pipeline.warehouse.base.Warehouse` on an embedded DuckDB file.

    Parameters
    ----------
    path
        The database file (created on first write).
    read_only
        Open every connection read-only (the MCP server); writes fail.
    lock_timeout_s
        How long to wait while another process holds the file.
    fault_hook
        Called with a step name of :data:`FAULT_STEPS` inside :meth:`load_batch`; tests
        and ``microstructure faults`` raise or kill the process there.
    load_threads
        DuckDB threads of a load transaction (None: DuckDB's default, one per core). Loads
        of one file run one at a time; single-threaded, a 200,000-row load takes about as
        long and leaves the other cores to the runs reading and shaping the next batches
        (with two loaders on two cores: 15% less CPU and less wall time than threads=2).
    """

    dialect = DIALECT
    # The kernels run in Python next to DuckDB (pipeline.signals.assemble), not in SQL.
    computes_signals_in_database = False

    def __init__(
        self,
        path: Path,
        *,
        read_only: bool = False,
        lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
        fault_hook: FaultHook | None = None,
        load_threads: int | None = DEFAULT_LOAD_THREADS,
    ) -> None:
        self.path = Path(path)
        self.load_threads = load_threads
        self.read_only = read_only
        self.lock_timeout_s = lock_timeout_s
        self.fault_hook = fault_hook
        self.url = f"duckdb:///{self.path}"

    def __repr__(self) -> str:
        return f"DuckDBWarehouse({str(self.path)!r}, read_only={self.read_only})"

    # --- connections -------------------------------------------------------------------

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.read_only and not self.path.exists():
            raise WarehouseError(
                f"warehouse file {self.path} does not exist "
                "(create it with `microstructure warehouse migrate`)"
            )
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            _FILE_LOCKS.acquire(
                self.path,
                exclusive=not self.read_only,
                timeout_s=max(0.0, deadline - time.monotonic()),
            )
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.Error as e:
                _FILE_LOCKS.release(self.path)
                if is_lock_error(e) and time.monotonic() < deadline:
                    # DuckDB opens and closes the file twice before it locks it, and any
                    # close drops every POSIX lock of the process, the wait's included: a
                    # reader polling for the file can get in then. Wait for it as for any.
                    time.sleep(_FILE_LOCKS.poll_s)
                    continue
                if is_lock_error(e):
                    raise WarehouseLockedError(
                        f"warehouse {self.path} is locked by another process ({e}); DuckDB "
                        "allows one writing process: stop the other writer or use a server "
                        "warehouse"
                    ) from e
                raise WarehouseError(f"cannot open warehouse {self.path}: {e}") from e

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a short connection (waiting for the file lock) and close it on exit.

        Yields
        ------
        duckdb.DuckDBPyConnection
            The connection; closed (lock released) when the block ends.
        """
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()
            _FILE_LOCKS.release(self.path)

    @contextmanager
    def transaction(self) -> Iterator[DuckDBSession]:
        """Run a block in one transaction on a short connection.

        Yields
        ------
        DuckDBSession
            The open transaction. Normal exit commits; any exception rolls back and is
            re-raised unchanged.
        """
        with self.connect() as conn:
            conn.execute("BEGIN TRANSACTION")
            try:
                yield DuckDBSession(conn)
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except duckdb.Error:
                    logger.debug("rollback after failure found no open transaction")
                raise
            conn.execute("COMMIT")

    # --- schema --------------------------------------------------------------------------

    def migrate(self) -> list[AppliedMigration]:
        """Apply pending migrations from ``sql/migrations``.

        Returns
        -------
        list[AppliedMigration]
            The migrations applied now.
        """
        return apply_migrations(self.transaction, DIALECT)

    def applied_migrations(self) -> list[AppliedMigration]:
        """Return the rows of ``schema_migrations``.

        Returns
        -------
        list[AppliedMigration]
            In version order; empty for a new file.
        """
        if self.read_only:
            with self.connect() as conn:
                exists = conn.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                    [q.SCHEMA_MIGRATIONS],
                ).fetchall()
                if not exists[0][0]:
                    return []
                rows = conn.execute(q.SELECT_MIGRATIONS).fetchall()
            return [AppliedMigration(str(v), str(n), str(c), int(a)) for v, n, c, a in rows]
        with self.transaction() as s:
            return read_applied(s)

    # --- offsets and microbatches --------------------------------------------------------

    def next_offset(self, topic: str, partition: int) -> int | None:
        """Return the first offset not yet loaded of a topic-partition.

        Parameters
        ----------
        topic, partition
            The topic-partition.

        Returns
        -------
        int | None
            ``max(stop_offset)`` of the ledger, or where the current epoch's
            acknowledgement starts the partition; None when neither has a row of it.
        """
        with self.transaction() as s:
            inc = _incarnation(s, topic)
            epoch = 0 if inc is None else inc.epoch
            value = s.scalar(q.NEXT_OFFSET, (topic, topic, epoch, partition))
        return None if value is None else int(value)

    def next_offsets(self, topic: str) -> dict[int, int]:
        """Return the next offset of every partition of ``topic``'s current epoch.

        Parameters
        ----------
        topic
            The topic.

        Returns
        -------
        dict[int, int]
            Partition -> first offset not yet loaded.
        """
        with self.transaction() as s:
            inc = _incarnation(s, topic)
            epoch = 0 if inc is None else inc.epoch
            rows = s.execute(q.NEXT_OFFSETS, (topic, topic, epoch))
        return {int(p): int(o) for p, o in rows}

    def topic_incarnation(self, topic: str) -> TopicIncarnation | None:
        """Return the ledger's current epoch of ``topic`` and the Kafka id recorded for it.

        Parameters
        ----------
        topic
            The topic.

        Returns
        -------
        TopicIncarnation | None
            None when the ledger has no row of the topic.
        """
        with self.transaction() as s:
            return _incarnation(s, topic)

    def acknowledge_topic(
        self, topic: str, topic_id: str, start_offsets: Mapping[int, int]
    ) -> TopicIncarnation:
        """Start a new epoch of ``topic``: ``topic_id`` loads from ``start_offsets`` on.

        Parameters
        ----------
        topic
            The topic name.
        topic_id
            Kafka's id of the topic now under that name.
        start_offsets
            ``{partition: first offset to load}`` of the new epoch.

        Returns
        -------
        TopicIncarnation
            The new epoch; the current one unchanged when it already has ``topic_id``.

        Raises
        ------
        WarehouseError
            If the ledger never loaded ``topic`` (nothing to acknowledge).
        """
        with self.transaction() as s:
            current = _incarnation(s, topic)
            if current is None:
                raise WarehouseError(
                    f"the ledger has no row of topic {topic!r}: nothing to acknowledge "
                    "(a topic never loaded starts at its low watermark)"
                )
            if current.topic_id == topic_id:
                return current
            now = time.time_ns()
            # The old topic's rows become history, whole, in this transaction.
            s.execute(q.MOVE_LEDGER_TO_HISTORY, (current.epoch, now, topic))
            s.execute(q.DELETE_LEDGER_OF_TOPIC, (topic,))
            for row in acknowledgement_rows(current, topic_id, start_offsets, now):
                s.execute(q.INSERT_TOPIC_EPOCH, [row[c] for c in q.TOPIC_EPOCH_COLUMNS])
        return TopicIncarnation(topic, current.epoch + 1, topic_id)

    def load_batch(
        self,
        batch: Microbatch,
        *,
        expected_start: int,
        run_id: str,
        quality: QualityVerdict | None = None,
        topic_id: str | None = None,
    ) -> LoadResult:
        """Write trades, quotes, aggregates, live records, rejects, gaps, quality, ledger row.

        All in one transaction: a failure anywhere leaves none of them.

        Parameters
        ----------
        batch
            The shaped microbatch; ``batch.range.start`` must equal ``expected_start``.
        expected_start
            Where the run found the ledger ending (or the low watermark for a new partition).
        run_id
            The Dagster run (or command) id, stored on the ledger row.
        quality
            The ingest suite's verdict, stored on the ledger row.
        topic_id
            Kafka's id of the topic the batch was read from, stored on the ledger row and
            compared with the current epoch's (None: not known, nothing compared).

        Returns
        -------
        LoadResult
            Counts as committed (``n_duplicates`` includes trades already stored, and the
            quote and bar duplicates those already stored).

        Raises
        ------
        OffsetConflict
            If the ledger moved since ``expected_start`` was read, or another loader
            committed the same range first. Nothing is written.
        TopicRecreatedError
            If ``topic_id`` is not the id of the topic's current epoch. Nothing is written.
        """
        rng = batch.range
        if rng.start != expected_start:
            raise OffsetConflict(
                f"batch {rng} does not start at the expected offset {expected_start}"
            )
        with _load_turn(self.path), self.connect() as conn:
            if self.load_threads:
                conn.execute(f"SET threads = {int(self.load_threads)}")
            conn.execute("BEGIN TRANSACTION")
            try:
                result = self._load_in_transaction(
                    conn, batch, expected_start, run_id, quality, topic_id
                )
                self._fault("before_commit")
                conn.execute("COMMIT")
            except duckdb.ConstraintException as e:
                self._rollback(conn)
                raise OffsetConflict(f"another loader committed {rng} first: {e}") from e
            except duckdb.TransactionException as e:
                self._rollback(conn)
                if "constraint" in str(e).lower() or "conflict" in str(e).lower():
                    raise OffsetConflict(f"another loader committed {rng} first: {e}") from e
                raise WarehouseError(f"loading {rng} failed and was rolled back: {e}") from e
            except duckdb.Error as e:
                self._rollback(conn)
                raise WarehouseError(f"loading {rng} failed and was rolled back: {e}") from e
            except BaseException:
                self._rollback(conn)
                raise
        self._fault("after_commit")
        return result

    def _fault(self, step: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(step)

    @staticmethod
    def _rollback(conn: duckdb.DuckDBPyConnection) -> None:
        try:
            conn.execute("ROLLBACK")
        except duckdb.Error:
            logger.debug("rollback found no open transaction (the commit itself failed)")

    def _load_in_transaction(
        self,
        conn: duckdb.DuckDBPyConnection,
        batch: Microbatch,
        expected_start: int,
        run_id: str,
        quality: QualityVerdict | None,
        topic_id: str | None,
    ) -> LoadResult:
        rng = batch.range
        inc = _incarnation(DuckDBSession(conn), rng.topic)
        if topic_id is not None:
            check_topic_identity(inc, topic_id)
        epoch = 0 if inc is None else inc.epoch
        # fetchall, not fetchone: DuckDB refuses register() while a result is unfinished.
        rows = conn.execute(q.NEXT_OFFSET, [rng.topic, rng.topic, epoch, rng.partition]).fetchall()
        current = None if not rows or rows[0][0] is None else int(rows[0][0])
        if current is not None and current != expected_start:
            raise OffsetConflict(
                f"ledger of {rng.topic}:{rng.partition} ends at {current}, not at "
                f"{expected_start}: another loader moved it; {rng} was not loaded"
            )
        loaded_ns = time.time_ns()
        n_inserted = 0
        if len(batch.trades):
            # Arrow, not pandas: DuckDB scans Arrow strings without Python objects.
            conn.register(q.BATCH_TRADES, pa.Table.from_pandas(batch.trades, preserve_index=False))
            days = batch.trades["trade_date"]
            first, last = pd.Timestamp(days.min()).date(), pd.Timestamp(days.max()).date()
            n_inserted = _rowcount(conn.execute(q.INSERT_TRADES, [loaded_ns, first, last]))
            conn.unregister(q.BATCH_TRADES)
        n_quotes = _insert_frame(conn, q.BATCH_QUOTES, batch.quotes, q.INSERT_QUOTES, loaded_ns)
        n_aggregates = _insert_frame(
            conn, q.BATCH_AGGREGATES, batch.aggregates, q.INSERT_AGGREGATES, loaded_ns
        )
        n_signals = 0
        if len(batch.live_signals):
            days = batch.live_signals["date"]
            conn.register(
                q.BATCH_LIVE, pa.Table.from_pandas(batch.live_signals, preserve_index=False)
            )
            n_signals = _rowcount(
                conn.execute(q.INSERT_LIVE_SIGNALS, [loaded_ns, days.min(), days.max()])
            )
            conn.unregister(q.BATCH_LIVE)
        n_signal_rejects = _insert_frame(
            conn, q.BATCH_LIVE_REJECTS, batch.live_rejects, q.INSERT_LIVE_REJECTS, loaded_ns
        )
        if len(batch.rejects):
            conn.register(q.BATCH_REJECTS, batch.rejects)
            conn.execute(q.INSERT_REJECTS, [loaded_ns]).fetchall()
            conn.unregister(q.BATCH_REJECTS)
        if len(batch.gaps):
            conn.register(q.BATCH_GAPS, batch.gaps)
            conn.execute(q.INSERT_GAPS, [loaded_ns]).fetchall()
            conn.unregister(q.BATCH_GAPS)
        self._fault("after_insert")
        n_duplicates = batch.n_duplicates + (batch.n_trades - n_inserted)
        n_quote_duplicates = batch.n_quote_duplicates + (batch.n_quotes - n_quotes)
        n_aggregate_duplicates = batch.n_aggregate_duplicates + (batch.n_aggregates - n_aggregates)
        n_signal_duplicates = batch.n_live_duplicates + (
            batch.n_live_signals - n_signals + batch.n_live_rejects - n_signal_rejects
        )
        meta = batch.metadata()
        if quality is not None:
            for r in quality.results:
                conn.execute(
                    q.INSERT_QUALITY,
                    [
                        run_id,
                        r.suite,
                        r.target,
                        r.expectation,
                        r.passed,
                        r.observed_json,
                        loaded_ns,
                    ],
                ).fetchall()
        conn.execute(
            q.INSERT_LEDGER,
            [
                rng.topic,
                rng.partition,
                rng.start,
                rng.stop,
                batch.n_messages,
                n_inserted,
                n_duplicates,
                batch.n_rejects,
                batch.n_gaps,
                meta["min_timestamp_ns"],
                meta["max_timestamp_ns"],
                None if quality is None else quality.passed,
                None if quality is None else quality.summary_json,
                run_id,
                loaded_ns,
                n_quotes,
                n_quote_duplicates,
                n_aggregates,
                n_aggregate_duplicates,
                topic_id,
                n_signals,
                n_signal_duplicates,
                n_signal_rejects,
            ],
        ).fetchall()
        return LoadResult(
            topic=rng.topic,
            partition=rng.partition,
            start_offset=rng.start,
            stop_offset=rng.stop,
            n_messages=batch.n_messages,
            n_trades=n_inserted,
            n_duplicates=n_duplicates,
            n_rejects=batch.n_rejects,
            n_gaps=batch.n_gaps,
            committed_ns=loaded_ns,
            n_quotes=n_quotes,
            n_quote_duplicates=n_quote_duplicates,
            n_aggregates=n_aggregates,
            n_aggregate_duplicates=n_aggregate_duplicates,
            n_signals=n_signals,
            n_signal_duplicates=n_signal_duplicates,
            n_signal_rejects=n_signal_rejects,
        )

    def partition_progress(self, topic: str | None = None) -> list[PartitionProgress]:
        """Summarise the ledger per topic-partition.

        Parameters
        ----------
        topic
            Only this topic; all when None.

        Returns
        -------
        list[PartitionProgress]
            One entry per topic-partition, ordered.
        """
        with self.transaction() as s:
            rows = s.execute(q.PARTITION_PROGRESS, (topic, topic))
        return [
            PartitionProgress(
                str(t),
                int(p),
                int(nxt),
                int(nb),
                int(nm),
                int(nt),
                int(nd),
                int(nr),
                int(ng),
                int(lc),
            )
            for t, p, nxt, nb, nm, nt, nd, nr, ng, lc in rows
        ]

    def ledger_frontier(self) -> LedgerFrontier:
        """Return every partition's ledger end and latest SIP time, in one snapshot.

        Returns
        -------
        LedgerFrontier
            Judged by :func:`pipeline.warehouse.finality.ingested_through`.
        """
        with self.transaction() as s:
            return LedgerFrontier.from_rows(s.execute(q.LEDGER_FRONTIER))

    def failed_batches(self, start_ns: int, end_ns: int) -> list[str]:
        """Return the batches whose ingest gate failed and whose trades overlap a window.

        Parameters
        ----------
        start_ns, end_ns
            The window ``[start_ns, end_ns)`` (e.g. a New York day), UTC epoch ns.

        Returns
        -------
        list[str]
            ``topic:partition:[start,stop)`` of each such batch.
        """
        with self.transaction() as s:
            rows = s.execute(q.FAILED_BATCHES, (start_ns, end_ns))
        return [f"{t}:{p}:[{a},{b})" for t, p, a, b in rows]

    # --- signals -------------------------------------------------------------------------

    def read_day_trades(self, day: date, *, regular_hours_only: bool = True) -> pd.DataFrame:
        """Return one New York day's trades in stable order.

        Parameters
        ----------
        day
            The ``trade_date``.
        regular_hours_only
            Keep only ``in_regular_hours`` prints (what the statistics use).

        Returns
        -------
        pandas.DataFrame
            Columns :data:`~pipeline.warehouse.queries.DAY_TRADE_COLUMNS`, ordered by
            symbol, timestamp and arrival (Kafka partition, offset).
        """
        with self.transaction() as s:
            return s.frame(q.READ_DAY_TRADES, (day, regular_hours_only))

    def read_day(self, day: date) -> DayInput:
        """Return the day's regular-hours trades and the ledger, from one snapshot.

        One DuckDB transaction reads both, so a batch committing meanwhile is in neither
        (the frontier never counts a batch whose trades were not read).

        Parameters
        ----------
        day
            The ``trade_date``.

        Returns
        -------
        DayInput
            Trades as :meth:`read_day_trades` returns them, and the ledger frontier.
        """
        with self.transaction() as s:
            trades = s.frame(q.READ_DAY_TRADES, (day, True))
            frontier = LedgerFrontier.from_rows(s.execute(q.LEDGER_FRONTIER))
        return DayInput(trades, frontier)

    def publish_signals_in_database(
        self, day: date, run: InDatabaseRun, accept: AuditJudge
    ) -> InDatabaseOutcome:
        """Refuse: DuckDB has no UDx; compute the frames and call :meth:`publish_signals`.

        Raises
        ------
        WarehouseError
            Always.
        """
        raise WarehouseError(
            f"the DuckDB warehouse does not compute signals in the database (day {day}); "
            "compute the frames with pipeline.signals.assemble and call publish_signals"
        )

    def publish_signals(self, day: date, frames: SignalTables, run: SignalRun) -> PublishResult:
        """Replace ``day`` in the three signal tables and add its run row, atomically.

        Parameters
        ----------
        day
            The trading day; every frame row must carry this ``date``.
        frames
            The audited frames (``trade_signals``, ``symbol_day_metrics``, ``intensity_buckets``).
        run
            Provenance: run id, kernel version, parameters, input offsets, content hash.

        Returns
        -------
        PublishResult
            Rows published and rows replaced.

        Raises
        ------
        DataError
            If a frame lacks a contract column or holds rows of another day.
        """
        ts = _contract(frames.trade_signals, q.TRADING_SIGNALS_COLUMNS, "trade_signals", day)
        sdm = _contract(
            frames.symbol_day_metrics, q.SYMBOL_DAY_METRICS_COLUMNS, "symbol_day_metrics", day
        )
        ib = _contract(
            frames.intensity_buckets, q.TRADE_INTENSITY_COLUMNS, "intensity_buckets", day
        )
        sdm = with_fit_states(sdm, getattr(frames, "fit_states", None)).assign(
            input_offsets=[run.symbol_input_offsets.get(str(s), "{}") for s in sdm["symbol"]]
        )
        with self.transaction() as s:
            # Publish by commit order: a run stamped before it waited for the file may
            # commit after a later-stamped one, and its DELETE removes that one's rows. The
            # day's current run (the latest computed_ns) must be the last to commit, so its
            # stamp is moved past every earlier run of the day. One writer holds the file,
            # so this read and the insert below are never interleaved with another run's.
            newest = s.scalar(q.NEWEST_RUN_OF_DAY, (day,))
            computed_ns = run.computed_ns if newest is None else max(run.computed_ns, newest + 1)
            n_replaced = 0
            for stmt in q.DELETE_DAY.values():
                n_replaced += _rowcount_rows(s.execute(stmt, (day,)))
            for sql, frame, params in (
                (q.INSERT_TRADING_SIGNALS, ts, (run.kernel_version, run.run_id)),
                (
                    q.INSERT_SYMBOL_DAY_METRICS,
                    sdm,
                    (run.kernel_version, run.params_json, run.run_id),
                ),
                (q.INSERT_TRADE_INTENSITY, ib, (run.kernel_version, run.run_id)),
            ):
                if len(frame):
                    s.conn.register(q.FRAME, frame)
                    s.execute(sql, params)
                    s.conn.unregister(q.FRAME)
            s.execute(
                q.INSERT_SIGNAL_RUN,
                (
                    run.run_id,
                    day,
                    run.n_symbols,
                    run.n_trades,
                    run.n_buckets,
                    run.kernel_version,
                    run.params_json,
                    run.input_offsets_json,
                    run.content_hash,
                    run.quality_passed,
                    run.quality_summary_json,
                    run.ingested_through_ns,
                    run.final,
                    computed_ns,
                    run.ledger_ends_json,
                ),
            )
        return PublishResult(day, run.run_id, len(ts), len(sdm), len(ib), n_replaced)

    def record_quality(self, run_id: str, rows: Sequence[QualityResultRow]) -> None:
        """Store quality verdicts outside a load (e.g. the signal suite of a blocked day).

        Parameters
        ----------
        run_id
            The run that evaluated them.
        rows
            One row per expectation.
        """
        if not rows:
            return
        now = time.time_ns()
        with self.transaction() as s:
            for r in rows:
                s.execute(
                    q.INSERT_QUALITY,
                    (run_id, r.suite, r.target, r.expectation, r.passed, r.observed_json, now),
                )

    # --- reads ---------------------------------------------------------------------------

    def table_counts(self) -> dict[str, int]:
        """Return the row count of every platform table.

        Returns
        -------
        dict[str, int]
            Table -> rows.
        """
        with self.transaction() as s:
            return {t: int(s.scalar(sql)) for t, sql in q.COUNT.items()}

    def query_frame(self, name: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a named read of :data:`pipeline.warehouse.queries.READS`.

        Parameters
        ----------
        name
            Statement name.
        params
            Bound values, in the statement's order.

        Returns
        -------
        pandas.DataFrame
            The rows.
        """
        try:
            sql = q.READS[name]
        except KeyError:
            raise WarehouseError(f"no named read {name!r}; known: {sorted(q.READS)}") from None
        with self.transaction() as s:
            return s.frame(sql, params)


def _incarnation(s: DuckDBSession, topic: str) -> TopicIncarnation | None:
    """Return the topic's current epoch and its recorded Kafka id (None: never loaded)."""
    latest = s.execute(q.LATEST_EPOCH, (topic,))
    [(n_rows, ledger_id)] = s.execute(q.LEDGER_TOPIC_ID, (topic,))
    return incarnation_of(
        topic,
        (int(latest[0][0]), str(latest[0][1])) if latest else None,
        int(n_rows),
        None if ledger_id is None else str(ledger_id),
    )


def _insert_frame(
    conn: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame, sql: str, loaded_ns: int
) -> int:
    """Register ``frame`` as ``name``, run the keyed insert ``sql`` and return the rows inserted."""
    if not len(frame):
        return 0
    # Arrow, not pandas: DuckDB scans Arrow strings without Python objects.
    conn.register(name, pa.Table.from_pandas(frame, preserve_index=False))
    try:
        return _rowcount(conn.execute(sql, [loaded_ns]))
    finally:
        conn.unregister(name)


def _rowcount(cur: duckdb.DuckDBPyConnection) -> int:
    rows = cur.fetchall()
    return int(rows[0][0]) if rows else 0


def _rowcount_rows(rows: list[tuple[Any, ...]]) -> int:
    return int(rows[0][0]) if rows else 0


def _contract(frame: pd.DataFrame, columns: Sequence[str], name: str, day: date) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"frame {name} lacks contract columns {missing}")
    out = frame.loc[:, list(columns)]
    if len(out):
        dates = pd.to_datetime(out["date"]).dt.date
        other = dates[dates != day]
        if len(other):
            raise DataError(
                f"frame {name} row {other.index[0]} has date {other.iloc[0]}, not {day}"
            )
    return out
