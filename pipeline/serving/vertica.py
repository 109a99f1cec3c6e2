"""The Vertica implementation of the serving port: straight to the database, one epoch per view.

The MCP server reads Vertica as the SELECT-only user (``micro_mcp``, role
``micro_mcp_reader``) in its capped resource pool (``sql/vertica/mcp_user_and_pool.sql``,
``mcp_grants.sql``): no copy, no snapshot. What keeps answers honest and bounded:

- **One epoch per view.** A background refresher reads ``GET_CURRENT_EPOCH()`` at most
  every ``refresh_s`` and updates the catalog from what changed since its last epoch (new
  ledger rows and their per-minute facts, changed signal runs, gap records, failed quality
  rows): the same incremental facts the DuckDB materializer folds, so both backends derive
  the same completeness. A view carries that epoch, and every statement it runs is
  ``AT EPOCH n SELECT ...``: rows, counts and catalog are one committed state.
- **Every value bound**, server-side (``use_prepared_statements=True``, ``?``). The
  epoch is the only literal, an integer the server itself read.
- **Time limits.** ``connection_timeout`` (the socket timeout of every read) is below the
  pool's RUNTIMECAP, so a slow statement is abandoned by the client before the server
  kills it; the connection it ran on is discarded.
- **A small pool** of connections per server process; the pool's MAXCONCURRENCY bounds
  all server processes together.
- **Range scans.** ``market_data`` is ordered by ``(symbol, timestamp_ns)`` and migration
  0011 adds a ``trading_signals`` projection in that order, so a page is a range scan.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pipeline.nytime import day_bounds_ns, ny_date
from pipeline.serving import format as fmt
from pipeline.serving.catalog import (
    Catalog,
    CatalogBuilder,
    GapInfo,
    LedgerBatch,
    RunInfo,
    SignalFacts,
    current_runs,
    follow_ledger,
    live_facts,
    trade_facts,
)
from pipeline.serving.port import (
    SIGNAL_CODES,
    Newest,
    Page,
    ServingBusy,
    ServingError,
    ServingHealth,
    ServingTimeout,
    ServingUnavailable,
    SignalKey,
    SignalKind,
    TradeKey,
    live_cut,
    merge_pages,
)
from pipeline.serving.sql import EVALUATION_COLUMNS, LIVE_COLUMNS, statements

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.warehouse.vertica_backend import VerticaConfig

logger = logging.getLogger(__name__)

LEDGER_SLACK_NS = 600 * 1_000_000_000

# --- statements (portable SQL: they run on Vertica, and unchanged on DuckDB) -----------------

SQL = statements()
EPOCH_SQL = "SELECT GET_CURRENT_EPOCH()"
_MINUTE = (
    "CASE WHEN m.in_regular_hours AND m.ns_from_open >= 0 AND m.ns_from_open < 23400000000000 "
    "THEN CAST(FLOOR(m.ns_from_open / 60000000000) AS INTEGER) ELSE -1 END"
)
MINUTE_FACTS_SQL = (
    f"SELECT l.start_offset, m.symbol, m.trade_date, {_MINUTE} AS minute, COUNT(*) AS n, "  # noqa: S608 - constants
    "MIN(m.timestamp_ns) AS lo, MAX(m.timestamp_ns) AS hi FROM market_data m "
    "JOIN kafka_offsets l ON l.kafka_topic = m.kafka_topic "
    "AND l.kafka_partition = m.kafka_partition AND m.kafka_offset >= l.start_offset "
    "AND m.kafka_offset < l.stop_offset "
    "WHERE m.kafka_topic = ? AND m.kafka_partition = ? AND m.kafka_offset >= ? "
    "AND m.kafka_offset < ? AND l.start_offset >= ? AND l.start_offset < ? "
    f"GROUP BY l.start_offset, m.symbol, m.trade_date, {_MINUTE}"
)
"""Per (ledger batch, symbol, day, minute): count and time range, for the new batches."""
SIGNAL_FACTS_SQL = (
    "SELECT symbol, trading_signal, jump_detected, COUNT(*) AS n FROM trading_signals "
    "WHERE date = ? AND run_id = ? GROUP BY symbol, trading_signal, jump_detected"
)
SIGNAL_LAST_SQL = (
    "SELECT s.symbol, s.timestamp_ns, MAX(s.seq) FROM trading_signals s "
    "JOIN (SELECT symbol, MAX(timestamp_ns) AS last_ns FROM trading_signals "
    "WHERE date = ? AND run_id = ? GROUP BY symbol) m "
    "ON s.symbol = m.symbol AND s.timestamp_ns = m.last_ns "
    "WHERE s.date = ? AND s.run_id = ? GROUP BY s.symbol, s.timestamp_ns"
)
"""Per symbol, the run's last key ``(timestamp_ns, seq)``: live rows after it are served."""
METRIC_FACTS_SQL = (
    "SELECT symbol, bns_z, bns_p_value, bns_jump, lm_jump_count FROM symbol_day_metrics "
    "WHERE date = ? AND run_id = ?"
)
_TRADE_COLS = ", ".join(fmt.TRADE_COLUMNS)
_TRADE_KEY_BEFORE = (
    "(timestamp_ns < ? OR (timestamp_ns = ? AND (kafka_partition < ? OR "
    "(kafka_partition = ? AND kafka_offset < ?))))"
)
TRADES_PAGE_SQL = (
    f"SELECT {_TRADE_COLS} FROM market_data WHERE symbol = ? AND timestamp_ns >= ? "  # noqa: S608
    "AND timestamp_ns < ? AND {before} "
    "ORDER BY timestamp_ns DESC, kafka_partition DESC, kafka_offset DESC LIMIT ?"
)
TRADES_COUNT_SQL = (
    f"SELECT COUNT(*) AS n, SUM(CASE WHEN {_TRADE_KEY_BEFORE} THEN 1 ELSE 0 END) AS older "  # noqa: S608
    "FROM market_data WHERE symbol = ? AND timestamp_ns >= ? AND timestamp_ns < ?"
)
JOINED_SQL = (
    f"SELECT kafka_partition, kafka_offset, {', '.join(fmt.JOINED_SIGNAL_COLUMNS)} "  # noqa: S608
    "FROM trading_signals WHERE symbol = ? AND date = ? AND run_id = ? "
    "AND timestamp_ns >= ? AND timestamp_ns <= ?"
)
_SIG_COLS = ", ".join(fmt.SIGNAL_COLUMNS)
_SIG_KEY_BEFORE = "(timestamp_ns < ? OR (timestamp_ns = ? AND seq < ?))"
_KIND_FILTER: dict[str, str] = {
    "ALL": "1 = 1",
    "BUY": "trading_signal = 'BUY'",
    "SELL": "trading_signal = 'SELL'",
    "HOLD": "trading_signal NOT IN ('BUY', 'SELL')",
    "JUMP": "jump_detected",
}
METRICS_SQL = (
    f"SELECT {', '.join(fmt.METRICS_COLUMNS)} FROM symbol_day_metrics "  # noqa: S608
    "WHERE symbol = ? AND date >= ? AND date <= ?"
)
REJECT_COUNTS_SQL = (
    "SELECT reason, COUNT(*) AS n FROM market_data_rejects_served "
    "WHERE COALESCE(symbol, '') = ? AND COALESCE(receipt_ns, loaded_ns) >= ? "
    "AND COALESCE(receipt_ns, loaded_ns) < ? GROUP BY reason"
)
REJECT_SAMPLES_SQL = (
    "SELECT stage, reason, raw, kafka_partition, kafka_offset FROM market_data_rejects_served "
    "WHERE (symbol = ? OR symbol IS NULL) AND COALESCE(receipt_ns, loaded_ns) >= ? "
    "AND COALESCE(receipt_ns, loaded_ns) < ? ORDER BY kafka_partition, kafka_offset LIMIT ?"
)
# A live row's position is its input trade's (as a batch row's is), not the signal record's.
_LIVE_SIG_COLS = ", ".join(
    f"input_{c[len('kafka_') :]} AS {c}" if c.startswith("kafka_") else c
    for c in fmt.SIGNAL_COLUMNS
)
NEWEST_LIVE_SQL = (
    f"SELECT date, {LIVE_COLUMNS} FROM live_signals WHERE symbol = ? AND date = ? "  # noqa: S608
    "ORDER BY timestamp_ns DESC, seq DESC LIMIT 1"
)
BATCH_SIGNAL_OF_SQL = (
    f"SELECT date, {_SIG_COLS} FROM trading_signals WHERE symbol = ? AND date = ? "  # noqa: S608
    "AND run_id = ? AND timestamp_ns = ? AND kafka_partition = ? AND kafka_offset = ?"
)
SIGNAL_FRAME_SQL = (
    "SELECT symbol, date, run_id, timestamp_ns, price, trading_signal FROM trading_signals "
    "WHERE date >= ? AND date <= ? ORDER BY date, symbol, timestamp_ns, seq"
)

SERVED_RELATIONS: frozenset[str] = frozenset(
    {
        "market_data",
        "trading_signals",
        "symbol_day_metrics",
        "signal_runs",
        "kafka_offsets",
        "feed_gaps",
        "quality_results",
        "signal_evaluation",
        "market_data_rejects_served",
        "live_signals",
    }
)
"""What the Vertica read side reads: ``mcp_grants.sql`` must grant exactly these (a test checks)."""


def _live_days_sql(cuts: Sequence[tuple[date, SignalKey | None]]) -> tuple[str, list[Any]]:
    """Return the live rows no run row covers, per day, as a predicate and its values."""
    if not cuts:
        return "1 = 0", []
    parts: list[str] = []
    args: list[Any] = []
    for day, cut in cuts:
        if cut is None:
            parts.append("(date = ?)")
            args.append(day)
        else:
            parts.append("(date = ? AND (timestamp_ns > ? OR (timestamp_ns = ? AND seq > ?)))")
            args += [day, cut[0], cut[0], cut[1]]
    return f"({' OR '.join(parts)})", args


def _run_pairs(pairs: Sequence[tuple[date, str]]) -> tuple[str, list[Any]]:
    """Return ``((date = ? AND run_id = ?) OR ...)`` and its values (no pair: false)."""
    if not pairs:
        return "1 = 0", []
    text = " OR ".join(["(date = ? AND run_id = ?)"] * len(pairs))
    return f"({text})", [v for p in pairs for v in p]


class Pool:
    """A few connections to Vertica, each used by one thread at a time.

    Parameters
    ----------
    connect
        ``vertica_python.connect`` (or a stand-in).
    kwargs
        Its keyword arguments (autocommit on: reads only; ``connection_timeout`` set).
    size
        Most connections.
    wait_s
        How long a caller waits for a free connection before failing.
    setup
        Statements run once on each new connection (``SET SEARCH_PATH``).
    """

    def __init__(
        self,
        connect: Callable[..., Any],
        kwargs: Mapping[str, Any],
        size: int,
        wait_s: float,
        setup: Sequence[str] = (),
    ) -> None:
        self._connect = connect
        self._kwargs = dict(kwargs)
        self._free: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._wait_s = wait_s
        self._setup = tuple(setup)
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """Lend a connection; one that failed at the network level is dropped, not reused.

        Raises
        ------
        ServingTimeout
            If every connection stayed busy for ``wait_s``.
        """
        if not self._slots.acquire(timeout=self._wait_s):
            raise ServingTimeout(
                "every Vertica connection stayed busy", "the server is busy; retry in a moment"
            )
        conn = None
        try:
            try:
                conn = self._free.get_nowait()
            except queue.Empty:
                conn = self._new()
            yield conn
        except BaseException as e:
            if conn is not None and _is_network_error(e):
                self._drop(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                self._free.put(conn)
            self._slots.release()

    def _new(self) -> Any:
        conn = self._connect(**self._kwargs)
        cur = conn.cursor()
        for sql in self._setup:
            cur.execute(sql)
        with self._lock:
            self._all.append(conn)
        return conn

    def _drop(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:  # it is being discarded for a network error already
            logger.debug("closing a failed Vertica connection failed too")

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            try:
                c.close()
            except Exception:  # shutting down: nothing to do about it
                logger.debug("closing a Vertica connection failed at shutdown")


def _is_network_error(e: BaseException) -> bool:
    try:
        from vertica_python import errors as verrors
    except ImportError:  # pragma: no cover - a dependency of the project
        return False
    return isinstance(e, (verrors.ConnectionError, OSError))


def _timed_out(e: BaseException) -> bool:
    return _is_network_error(e) and "timed out" in str(e).lower()


@dataclass(frozen=True)
class _State:
    epoch: int
    as_of_ns: int
    catalog: Catalog
    evaluation: tuple[Mapping[str, Any], ...]
    memo: dict[Any, Any] = field(default_factory=dict[Any, Any])


class VerticaPort:
    """The Vertica read side (a :class:`~pipeline.serving.port.ServingPort`).

    Parameters
    ----------
    config
        Where to connect (the SELECT-only user).
    pool_size
        Connections of this process.
    timeout_s
        Client-side time limit of every statement (below the pool's RUNTIMECAP).
    refresh_s
        How often the catalog follows the warehouse (a view is at most this old).
    connect
        ``vertica_python.connect`` by default; tests pass the strict stand-in's.
    """

    backend: Literal["duckdb", "vertica"] = "vertica"

    def __init__(
        self,
        config: VerticaConfig,
        *,
        pool_size: int = 4,
        timeout_s: float = 10.0,
        refresh_s: float = 0.5,
        connect: Callable[..., Any] | None = None,
    ) -> None:
        if connect is None:
            import vertica_python

            connect = vertica_python.connect
        kwargs = {
            **config.connect_kwargs(),
            "autocommit": True,
            "connection_timeout": timeout_s,
            "session_label": "microstructure-mcp",
        }
        kwargs.pop("use_prepared_statements", None)
        # Read-only sessions (on top of the user's SELECT-only role), and a session
        # RUNTIMECAP just above the client's time limit, so the server also stops a
        # statement the client abandoned instead of running it to the pool's cap.
        setup = [
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            f"SET SESSION RUNTIMECAP '{int(timeout_s) + 5} seconds'",
        ]
        if config.search_path is not None:  # validated identifiers (VerticaConfig)
            setup.append(f"SET SEARCH_PATH TO {config.search_path}")
        self.config = config
        self.timeout_s = timeout_s
        self.refresh_s = refresh_s
        self.pool = Pool(connect, kwargs, pool_size, wait_s=timeout_s, setup=setup)
        self._state: _State | None = None
        self._builder_base = Catalog()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._refreshes = 0
        self._failures = 0
        self._error: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> VerticaPort:
        """Build the port for a ``vertica://`` URL (missing parts from ``VERTICA_*``)."""
        from pipeline.warehouse.vertica_backend import VerticaConfig

        return cls(VerticaConfig.from_url(url), **kwargs)

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the refresher thread (the first catalog is built there)."""
        self._thread = threading.Thread(target=self._loop, name="vertica-catalog", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the refresher and close the connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 5)
        self.pool.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                self._error = None
            except Exception as e:  # the refresher must outlive a bad tick; health shows it
                self._failures += 1
                self._error = "refresh_failed"
                logger.warning("Vertica catalog refresh failed: %s", type(e).__name__)
            self._stop.wait(self.refresh_s)

    # --- statements ------------------------------------------------------------------------

    def query(self, epoch: int | None, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        """Run one statement (pinned to ``epoch`` unless None) and return its rows.

        Raises
        ------
        ServingTimeout
            If it ran past the time limit.
        ServingError
            For any other database failure (the message stays in the server log).
        """
        text = sql if epoch is None else f"AT EPOCH {int(epoch)} {sql}"
        try:
            with self.pool.connection() as conn:
                cur = conn.cursor()
                cur.execute(text, list(params), use_prepared_statements=True)
                return list(cur.fetchall())
        except ServingError:
            raise
        except Exception as e:
            if _timed_out(e):
                raise ServingTimeout(f"Vertica statement timed out: {e}") from e
            raise ServingError(
                f"Vertica read failed: {type(e).__name__}: {e}",
                "the warehouse could not answer this query",
            ) from e

    # --- the catalog --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Bring the catalog to the current epoch, reading only what changed."""
        ((current,),) = self.query(None, EPOCH_SQL)
        epoch = int(current) - 1
        as_of = time.time_ns()
        base = self._state.catalog if self._state is not None else Catalog()
        builder = CatalogBuilder(base)
        since = max((p.last_commit_ns for p in base.ledger.values()), default=LEDGER_SLACK_NS)
        rows = self.query(epoch, SQL.ledger_since, [since - LEDGER_SLACK_NS])
        batches = follow_ledger(
            base, rows, lambda t, p, start: self.query(epoch, SQL.ledger_after, [t, p, start])
        )
        by_part: dict[tuple[str, int], list[LedgerBatch]] = {}
        for b in batches:
            by_part.setdefault((b.topic, b.partition), []).append(b)
        facts_by: dict[tuple[str, int, int], list[Any]] = {}
        for (topic, p), bs in by_part.items():
            lo, hi = bs[0].start, bs[-1].stop
            minute_rows = self.query(epoch, MINUTE_FACTS_SQL, [topic, p, lo, hi, lo, hi])
            for (start, _s, _d), f in trade_facts(minute_rows).items():
                facts_by.setdefault((topic, p, start), []).append(f)
            builder.add_gaps(
                GapInfo.from_json(r) for r in self.query(epoch, SQL.gaps, [topic, p, lo, hi])
            )
        for b in batches:
            if b.n_signals:
                rows = self.query(epoch, SQL.live_facts, [b.topic, b.partition, b.start, b.stop])
                builder.add_live((s, d, f) for (s, d), f in live_facts(rows).items())
        for b in batches:
            builder.add_batch(b, facts_by.get((b.topic, b.partition, b.start), ()))
            if b.quality_passed is False:
                builder.set_failed(b.target, self._failed(epoch, b.target))
        runs = current_runs(self.query(epoch, SQL.runs))
        have = base.runs
        for day, run in runs.items():
            old = have.get(day)
            if old is None or old.run_id != run.run_id or old.computed_ns != run.computed_ns:
                builder.set_run(day, run, self._signal_facts(epoch, day, run))
                builder.set_failed(day.isoformat(), self._failed(epoch, day.isoformat()))
        for day in set(have) - set(runs):
            builder.set_run(day, None, {})
        evaluation = self._state.evaluation if self._state is not None else ()
        newest = self.query(epoch, SQL.newest_evaluation)
        eid = None if not newest else str(newest[0][0])
        if eid != base.evaluation_id:
            builder.set_evaluation(eid)
            evaluation = (
                tuple(
                    {k: fmt.jsonable(v) for k, v in zip(EVALUATION_COLUMNS, r, strict=True)}
                    for r in self.query(epoch, SQL.evaluation, [eid])
                )
                if eid is not None
                else ()
            )
        ((first_day,),) = self.query(epoch, SQL.first_day)
        catalog = builder.freeze()
        for day, c in catalog.days.items():
            if (first_day is None or day < first_day) and any(
                e.n_trades for e in c.entries.values()
            ):
                builder.drop_trades(day)
                catalog = builder.freeze()
        with self._lock:
            self._state = _State(epoch, as_of, catalog, evaluation)
            self._refreshes += 1
        self._ready.set()

    def _failed(self, epoch: int, target: str) -> list[tuple[str, str, str | None]]:
        return [
            (str(s), str(e), None if o is None else str(o)[:300])
            for s, e, o in self.query(epoch, SQL.failed, [target])
        ]

    def _signal_facts(self, epoch: int, day: date, run: RunInfo) -> dict[str, SignalFacts]:
        counts: dict[str, list[int]] = {}
        for symbol, label, jump, n in self.query(epoch, SIGNAL_FACTS_SQL, [day, run.run_id]):
            c = counts.setdefault(str(symbol), [0, 0, 0, 0, 0])
            c[0] += int(n)
            code = SIGNAL_CODES.get(str(label), 0) if label in ("BUY", "SELL") else 0
            c[1 + code] += int(n)
            if jump:
                c[4] += int(n)
        last = {
            str(symbol): (int(t), int(q))
            for symbol, t, q in self.query(
                epoch, SIGNAL_LAST_SQL, [day, run.run_id, day, run.run_id]
            )
        }
        out = {
            s: SignalFacts(
                n_rows=c[0],
                n_buy=c[2],
                n_sell=c[3],
                n_hold=c[1],
                n_jumps=c[4],
                last_ns=last[s][0] if s in last else None,
                last_seq=last[s][1] if s in last else None,
            )
            for s, c in counts.items()
        }
        for symbol, z, p, jump, count in self.query(epoch, METRIC_FACTS_SQL, [day, run.run_id]):
            old = out.get(str(symbol), SignalFacts())
            out[str(symbol)] = SignalFacts(
                n_rows=old.n_rows,
                n_buy=old.n_buy,
                n_sell=old.n_sell,
                n_hold=old.n_hold,
                n_jumps=old.n_jumps,
                has_metrics=True,
                bns_z=None if z is None else float(z),
                bns_p_value=None if p is None else float(p),
                bns_jump=None if jump is None else bool(jump),
                lm_jump_count=None if count is None else int(count),
                last_ns=old.last_ns,
                last_seq=old.last_seq,
            )
        return out

    # --- the port ----------------------------------------------------------------------------

    def ready(self) -> bool:
        """Return True once the first catalog exists."""
        return self._state is not None

    def view(self) -> VerticaView:
        """Return a view at the catalog's epoch.

        Raises
        ------
        ServingBusy
            Before the first catalog exists.
        """
        state = self._state
        if state is None:
            if self._error is not None:
                raise ServingUnavailable(
                    "the Vertica catalog could not be read",
                    "the warehouse cannot be reached right now; retry in a moment",
                )
            raise ServingBusy(
                "the Vertica catalog is being read",
                "the server is reading the warehouse's catalog; retry in a few seconds",
            )
        return VerticaView(self, state)

    def wait_ready(self, timeout_s: float) -> VerticaView:
        """Block until the first catalog exists (or ``timeout_s`` passes)."""
        self._ready.wait(timeout_s)
        return self.view()

    def health(self) -> ServingHealth:
        """Return the read side's health facts."""
        state = self._state
        return ServingHealth(
            status="ok" if state is not None else ("error" if self._error else "starting"),
            backend="vertica",
            as_of_ns=None if state is None else state.as_of_ns,
            stale=state is not None
            and time.time_ns() - state.as_of_ns > 5 * 1e9 * max(self.refresh_s, 1),
            error_code=self._error,
            refreshes=self._refreshes,
            failures=self._failures,
        )


class VerticaView:
    """One epoch of the Vertica warehouse (a :class:`~pipeline.serving.port.ServingView`)."""

    def __init__(self, port: VerticaPort, state: _State) -> None:
        self._port = port
        self._state = state

    @property
    def as_of_ns(self) -> int:
        """When the epoch was read."""
        return self._state.as_of_ns

    @property
    def catalog(self) -> Catalog:
        """The catalog at the view's epoch."""
        return self._state.catalog

    @property
    def stale_reason(self) -> str | None:
        """Why newer data may exist (the refresher is failing)."""
        return "refreshing from the warehouse failed; retrying" if self._port._error else None

    @property
    def epoch(self) -> int:
        """The epoch every statement of this view is pinned to."""
        return self._state.epoch

    @property
    def memo(self) -> dict[Any, Any]:
        """A cache of derived answers valid for this epoch's catalog."""
        memo = self._state.memo
        if len(memo) > 4096:
            memo.clear()
        return memo

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        return self._port.query(self._state.epoch, sql, params)

    def _runs_in(self, symbol: str, start_ns: int, end_ns: int) -> list[tuple[date, str]]:
        first, last = ny_date(start_ns), ny_date(max(start_ns, end_ns - 1))
        cat = self.catalog
        return [
            (d, r.run_id)
            for d in cat.symbol_days.get(symbol, ())
            if first <= d <= last and (r := cat.run(d)) is not None
        ]

    # --- trades --------------------------------------------------------------------------------

    def trades_page(
        self, symbol: str, start_ns: int, end_ns: int, before: TradeKey | None, limit: int
    ) -> Page:
        """Return trades with their signals in ``[start_ns, end_ns)``, newest first."""
        t0 = time.perf_counter()
        key = before or (end_ns, 0, 0)  # nothing in the window is at or after end_ns
        kv = [key[0], key[0], key[1], key[1], key[2]]
        ((total, n_before),) = self._q(TRADES_COUNT_SQL, [*kv, symbol, start_ns, end_ns])
        rows = self._q(
            TRADES_PAGE_SQL.format(before=_TRADE_KEY_BEFORE),
            [symbol, start_ns, end_ns, *kv, limit],
        )
        cols: dict[str, list[Any]] = {
            c: [r[i] for r in rows] for i, c in enumerate(fmt.TRADE_COLUMNS)
        }
        n = len(rows)
        for c in fmt.JOINED_SIGNAL_COLUMNS:
            cols[c] = [None] * n
        if n:
            self._join_signals(symbol, cols)
        out = fmt.trade_rows(cols)
        keys: list[tuple[int, ...]] = [
            (r["timestamp_ns"], r["kafka_partition"], r["kafka_offset"]) for r in out
        ]
        older = int(n_before or 0) - n
        return Page(out, keys, int(total or 0), older, time.perf_counter() - t0)

    def _join_signals(self, symbol: str, cols: dict[str, list[Any]]) -> None:
        ts = cols["timestamp_ns"]
        by_day: dict[date, list[int]] = {}
        for i, t in enumerate(ts):
            by_day.setdefault(ny_date(int(t)), []).append(i)
        for day, idx in by_day.items():
            run = self.catalog.run(day)
            if run is None:
                continue
            lo = min(int(ts[i]) for i in idx)
            hi = max(int(ts[i]) for i in idx)
            found = {
                (int(r[0]), int(r[1])): r[2:]
                for r in self._q(JOINED_SQL, [symbol, day, run.run_id, lo, hi])
                if r[0] is not None and r[1] is not None
            }
            for i in idx:
                got = found.get((int(cols["kafka_partition"][i]), int(cols["kafka_offset"][i])))
                if got is not None:
                    for c, v in zip(fmt.JOINED_SIGNAL_COLUMNS, got, strict=True):
                        cols[c][i] = v

    # --- signals -------------------------------------------------------------------------------

    def signals_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return signal rows of one kind in ``[start_ns, end_ns)``, newest first.

        The current runs' rows, and after each symbol-day's last run row the live rows.
        """
        batch = self._batch_page(symbol, kind, start_ns, end_ns, before, limit)
        if not self._live_cuts(symbol, start_ns, end_ns):
            return batch
        return merge_pages(
            batch, self.live_page(symbol, kind, start_ns, end_ns, before, limit), limit
        )

    def _batch_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return the current runs' rows of one kind in ``[start_ns, end_ns)``, newest first."""
        runs = _run_pairs(self._runs_in(symbol, start_ns, end_ns))
        return self._keyset_page(
            "trading_signals",
            _SIG_COLS,
            "batch",
            runs,
            symbol,
            kind,
            start_ns,
            end_ns,
            before,
            limit,
        )

    def _keyset_page(
        self,
        table: str,
        columns: str,
        source: str,
        scope: tuple[str, list[Any]],
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return one page of ``table``'s signal rows of one kind, newest first (both tables).

        ``scope`` is the SQL condition (and its values) choosing the rows that count: the
        current runs' for ``trading_signals``, the days' live tails for ``live_signals``.
        """
        t0 = time.perf_counter()
        scope_sql, scope_args = scope
        key = before or (end_ns, 0)
        kv = [key[0], key[0], key[1]]
        where = (
            f"symbol = ? AND timestamp_ns >= ? AND timestamp_ns < ? AND {scope_sql} "
            f"AND {_KIND_FILTER[kind]}"
        )
        ((total, n_before),) = self._q(
            f"SELECT COUNT(*) AS n, SUM(CASE WHEN {_SIG_KEY_BEFORE} THEN 1 ELSE 0 END) AS older "  # noqa: S608 - constants
            f"FROM {table} WHERE {where}",
            [*kv, symbol, start_ns, end_ns, *scope_args],
        )
        rows = (
            self._q(
                f"SELECT date, {columns} FROM {table} WHERE {where} "  # noqa: S608
                f"AND {_SIG_KEY_BEFORE} ORDER BY timestamp_ns DESC, seq DESC LIMIT ?",
                [symbol, start_ns, end_ns, *scope_args, *kv, limit],
            )
            if limit > 0
            else []
        )
        out = _signal_rows(rows, source=source)
        keys: list[tuple[int, ...]] = [(r["timestamp_ns"], r["seq"]) for r in out]
        return Page(
            out, keys, int(total or 0), int(n_before or 0) - len(out), time.perf_counter() - t0
        )

    def signal_counts(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Return BUY, SELL and HOLD counts of ``[start_ns, end_ns)``."""
        scopes = [("trading_signals", _run_pairs(self._runs_in(symbol, start_ns, end_ns)))]
        cuts = self._live_cuts(symbol, start_ns, end_ns)
        if cuts:
            scopes.append(("live_signals", _live_days_sql(cuts)))
        out = {"BUY": 0, "SELL": 0, "HOLD": 0}
        for table, (scope_sql, scope_args) in scopes:
            for label, n in self._q(
                f"SELECT trading_signal, COUNT(*) AS n FROM {table} WHERE symbol = ? "  # noqa: S608 - constants
                f"AND timestamp_ns >= ? AND timestamp_ns < ? AND {scope_sql} "
                "GROUP BY trading_signal",
                [symbol, start_ns, end_ns, *scope_args],
            ):
                k = str(label) if label in ("BUY", "SELL") else "HOLD"
                out[k] += int(n)
        return out

    # --- the live path's rows ------------------------------------------------------------

    def _live_cuts(
        self, symbol: str, start_ns: int, end_ns: int
    ) -> list[tuple[date, SignalKey | None]]:
        """Return the symbol's live days in the window and each day's cut (``live_cut``)."""
        info = self.catalog.symbols.get(symbol)
        if info is None or not info.live_days or end_ns <= start_ns:
            return []
        first, last = ny_date(start_ns), ny_date(end_ns - 1)
        return [
            (d, live_cut(self.catalog, symbol, d))
            for d in reversed(info.live_days)
            if first <= d <= last
        ]

    def live_page(
        self,
        symbol: str,
        kind: SignalKind,
        start_ns: int,
        end_ns: int,
        before: SignalKey | None,
        limit: int,
    ) -> Page:
        """Return live rows no run row covers, of one kind in ``[start_ns, end_ns)``."""
        live = _live_days_sql(self._live_cuts(symbol, start_ns, end_ns))
        return self._keyset_page(
            "live_signals",
            _LIVE_SIG_COLS,
            "live",
            live,
            symbol,
            kind,
            start_ns,
            end_ns,
            before,
            limit,
        )

    def newest_live(self, symbol: str) -> dict[str, Any] | None:
        """Return the symbol's newest live signal and its provenance."""
        info = self.catalog.symbols.get(symbol)
        if info is None or not info.live_days:
            return None
        rows = self._q(NEWEST_LIVE_SQL, [symbol, info.live_days[-1]])
        if not rows:
            return None
        (r,) = rows
        names = [*fmt.SIGNAL_COLUMNS, *fmt.LIVE_PROVENANCE]
        one = {n: [v] for n, v in zip(names, r[1:], strict=True)}
        day = r[0] if isinstance(r[0], date) else date.fromisoformat(str(r[0])[:10])
        return fmt.live_row(one, day)

    def batch_signal_of(
        self, symbol: str, day: date, timestamp_ns: int, kafka_partition: int, kafka_offset: int
    ) -> dict[str, Any] | None:
        """Return the current run's row of one trade (None: the run has none yet)."""
        run = self.catalog.run(day)
        if run is None:
            return None
        rows = self._q(
            BATCH_SIGNAL_OF_SQL,
            [symbol, day, run.run_id, timestamp_ns, kafka_partition, kafka_offset],
        )
        out = _signal_rows(rows[:1])
        return out[0] if out else None

    def day_signal_rows(self, symbol: str, day: date) -> list[dict[str, Any]]:
        """Return every signal row of a symbol-day in time order."""
        run = self.catalog.run(day)
        if run is None:
            return []
        rows = self._q(
            f"SELECT date, {_SIG_COLS} FROM trading_signals WHERE symbol = ? AND date = ? "  # noqa: S608
            "AND run_id = ? ORDER BY timestamp_ns, seq",
            [symbol, day, run.run_id],
        )
        return _signal_rows(rows)

    def signal_frame(self, first: date, last: date) -> pd.DataFrame:
        """Return ``symbol, date, timestamp_ns, price, trading_signal`` of the days' signals."""
        import pandas as pd

        cat = self.catalog
        rows = [
            (s, d.isoformat() if isinstance(d, date) else str(d)[:10], int(t), float(p), str(lab))
            for s, d, run_id, t, p, lab in self._q(SIGNAL_FRAME_SQL, [first, last])
            if (r := cat.run(d if isinstance(d, date) else date.fromisoformat(str(d)[:10])))
            is not None
            and r.run_id == run_id
        ]
        return pd.DataFrame(
            rows, columns=["symbol", "date", "timestamp_ns", "price", "trading_signal"]
        )

    # --- daily statistics, newest rows -------------------------------------------------------

    def metrics(self, symbol: str, first: date, last: date) -> list[dict[str, Any]]:
        """Return ``DayMetrics`` rows of ``first..last`` (current runs), newest day first."""
        cat = self.catalog
        out = []
        for r in self._q(METRICS_SQL, [symbol, first, last]):
            row = dict(zip(fmt.METRICS_COLUMNS, r, strict=True))
            run = cat.run(row["date"])
            if run is not None and run.run_id == row["run_id"]:
                out.append(fmt.metrics_row(row))
        out.sort(key=lambda m: m["date"], reverse=True)
        return out

    def newest(self, symbol: str) -> Newest:
        """Return the newest trade, signal and BUY/SELL of ``symbol``."""
        info = self.catalog.symbols.get(symbol)
        trade = None
        if info is not None and info.last_ns is not None:
            lo, hi = day_bounds_ns(info.days[-1])
            page = self.trades_page(symbol, lo, hi, None, 1)
            trade = page.rows[0] if page.rows else None
        signal = action = None
        for day in reversed(info.signal_days if info is not None else ()):
            lo, hi = day_bounds_ns(day)
            if signal is None:
                got = self._batch_page(symbol, "ALL", lo, hi, None, 1).rows
                signal = got[0] if got else None
            acts = [
                r
                for kind in ("BUY", "SELL")
                for r in self._batch_page(symbol, kind, lo, hi, None, 1).rows  # type: ignore[arg-type]
            ]
            if acts:
                action = max(acts, key=lambda r: (r["timestamp_ns"], r["seq"]))
                break
        return Newest(trade, signal, action)

    # --- rejects, evaluation -------------------------------------------------------------------

    def reject_counts(self, symbol: str, start_ns: int, end_ns: int) -> dict[str, int]:
        """Count rejects of ``symbol`` ("" = unattributed) received in the window, by reason."""
        if end_ns <= start_ns:
            return {}
        return {
            str(reason): int(n)
            for reason, n in self._q(REJECT_COUNTS_SQL, [symbol, start_ns, end_ns])
        }

    def reject_samples(self, symbol: str, day: date, limit: int) -> list[dict[str, Any]]:
        """Return up to ``limit`` rejects of a symbol-day and unattributed ones that day."""
        lo, hi = day_bounds_ns(day)
        return [
            {
                "stage": str(stage),
                "reason": str(reason)[:200],
                "raw_untrusted": raw,
                "kafka_partition": int(p),
                "kafka_offset": int(o),
            }
            for stage, reason, raw, p, o in self._q(REJECT_SAMPLES_SQL, [symbol, lo, hi, limit])
        ]

    def evaluation(self, symbol: str | None) -> list[dict[str, Any]]:
        """Return the newest evaluation's rows (pooled first), one symbol and the pool or all."""
        rows = [dict(r) for r in self._state.evaluation]
        if symbol is not None:
            rows = [r for r in rows if r["symbol"] in (symbol, "*")]
        return rows


def _signal_rows(rows: Sequence[Sequence[Any]], source: str = "batch") -> list[dict[str, Any]]:
    """Format ``date, <SIGNAL_COLUMNS>`` rows."""
    if not rows:
        return []
    days = [r[0] if isinstance(r[0], date) else date.fromisoformat(str(r[0])[:10]) for r in rows]
    cols = {c: [r[i + 1] for r in rows] for i, c in enumerate(fmt.SIGNAL_COLUMNS)}
    return fmt.signal_rows(cols, days, source=source)


__all__ = ["SERVED_RELATIONS", "Pool", "VerticaPort", "VerticaView"]
