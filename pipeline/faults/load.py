"""``microstructure faults load``: crash the microbatch path everywhere, then count the damage.

Real pieces only: a local Kafka broker of its own (on free ports, so that it can be
restarted), one topic holding a produced day of trades (three symbols, one trade sent
twice as live + backfill would, one undecodable record), and for each case a fresh DuckDB
warehouse and Dagster home driven by ``microstructure ingest`` child processes (the
sensor tick and the ``market_data`` runs, in-process in the child, as the command runs
them). Children are forked from a server process that imported the ingest path once
(``multiprocessing`` forkserver), so a case costs its runs, not three interpreter
start-ups:

========================  ==================================================================
case                      what happens
========================  ==================================================================
``after_read``            ``kill -9`` of the run process after the range was read and shaped
``after_insert``          ``kill -9`` inside the load transaction, rows inserted, no COMMIT
``before_commit``         ``kill -9`` just before COMMIT (rows, rejects, ledger row written)
``after_commit``          ``kill -9`` after COMMIT, before Dagster records the run's success
``broker_restart``        the broker goes down between microbatches and comes back
``rerun_twice``           a loaded range is run twice more (as re-executions from the UI)
``two_sensors``           two sensors (two Dagster instances) load the same partitions at once
``topic_recreated``       a topic of its own is loaded, deleted and recreated with the day's
                          trades at offsets the old ledger already passed; loading must stop
                          until ``kafka acknowledge-topic``, then load all of them
========================  ==================================================================

After each case the child ingest runs again until caught up, and the warehouse is audited
against what was produced: ``lost`` (produced trades not stored), ``duplicated`` (stored
rows beyond one per produced trade), and ``signals equal``: the day's signals computed from
it equal, bit for bit (content hash and frames), those of a clean load of the same topic.
Rejects must be stored exactly once too. Without ``--short`` each warehouse also publishes
its day through ``microstructure signals run`` and the published rows and their content
hash are compared.

Cases run side by side (``--jobs``), except the broker restart, which runs alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import multiprocessing.process
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.errors import DataError, DeliveryError, PipelineError

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "pipeline" / "data" / "sample" / "trades_XXX_2018-01-02_03.csv.gz"
TAQ_LETTERS = "ABCDIJKMNPQTVWXYZ"
DAY = date(2018, 1, 2)
SYMBOLS: tuple[str, ...] = ("AAA", "BBB", "CCC")
KILL_STEPS: tuple[str, ...] = ("after_read", "after_insert", "before_commit", "after_commit")
CASES: tuple[str, ...] = (
    *KILL_STEPS,
    "broker_restart",
    "rerun_twice",
    "two_sensors",
    "topic_recreated",
)
# Records per partition of the topic before it is recreated: undecodable, so they are
# rejects, and the old ledger ends past the first offsets of the day's trades.
OLD_TOPIC_RECORDS = 200
CHILD_TIMEOUT_S = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the campaign's options (``--json`` comes from the dispatcher)."""
    parser.add_argument(
        "--trades", type=int, default=None, help="trades per symbol (2,000; 3 symbols)"
    )
    parser.add_argument(
        "--max-records", type=int, default=None, help="largest microbatch span (1,500)"
    )
    parser.add_argument("--partitions", type=int, default=None, help="topic partitions (3)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="cases run side by side (the broker restart alone)"
    )
    parser.add_argument(
        "--case", dest="cases", action="append", choices=CASES, help="run only these cases"
    )
    parser.add_argument(
        "--short",
        action="store_true",
        help="the test suite's form: 300 trades per symbol, 2 partitions, batches of 500, "
        "signals compared in this process only (no `signals run` child per warehouse)",
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep warehouses and child logs in this directory"
    )


@dataclass(frozen=True)
class CaseResult:
    """One row of the table."""

    step: str
    lost: int
    duplicated: int
    signals_equal: bool
    error: str = ""

    @property
    def ok(self) -> bool:
        """Return True when nothing was lost or doubled and the signals are equal."""
        return not self.error and not self.lost and not self.duplicated and self.signals_equal

    def as_json(self) -> dict[str, Any]:
        """Return the row as the ``--json`` contract has it."""
        return {
            "step": self.step,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "signals_equal": self.signals_equal,
        }


@dataclass(frozen=True)
class Options:
    """What to run (see :func:`add_arguments`)."""

    trades_per_symbol: int = 2_000
    max_records: int = 1_500
    partitions: int = 3
    jobs: int = 2
    cases: tuple[str, ...] = CASES
    publish: bool = True
    keep: Path | None = None

    @classmethod
    def short(cls, **overrides: Any) -> Options:
        """Return the test suite's form."""
        return replace(
            cls(trades_per_symbol=300, max_records=500, partitions=2, publish=False), **overrides
        )


def _sample(n: int) -> list[Any]:
    """Return the first ``n`` trades of :data:`DAY` of the shipped sample under each symbol.

    Interleaved in time order, as a feed sends them; a trade's id is its sample row.
    """
    import pandas as pd

    from pipeline.events import Trade
    from pipeline.microbatch import NEW_YORK

    with gzip.open(SAMPLE, "rt") as f:
        frame = pd.read_csv(f, dtype={"exchange": "str"}, keep_default_na=False)
    frame = frame.assign(row=range(len(frame)))
    local = pd.to_datetime(frame["timestamp_ns"], unit="ns", utc=True).dt.tz_convert(NEW_YORK)
    frame = frame[local.dt.date == DAY].iloc[:n]
    trades = [
        Trade(
            symbol=symbol,
            sip_timestamp_ns=int(r.timestamp_ns),
            price=float(r.price),
            size=int(r.size),
            exchange=TAQ_LETTERS.index(str(r.exchange)) + 1,
            trade_id=str(r.row),
            sequence_number=int(r.row),
            receipt_ns=int(r.timestamp_ns) + 1_000_000,
            source="file",
        )
        for r in frame.itertuples(index=False)
        for symbol in SYMBOLS
    ]
    return trades


class _Campaign:
    """The broker, the topic, the clean reference and the cases (see the module docstring)."""

    def __init__(self, options: Options, workdir: Path, log: Callable[[str], None]) -> None:
        self.options = options
        self.workdir = workdir
        self.log = log
        self.broker: Any = None
        self.bootstrap = ""
        self.topic = "faults-load"
        self.produced_keys: set[tuple[Any, ...]] = set()
        self.n_rejects = 0
        self.reference: dict[str, Any] = {}
        self.reference_published: dict[str, Any] = {}
        self._broker_lock = threading.Lock()
        self._log_lock = threading.Lock()

    # --- set-up ------------------------------------------------------------------------------

    def start_broker(self) -> None:
        from pipeline.kafka.broker import LocalBroker, free_port
        from pipeline.settings import Settings

        settings = Settings.from_env()
        self.broker = LocalBroker(
            kafka_home=settings.home / "kafka",
            version=settings.kafka_version,
            port=free_port(),
            controller_port=free_port(),
            state_dir=self.workdir / "broker",
            heap_mb=512,
            die_with_parent=True,
        )
        self.broker.fetch()
        self.broker.up(timeout_s=90.0)
        self.bootstrap = self.broker.bootstrap
        self.log(f"broker up at {self.bootstrap}")

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.down(timeout_s=30.0)

    def produce(self) -> None:
        """Produce the day's trades, one repeat (live + backfill) and one undecodable record."""
        import numpy as np

        from pipeline.microbatch import local_time_columns

        trades = self.produce_day(self.topic)
        self.n_rejects = 1
        stamps = np.asarray([t.sip_timestamp_ns for t in trades], dtype=np.int64)
        days = local_time_columns(stamps)["trade_date"]
        self.produced_keys = {
            (t.symbol, d.date(), t.exchange, t.trf_id or 0, t.trade_id)
            for t, d in zip(trades, days, strict=True)
        }
        self.log(
            f"produced {len(trades) + 2} records to {self.topic}: {len(self.produced_keys)} "
            "distinct trades, one repeat, one undecodable record"
        )

    def produce_day(self, topic: str) -> list[Any]:
        """Produce the day to ``topic`` (created if absent) and return its distinct trades.

        The same records in the same order on every call, so a second topic holds them at
        the same partitions and offsets as the first.
        """
        from confluent_kafka import Producer

        from pipeline.kafka.broker import client_conf, ensure_topic
        from pipeline.kafka.codec import SCHEMA_TRADE
        from pipeline.kafka.producer import EventProducer

        ensure_topic(self.bootstrap, topic, self.options.partitions, timeout_s=30.0)
        trades = _sample(self.options.trades_per_symbol)
        again = replace(trades[len(trades) // 2], source="rest", receipt_ns=0)
        with EventProducer(self.bootstrap, topic) as producer:
            for t in [*trades, again]:
                producer.send(t)
            producer.flush(60.0)
        # One record that does not decode (a reject, stored once like a trade).
        raw = Producer({**client_conf(self.bootstrap), "enable.idempotence": True, "acks": "all"})
        raw.produce(topic, value=b"\x00not json", key=b"AAA", headers=[("schema", SCHEMA_TRADE)])
        if raw.flush(30.0):
            raise DeliveryError("the undecodable record was not acknowledged")
        return trades

    def load_reference(self) -> None:
        """Load the topic into a clean warehouse by the microbatch path, without faults."""
        from pipeline.kafka import consumer
        from pipeline.kafka.offsets import OffsetRange
        from pipeline.microbatch import plan_microbatches, shape_batch
        from pipeline.quality import validate_batch
        from pipeline.warehouse import open_warehouse

        path = self.workdir / "reference" / "warehouse.duckdb"
        path.parent.mkdir(parents=True, exist_ok=True)
        wh = open_warehouse(f"duckdb:///{path}")
        wh.migrate()
        while True:
            marks = consumer.watermarks(self.bootstrap, self.topic, 10.0)
            planned, _ = plan_microbatches(
                marks, wh.next_offsets(self.topic), self.options.max_records
            )
            if not planned:
                break
            for b in planned:
                rng = OffsetRange(self.topic, b.partition, b.start, b.stop)
                batch = shape_batch(consumer.read_range_columns(self.bootstrap, rng, 60.0), rng)
                report = validate_batch(batch)
                wh.load_batch(
                    batch, expected_start=b.start, run_id="reference", quality=report.verdict()
                )
        self.reference = self.signals_of(path)
        lost, dup, rejects = self.audit(path)
        if lost or dup or rejects != self.n_rejects:
            raise DataError(f"the clean reference load is wrong: {lost} lost, {dup} doubled")
        if self.options.publish:
            self.publish(path.parent)
            self.reference_published = self.published_of(path)
        self.log("clean reference loaded")

    # --- children ----------------------------------------------------------------------------

    def env(
        self, case_dir: Path, dagster_home: Path | None = None, topic: str | None = None
    ) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VERTICA_", "DAGSTER_"))}
        env |= {
            "MICROSTRUCTURE_HOME": str(case_dir),
            "MICROSTRUCTURE_WAREHOUSE_URL": f"duckdb:///{case_dir / 'warehouse.duckdb'}",
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "MICROSTRUCTURE_TOPIC": topic or self.topic,
            "MICROSTRUCTURE_MAX_RECORDS": str(self.options.max_records),
            "MICROSTRUCTURE_SYMBOLS": "",
            "DAGSTER_HOME": str(dagster_home or case_dir / "dagster"),
        }
        return env

    def child(
        self, case_dir: Path, *args: str, dagster_home: Path | None = None, topic: str | None = None
    ) -> multiprocessing.process.BaseProcess:
        """Start ``microstructure ARGS`` for a case; its output goes to a numbered log."""
        with self._log_lock:
            n = len(list(case_dir.glob("*.log")))
            log = case_dir / f"{n:02d}-{args[0]}.log"
            log.touch()
        proc = _FORKS.Process(
            target=_child_main,
            args=(list(args), self.env(case_dir, dagster_home, topic), str(log)),
        )
        proc.start()
        return proc

    def run_child(
        self, case_dir: Path, *args: str, dagster_home: Path | None = None, topic: str | None = None
    ) -> int:
        """Run ``microstructure ARGS`` for a case and return its exit code (-9: killed)."""
        return _wait(self.child(case_dir, *args, dagster_home=dagster_home, topic=topic))

    @staticmethod
    def output(case_dir: Path) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(case_dir.glob("*.log")))

    def publish(self, case_dir: Path) -> None:
        rc = self.run_child(case_dir, "signals", "run", DAY.isoformat())
        if rc != 0:
            raise PipelineError(f"`signals run {DAY}` failed in {case_dir} (exit {rc})")

    # --- audits ------------------------------------------------------------------------------

    def audit(self, path: Path) -> tuple[int, int, int]:
        """Return (lost, duplicated, rejects stored) of a warehouse file."""
        from pipeline.warehouse import open_warehouse
        from pipeline.warehouse import queries as q

        if not path.exists():
            return len(self.produced_keys), 0, 0
        wh = open_warehouse(f"duckdb:///{path}", read_only=True)
        with wh.transaction() as s:
            stored = Counter(
                (str(sym), d, int(x), int(trf), str(tid))
                for sym, d, x, trf, tid in s.execute(q.TRADE_KEYS)
            )
        lost = len(self.produced_keys - set(stored))
        kept = sum(1 for k in stored if k in self.produced_keys)
        duplicated = sum(stored.values()) - kept
        return lost, duplicated, wh.table_counts()["market_data_rejects"]

    @staticmethod
    def signals_of(path: Path) -> dict[str, Any]:
        """Compute the day's signals from a warehouse, as the signals asset does."""
        from pipeline.signals.assemble import compute_frames
        from pipeline.warehouse import open_warehouse
        from pipeline.warehouse.provenance import content_hash
        from pipeline.warehouse.queries import SIGNAL_PASSTHROUGH
        from udx.kernels import Params

        trades = open_warehouse(f"duckdb:///{path}", read_only=True).read_day_trades(DAY)
        frames = compute_frames(trades, Params(), passthrough=SIGNAL_PASSTHROUGH)
        return {"hash": content_hash(frames), "frames": frames}

    @staticmethod
    def published_of(path: Path) -> dict[str, Any]:
        """Return the published day: its latest content hash and its rows."""
        from pipeline.warehouse import queries as q
        from pipeline.warehouse.duckdb_backend import DuckDBWarehouse

        wh = DuckDBWarehouse(path, read_only=True)
        [run] = wh.query_frame("signal_runs_latest", (DAY, DAY)).to_dict("records")
        with wh.transaction() as s:
            tables = {t: s.frame(sql, (DAY,)) for t, sql in q.SIGNALS_OF_DAY.items()}
        return {"hash": run["content_hash"], "tables": tables}

    def signals_equal(self, case_dir: Path) -> bool:
        """Return True when the case's signals equal the reference's, bit for bit."""
        import pandas as pd

        path = case_dir / "warehouse.duckdb"
        if not path.exists():
            return False
        mine = self.signals_of(path)
        if mine["hash"] != self.reference["hash"]:
            return False
        for name in ("trade_signals", "symbol_day_metrics", "intensity_buckets"):
            try:
                pd.testing.assert_frame_equal(
                    getattr(mine["frames"], name),
                    getattr(self.reference["frames"], name),
                    check_exact=True,
                )
            except AssertionError:
                return False
        if not self.options.publish:
            return True
        self.publish(case_dir)
        published = self.published_of(path)
        if published["hash"] != self.reference_published["hash"]:
            return False
        for table, frame in published["tables"].items():
            try:
                pd.testing.assert_frame_equal(
                    frame, self.reference_published["tables"][table], check_exact=True
                )
            except AssertionError:
                return False
        return True

    def result(
        self, step: str, case_dir: Path, error: str = "", extra_rejects: int = 0
    ) -> CaseResult:
        lost, duplicated, rejects = self.audit(case_dir / "warehouse.duckdb")
        if not error and rejects != self.n_rejects + extra_rejects:
            error = f"{rejects} rejects stored, {self.n_rejects + extra_rejects} produced"
        equal = self.signals_equal(case_dir)
        return CaseResult(step, lost, duplicated, equal, error)

    # --- cases -------------------------------------------------------------------------------

    def case_dir(self, step: str) -> Path:
        d = self.workdir / step
        d.mkdir(parents=True, exist_ok=True)
        return d

    def kill_at(self, step: str) -> CaseResult:
        d = self.case_dir(step)
        rc = self.run_child(d, "ingest", "--fault-at", step, "--fault-kill")
        if rc != -signal.SIGKILL:
            return self.result(step, d, f"the kill at {step} did not happen (exit {rc})")
        rc = self.run_child(d, "ingest", "--retry-backoff-s", "0")
        return self.result(step, d, "" if rc == 0 else f"the ingest after the kill exited {rc}")

    def broker_restart(self) -> CaseResult:
        step = "broker_restart"
        d = self.case_dir(step)
        # One tick: the first microbatch of each partition, then the broker goes away.
        rc = self.run_child(d, "ingest", "--once")
        if rc != 0:
            return self.result(step, d, f"the first ingest exited {rc}")
        if not self._partly_loaded(d):
            return self.result(step, d, "the first tick loaded everything: nothing to restart on")
        with self._broker_lock:
            self.broker.down(timeout_s=30.0)
            if self.options.publish:
                # While it is down an ingest must fail loudly and change nothing.
                before = self.audit(d / "warehouse.duckdb")
                rc = self.run_child(d, "ingest", "--once")
                if rc == 0 or self.audit(d / "warehouse.duckdb") != before:
                    self.broker.up(timeout_s=90.0)
                    return self.result(step, d, f"an ingest without a broker exited {rc}")
            self.broker.up(timeout_s=90.0)
        rc = self.run_child(d, "ingest", "--retry-backoff-s", "0")
        return self.result(step, d, "" if rc == 0 else f"the ingest after the restart exited {rc}")

    def _partly_loaded(self, case_dir: Path, topic: str | None = None) -> bool:
        from pipeline.kafka import consumer
        from pipeline.warehouse import open_warehouse

        topic = topic or self.topic
        ledger = open_warehouse(
            f"duckdb:///{case_dir / 'warehouse.duckdb'}", read_only=True
        ).next_offsets(topic)
        marks = consumer.watermarks(self.bootstrap, topic, 10.0)
        return any(ledger.get(p, low) < high for p, (low, high) in marks.items())

    def rerun_twice(self) -> CaseResult:
        """Load everything, then run the first range of the busiest partition twice more."""
        from pipeline.kafka import consumer
        from pipeline.kafka.offsets import plan_stop

        step = "rerun_twice"
        d = self.case_dir(step)
        marks = consumer.watermarks(self.bootstrap, self.topic, 10.0)
        p, (low, high) = max(marks.items(), key=lambda kv: kv[1][1] - kv[1][0])
        stop = plan_stop(low, high, self.options.max_records)
        rerun = ("--rerun", f"{p}:{stop}", "--rerun", f"{p}:{stop}")
        rc = self.run_child(d, "ingest", *rerun)
        noops = self.output(d).count("already loaded (no-op)")
        error = ""
        if rc != 0:
            error = f"the ingest exited {rc}"
        elif noops != 2:
            error = f"{noops} of 2 reruns of a loaded range were no-ops"
        return self.result(step, d, error)

    def two_sensors(self) -> CaseResult:
        step = "two_sensors"
        d = self.case_dir(step)
        procs = [
            self.child(d, "ingest", "--retry-backoff-s", "0", dagster_home=d / f"dagster-{x}")
            for x in ("a", "b")
        ]
        codes = [_wait(proc) for proc in procs]
        failures = [line for line in self.output(d).splitlines() if line.startswith("FAILED")]
        # The loser of a race must fail loudly with OffsetConflict (or find the range loaded).
        unexpected = [f for f in failures if "OffsetConflict" not in f]
        error = ""
        if any(c not in (0, 1) for c in codes) or unexpected:
            error = f"exit codes {codes}; unexpected failures: {unexpected[:2]}"
        elif self._partly_loaded(d):
            error = "the two sensors stopped before the warehouse caught up"
        self.log(f"two_sensors: {len(failures)} runs lost a race with OffsetConflict")
        return self.result(step, d, error)

    def topic_recreated(self) -> CaseResult:
        """Load a topic, recreate it with the day at offsets its old ledger passed, go on.

        The old topic holds only undecodable records (rejects), so the old ledger ends at
        offset ``OLD_TOPIC_RECORDS`` of each partition; the recreated one holds the day as
        the campaign's topic does. Resuming at the old end would skip the day's first
        offsets without a trace: loading must stop, ``kafka acknowledge-topic`` must record
        the new topic, and the next ingest must load it from offset 0.
        """
        from confluent_kafka import Producer

        from pipeline.kafka.broker import client_conf, delete_topic, ensure_topic, topic_id
        from pipeline.kafka.codec import SCHEMA_TRADE

        step = "topic_recreated"
        d = self.case_dir(step)
        topic = f"{self.topic}-recreated"
        parts = self.options.partitions
        ensure_topic(self.bootstrap, topic, parts, timeout_s=30.0)
        raw = Producer({**client_conf(self.bootstrap), "enable.idempotence": True, "acks": "all"})
        for p in range(parts):
            for _ in range(OLD_TOPIC_RECORDS):
                raw.produce(
                    topic, value=b"\x00old", partition=p, headers=[("schema", SCHEMA_TRADE)]
                )
        if raw.flush(30.0):
            raise DeliveryError("the old topic's records were not acknowledged")
        old = parts * OLD_TOPIC_RECORDS
        # Its batches are all rejects, so the ingest gate fails them (exit 1); they commit.
        rc = self.run_child(d, "ingest", "--retry-backoff-s", "0", topic=topic)
        if rc not in (0, 1) or self._partly_loaded(d, topic):
            return self.result(step, d, f"the old topic was not loaded (exit {rc})", old)
        old_id = topic_id(self.bootstrap, topic)
        delete_topic(self.bootstrap, topic, timeout_s=30.0)
        deadline = time.monotonic() + 60.0
        # The deletion completes asynchronously: recreate until the name has a new id.
        while True:
            try:
                ensure_topic(self.bootstrap, topic, parts, timeout_s=10.0)
                if topic_id(self.bootstrap, topic) != old_id:
                    break
            except PipelineError:
                pass
            if time.monotonic() > deadline:
                return self.result(step, d, "the topic could not be recreated in 60 s", old)
            time.sleep(0.5)
        self.produce_day(topic)
        before = self.audit(d / "warehouse.duckdb")
        rc = self.run_child(d, "ingest", "--retry-backoff-s", "0", topic=topic)
        said = "acknowledge-topic" in self.output(d)
        if rc == 0 or not said or self.audit(d / "warehouse.duckdb") != before:
            return self.result(
                step, d, f"the recreated topic was loaded without acknowledgement (exit {rc})", old
            )
        rc = self.run_child(d, "kafka", "acknowledge-topic", "--topic", topic, topic=topic)
        if rc != 0:
            return self.result(step, d, f"acknowledge-topic exited {rc}", old)
        rc = self.run_child(d, "ingest", "--retry-backoff-s", "0", topic=topic)
        return self.result(
            step, d, "" if rc == 0 else f"the ingest after acknowledging exited {rc}", old
        )

    def run_case(self, step: str) -> CaseResult:
        t0 = time.perf_counter()
        out = self.kill_at(step) if step in KILL_STEPS else getattr(self, step)()
        self.log(
            f"{step}: lost {out.lost}, duplicated {out.duplicated}, signals equal "
            f"{out.signals_equal}{' (' + out.error + ')' if out.error else ''} "
            f"[{time.perf_counter() - t0:.0f} s]"
        )
        return out


# Children are forked from a server process that imported the ingest path once: a fresh
# interpreter importing Dagster, the asset definitions and Great Expectations takes ~10 s,
# longer than the runs it hosts. Each child is still a process of its own, run by the real
# `microstructure` entry point and killed for real.
_FORKS = multiprocessing.get_context("forkserver")
_PRELOAD = [
    "pipeline.cli",
    "pipeline.commands.ingest",
    "pipeline.commands.signals",
    "pipeline.quality",
    "pipeline.signals.assemble",
    "great_expectations",
    "dagster",
    "assets.definitions",
]


def _child_main(argv: list[str], env: dict[str, str], log: str) -> None:
    """Run ``microstructure ARGV`` in this (forked) process with ``env``, output to ``log``."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from pipeline.cli import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def _wait(proc: multiprocessing.process.BaseProcess) -> int:
    proc.join(CHILD_TIMEOUT_S)
    if proc.exitcode is None:
        proc.kill()
        proc.join()
        raise PipelineError(f"a `microstructure` child ran longer than {CHILD_TIMEOUT_S:.0f} s")
    return proc.exitcode


def run_campaign(options: Options, log: Callable[[str], None] = print) -> list[CaseResult]:
    """Run the cases of ``options`` and return one result per case, in :data:`CASES` order.

    Parameters
    ----------
    options
        Data sizes, cases, parallelism, and whether to publish through Dagster too.
    log
        Progress sink.

    Returns
    -------
    list[CaseResult]
        The table.
    """
    _FORKS.set_forkserver_preload(_PRELOAD)
    workdir = options.keep or Path(tempfile.mkdtemp(prefix="faults-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    campaign = _Campaign(options, workdir, log)
    try:
        campaign.start_broker()
        campaign.produce()
        campaign.load_reference()
        steps = [c for c in CASES if c in options.cases]
        together = [c for c in steps if c != "broker_restart"]
        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            results = dict(zip(together, pool.map(campaign.run_case, together), strict=True))
        if "broker_restart" in steps:
            # Alone: the other cases share the broker.
            results["broker_restart"] = campaign.run_case("broker_restart")
        return [results[s] for s in steps]
    finally:
        campaign.stop_broker()
        if options.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


def format_table(results: Sequence[CaseResult]) -> str:
    """Return the results as a text table."""
    lines = [f"{'step':<16}{'lost':>6}{'duplicated':>12}  signals equal"]
    for r in results:
        note = f"  ({r.error})" if r.error else ""
        lines.append(
            f"{r.step:<16}{r.lost:>6}{r.duplicated:>12}  {'yes' if r.signals_equal else 'NO'}{note}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the campaign and print its table (one JSON object with ``--json``).

    Parameters
    ----------
    args
        Parsed options.

    Returns
    -------
    int
        0 when every case lost nothing, doubled nothing and kept its signals equal.
    """
    base = Options.short() if args.short else Options()
    given = {
        "trades_per_symbol": args.trades,
        "max_records": args.max_records,
        "partitions": args.partitions,
    }
    options = replace(
        base,
        **{k: v for k, v in given.items() if v is not None},
        jobs=args.jobs,
        cases=tuple(args.cases) if args.cases else CASES,
        keep=args.keep,
    )

    from pipeline.commands.ingest import quiet_dagster

    quiet_dagster(bool(getattr(args, "verbose", False)))
    t0 = time.perf_counter()

    def log(line: str) -> None:
        line = f"[{time.perf_counter() - t0:5.0f} s] {line}"
        print(line, file=sys.stderr if args.json else sys.stdout, flush=True)

    results = run_campaign(options, log)
    if args.json:
        print(json.dumps({"cases": [r.as_json() for r in results]}))
    else:
        print(format_table(results))
    return 0 if all(r.ok for r in results) else 1
