"""Pydantic outputs of the tools: each one the rows plus provenance, completeness and paging.

These models are the tools' ``outputSchema`` (a snapshot test pins them). Field names
follow the warehouse columns so that an answer and a table read the same. Floats are
rounded to 6 significant digits (they are statistics, and every digit costs tokens).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Out):
    """The time window an answer covers: ``[start, end)``."""

    start: str = Field(description="inclusive start, ISO 8601 UTC")
    end: str = Field(description="exclusive end, ISO 8601 UTC")
    start_new_york: str = Field(description="the start in exchange time (America/New_York)")
    end_new_york: str = Field(description="the end in exchange time (America/New_York)")
    start_ns: int
    end_ns: int
    anchor: Literal["newest_data", "explicit", "cursor"] = Field(
        description="newest_data: counted back from the symbol's newest trade; explicit: "
        "start/end as given; cursor: pinned by the cursor of an earlier page"
    )


class SignalRunInfo(_Out):
    """The published signals run of one day."""

    date: str
    run_id: str
    kernel_version: str
    final: bool = Field(description="true once ingest had passed the close when it ran")
    quality_passed: bool | None = Field(description="signal suite verdict; null: no suite ran")
    computed: str


class Provenance(_Out):
    """Where an answer comes from and how fresh it is."""

    as_of: str = Field(
        description="the warehouse state the answer shows: everything committed before this "
        "time, nothing after"
    )
    as_of_ns: int
    ledger_through: dict[str, int] = Field(
        description="the same state in Kafka offsets: per topic:partition, the first offset "
        "not yet included"
    )
    newest_trade: str | None = Field(description="newest trade in scope (symbol or all)")
    newest_trade_ns: int | None
    data_lag_s: float | None = Field(
        description="as_of minus newest_trade: the age of the newest data served (large for "
        "replayed history)"
    )
    last_load: str | None = Field(description="latest microbatch commit in the warehouse")
    snapshot_stale: bool = Field(
        description="true if the warehouse has newer commits than as_of that are not served "
        "yet (a refresh is pending, or failing: see stale_reason)"
    )
    stale_reason: str | None
    kernel_versions: list[str] = Field(description="kernel versions of the signals served")
    params: dict[str, Any] | None = Field(
        description="kernel parameters and signal rule of the newest run in scope"
    )
    signal_runs: list[SignalRunInfo]


class Completeness(_Out):
    """How complete the window's data is known to be, and from what that is measured."""

    status: Literal["complete", "incomplete", "unknown"]
    reasons: list[str]
    feed_gaps: int = Field(
        description="reconnect gaps of this symbol's feed overlapping the window"
    )
    gap_seconds: float
    rejects: int = Field(description="records refused in the window (this symbol + unattributed)")
    batches: int = Field(description="ledger microbatches that loaded the window's days")
    batches_failed_quality: int
    batches_unchecked: int
    days_without_signals: list[str]
    signals_final: bool | None
    measured_from: str


class Paging(_Out):
    """Truncation facts and the cursor to the next page."""

    returned: int
    total: int = Field(description="rows matching in the whole window")
    remaining: int = Field(description="rows of the window older than this page")
    truncated: bool
    truncated_by: Literal["limit", "max_bytes"] | None
    next_cursor: str | None = Field(description="pass back as cursor= to get the next page")
    hint: str | None


class TradeRow(_Out):
    """A trade joined with its signal (signal fields null outside regular hours)."""

    time: str
    timestamp_ns: int
    price: float
    size: int
    exchange: int
    conditions: str | None
    in_regular_hours: bool
    log_return: float | None
    lee_mykland_stat: float | None
    jump_detected: bool | None
    garch_sigma2: float | None
    standardized_return: float | None
    conditional_duration: float | None
    acd_surprise: float | None
    trade_intensity_zscore: float | None
    trading_signal: str | None
    kafka_partition: int
    kafka_offset: int


class SignalRow(_Out):
    """One regular-hours trade's statistics and signal."""

    time: str
    timestamp_ns: int
    date: str
    seq: int
    price: float
    size: int
    log_return: float | None
    lee_mykland_stat: float | None
    lm_xi: float | None
    jump_detected: bool
    garch_sigma2: float | None
    standardized_return: float | None
    bns_stat: float | None
    conditional_duration: float | None
    acd_surprise: float | None
    trade_intensity_zscore: float | None
    trading_signal: str
    kafka_partition: int | None
    kafka_offset: int | None
    source: Literal["batch", "live"] = Field(
        description="batch: a signals run's row (the source of truth); live: the live path's "
        "row of a trade no run has computed yet (docs/live.md)"
    )
    provisional: bool = Field(
        description="true for every live row, and for batch rows of a day whose run is not "
        "final (computed before the close, or before trades loaded since); false: final"
    )


class SignalCounts(_Out):
    """Signals of each type in the window."""

    BUY: int
    SELL: int
    HOLD: int


class DailyJumpTest(_Out):
    """The day-level Barndorff-Nielsen-Shephard jump test."""

    date: str
    bns_z: float | None
    bns_p_value: float | None
    bns_jump: bool | None
    lm_jump_count: int | None


class BnsFit(_Out):
    """Barndorff-Nielsen-Shephard realized measures and test of one day."""

    m: int | None
    rv: float | None
    bv: float | None
    tq: float | None
    qq: float | None
    rj: float | None
    z: float | None
    p_value: float | None
    jump: bool | None


class GarchFit(_Out):
    """GARCH(1,1) fit of one day's returns."""

    omega: float | None
    alpha: float | None
    beta: float | None
    loglik: float | None
    scale: float | None
    converged: bool | None


class AcdFit(_Out):
    """ACD(1,1) fit of one day's durations (gamma: Weibull shape, null for exponential)."""

    omega: float | None
    alpha: float | None
    beta: float | None
    gamma: float | None
    loglik: float | None
    at_boundary: bool | None


class DayMetrics(_Out):
    """Daily statistics of one symbol-day."""

    date: str
    n_trades: int
    n_returns: int | None
    first_trade: str | None
    last_trade: str | None
    vwap: float | None
    bns: BnsFit
    garch: GarchFit
    acd_exponential: AcdFit
    acd_weibull: AcdFit
    lm_jump_count: int | None
    notes: str | None
    kernel_version: str
    run_id: str


class _Answer(_Out):
    paging: Paging
    provenance: Provenance
    completeness: Completeness


class EnrichedData(_Answer):
    """Trades with their signals, newest first."""

    symbol: str
    window: Window
    rows: list[TradeRow]


class TradingSignals(_Answer):
    """Signals of one type (or all), newest first, with counts per type in the window."""

    symbol: str
    signal_type: Literal["BUY", "SELL", "HOLD", "ALL"]
    window: Window
    counts: SignalCounts
    rows: list[SignalRow]


class JumpEvents(_Answer):
    """Lee-Mykland jumps (trade level), newest first, and the daily BNS tests in the window."""

    symbol: str
    window: Window
    daily_bns: list[DailyJumpTest]
    rows: list[SignalRow]


class SymbolMetrics(_Answer):
    """Daily statistics of one symbol over a day range, newest day first."""

    symbol: str
    first_day: str
    last_day: str
    rows: list[DayMetrics]


class LatestTrade(_Out):
    """The newest processed trade of a symbol."""

    time: str
    timestamp_ns: int
    age_s: float = Field(description="seconds between this trade and now (server clock)")
    price: float
    size: int
    exchange: int
    conditions: str | None
    trading_signal: str | None


class LatestSignal(_Out):
    """A symbol's newest signal row (or newest BUY/SELL)."""

    time: str
    timestamp_ns: int
    age_s: float
    date: str
    price: float
    trading_signal: str
    lee_mykland_stat: float | None
    jump_detected: bool
    standardized_return: float | None
    trade_intensity_zscore: float | None


class LiveProvenance(_Out):
    """How the live path computed a provisional signal."""

    lm_n: int | None = Field(description="the provisional n of the Lee-Mykland threshold")
    lm_n_rule: str | None = Field(
        description="prior: a given count (the previous day's); running: returns seen so far"
    )
    garch_params: str | None = Field(description="source of the GARCH parameters (null: none)")
    acd_params: str | None = Field(description="source of the ACD parameters (null: none)")
    kernel_version: str | None


class BatchValue(LatestSignal):
    """The signals run's row of the same trade, once a run has computed it."""

    final: bool = Field(description="the run's day is final (see provenance.signal_runs)")


class LiveSignal(_Out):
    """A symbol's newest signal from the live path (provisional: the batch is the truth)."""

    provisional: bool = Field(description="always true: a live value, to be replaced by the batch")
    time: str
    timestamp_ns: int
    age_s: float = Field(description="seconds between the trade and now (server clock)")
    date: str
    seq: int
    price: float
    trading_signal: str
    lee_mykland_stat: float | None
    lm_xi: float | None
    jump_detected: bool
    standardized_return: float | None
    trade_intensity_zscore: float | None
    kafka_partition: int | None = Field(description="the trade's market-data partition")
    kafka_offset: int | None = Field(description="the trade's market-data offset")
    emitted: str | None = Field(description="when the live path produced it (Kafka time)")
    emitted_age_s: float | None
    provenance: LiveProvenance
    batch: BatchValue | None = Field(
        description="the batch's value of the same trade; null until a signals run has it"
    )


class RealTimeRow(_Out):
    """What is newest for one symbol."""

    symbol: str
    last_trade: LatestTrade | None
    last_signal: LatestSignal | None
    last_buy_or_sell: LatestSignal | None
    live_signal: LiveSignal | None = Field(
        description="the newest provisional signal of the live path (null: none loaded)"
    )
    trades_today: int = Field(description="trades on the symbol's newest day")
    signals_today: SignalCounts


class RealTimeData(_Answer):
    """Newest trade and signals per asked symbol, with their age."""

    rows: list[RealTimeRow]
    unknown_symbols: list[str]


class SymbolSummary(_Out):
    """What the warehouse holds for one symbol."""

    symbol: str
    trades: int
    first_trade: str | None
    last_trade: str | None
    days: list[str]
    signal_days: list[str]


class SymbolList(_Answer):
    """The symbols in the warehouse."""

    rows: list[SymbolSummary]


class QualityCheck(_Out):
    """One check of a symbol-day, passed or failed, with its evidence."""

    check: str
    passed: bool | None = Field(description="null: not evaluated (nothing recorded)")
    detail: str


class RejectSample(_Out):
    """A rejected record (raw text is untrusted data, shown truncated)."""

    stage: str
    reason: str
    raw_untrusted: str | None
    kafka_partition: int
    kafka_offset: int


class GapRow(_Out):
    """A feed gap overlapping the day."""

    subscription: str
    start: str | None
    end: str | None
    seconds: float | None
    reason: str


class DataQuality(_Answer):
    """Quality checks of one symbol-day."""

    symbol: str
    day: str
    checks: list[QualityCheck]
    rejects_by_reason: dict[str, int]
    reject_samples: list[RejectSample]
    gaps: list[GapRow]
    minutes_with_trades: int
    session_minutes: int


class EvaluationRow(_Out):
    """Forward returns after BUY/SELL signals vs random entries, one symbol (or all) and horizon."""

    symbol: str = Field(description="a symbol, or * for all symbols pooled")
    horizon_s: int = Field(description="seconds after the signal (previous-tick, same session)")
    n_signals: int
    n_buy: int
    n_sell: int
    n_effective: float = Field(
        description="independent observations the overlapping returns are worth"
    )
    n_days: int
    hit_rate: float | None = Field(description="share of signed returns > 0")
    mean_bp: float | None = Field(description="mean signed log return, basis points")
    t_stat: float | None
    random_n: int
    random_hit_rate: float | None
    random_mean_bp: float | None
    edge_bp: float | None = Field(description="mean_bp - random_mean_bp")
    edge_t_stat: float | None
    edge_p_value: float | None
    edge_p_adjusted: float | None = Field(description="Bonferroni over the evaluation's tests")
    verdict: Literal["too_few_signals", "edge", "negative_edge", "no_edge"]
    verdict_text: str


class SignalEvaluation(_Answer):
    """Whether the signals paid: the newest stored evaluation (microstructure evaluate)."""

    evaluation_id: str
    computed: str
    start_date: str
    end_date: str
    method: str
    min_signals: int
    random_per_signal: int
    seed: int
    kernel_version: str | None
    rows: list[EvaluationRow]


__all__ = [
    "AcdFit",
    "BnsFit",
    "Completeness",
    "DailyJumpTest",
    "DataQuality",
    "DayMetrics",
    "EnrichedData",
    "EvaluationRow",
    "GapRow",
    "GarchFit",
    "JumpEvents",
    "LatestSignal",
    "LatestTrade",
    "Paging",
    "Provenance",
    "QualityCheck",
    "RealTimeData",
    "RealTimeRow",
    "RejectSample",
    "SignalCounts",
    "SignalEvaluation",
    "SignalRow",
    "SignalRunInfo",
    "SymbolList",
    "SymbolMetrics",
    "SymbolSummary",
    "TradeRow",
    "TradingSignals",
    "Window",
]
