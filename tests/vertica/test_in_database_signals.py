"""The Vertica signal path: the UDx computes a day, the audit judges it, one COMMIT or none.

A Vertica server cannot run on this machine, so the warehouse talks to a recording
stand-in for the vertica-python connection that answers the audit query with chosen
counts. What this proves is our side: the statements and their order (the day's deletes,
the three ``batch_microstructure`` inserts, the audit, then ``signal_runs`` and COMMIT only
when the judge passes, ROLLBACK otherwise), the check each count decides, and that the
Dagster signal asset takes this path, records the verdicts and fails the run when the
warehouse computes the signals itself. The server's side runs in the opt-in contract suite
(``make test-vertica``, ``test_signals_computed_in_the_database_match_the_kernels...``).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from typing import Any

import dagster as dg
import pytest

from assets.resources import QualityResource, WarehouseResource
from assets.signals import signal_tables
from pipeline.quality import SIGNAL_CHECKS, audit_report
from pipeline.warehouse import vertica_backend as vb
from pipeline.warehouse.base import InDatabaseRun, SignalAudit, Warehouse
from tests.assets.support import kafka_without_broker
from tests.support.vertica_standin import parse_vertica
from tests.vertica.sessions import bind
from tests.vertica.test_vertica_backend import ENV, RecordingConnection, RecordingCursor

DAY = date(2018, 1, 2)
BUCKETS = 390
CLEAN = SignalAudit(
    n_rth_trades=1000,
    n_rth_symbols=2,
    n_signal_rows=1000,
    n_bad_labels=0,
    n_null_flags=0,
    n_nonfinite=0,
    n_metric_rows=2,
    n_metric_symbols=2,
    n_bucket_rows=2 * BUCKETS,
    n_bucket_keys=2 * BUCKETS,
    content_sum=123456789,
)
# One broken count per check of the signal suite (and the check it must fail).
BROKEN: list[tuple[str, dict[str, int]]] = [
    ("one_row_per_trade", {"n_signal_rows": 999}),
    ("signal_values", {"n_bad_labels": 1}),
    ("flags_boolean", {"n_null_flags": 3}),
    ("finite_statistics", {"n_nonfinite": 1}),
    ("one_row_per_symbol", {"n_metric_rows": 1, "n_metric_symbols": 1}),
    ("one_row_per_symbol", {"n_metric_rows": 3}),
    ("full_bucket_grid", {"n_bucket_rows": 2 * BUCKETS - 1, "n_bucket_keys": 2 * BUCKETS - 1}),
    ("full_bucket_grid", {"n_bucket_keys": 2 * BUCKETS - 1}),
]


def test_a_clean_audit_passes_every_check_of_the_signal_suite_by_name() -> None:
    report = audit_report(CLEAN, DAY.isoformat(), n_buckets=BUCKETS)
    assert [o.name for o in report.outcomes] == [c.name for c in SIGNAL_CHECKS]
    assert [o.asset for o in report.outcomes] == [c.asset for c in SIGNAL_CHECKS]
    assert report.passed
    assert report.failed == []


@pytest.mark.parametrize(("check", "broken"), BROKEN)
def test_each_broken_count_fails_exactly_its_own_check(check: str, broken: dict[str, int]) -> None:
    report = audit_report(dataclasses.replace(CLEAN, **broken), DAY.isoformat(), BUCKETS)
    assert report.failed == [check]
    assert not report.passed


def test_failed_input_batches_fail_the_day_unless_allowed_then_warn() -> None:
    failed = ["polygon-market-data:0:[0,10)"]
    strict = audit_report(CLEAN, DAY.isoformat(), BUCKETS, failed_input_batches=failed)
    assert strict.failed == ["inputs_passed_ingest_checks"]
    assert not strict.passed
    lenient = audit_report(
        CLEAN, DAY.isoformat(), BUCKETS, failed_input_batches=failed, allow_failed_inputs=True
    )
    assert lenient.failed == ["inputs_passed_ingest_checks"]
    assert lenient.passed


# --- the transaction, against the recording stand-in -------------------------------------------

AUDIT_SQL = vb.read_named_sql(vb.SIGNALS_SQL)["audit"]


class AuditCursor(RecordingCursor):
    """Answers the audit with ``audit``, other reads with no rows, inserts with a count."""

    audit: SignalAudit = CLEAN

    def execute(self, sql: str, params: Any = None, use_prepared_statements: bool = False) -> None:
        self.conn.log.append(("execute", sql))
        self._maybe_fail(sql)
        if sql == AUDIT_SQL:
            fields = [f.name for f in dataclasses.fields(SignalAudit)]
            self.description = [(f,) for f in fields]
            self._rows = [[getattr(self.audit, f) for f in fields]]
        elif sql.lstrip().startswith(("INSERT", "DELETE")):
            self.description, self._rows = [("OUTPUT",)], [[7]]
        elif sql.lstrip().startswith("SELECT"):
            self.description, self._rows = [("x",)], []
        else:
            self.description, self._rows = None, []


def _signals_warehouse(log: list[tuple[str, str]], audit: SignalAudit) -> vb.VerticaWarehouse:
    class Conn(RecordingConnection):
        def cursor(self) -> AuditCursor:
            cur = AuditCursor(self)
            cur.audit = audit
            return cur

    config = vb.VerticaConfig.from_url("vertica://", ENV)
    return vb.VerticaWarehouse(config, connect=lambda **_: Conn(log, None, None))


RUN = InDatabaseRun(
    run_id="run-1", kernel_version="k", params_json="{}", final=False, computed_ns=1
)


def _steps(log: list[tuple[str, str]]) -> list[str]:
    """Each logged statement as its first words (names the target table)."""
    return [kind if kind != "execute" else " ".join(sql.split()[:3]) for kind, sql in log if kind]


def test_an_accepted_audit_adds_the_run_row_and_commits_once_after_the_udx_inserts() -> None:
    log: list[tuple[str, str]] = []
    seen: list[SignalAudit] = []

    def judge(a: SignalAudit) -> tuple[bool, str | None]:
        seen.append(a)
        return True, '{"suite": "signals", "passed": true}'

    outcome = _signals_warehouse(log, CLEAN).publish_signals_in_database(DAY, RUN, judge)
    assert seen == [CLEAN]
    assert outcome.audit == CLEAN
    assert outcome.published is not None
    assert outcome.published.n_trade_signals == 7
    steps = _steps(log)
    inserts = [s for s in steps if s.startswith("INSERT INTO")]
    assert inserts == [
        "INSERT INTO signal_day_trades",
        "INSERT INTO trading_signals",
        "INSERT INTO symbol_day_metrics",
        "INSERT INTO trade_intensity",
        "INSERT INTO signal_runs",
    ]
    # One COMMIT after the temp-table DDL, one after signal_runs; no ROLLBACK.
    assert steps.count("commit") == 2
    assert "rollback" not in steps
    assert steps.index("INSERT INTO signal_runs") < len(steps) - 1 - steps[::-1].index("commit")
    udx = next(sql for kind, sql in log if sql.startswith("INSERT INTO trading_signals"))
    assert "batch_microstructure" in udx
    assert "PARTITION BY" in udx


def test_a_refused_audit_rolls_back_and_writes_no_run_row() -> None:
    log: list[tuple[str, str]] = []
    broken = dataclasses.replace(CLEAN, n_signal_rows=990)
    outcome = _signals_warehouse(log, broken).publish_signals_in_database(
        DAY, RUN, lambda a: (False, None)
    )
    assert outcome.published is None
    assert outcome.audit == broken
    steps = _steps(log)
    assert "INSERT INTO signal_runs" not in steps
    # The only COMMIT is the one of the temp-table DDL, before the day was touched.
    assert steps.count("commit") == 1
    assert steps.index("commit") < steps.index("INSERT INTO trading_signals")
    assert "rollback" in steps[steps.index("INSERT INTO trade_intensity") :]


# --- issue 14.3: one set of trades while loads keep committing ---------------------------------


class ConcurrentLoadsCursor(AuditCursor):
    """READ COMMITTED while a load commits to ``market_data`` after every statement.

    Each statement that reads ``market_data`` sees the commit current when it starts (one
    statement, one committed state); a statement reading a session-local temporary table
    sees the commit that the statement which filled it read. Records, per statement, the
    commits of ``market_data`` it was computed from.
    """

    epoch: list[int]
    temp_filled: dict[str, int]
    read: list[tuple[str, set[int]]]

    def execute(self, sql: str, params: Any = None, use_prepared_statements: bool = False) -> None:
        text = bind(sql, params)
        created = re.match(r"\s*CREATE LOCAL TEMPORARY TABLE IF NOT EXISTS (\w+)", text)
        if created:
            self.temp_filled.setdefault(created.group(1), -1)
        elif re.match(r"\s*(SELECT|INSERT|WITH)\b", text):
            tables = {parts[-1] for parts in parse_vertica(text.strip()).tables}
            seen = {self.epoch[0] for t in tables if t == "market_data"}
            # (-1: a temporary table holding no trades, such as the offsets JSON per symbol)
            seen |= {self.temp_filled[t] for t in tables if self.temp_filled.get(t, -1) >= 0}
            into = re.match(r"\s*INSERT INTO (\w+)", text)
            if into and into.group(1) in self.temp_filled and seen:
                (self.temp_filled[into.group(1)],) = seen
            if seen:
                self.read.append((" ".join(text.split()[:3]), seen))
        super().execute(sql, params, use_prepared_statements)
        self.epoch[0] += 1  # meanwhile, a load commits


def test_every_statement_computes_from_one_committed_set_of_trades_while_loads_commit() -> None:
    """Issue 14.3: input_offsets, the three UDx inserts and the audit each re-read
    market_data, so with loads committing in between they described different trades."""
    log: list[tuple[str, str]] = []
    epoch, temp_filled, read = [1], {}, []

    class Conn(RecordingConnection):
        def cursor(self) -> ConcurrentLoadsCursor:
            cur = ConcurrentLoadsCursor(self)
            cur.epoch, cur.temp_filled, cur.read = epoch, temp_filled, read
            return cur

    config = vb.VerticaConfig.from_url("vertica://", ENV)
    wh = vb.VerticaWarehouse(config, connect=lambda **_: Conn(log, None, None))
    outcome = wh.publish_signals_in_database(DAY, RUN, lambda a: (True, None))
    assert outcome.published is not None
    steps = [step for step, _ in read]
    for needed in (
        "SELECT symbol, kafka_partition,",  # input_offsets
        "INSERT INTO trading_signals",
        "INSERT INTO symbol_day_metrics",
        "INSERT INTO trade_intensity",
        "SELECT d.n_rth_trades, d.n_rth_symbols,",  # the audit
    ):
        assert any(s.startswith(needed.rsplit(" ", 1)[0]) for s in steps), (needed, steps)
    snapshots = set().union(*(seen for _, seen in read))
    assert len(snapshots) == 1, read
    # The one read of market_data is a single statement inside the publishing transaction.
    first_commit = [k for k, _ in log].index("commit")
    direct = [sql for k, sql in log[first_commit:] if k == "execute" and "market_data" in sql]
    assert len(direct) == 1, direct


# --- the Dagster asset on a warehouse that computes signals itself -----------------------------


class InDatabaseWarehouseResource(WarehouseResource):
    """The signal asset's warehouse resource, opening the stand-in-backed Vertica warehouse."""

    broken: bool = False

    def open(self, read_only: bool = False, lock_timeout_s: float | None = None) -> Warehouse:
        audit = dataclasses.replace(CLEAN, n_nonfinite=4) if self.broken else CLEAN
        return _signals_warehouse(_ASSET_LOG, audit)


_ASSET_LOG: list[tuple[str, str]] = []


def _materialize(broken: bool, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    _ASSET_LOG.clear()
    return dg.materialize(
        [signal_tables],
        partition_key=DAY.isoformat(),
        resources={
            "warehouse": InDatabaseWarehouseResource(url="vertica://", broken=broken),
            "quality": QualityResource(),
            "kafka": kafka_without_broker(),
        },
        instance=instance,
        raise_on_error=False,
    )


def _quality_rows() -> list[str]:
    return [sql for kind, sql in _ASSET_LOG if sql.startswith("INSERT INTO quality_results")]


def test_the_asset_publishes_through_the_udx_with_every_check_passing_in_the_ui() -> None:
    with dg.instance_for_test() as instance:
        result = _materialize(False, instance)
        assert result.success
        mats = {
            m.asset_key.to_user_string(): m.metadata
            for m in result.asset_materializations_for_node("signal_tables")
        }
        assert set(mats) == {"trading_signals", "symbol_day_metrics", "trade_intensity"}
        assert mats["trading_signals"]["computed_in"].value == "vertica"  # type: ignore[union-attr]
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {c.name: True for c in SIGNAL_CHECKS}
    steps = _steps(_ASSET_LOG)
    assert "INSERT INTO signal_runs" in steps
    # Python computed nothing: the day's trades were never read out of the warehouse.
    assert all(sql != vb.READ_DAY_TRADES for _, sql in _ASSET_LOG)
    assert any(sql.startswith("INSERT INTO trading_signals") for _, sql in _ASSET_LOG)
    assert len(_quality_rows()) == len(SIGNAL_CHECKS)


def test_a_failed_in_database_audit_fails_the_run_shows_the_check_and_publishes_nothing() -> None:
    with dg.instance_for_test() as instance:
        result = _materialize(True, instance)
        assert not result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["finite_statistics"] is False
        assert all(v for k, v in checks.items() if k != "finite_statistics")
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert "finite_statistics" in str(failure.event_specific_data)
    assert "INSERT INTO signal_runs" not in _steps(_ASSET_LOG)
    assert len(_quality_rows()) == len(SIGNAL_CHECKS)
