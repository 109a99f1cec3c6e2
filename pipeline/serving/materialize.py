"""Follow a DuckDB warehouse into the serving store: copy only what changed, hold the file briefly.

The offset ledger says exactly what each commit added: a ledger row ``(topic, partition,
[start, stop))`` and, in that offset range, the batch's trades, rejects and gap records (or,
for a batch of the live path's topic, its provisional signals: ``live_signals``).
``signal_runs`` says which day a signals run replaced. So each refresh:

1. ``ATTACH``-es the warehouse ``READ_ONLY`` (one short retry while a loader holds it;
   otherwise it tries again on the next tick, never queueing behind the writer), and in
   one transaction reads the ledger rows after the ones already followed, the rows of
   their offset ranges, the runs table (a few rows a day), the current run's rows of any
   day whose run changed, and the failed quality rows those name; then detaches. The
   reading is bounded (``max_rows`` per attach), so the file is held for milliseconds.
2. With the file released, sorts the new rows per day by ``(symbol, time)`` into new
   immutable segment files, folds their facts into the catalog, and, once it has caught
   up with everything the last transaction saw, publishes a new state whose as-of is that
   transaction's snapshot time. Until it has caught up (a first build of a large
   warehouse), nothing is published, so a published state is always the warehouse at one
   instant.
3. When idle, merges a day's segments (four of a level into one of the next; a day quiet
   for ``seal_after_s`` into one file), deletes files no state has named for
   ``grace_s``, and records a heartbeat: "unchanged at time t", which moves a served
   as-of forward without copying anything.

Cost per refresh is proportional to the rows added (plus the days whose run changed),
never to the warehouse's size; memory is one bounded read plus one day's merge.

Only one materializer works on a store at a time (``flock`` on ``LOCK``); any number of
server processes read it. Run it in a thread (:meth:`Materializer.run`) or as its own
process (``python -m pipeline.serving.materialize``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from pipeline.nytime import ny_dates
from pipeline.serving.catalog import (
    Catalog,
    CatalogBuilder,
    DayCatalog,
    GapInfo,
    LedgerBatch,
    RunInfo,
    SignalFacts,
    current_runs,
    follow_ledger,
    live_facts,
    trade_facts,
)
from pipeline.serving.format import METRICS_COLUMNS, jsonable
from pipeline.serving.port import SIGNAL_CODES
from pipeline.serving.sql import statements
from pipeline.serving.store import (
    LIVE_SCHEMA,
    REJECTS_SCHEMA,
    SIGNALS_SCHEMA,
    TRADES_SCHEMA,
    DayFiles,
    Manifest,
    Segment,
    SourceVersion,
    StoreLayout,
    source_version,
    write_batches,
)
from pipeline.warehouse.duckdb_backend import is_lock_error
from pipeline.warehouse.schema import EVALUATION_COLUMNS

logger = logging.getLogger(__name__)

MERGE_FANIN = 4
"""Segments of one level merged into one of the next (at most 3 per level stay apart)."""
SEALED_LEVEL = 99
"""Level of a day's single segment once it has been quiet for ``seal_after_s``."""
LEDGER_SLACK_NS = 600 * 1_000_000_000
"""How far before the newest followed commit stamp new ledger rows are looked for: the
stamp is taken before COMMIT, so a batch may become visible after a later-stamped one."""

# The follow-the-warehouse statements, on the attached file; and the ones only this side
# runs (the rows of new offset ranges and of changed runs, copied into the store).
SQL = statements("src.")
TRADES_SQL = (
    "SELECT symbol, trade_date, timestamp_ns, kafka_partition, kafka_offset, price, size, "
    "exchange, conditions, in_regular_hours, ns_from_open FROM src.market_data "
    "WHERE kafka_topic = ? AND kafka_partition = ? AND kafka_offset >= ? AND kafka_offset < ?"
)
SIGNAL_COUNTS_SQL = (
    "SELECT symbol, count(*) FROM src.trading_signals WHERE date = ? AND run_id = ? "
    "GROUP BY symbol ORDER BY symbol"
)
SIGNALS_SQL = (
    "SELECT symbol, timestamp_ns, seq, price, size, log_return, lee_mykland_stat, lm_xi, "
    "jump_detected, garch_sigma2, standardized_return, bns_stat, conditional_duration, "
    "acd_surprise, trade_intensity_zscore, trading_signal, kafka_partition, kafka_offset "
    "FROM src.trading_signals WHERE date = ? AND run_id = ? AND symbol >= ? AND symbol <= ?"
)
METRICS_SQL = (
    f"SELECT {', '.join(METRICS_COLUMNS)} FROM src.symbol_day_metrics "  # noqa: S608 - constants
    "WHERE date = ? AND run_id = ?"
)

REQUIRED_TABLES: tuple[str, ...] = (
    "market_data",
    "kafka_offsets",
    "market_data_rejects",
    "feed_gaps",
    "trading_signals",
    "symbol_day_metrics",
    "signal_runs",
)


class WarehouseMissing(Exception):
    """The warehouse file does not exist or has no tables to serve (yet)."""


class WarehouseHeld(Exception):
    """A writer held the warehouse through the short retry; try again on the next tick."""


@dataclass
class _RunCopy:
    """A day's new current run, copied symbol by symbol across reads."""

    run: RunInfo
    counts: list[tuple[str, int]]
    done: int = 0
    tables: list[pa.Table] = field(default_factory=list[pa.Table])
    metrics: pa.Table | None = None
    failed: list[tuple[str, str, str | None]] = field(
        default_factory=list[tuple[str, str, str | None]]
    )

    @property
    def complete(self) -> bool:
        return self.done >= len(self.counts) and self.metrics is not None


@dataclass
class StepResult:
    """What one refresh did."""

    outcome: str
    """``idle``, ``held`` (a writer held the file), ``missing``, ``progress`` or ``published``."""
    rows: int = 0
    hold_s: float = 0.0
    seconds: float = 0.0


@dataclass
class MaterializerStats:
    """Counters a health endpoint or a benchmark reads."""

    steps: int = 0
    published: int = 0
    held: int = 0
    failures: int = 0
    rows: int = 0
    hold_s_total: float = 0.0
    hold_s_max: float = 0.0
    last_error: str | None = None
    progress: str | None = None


class Materializer:
    """Keeps a serving store equal to a DuckDB warehouse, as of its last reading.

    Parameters
    ----------
    warehouse
        The DuckDB file (only ever attached ``READ_ONLY``).
    store
        The store directory (created).
    max_rows
        Most trade, reject and signal rows read per attach (bounds the hold: about 0.1 s
        for 100,000 rows on this machine class).
    memory_limit
        DuckDB's memory cap for the private database that reads and sorts.
    retry_s
        Pause between two asks for the file's lock while a writer holds it.
    patience_s
        How long one refresh asks before it gives up until the next tick.
    min_interval_s
        Least time between the starts of two readings; the server's materializer uses
        0.5 s, so a loader committing every 0.15 s is read every 0.5 s: one hold of the
        file for several batches (0: read at every change; tests, commands).
    grace_s
        How long a file no state names is kept (longer than any call).
    seal_after_s
        How long a day must be quiet before its segments are merged into one.
    first_day_check_s
        How often to look for days dropped by retention.
    clock
        ``time.time_ns`` (tests inject one).
    """

    def __init__(
        self,
        warehouse: Path,
        store: Path,
        *,
        max_rows: int = 100_000,
        retry_s: float = 0.0005,
        patience_s: float = 0.5,
        min_interval_s: float = 0.0,
        memory_limit: str = "512MB",
        grace_s: float = 60.0,
        seal_after_s: float = 30.0,
        first_day_check_s: float = 60.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.warehouse = Path(warehouse)
        self.layout = StoreLayout(Path(store))
        self.max_rows = max_rows
        self.retry_s = retry_s
        self.patience_s = patience_s
        self.min_interval_s = min_interval_s
        self._next_reading = 0.0
        self.grace_s = grace_s
        self.seal_after_s = seal_after_s
        self.first_day_check_s = first_day_check_s
        self.clock = clock
        self.stats = MaterializerStats()
        # One thread (the server's other core serves queries) and a memory cap: a reading
        # is bounded by max_rows, and a cap keeps a merge of a large day spilling to disk
        # rather than growing the process.
        self._con = duckdb.connect(config={"threads": 1, "memory_limit": memory_limit})
        self._manifest: Manifest | None = None
        self._days: dict[date, DayFiles] = {}
        self._catalog = Catalog()
        self._evaluation: tuple[Mapping[str, Any], ...] = ()
        self._last_batch: dict[tuple[str, int], tuple[int, int, int]] = {}
        # Work read but not yet published (a first build spans many reads).
        self._builder: CatalogBuilder | None = None
        self._work_days: dict[date, DayFiles] = {}
        self._run_copies: dict[date, _RunCopy] = {}
        self._pending_batches = False
        self._seen: SourceVersion | None = None
        self._retired: list[tuple[float, str]] = []
        self._next_first_day_check = 0.0
        self._lock_fd: int | None = None
        self._wh_fd: int | None = None
        self._schema: dict[str, set[str]] | None = None
        self._schema_until = 0.0
        self._removed_runs: set[date] = set()
        self._held_since: float | None = None
        self._last_status: dict[str, Any] = {}
        self._last_status_at = 0.0
        self._load_published()

    # --- published state ---------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        # Informational only: the store belongs to the warehouse whose ledger holds the
        # batches it followed (``ledger_last``), wherever the pair is copied to.
        return {"file": self.warehouse.name}

    def _load_published(self) -> None:
        self.layout.ensure()
        name = self.layout.current_name()
        if name is None:
            return
        try:
            manifest = Manifest.from_json(self.layout.read_json(name))
            days = {
                d: DayFiles.from_json(self.layout.read_json(n)) for d, n in manifest.days.items()
            }
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning(
                "serving store %s is unreadable (%s); rebuilding it", self.layout.root, e
            )
            return
        self._manifest = manifest
        self._days = days
        self._catalog = manifest.base_catalog()
        from pipeline.serving.catalog import with_days

        self._catalog = with_days(self._catalog, {d: f.catalog for d, f in days.items()})
        self._evaluation = manifest.evaluation
        self._last_batch = dict(manifest.ledger_last)

    def _reset(self, why: str) -> None:
        logger.warning("serving store %s is rebuilt: %s", self.layout.root, why)
        old = [*self._days.values(), *self._work_days.values()]
        now = time.monotonic()
        for f in old:
            self._retired.extend((now, n) for n in f.files())
        self._manifest = None
        self._days = {}
        self._catalog = Catalog()
        self._evaluation = ()
        self._last_batch = {}
        self._builder = None
        self._work_days = {}
        self._run_copies = {}
        self._pending_batches = False
        self._schema = None

    # --- the lock: one materializer per store ------------------------------------------

    def try_lock(self) -> bool:
        """Take the store's materializer lock without waiting; return True if held."""
        if self._lock_fd is not None:
            return True
        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def adopt_lock(self, fd: int) -> None:
        """Use a lock the parent process took on this store and handed down."""
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock (a waiting materializer takes over)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Release the lock and the private database."""
        self.unlock()
        self._con.close()

    # --- one refresh ---------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Return True while read work waits to be published (a build in progress)."""
        return self._builder is not None

    def step(self) -> StepResult:
        """Do one refresh: read what changed (if anything) and publish when caught up.

        Returns
        -------
        StepResult
            What happened.

        Raises
        ------
        duckdb.Error
            An unexpected warehouse error (the caller logs it and retries later).
        """
        t0 = time.perf_counter()
        self.stats.steps += 1
        version = source_version(self.warehouse)
        if version is None:
            return StepResult("missing")
        if not self.busy and version == self._seen:
            self._heartbeat()
            return StepResult("idle", seconds=time.perf_counter() - t0)
        if not self.busy and time.monotonic() < self._next_reading:
            # Commits arriving faster than this are read together: one hold of the
            # file per interval, however often the loader commits.
            return StepResult("idle", seconds=time.perf_counter() - t0)
        self._next_reading = time.monotonic() + self.min_interval_s
        try:
            conn = self._attach()
        except WarehouseHeld:
            self.stats.held += 1
            return StepResult("held", seconds=time.perf_counter() - t0)
        held0 = time.perf_counter()
        try:
            read = self._read(conn)
        finally:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            self._release()
        hold = time.perf_counter() - held0
        self.stats.hold_s_total += hold
        self.stats.hold_s_max = max(self.stats.hold_s_max, hold)
        if read is None:
            return StepResult("missing", hold_s=hold, seconds=time.perf_counter() - t0)
        self._apply(read)
        self.stats.rows += read.rows
        if read.caught_up:
            self._seen = version
            self._publish(read.as_of_ns)
            return StepResult("published", read.rows, hold, time.perf_counter() - t0)
        return StepResult("progress", read.rows, hold, time.perf_counter() - t0)

    def _attach(self) -> duckdb.DuckDBPyConnection:
        """Attach the warehouse read-only as soon as no writer holds it (within ``patience_s``).

        DuckDB locks its file with POSIX record locks (``fcntl``), and a loader at full
        speed holds it most of the time, letting go for a moment between two batches.
        Asking DuckDB to attach only when the lock happens to be free would rarely get in.
        So this asks the kernel for a shared lock, without blocking, every half
        millisecond (a system call, not an attach), and attaches in the moment it is
        granted; the loader, which waits the same way (``FileLocks``), then finds the file
        held for the few milliseconds of one reading and gets it back within half a
        millisecond of its end. The lock of this process is released by the ``DETACH``
        that ends the reading.
        """
        import fcntl

        fd = os.open(self.warehouse, os.O_RDONLY)
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WarehouseHeld("a writer held the warehouse file") from None
                time.sleep(self.retry_s)
                continue
            try:
                self._con.execute("ATTACH ? AS src (READ_ONLY)", [str(self.warehouse)])
            except duckdb.Error as e:
                if not is_lock_error(e) or time.monotonic() >= deadline:
                    os.close(fd)
                    if is_lock_error(e):
                        raise WarehouseHeld("a writer held the warehouse file") from e
                    raise
                time.sleep(self.retry_s)
                continue
            # Keep this descriptor open until after DETACH: POSIX record locks belong to
            # the process, and closing any descriptor of the file would release DuckDB's
            # lock on it too, letting a writer in while the reading runs.
            self._wh_fd = fd
            return self._con

    def _release(self) -> None:
        """End a reading: detach (DuckDB's lock and this process's go), then close."""
        try:
            self._con.execute("DETACH src")
        finally:
            if self._wh_fd is not None:
                os.close(self._wh_fd)
                self._wh_fd = None

    def _tables(self, conn: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
        """Return the warehouse's tables and columns (re-read every 30 s: migrations)."""
        now = time.monotonic()
        if self._schema is not None and now < self._schema_until:
            return self._schema
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_catalog = 'src'"
        ).fetchall()
        out: dict[str, set[str]] = {}
        for t, c in rows:
            out.setdefault(str(t), set()).add(str(c))
        if all(t in out for t in REQUIRED_TABLES):
            self._schema, self._schema_until = out, now + 30.0
        return out

    def _read(self, conn: duckdb.DuckDBPyConnection) -> _Read | None:
        """Read what changed, in one transaction (the caller detaches)."""
        conn.execute("BEGIN TRANSACTION")
        tables = self._tables(conn)
        if any(t not in tables for t in REQUIRED_TABLES):
            raise WarehouseMissing("the warehouse has no tables to serve (migrations not applied?)")
        # The snapshot is taken by the first statement of the transaction: state it as of now.
        builder_base = self._builder_catalog()
        since = max(
            (p.last_commit_ns for p in builder_base.ledger.values()), default=LEDGER_SLACK_NS
        )
        sql = SQL
        if "n_signals" not in tables.get("kafka_offsets", set()):
            # A warehouse migrated before 0015 has no live path's history.
            sql = replace(
                SQL,
                ledger_since=SQL.ledger_since.replace(", n_signals", ", 0 AS n_signals"),
                ledger_after=SQL.ledger_after.replace(", n_signals", ", 0 AS n_signals"),
            )
        rows = conn.execute(sql.ledger_since, [since - LEDGER_SLACK_NS]).fetchall()
        as_of_ns = self.clock()
        # Identity: the newest batch followed must still be in the ledger, else the file was
        # restored or rebuilt under the same name.
        for (topic, p), batch in self._last_batch.items():
            (n,) = conn.execute(SQL.ledger_row, [topic, p, *batch]).fetchall()[0]
            if not n:
                self._reset(f"ledger row {topic}:{p}:[{batch[0]},{batch[1]}) is not in the file")
                builder_base = self._builder_catalog()
                rows = conn.execute(sql.ledger_since, [0]).fetchall()
                break
        batches = follow_ledger(
            builder_base,
            rows,
            lambda t, p, start: conn.execute(sql.ledger_after, [t, p, start]).fetchall(),
        )
        read = _Read(as_of_ns=as_of_ns)
        budget = self.max_rows
        taken: list[LedgerBatch] = []
        for b in batches:
            cost = b.n_trades + b.n_rejects + b.n_signals + 1
            if taken and cost > budget:
                break
            taken.append(b)
            budget -= cost
        read.batches = taken
        leftover = len(taken) < len(batches)
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for b in taken:
            lo, hi = spans.get((b.topic, b.partition), (b.start, b.stop))
            spans[(b.topic, b.partition)] = (min(lo, b.start), max(hi, b.stop))
        gaps_sql = SQL.gaps
        if not {"gap_id", "repair"} <= tables.get("feed_gaps", set()):
            # A warehouse migrated before 0010 has no repair columns yet.
            gaps_sql = gaps_sql.replace("gap_id, repair", "NULL AS gap_id, NULL AS repair")
        trades: list[pa.Table] = []
        rejects: list[pa.Table] = []
        for (topic, p), (lo, hi) in spans.items():
            args = [topic, p, lo, hi]
            trades.append(conn.sql(TRADES_SQL, params=args).to_arrow_table())
            rejects.append(conn.sql(SQL.rejects, params=args).to_arrow_table())
            read.gaps.extend(GapInfo.from_json(r) for r in conn.execute(gaps_sql, args).fetchall())
        read.trades = pa.concat_tables(trades) if trades else None
        read.rejects = pa.concat_tables(rejects) if rejects else None
        # The live path's history: only batches of its topic store live rows.
        live: list[pa.Table] = []
        if "live_signals" in tables:
            for b in taken:
                if b.n_signals:
                    args = [b.topic, b.partition, b.start, b.stop]
                    live.append(conn.sql(SQL.live, params=args).to_arrow_table())
        read.live = pa.concat_tables(live) if live else None
        read.rows = (
            (read.trades.num_rows if read.trades is not None else 0)
            + (read.rejects.num_rows if read.rejects is not None else 0)
            + (read.live.num_rows if read.live is not None else 0)
        )
        for b in taken:
            if b.quality_passed is False:
                read.failed[b.target] = _failed(conn, b.target)
        # Signal runs: a few rows a day; a changed day's rows are copied symbol by symbol,
        # as many as the read's row budget allows (at least one symbol per read).
        runs_sql = SQL.runs
        if "ledger_ends" not in tables.get("signal_runs", set()):
            # A warehouse migrated before 0014: its runs' staleness is not judged.
            runs_sql = runs_sql.replace("ledger_ends", "NULL AS ledger_ends")
        runs = current_runs(conn.execute(runs_sql).fetchall())
        self._plan_runs(conn, runs, builder_base)
        for day, copy in sorted(self._run_copies.items()):
            while copy.done < len(copy.counts) and (budget > 0 or read.rows == 0):
                first, n = copy.done, 0
                while copy.done < len(copy.counts) and (
                    n == 0 or n + copy.counts[copy.done][1] <= budget
                ):
                    n += copy.counts[copy.done][1]
                    copy.done += 1
                symbols = [copy.counts[first][0], copy.counts[copy.done - 1][0]]
                copy.tables.append(
                    conn.sql(SIGNALS_SQL, params=[day, copy.run.run_id, *symbols]).to_arrow_table()
                )
                budget -= n
                read.rows += n
            if copy.done >= len(copy.counts) and copy.metrics is None:
                copy.metrics = conn.sql(METRICS_SQL, params=[day, copy.run.run_id]).to_arrow_table()
                copy.failed = _failed(conn, day.isoformat())
        read.runs = runs
        # The newest evaluation (microstructure evaluate), when it changed.
        if "signal_evaluation" in tables and set(EVALUATION_COLUMNS) <= tables["signal_evaluation"]:
            newest = conn.execute(SQL.newest_evaluation).fetchall()
            eid = None if not newest else str(newest[0][0])
            if eid != builder_base.evaluation_id:
                cols = EVALUATION_COLUMNS
                read.evaluation = (
                    eid,
                    tuple(
                        {k: jsonable(v) for k, v in zip(cols, r, strict=True)}
                        for r in conn.execute(SQL.evaluation, [eid]).fetchall()
                    )
                    if eid is not None
                    else (),
                )
        now = time.monotonic()
        if now >= self._next_first_day_check:
            self._next_first_day_check = now + self.first_day_check_s
            (first_day,) = conn.execute(SQL.first_day).fetchall()[0]
            read.first_day = first_day
            read.checked_first_day = True
        conn.execute("COMMIT")
        read.caught_up = not leftover and all(c.complete for c in self._run_copies.values())
        return read

    def _builder_catalog(self) -> Catalog:
        return self._builder.freeze() if self._builder is not None else self._catalog

    def _plan_runs(
        self, conn: duckdb.DuckDBPyConnection, runs: Mapping[date, RunInfo], base: Catalog
    ) -> None:
        have = base.runs
        for day, run in runs.items():
            copy = self._run_copies.get(day)
            if copy is not None and copy.run.run_id == run.run_id:
                continue
            old = have.get(day)
            if old is not None and old.run_id == run.run_id and copy is None:
                continue
            counts = [
                (str(s), int(n))
                for s, n in conn.execute(SIGNAL_COUNTS_SQL, [day, run.run_id]).fetchall()
            ]
            self._run_copies[day] = _RunCopy(run, counts)
        for day in set(have) - set(runs):
            self._run_copies.pop(day, None)
            self._removed_runs.add(day)

    # --- applying a reading --------------------------------------------------------------

    def _apply(self, read: _Read) -> None:
        if self._builder is None:
            self._builder = CatalogBuilder(self._catalog)
            self._work_days = {}
        builder = self._builder
        now_ns = self.clock()
        if read.trades is not None and read.trades.num_rows:
            self._add_trades(builder, read.batches, read.trades, now_ns)
        else:
            for b in read.batches:
                builder.add_batch(b, ())
        for b in read.batches:
            self._last_batch[(b.topic, b.partition)] = (b.start, b.stop, b.committed_ns)
        if read.rejects is not None and read.rejects.num_rows:
            self._add_rejects(read.rejects, now_ns)
        if read.live is not None and read.live.num_rows:
            self._add_live(builder, read.live, now_ns)
        builder.add_gaps(read.gaps)
        for target, rows in read.failed.items():
            builder.set_failed(target, rows)
        for day in sorted(self._removed_runs):
            builder.set_run(day, None, {})
            files = self._work_day(day)
            self._work_days[day] = replace(files, signals=None, metrics=None, changed_ns=now_ns)
        self._removed_runs.clear()
        for day, copy in list(self._run_copies.items()):
            if copy.complete:
                self._add_run(builder, day, copy, now_ns)
                del self._run_copies[day]
        if read.evaluation is not None:
            builder.set_evaluation(read.evaluation[0])
            self._evaluation = read.evaluation[1]
        if read.checked_first_day:
            # Retention deletes whole days of raw trades (signals and rejects are kept
            # on their own terms): forget the trades of days before the first one left.
            for day, c in builder.freeze().days.items():
                if (read.first_day is None or day < read.first_day) and any(
                    e.n_trades for e in c.entries.values()
                ):
                    builder.drop_trades(day)
                    files = self._work_day(day)
                    self._work_days[day] = replace(files, trades=(), changed_ns=now_ns)

    def _work_day(self, day: date) -> DayFiles:
        files = self._work_days.get(day) or self._days.get(day)
        if files is None:
            files = DayFiles(day=day, catalog=DayCatalog(day, {}))
        return files

    def _add_trades(
        self, builder: CatalogBuilder, batches: Sequence[LedgerBatch], t: pa.Table, now_ns: int
    ) -> None:
        # Which batch each row belongs to: per partition, the batch whose range holds it.
        part = t.column("kafka_partition").to_numpy()
        off = t.column("kafka_offset").to_numpy()
        batch_index = np.full(len(off), -1, dtype=np.int64)
        by_part: dict[int, list[tuple[int, int]]] = {}
        for i, b in enumerate(batches):
            # Only batches that stored trades own rows here: a batch of another topic (the
            # live path's, whose partitions have the same numbers) must not claim them.
            if b.n_trades:
                by_part.setdefault(b.partition, []).append((b.start, i))
        for p, starts in by_part.items():
            starts.sort()
            s = np.array([x for x, _ in starts], dtype=np.int64)
            ids = np.array([i for _, i in starts], dtype=np.int64)
            mask = part == p
            batch_index[mask] = ids[np.searchsorted(s, off[mask], side="right") - 1]
        con = self._con
        con.register("delta", t.append_column("batch", pa.array(batch_index)))
        try:
            minute_rows = con.execute(
                "SELECT batch, symbol, trade_date, CASE WHEN in_regular_hours AND "
                "ns_from_open >= 0 AND ns_from_open < 23400000000000 THEN "
                "CAST(floor(ns_from_open / 60000000000) AS INTEGER) ELSE -1 END AS minute, "
                "count(*), min(timestamp_ns), max(timestamp_ns) FROM delta GROUP BY ALL"
            ).fetchall()
            ordered = con.sql(
                "SELECT trade_date, symbol, timestamp_ns, kafka_partition, kafka_offset, price, "
                "size, exchange, conditions, in_regular_hours FROM delta ORDER BY trade_date, "
                "symbol, timestamp_ns, kafka_partition, kafka_offset"
            ).to_arrow_table()
        finally:
            con.unregister("delta")
        facts = trade_facts(minute_rows)
        per_batch: dict[int, list[Any]] = {}
        for (bi, _s, _d), f in facts.items():
            per_batch.setdefault(bi, []).append(f)
        for i, b in enumerate(batches):
            builder.add_batch(b, per_batch.get(i, ()))
        for day, symbols in _split(ordered, "trade_date", "symbol"):
            files = self._work_day(day)
            name = self.layout.new_name(day, "t")
            index = write_batches(self.layout.path(name), TRADES_SCHEMA, symbols)
            seg = Segment(name, sum(n for _, n in index.values()), index, level=0)
            self._work_days[day] = replace(files, trades=(*files.trades, seg), changed_ns=now_ns)

    def _add_rejects(self, t: pa.Table, now_ns: int) -> None:
        receipt = t.column("receipt_ns").to_pylist()
        loaded = t.column("loaded_ns").to_pylist()
        at = np.array(
            [r if r is not None else lo for r, lo in zip(receipt, loaded, strict=True)],
            dtype=np.int64,
        )
        days = ny_dates(at)
        symbols = ["" if s is None else str(s) for s in t.column("symbol").to_pylist()]
        frame = pa.table(
            {
                "day": pa.array(days, pa.date32()),
                "symbol": pa.array(symbols, pa.string()),
                "at_ns": pa.array(at, pa.int64()),
                "stage": t.column("stage"),
                "reason": t.column("reason"),
                "raw": t.column("raw"),
                "kafka_partition": t.column("kafka_partition").cast(pa.int64()),
                "kafka_offset": t.column("kafka_offset").cast(pa.int64()),
            }
        ).sort_by(
            [
                ("day", "ascending"),
                ("symbol", "ascending"),
                ("at_ns", "ascending"),
                ("kafka_partition", "ascending"),
                ("kafka_offset", "ascending"),
            ]
        )
        for day, by_symbol in _split(frame, "day", "symbol"):
            files = self._work_day(day)
            name = self.layout.new_name(day, "r")
            index = write_batches(self.layout.path(name), REJECTS_SCHEMA, by_symbol)
            seg = Segment(name, sum(n for _, n in index.values()), index, level=0)
            self._work_days[day] = replace(files, rejects=(*files.rejects, seg), changed_ns=now_ns)

    def _add_live(self, builder: CatalogBuilder, t: pa.Table, now_ns: int) -> None:
        """File the live path's rows: a segment per day, and their facts in the catalog."""
        labels = np.asarray(t.column("trading_signal").to_numpy(zero_copy_only=False), dtype=object)
        codes = np.zeros(t.num_rows, dtype=np.int8)
        codes[labels == "BUY"] = SIGNAL_CODES["BUY"]
        codes[labels == "SELL"] = SIGNAL_CODES["SELL"]
        t = t.append_column("code", pa.array(codes, pa.int8())).sort_by(
            [
                ("date", "ascending"),
                ("symbol", "ascending"),
                ("timestamp_ns", "ascending"),
                ("seq", "ascending"),
            ]
        )
        facts: list[tuple[str, date, Any]] = []
        for day, symbols in _split(t, "date", "symbol"):
            for symbol, rows in symbols:
                c = np.bincount(rows.column("code").to_numpy(), minlength=3)
                last = rows.column("timestamp_ns").to_numpy().max()
                facts.extend(
                    (s, d, f)
                    for (s, d), f in live_facts(
                        [(symbol, day, rows.num_rows, int(c[1]), int(c[2]), int(last))]
                    ).items()
                )
            files = self._work_day(day)
            name = self.layout.new_name(day, "l")
            index = write_batches(self.layout.path(name), LIVE_SCHEMA, symbols)
            seg = Segment(name, sum(n for _, n in index.values()), index, level=0)
            self._work_days[day] = replace(files, live=(*files.live, seg), changed_ns=now_ns)
        builder.add_live(facts)

    def _add_run(self, builder: CatalogBuilder, day: date, copy: _RunCopy, now_ns: int) -> None:
        run = copy.run
        table = pa.concat_tables(copy.tables) if copy.tables else None
        files = self._work_day(day)
        signals_seg: Segment | None = None
        facts: dict[str, SignalFacts] = {}
        if table is not None and table.num_rows:
            codes = np.zeros(table.num_rows, dtype=np.int8)
            labels = np.asarray(
                table.column("trading_signal").to_numpy(zero_copy_only=False), dtype=object
            )
            codes[labels == "BUY"] = SIGNAL_CODES["BUY"]
            codes[labels == "SELL"] = SIGNAL_CODES["SELL"]
            table = table.append_column("code", pa.array(codes, pa.int8())).sort_by(
                [("symbol", "ascending"), ("timestamp_ns", "ascending"), ("seq", "ascending")]
            )
            parts = [(s, tb) for (_d, s), tb in _groups(table, ["symbol"])]
            name = self.layout.new_name(day, "s")
            index = write_batches(self.layout.path(name), SIGNALS_SCHEMA, parts)
            signals_seg = Segment(name, table.num_rows, index, run_id=run.run_id)
            for s, tb in parts:
                c = np.bincount(tb.column("code").to_numpy(), minlength=3)
                jumps = int(
                    np.count_nonzero(
                        tb.column("jump_detected").fill_null(False).to_numpy(zero_copy_only=False)
                    )
                )
                facts[s] = SignalFacts(
                    n_rows=tb.num_rows,
                    n_buy=int(c[1]),
                    n_sell=int(c[2]),
                    n_hold=int(c[0]),
                    n_jumps=jumps,
                    last_ns=int(tb.column("timestamp_ns")[-1].as_py()),
                    last_seq=int(tb.column("seq")[-1].as_py()),
                )
        metrics_seg: Segment | None = None
        m = copy.metrics
        if m is not None and m.num_rows:
            m = m.sort_by([("symbol", "ascending")])
            parts = [(s, tb) for (_d, s), tb in _groups(m, ["symbol"])]
            name = self.layout.new_name(day, "x")
            index = write_batches(self.layout.path(name), m.schema, parts)
            metrics_seg = Segment(name, m.num_rows, index, run_id=run.run_id)
            for s, tb in parts:
                row = tb.to_pylist()[0]
                old = facts.get(s, SignalFacts())
                facts[s] = replace(
                    old,
                    has_metrics=True,
                    bns_z=row["bns_z"],
                    bns_p_value=row["bns_p_value"],
                    bns_jump=row["bns_jump"],
                    lm_jump_count=row["lm_jump_count"],
                )
        builder.set_run(day, run, facts)
        builder.set_failed(day.isoformat(), copy.failed)
        self._work_days[day] = replace(
            files, signals=signals_seg, metrics=metrics_seg, changed_ns=now_ns
        )

    # --- publishing ----------------------------------------------------------------------

    def _publish(self, as_of_ns: int) -> None:
        builder = self._builder
        if builder is None:
            builder = CatalogBuilder(self._catalog)
        catalog = builder.freeze()
        generation = (self._manifest.generation if self._manifest else 0) + 1
        days = dict(self._days)
        names = dict(self._manifest.days) if self._manifest else {}
        now = time.monotonic()
        for day in sorted(builder.changed_days | set(self._work_days)):
            if day not in catalog.days:
                old = days.pop(day, None)
                if old is not None:
                    self._retired.extend((now, n) for n in old.files())
                if day in names:
                    self._retired.append((now, names.pop(day)))
                continue
            files = self._work_days.get(day) or days.get(day) or DayFiles(day, catalog.days[day])
            files = replace(files, catalog=catalog.days[day])
            old = days.get(day)
            if old is not None:
                keep = set(files.files())
                self._retired.extend((now, n) for n in old.files() if n not in keep)
            name = f"days/{day.isoformat()}/m{generation}.json"
            self.layout.write_json(name, files.to_json())
            if day in names:
                self._retired.append((now, names[day]))
            names[day] = name
            days[day] = files
        self._commit(generation, as_of_ns, catalog, days, names)
        self._builder = None
        self._work_days = {}
        self.stats.progress = None

    def _commit(
        self,
        generation: int,
        as_of_ns: int,
        catalog: Catalog,
        days: dict[date, DayFiles],
        names: dict[date, str],
    ) -> None:
        manifest = Manifest(
            generation=generation,
            as_of_ns=as_of_ns,
            warehouse=self._identity(),
            ledger=catalog.ledger,
            gaps=catalog.gaps,
            failed_expectations=catalog.failed_expectations,
            evaluation_id=catalog.evaluation_id,
            evaluation=self._evaluation,
            days=names,
            ledger_last=dict(self._last_batch),
        )
        name = f"gens/g{generation}.json"
        self.layout.write_json(name, manifest.to_json())
        self.layout.publish(name)
        if self._manifest is not None:
            self._retired.append((time.monotonic(), f"gens/g{self._manifest.generation}.json"))
        self._manifest = manifest
        self._days = days
        self._catalog = catalog
        self.stats.published += 1

    def _heartbeat(self) -> None:
        if self._manifest is not None:
            self.layout.write_verified(self._manifest.generation, self.clock())

    # --- upkeep: merging segments, deleting retired files ------------------------------

    def maintain(self, now_ns: int | None = None) -> bool:
        """Merge one day's segments if due and delete expired files; return True if merged."""
        self._collect_garbage()
        if self.busy or self._manifest is None:
            return False
        now_ns = self.clock() if now_ns is None else now_ns
        for day, files in sorted(self._days.items(), reverse=True):
            for kind in ("trades", "rejects", "live"):
                segs: tuple[Segment, ...] = getattr(files, kind)
                quiet = now_ns - files.changed_ns >= self.seal_after_s * 1e9
                plan, level = _merge_plan(segs, quiet=quiet)
                if plan:
                    self._merge(day, files, kind, plan, level)
                    return True
        return False

    def _merge(
        self, day: date, files: DayFiles, kind: str, plan: Sequence[Segment], level: int
    ) -> None:
        import pyarrow.ipc as ipc

        schema, keys, letter = {
            "trades": (TRADES_SCHEMA, ["timestamp_ns", "kafka_partition", "kafka_offset"], "t"),
            "rejects": (REJECTS_SCHEMA, ["at_ns", "kafka_partition", "kafka_offset"], "r"),
            "live": (LIVE_SCHEMA, ["timestamp_ns", "seq"], "l"),
        }[kind]
        readers = [ipc.open_file(pa.memory_map(str(self.layout.path(s.file)))) for s in plan]
        symbols = sorted({sym for s in plan for sym in s.symbols})
        parts: list[tuple[str, pa.Table]] = []
        for sym in symbols:
            pieces = [
                pa.Table.from_batches([r.get_batch(s.symbols[sym][0])])
                for r, s in zip(readers, plan, strict=True)
                if sym in s.symbols
            ]
            table = pa.concat_tables(pieces).sort_by([(k, "ascending") for k in keys])
            parts.append((sym, table))
        name = self.layout.new_name(day, letter)
        index = write_batches(self.layout.path(name), schema, parts)
        merged = Segment(name, sum(n for _, n in index.values()), index, level=level)
        planned = {s.file for s in plan}
        kept = tuple(s for s in getattr(files, kind) if s.file not in planned)
        new_files = replace(files, **{kind: (*kept, merged)})
        generation = self._manifest.generation + 1 if self._manifest else 1
        names = dict(self._manifest.days) if self._manifest else {}
        now = time.monotonic()
        mname = f"days/{day.isoformat()}/m{generation}.json"
        self.layout.write_json(mname, new_files.to_json())
        if day in names:
            self._retired.append((now, names[day]))
        names[day] = mname
        self._retired.extend((now, s.file) for s in plan)
        days = dict(self._days)
        days[day] = new_files
        assert self._manifest is not None
        self._commit(generation, self._manifest.as_of_ns, self._catalog, days, names)

    def _collect_garbage(self) -> None:
        now = time.monotonic()
        keep: list[tuple[float, str]] = []
        for at, name in self._retired:
            if now - at >= self.grace_s:
                with contextlib.suppress(FileNotFoundError):
                    self.layout.path(name).unlink()
            else:
                keep.append((at, name))
        self._retired = keep

    def collect_orphans(self) -> int:
        """Delete files no published state names, older than the grace period (a restart)."""
        named: set[str] = set()
        if self._manifest is not None:
            named.add(f"gens/g{self._manifest.generation}.json")
            named.update(self._manifest.days.values())
            for f in self._days.values():
                named.update(f.files())
        cutoff = time.time() - self.grace_s
        removed = 0
        for sub in ("gens", "days"):
            for path in (self.layout.root / sub).rglob("*"):
                if not path.is_file():
                    continue
                rel = path.relative_to(self.layout.root).as_posix()
                if rel not in named and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    # --- the loop ------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        poll_s: float = 0.1,
        lock_poll_s: float = 2.0,
        parent_pid: int | None = None,
    ) -> None:
        """Refresh until ``stop`` is set: take the lock, then step, publish, maintain.

        Parameters
        ----------
        stop
            Set to end the loop.
        poll_s
            Pause between refreshes when nothing changed.
        lock_poll_s
            Pause between attempts to take the lock from another materializer.
        parent_pid
            End when this process is gone (the server that started a child materializer).
        """
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return
            if not self.try_lock():
                stop.wait(lock_poll_s)
                continue
            if self.stats.steps == 0:
                self.collect_orphans()
            try:
                result = self.step()
                self.stats.last_error = None
            except WarehouseMissing as e:
                self.stats.last_error = "no_tables"
                self._write_status()
                logger.warning("serving: %s", e)
                stop.wait(1.0)
                continue
            except duckdb.Error as e:
                self.stats.failures += 1
                self.stats.last_error = "refresh_failed"
                self._write_status()
                logger.exception("serving refresh failed: %s", type(e).__name__)
                stop.wait(1.0)
                continue
            self.note(result)
            if result.outcome == "progress":
                self.stats.progress = self.progress_text()
                self._write_status()
                # Let a waiting writer in between two reads of a long build.
                stop.wait(max(result.hold_s, 0.005))
                continue
            self._write_status()
            if result.outcome in ("idle", "held", "missing") and not self.maintain():
                stop.wait(poll_s)

    def note(self, result: StepResult) -> None:
        """Track since when writers have kept this materializer out (for stale reasons)."""
        now = time.monotonic()
        if result.outcome == "held":
            if self._held_since is None:
                self._held_since = now
        else:
            self._held_since = None

    def status(self) -> dict[str, Any]:
        """Return what readers may show: state, progress, error code, seconds held out."""
        held = 0.0 if self._held_since is None else time.monotonic() - self._held_since
        return {
            "state": "building" if self.busy else ("ok" if self._manifest else "starting"),
            "progress": self.stats.progress if self.busy else None,
            "error": self.stats.last_error,
            "held_s": round(held, 3),
            "published": self.stats.published,
            "hold_s_max": round(self.stats.hold_s_max, 4),
        }

    def _write_status(self) -> None:
        doc = self.status()
        if doc == self._last_status and time.monotonic() - self._last_status_at < 1.0:
            return
        self._last_status, self._last_status_at = doc, time.monotonic()
        self.layout.write_json("STATUS", doc)

    def progress_text(self) -> str:
        """Return how far a build in progress has come (for health and busy errors)."""
        if self._builder is None:
            return "up to date"
        cat = self._builder.freeze()
        return (
            f"{sum(s.n_trades for s in cat.symbols.values()):,} trades of "
            f"{len(cat.symbols)} symbols indexed so far"
        )


@dataclass
class _Read:
    as_of_ns: int
    batches: list[LedgerBatch] = field(default_factory=list[LedgerBatch])
    trades: pa.Table | None = None
    rejects: pa.Table | None = None
    live: pa.Table | None = None
    gaps: list[GapInfo] = field(default_factory=list[GapInfo])
    failed: dict[str, list[tuple[str, str, str | None]]] = field(
        default_factory=dict[str, list[tuple[str, str, str | None]]]
    )
    runs: Mapping[date, RunInfo] = field(default_factory=dict[date, RunInfo])
    evaluation: tuple[str | None, tuple[Mapping[str, Any], ...]] | None = None
    first_day: date | None = None
    checked_first_day: bool = False
    rows: int = 0
    caught_up: bool = False


def _failed(conn: duckdb.DuckDBPyConnection, target: str) -> list[tuple[str, str, str | None]]:
    return [
        (str(s), str(e), None if o is None else str(o)[:300])
        for s, e, o in conn.execute(SQL.failed, [target]).fetchall()
    ]


def _groups(t: pa.Table, keys: Sequence[str]) -> Iterator[tuple[tuple[Any, ...], pa.Table]]:
    """Yield ``(key values, rows)`` of consecutive equal keys of a sorted table."""
    n = t.num_rows
    if n == 0:
        return
    cols = [t.column(k).to_numpy(zero_copy_only=False) for k in keys]
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for c in cols:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], n)
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        key = tuple(c[a] for c in cols)
        yield (key if len(keys) > 1 else (None, *key)), t.slice(a, b - a)


def _split(
    t: pa.Table, day_col: str, symbol_col: str
) -> Iterator[tuple[date, list[tuple[str, pa.Table]]]]:
    """Yield each day's ``(symbol, rows)`` of a table sorted by day then symbol."""
    current: date | None = None
    acc: list[tuple[str, pa.Table]] = []
    for (d, s), rows in _groups(t, [day_col, symbol_col]):
        day = d if isinstance(d, date) else date.fromisoformat(str(d)[:10])
        if current is not None and day != current:
            yield current, acc
            acc = []
        current = day
        acc.append((str(s), rows))
    if current is not None:
        yield current, acc


def _merge_plan(segs: Sequence[Segment], *, quiet: bool) -> tuple[list[Segment], int]:
    """Return the segments to merge now and the level of the result (empty: none).

    Four of one level become one of the next, so a day of ``n`` rows read in pieces of
    ``k`` has at most ``3 log4(n/k)`` segments and each row is rewritten ``log4(n/k)``
    times; a quiet day's segments become one sealed segment.
    """
    by_level: dict[int, list[Segment]] = {}
    for s in segs:
        by_level.setdefault(s.level, []).append(s)
    for level in sorted(by_level):
        if level != SEALED_LEVEL and len(by_level[level]) >= MERGE_FANIN:
            return by_level[level][:MERGE_FANIN], level + 1
    if quiet and len(segs) > 1:
        return list(segs), SEALED_LEVEL
    return [], 0


def _main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="keep a serving store equal to a DuckDB warehouse")
    p.add_argument("--warehouse", type=Path, required=True)
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument(
        "--lock-fd", type=int, default=None, help="the store's lock, taken by the parent"
    )
    p.add_argument("--poll-s", type=float, default=0.1)
    p.add_argument("--max-rows", type=int, default=100_000)
    p.add_argument(
        "--min-interval-s",
        type=float,
        default=0.5,
        help="least time between two readings of the warehouse (several commits, one hold)",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--nice",
        type=int,
        default=10,
        help="scheduling niceness: keeping the store up to date yields the CPU to loaders "
        "and to the server's answers (10)",
    )
    args = p.parse_args(argv)
    if args.nice:
        # Background work: a loader or an answer that wants the core gets it first; the
        # store falls behind by milliseconds, not the loader by a share of its core.
        os.nice(args.nice)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    m = Materializer(
        args.warehouse, args.store, max_rows=args.max_rows, min_interval_s=args.min_interval_s
    )
    if args.lock_fd is not None:
        m.adopt_lock(args.lock_fd)
    stop = threading.Event()
    try:
        m.run(stop, poll_s=args.poll_s, parent_pid=args.parent_pid)
    except KeyboardInterrupt:
        pass
    finally:
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
