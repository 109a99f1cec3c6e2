"""Quality gates: Great Expectations suites built in code, run on in-memory frames.

Two suites (architecture.md 6):

- **ingest**, on a microbatch before COMMIT: prices positive and finite, sizes positive,
  timestamps within the extended session window (04:00-20:00 New York) of their day,
  known symbols (when a symbol list is configured), no duplicate trade keys, no duplicate
  offsets, row count = records read minus rejects, gaps, quotes, aggregates and duplicates,
  reject ratio under a threshold. Quotes and aggregates are data with tables of their own,
  never rejects: only records that are not valid events (or not storable) count against
  the reject ratio. Bad records are already in the reject table; the batch commits with its
  verdict on the ledger row, and the signals of its day refuse to publish while it failed.
- **signals**, on the computed frames before a day is published: one row per
  regular-hours trade, signals in BUY/SELL/HOLD, boolean jump flags, finite statistics
  where defined, one metrics row per symbol, a full bucket grid per symbol.

Each gate is a named check (:data:`INGEST_CHECKS`, :data:`SIGNAL_CHECKS`) with a severity;
ERROR failures fail the gate, WARN failures are reported only. The GX context is
ephemeral, in memory, with analytics and progress bars off, and built once per process.
"""

# GX 1.x exports its expectation classes without __all__: pyright sees them as private.
# pyright: reportPrivateImportUsage=false
from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from pipeline.microbatch import DEDUP_KEY, NS_PER_S, Microbatch
from pipeline.warehouse.base import QualityResultRow, QualityVerdict, SignalAudit, SignalTables

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context.data_context.abstract_data_context import (
        AbstractDataContext,
    )

Severity = Literal["ERROR", "WARN"]

# Extended session window around each day's 09:30 open: 04:00 to 20:00 New York.
SESSION_WINDOW_NS = (-(5 * 3600 + 30 * 60) * NS_PER_S, (10 * 3600 + 30 * 60) * NS_PER_S)
MAX_ABS_STATISTIC = 1e300  # "finite": GX's between excludes inf and ignores nulls
MAX_PRICE = 1e12
DEFAULT_MAX_REJECT_RATIO = 0.5
SAMPLE_SIZE = 5  # offending values kept per failed expectation
SIGNAL_VALUES = ("BUY", "SELL", "HOLD")
STATISTIC_COLUMNS = (
    "log_return",
    "lee_mykland_stat",
    "lm_xi",
    "garch_sigma2",
    "standardized_return",
    "bns_stat",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
)


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A named gate: what Dagster shows as an asset check."""

    name: str
    asset: str
    severity: Severity
    description: str


INGEST_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec("prices_positive_finite", "market_data", "ERROR", "price > 0, finite, not null"),
    CheckSpec("sizes_positive", "market_data", "ERROR", "size >= 1"),
    CheckSpec(
        "timestamps_in_session_window",
        "market_data",
        "WARN",
        "SIP time within 04:00-20:00 New York of its trade_date",
    ),
    CheckSpec("known_symbols", "market_data", "ERROR", "symbols in MICROSTRUCTURE_SYMBOLS, if set"),
    CheckSpec(
        "unique_trade_keys", "market_data", "ERROR", "(symbol, date, exchange, trf_id, id) unique"
    ),
    CheckSpec("unique_offsets", "market_data", "ERROR", "(kafka_partition, kafka_offset) unique"),
    CheckSpec(
        "row_count_reconciles",
        "market_data",
        "ERROR",
        "trades = records read - rejects - gaps - quotes - bars - live records - duplicates, "
        "records <= offset span",
    ),
    CheckSpec("reject_ratio", "market_data", "ERROR", "rejects / records read under the threshold"),
)

# The trade columns the ingest gates read.
INGEST_GATE_COLUMNS: tuple[str, ...] = (
    *DEDUP_KEY,
    "price",
    "size",
    "ns_from_open",
    "kafka_partition",
    "kafka_offset",
)

SIGNAL_CHECKS: tuple[CheckSpec, ...] = (
    CheckSpec(
        "inputs_passed_ingest_checks", "trading_signals", "ERROR", "no failed batch holds the day"
    ),
    CheckSpec("one_row_per_trade", "trading_signals", "ERROR", "one row per regular-hours trade"),
    CheckSpec("signal_values", "trading_signals", "ERROR", "trading_signal in BUY/SELL/HOLD"),
    CheckSpec("flags_boolean", "trading_signals", "ERROR", "jump_detected is true or false"),
    CheckSpec("finite_statistics", "trading_signals", "ERROR", "statistics finite where defined"),
    CheckSpec("one_row_per_symbol", "symbol_day_metrics", "ERROR", "one metrics row per symbol"),
    CheckSpec("full_bucket_grid", "trade_intensity", "ERROR", "every bucket of every symbol"),
)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of one gate."""

    name: str
    asset: str
    severity: Severity
    passed: bool
    observed: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QualityReport:
    """The outcome of one suite on one target (a batch's offset range, or a day)."""

    suite: str
    target: str
    outcomes: tuple[CheckOutcome, ...]
    elapsed_s: float

    @property
    def passed(self) -> bool:
        """Return True unless an ERROR-severity gate failed."""
        return all(o.passed for o in self.outcomes if o.severity == "ERROR")

    @property
    def failed(self) -> list[str]:
        """Return the names of failed gates (any severity)."""
        return [o.name for o in self.outcomes if not o.passed]

    def summary_json(self) -> str:
        """Return a compact JSON summary: verdict, failed gates, their observations."""
        return json.dumps(
            {
                "suite": self.suite,
                "passed": self.passed,
                "failed": {o.name: o.observed for o in self.outcomes if not o.passed},
                "elapsed_s": round(self.elapsed_s, 4),
            },
            default=str,
        )

    def rows(self) -> list[QualityResultRow]:
        """Return one ``quality_results`` row per gate."""
        return [
            QualityResultRow(
                suite=self.suite,
                target=self.target,
                expectation=o.name,
                passed=o.passed,
                observed_json=json.dumps(o.observed, default=str),
            )
            for o in self.outcomes
        ]

    def verdict(self) -> QualityVerdict:
        """Return the verdict stored with a load (ledger row and ``quality_results``)."""
        return QualityVerdict(
            passed=self.passed, summary_json=self.summary_json(), results=self.rows()
        )


@cache
def _context() -> tuple[AbstractDataContext, BatchDefinition]:
    # Imported here: GX takes seconds to import, and only the gates need it.
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.execution_engine import pandas_execution_engine

    # GX hashes every cell of a frame under HASH_THRESHOLD bytes into a batch marker
    # ("pandas_data_fingerprint") that nothing reads; it skips frames above it. Skipping
    # it for every frame changes no expectation and saves a third of the ingest suite on
    # 100,000 trades (hashing the trade ids' strings). tests/test_quality.py checks it.
    pandas_execution_engine.HASH_THRESHOLD = 0

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("microstructure")
    batch_def = source.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")
    return context, batch_def


def _run_suite(
    frame: pd.DataFrame, expectations: Sequence[tuple[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Validate ``frame`` and group each expectation's result under its gate name."""
    import great_expectations as gx
    from great_expectations.validator.v1_validator import Validator

    _, batch_def = _context()
    suite = gx.ExpectationSuite(name="s", expectations=[e for _, e in expectations])
    # The validator of the batch definition, not ``get_batch(...).validate``: that builds the
    # batch twice (the validator builds its own), and GX fingerprints (hashes) every cell
    # of the frame each time. BASIC holds every field read below; SUMMARY would add value
    # counts and unexpected indices nobody reads (a fifth of a 100,000-row suite).
    result = Validator(
        batch_definition=batch_def,
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "BASIC", "partial_unexpected_count": SAMPLE_SIZE},
    ).validate_expectation_suite(suite)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for (gate, _), r in zip(expectations, result.results, strict=True):
        observed = r.result or {}
        grouped.setdefault(gate, []).append(
            {
                "expectation": r.expectation_config.type if r.expectation_config else "?",
                "success": bool(r.success),
                "unexpected_count": observed.get("unexpected_count"),
                "observed_value": observed.get("observed_value"),
                "sample": list(observed.get("partial_unexpected_list") or [])[:SAMPLE_SIZE],
            }
        )
    return grouped


def _outcome(spec: CheckSpec, details: list[dict[str, Any]], **extra: Any) -> CheckOutcome:
    passed = all(d["success"] for d in details) and extra.pop("_ok", True)
    failing = [d for d in details if not d["success"]]
    return CheckOutcome(spec.name, spec.asset, spec.severity, passed, {**extra, "failing": failing})


def validate_batch(
    batch: Microbatch,
    known_symbols: Collection[str] = (),
    max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO,
) -> QualityReport:
    """Run the ingest suite on a microbatch (before its COMMIT).

    Parameters
    ----------
    batch
        The shaped batch.
    known_symbols
        Symbols the platform subscribes to; empty means "not configured" (gate skipped).
    max_reject_ratio
        Largest tolerated ``n_rejects / n_messages``.

    Returns
    -------
    QualityReport
        One outcome per gate of :data:`INGEST_CHECKS`, in that order.
    """
    import great_expectations as gx

    started = time.perf_counter()
    e = gx.expectations
    t = batch.trades
    expectations: list[tuple[str, Any]] = [
        ("prices_positive_finite", e.ExpectColumnValuesToNotBeNull(column="price")),
        (
            "prices_positive_finite",
            e.ExpectColumnValuesToBeBetween(
                column="price", min_value=0, strict_min=True, max_value=MAX_PRICE
            ),
        ),
        ("sizes_positive", e.ExpectColumnValuesToBeBetween(column="size", min_value=1)),
        (
            "timestamps_in_session_window",
            e.ExpectColumnValuesToBeBetween(
                column="ns_from_open",
                min_value=SESSION_WINDOW_NS[0],
                max_value=SESSION_WINDOW_NS[1],
            ),
        ),
        ("unique_trade_keys", e.ExpectCompoundColumnsToBeUnique(column_list=list(DEDUP_KEY))),
        (
            "unique_offsets",
            e.ExpectCompoundColumnsToBeUnique(column_list=["kafka_partition", "kafka_offset"]),
        ),
        (
            "row_count_reconciles",
            e.ExpectTableRowCountToEqual(value=_expected_trades(batch)),
        ),
    ]
    if known_symbols:
        expectations.append(
            (
                "known_symbols",
                e.ExpectColumnValuesToBeInSet(column="symbol", value_set=sorted(known_symbols)),
            )
        )
    # Only the columns the gates read: GX fingerprints (hashes) every column it is given.
    grouped = _run_suite(t.loc[:, list(INGEST_GATE_COLUMNS)], expectations)
    by_name = {s.name: s for s in INGEST_CHECKS}
    ratio = batch.n_rejects / batch.n_messages if batch.n_messages else 0.0
    outcomes = []
    for spec in INGEST_CHECKS:
        if spec.name == "known_symbols" and not known_symbols:
            outcomes.append(
                CheckOutcome(
                    spec.name, spec.asset, spec.severity, True, {"skipped": "no symbol list"}
                )
            )
        elif spec.name == "row_count_reconciles":
            within = batch.n_messages <= batch.range.span
            outcomes.append(
                _outcome(
                    spec,
                    grouped[spec.name],
                    _ok=within,
                    n_messages=batch.n_messages,
                    offset_span=batch.range.span,
                )
            )
        elif spec.name == "reject_ratio":
            outcomes.append(
                CheckOutcome(
                    spec.name,
                    spec.asset,
                    spec.severity,
                    ratio <= max_reject_ratio,
                    {
                        "n_rejects": batch.n_rejects,
                        "ratio": round(ratio, 6),
                        "max": max_reject_ratio,
                    },
                )
            )
        else:
            outcomes.append(_outcome(by_name[spec.name], grouped[spec.name]))
    return QualityReport("ingest", str(batch.range), tuple(outcomes), time.perf_counter() - started)


def _expected_trades(batch: Microbatch) -> int:
    """Return the trade rows a batch must hold: every record not filed elsewhere."""
    return (
        batch.n_messages
        - batch.n_rejects
        - batch.n_gaps
        - batch.n_duplicates
        - (batch.n_quotes + batch.n_quote_duplicates)
        - (batch.n_aggregates + batch.n_aggregate_duplicates)
        - (batch.n_live_signals + batch.n_live_rejects + batch.n_live_duplicates)
    )


def validate_signals(
    frames: SignalTables,
    target: str,
    n_input_trades: int,
    n_input_symbols: int,
    n_buckets: int,
    failed_input_batches: Sequence[str] = (),
    allow_failed_inputs: bool = False,
) -> QualityReport:
    """Run the signal suite on a day's computed frames (before publishing them).

    Parameters
    ----------
    frames
        The computed frames.
    target
        The day, ``YYYY-MM-DD``.
    n_input_trades, n_input_symbols
        Regular-hours trades and symbols read for the day.
    n_buckets
        Intensity buckets per symbol-day (``Params.n_buckets``).
    failed_input_batches
        Offset ranges of batches holding the day whose ingest gate failed.
    allow_failed_inputs
        Report such batches as a warning instead of failing the gate.

    Returns
    -------
    QualityReport
        One outcome per gate of :data:`SIGNAL_CHECKS`, in that order.
    """
    import great_expectations as gx

    started = time.perf_counter()
    e = gx.expectations
    ts = frames.trade_signals
    per_trade: list[tuple[str, Any]] = [
        ("one_row_per_trade", e.ExpectTableRowCountToEqual(value=n_input_trades)),
        ("signal_values", e.ExpectColumnValuesToNotBeNull(column="trading_signal")),
        (
            "signal_values",
            e.ExpectColumnValuesToBeInSet(column="trading_signal", value_set=list(SIGNAL_VALUES)),
        ),
        ("flags_boolean", e.ExpectColumnValuesToNotBeNull(column="jump_detected")),
        (
            "flags_boolean",
            e.ExpectColumnValuesToBeInSet(column="jump_detected", value_set=[True, False]),
        ),
    ]
    per_trade += [
        (
            "finite_statistics",
            e.ExpectColumnValuesToBeBetween(
                column=c, min_value=-MAX_ABS_STATISTIC, max_value=MAX_ABS_STATISTIC
            ),
        )
        for c in STATISTIC_COLUMNS
        if c in ts.columns
    ]
    grouped = _run_suite(_plain(ts), per_trade)
    grouped |= _run_suite(
        _plain(frames.symbol_day_metrics),
        [
            ("one_row_per_symbol", e.ExpectTableRowCountToEqual(value=n_input_symbols)),
            ("one_row_per_symbol", e.ExpectColumnValuesToBeUnique(column="symbol")),
        ],
    )
    grouped |= _run_suite(
        _plain(frames.intensity_buckets),
        [
            ("full_bucket_grid", e.ExpectTableRowCountToEqual(value=n_input_symbols * n_buckets)),
            (
                "full_bucket_grid",
                e.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "bucket"]),
            ),
        ],
    )
    outcomes = [
        _inputs_outcome(spec, failed_input_batches, allow_failed_inputs)
        if spec.name == "inputs_passed_ingest_checks"
        else _outcome(spec, grouped[spec.name])
        for spec in SIGNAL_CHECKS
    ]
    return QualityReport("signals", target, tuple(outcomes), time.perf_counter() - started)


def _inputs_outcome(
    spec: CheckSpec, failed_input_batches: Sequence[str], allow_failed_inputs: bool
) -> CheckOutcome:
    """Return the ``inputs_passed_ingest_checks`` outcome (a warning when failures are allowed)."""
    return CheckOutcome(
        spec.name,
        spec.asset,
        "WARN" if allow_failed_inputs else spec.severity,
        not failed_input_batches,
        {"failed_batches": list(failed_input_batches)[:20]},
    )


def audit_report(
    audit: SignalAudit,
    target: str,
    n_buckets: int,
    failed_input_batches: Sequence[str] = (),
    allow_failed_inputs: bool = False,
    elapsed_s: float = 0.0,
) -> QualityReport:
    """Judge a day computed inside the warehouse: the signal suite on the database's counts.

    The in-database path (Vertica's UDx) keeps the rows where they are, so the same gates
    as :func:`validate_signals` are decided from :class:`~pipeline.warehouse.base.SignalAudit`
    counts taken in the publishing transaction instead of by Great Expectations on frames.
    Check names, assets and severities are those of :data:`SIGNAL_CHECKS`, so the UI, the
    ``quality_results`` table and the MCP server see one suite whichever backend ran.

    Parameters
    ----------
    audit
        Counts on the uncommitted day.
    target
        The day, ``YYYY-MM-DD``.
    n_buckets
        Intensity buckets per symbol-day (``Params.n_buckets``).
    failed_input_batches
        Offset ranges of batches holding the day whose ingest gate failed.
    allow_failed_inputs
        Report such batches as a warning instead of failing the gate.
    elapsed_s
        Time the audit took (the counting query), for the report.

    Returns
    -------
    QualityReport
        One outcome per gate of :data:`SIGNAL_CHECKS`, in that order.
    """
    a = audit
    expected_buckets = a.n_rth_symbols * n_buckets
    verdicts: dict[str, tuple[bool, dict[str, Any]]] = {
        "one_row_per_trade": (
            a.n_signal_rows == a.n_rth_trades,
            {"rows": a.n_signal_rows, "regular_hours_trades": a.n_rth_trades},
        ),
        "signal_values": (
            a.n_bad_labels == 0,
            {"unexpected_count": a.n_bad_labels, "value_set": list(SIGNAL_VALUES)},
        ),
        "flags_boolean": (a.n_null_flags == 0, {"null_count": a.n_null_flags}),
        "finite_statistics": (
            a.n_nonfinite == 0,
            {"rows_with_infinite_statistic": a.n_nonfinite, "columns": list(STATISTIC_COLUMNS)},
        ),
        "one_row_per_symbol": (
            a.n_metric_rows == a.n_rth_symbols == a.n_metric_symbols,
            {
                "rows": a.n_metric_rows,
                "distinct_symbols": a.n_metric_symbols,
                "regular_hours_symbols": a.n_rth_symbols,
            },
        ),
        "full_bucket_grid": (
            a.n_bucket_rows == expected_buckets == a.n_bucket_keys,
            {
                "rows": a.n_bucket_rows,
                "distinct_keys": a.n_bucket_keys,
                "expected": expected_buckets,
            },
        ),
    }
    outcomes = [
        _inputs_outcome(spec, failed_input_batches, allow_failed_inputs)
        if spec.name == "inputs_passed_ingest_checks"
        else CheckOutcome(spec.name, spec.asset, spec.severity, *verdicts[spec.name])
        for spec in SIGNAL_CHECKS
    ]
    return QualityReport("signals", target, tuple(outcomes), elapsed_s)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    # GX's pandas metrics want numpy-backed columns: nullable extension dtypes become
    # float/object with NaN/None, which GX treats as missing (ignored by "between").
    out = frame.copy()
    for c in out.columns:
        dtype = out[c].dtype
        if isinstance(dtype, pd.BooleanDtype):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
        elif pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype):
            out[c] = out[c].astype("float64")
    return out
