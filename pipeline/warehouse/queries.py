"""Named, parameterised warehouse statements.

Identifiers come from the constants below (never from input); every value is bound
(``?`` placeholders for DuckDB). A backend whose dialect differs keeps its own
statements next to its module and reuses the identifiers from here. Statements are
built once, at import.
"""

# ruff: noqa: S608 - statements are built here, once, from the identifier constants below;
# every value is a bound parameter.
from __future__ import annotations

from collections.abc import Sequence

from pipeline.microbatch import (
    AGGREGATE_COLUMNS,
    GAP_COLUMNS,
    LIVE_REJECT_COLUMNS,
    LIVE_SIGNAL_COLUMNS,
    QUOTE_COLUMNS,
    REJECT_COLUMNS,
    TRADE_COLUMNS,
)

# Tables and views (sql/migrations). Changing a name needs a migration and a note to the
# MCP server's reads.
MARKET_DATA = "market_data"
KAFKA_OFFSETS = "kafka_offsets"
KAFKA_TOPIC_EPOCHS = "kafka_topic_epochs"
KAFKA_OFFSETS_HISTORY = "kafka_offsets_history"
REJECTS = "market_data_rejects"
FEED_GAPS = "feed_gaps"
FEED_GAP_STATE = "feed_gap_state"
MARKET_QUOTES = "market_quotes"
MARKET_AGGREGATES = "market_aggregates"
TRADING_SIGNALS = "trading_signals"
SYMBOL_DAY_METRICS = "symbol_day_metrics"
TRADE_INTENSITY = "trade_intensity"
SIGNAL_RUNS = "signal_runs"
QUALITY_RESULTS = "quality_results"
ENRICHED_MARKET_DATA = "enriched_market_data"
TRADE_MINUTES = "trade_minutes"
DAY_COMPLETENESS = "day_completeness"
SCHEMA_MIGRATIONS = "schema_migrations"
LIVE_SIGNALS = "live_signals"
LIVE_SIGNAL_REJECTS = "live_signal_rejects"

TABLES: tuple[str, ...] = (
    MARKET_DATA,
    KAFKA_OFFSETS,
    REJECTS,
    FEED_GAPS,
    TRADING_SIGNALS,
    SYMBOL_DAY_METRICS,
    TRADE_INTENSITY,
    SIGNAL_RUNS,
    QUALITY_RESULTS,
    MARKET_QUOTES,
    MARKET_AGGREGATES,
    KAFKA_TOPIC_EPOCHS,
    KAFKA_OFFSETS_HISTORY,
    LIVE_SIGNALS,
    LIVE_SIGNAL_REJECTS,
)

# Registered (in-transaction) relation names of the batch being loaded.
BATCH_TRADES = "_batch_trades"
BATCH_REJECTS = "_batch_rejects"
BATCH_GAPS = "_batch_gaps"
BATCH_QUOTES = "_batch_quotes"
BATCH_AGGREGATES = "_batch_aggregates"
BATCH_LIVE = "_batch_live_signals"
BATCH_LIVE_REJECTS = "_batch_live_rejects"
FRAME = "_frame"

# Columns the signal frames must provide; provenance columns are added by the warehouse.
TRADING_SIGNALS_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "seq",
    "timestamp_ns",
    "price",
    "size",
    "log_return",
    "lee_mykland_stat",
    "lm_xi",
    "jump_detected",
    "garch_sigma2",
    "standardized_return",
    "bns_stat",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
    "trading_signal",
    "kafka_partition",
    "kafka_offset",
)
SYMBOL_DAY_METRICS_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "n_trades",
    "n_returns",
    "first_timestamp_ns",
    "last_timestamp_ns",
    "vwap",
    "bns_m",
    "bns_rv",
    "bns_bv",
    "bns_tq",
    "bns_qq",
    "bns_rj",
    "bns_z",
    "bns_p_value",
    "bns_jump",
    "garch_omega",
    "garch_alpha",
    "garch_beta",
    "garch_loglik",
    "garch_scale",
    "garch_converged",
    "acd_exp_omega",
    "acd_exp_alpha",
    "acd_exp_beta",
    "acd_exp_loglik",
    "acd_weibull_omega",
    "acd_weibull_alpha",
    "acd_weibull_beta",
    "acd_weibull_gamma",
    "acd_weibull_loglik",
    "acd_exp_at_boundary",
    "acd_weibull_at_boundary",
    "lm_jump_count",
    "notes",
)
# What the live path needs to filter a symbol's next day with this day's fits (migration
# 0016; pipeline/signals/fit_state.py); null where there is no fit.
FIT_STATE_COLUMNS: tuple[str, ...] = (
    "garch_omega_scaled",
    "garch_backcast_scaled",
    "acd_exp_psi1",
    "acd_diurnal",
)
TRADE_INTENSITY_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "bucket",
    "bucket_start_ns",
    "count",
    "z",
)

# market_data columns carried onto every per-trade signal row (lineage; the enriched
# view joins on them).
SIGNAL_PASSTHROUGH: tuple[str, ...] = ("kafka_partition", "kafka_offset")

# Input columns the signals computation reads from market_data (plus lineage passthrough).
DAY_TRADE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timestamp_ns",
    "price",
    "size",
    "exchange",
    "trade_id",
    "conditions",
    "trade_date",
    "ns_from_open",
    "kafka_partition",
    "kafka_offset",
)


def _cols(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


# --- offset ledger -------------------------------------------------------------------------

# The topic's identity (pipeline.warehouse.topic_identity): its latest acknowledged epoch
# and the id acknowledged then (no row: epoch 0), (topic); the ledger's rows of it and the id
# they recorded, (topic).
LATEST_EPOCH = (
    f"SELECT topic_epoch, kafka_topic_id FROM {KAFKA_TOPIC_EPOCHS} WHERE kafka_topic = ? "
    "ORDER BY topic_epoch DESC LIMIT 1"
)
LEDGER_TOPIC_ID = f"SELECT count(*), max(kafka_topic_id) FROM {KAFKA_OFFSETS} WHERE kafka_topic = ?"
# Next offsets: the end of the ledger's rows, or where the current epoch's acknowledgement
# says a partition starts (its rows are always at or past that). (topic, topic, epoch[,
# partition]).
_ENDS = (
    f"SELECT kafka_partition, stop_offset FROM {KAFKA_OFFSETS} WHERE kafka_topic = ? "
    f"UNION ALL SELECT kafka_partition, start_offset FROM {KAFKA_TOPIC_EPOCHS} "
    "WHERE kafka_topic = ? AND topic_epoch = ?"
)
NEXT_OFFSET = f"SELECT max(e.stop_offset) FROM ({_ENDS}) AS e WHERE e.kafka_partition = ?"
NEXT_OFFSETS = (
    f"SELECT e.kafka_partition, max(e.stop_offset) FROM ({_ENDS}) AS e "
    "GROUP BY e.kafka_partition ORDER BY e.kafka_partition"
)
TOPIC_EPOCH_COLUMNS: tuple[str, ...] = (
    "kafka_topic",
    "topic_epoch",
    "kafka_partition",
    "kafka_topic_id",
    "start_offset",
    "previous_topic_id",
    "acknowledged_ns",
)
INSERT_TOPIC_EPOCH = (
    f"INSERT INTO {KAFKA_TOPIC_EPOCHS} ({_cols(TOPIC_EPOCH_COLUMNS)}) "
    f"VALUES ({_placeholders(len(TOPIC_EPOCH_COLUMNS))})"
)
LEDGER_COLUMNS: tuple[str, ...] = (
    "kafka_topic",
    "kafka_partition",
    "start_offset",
    "stop_offset",
    "n_messages",
    "n_trades",
    "n_duplicates",
    "n_rejects",
    "n_gaps",
    "min_timestamp_ns",
    "max_timestamp_ns",
    "quality_passed",
    "quality_summary",
    "run_id",
    "committed_ns",
    "n_quotes",
    "n_quote_duplicates",
    "n_aggregates",
    "n_aggregate_duplicates",
    "kafka_topic_id",
    "n_signals",
    "n_signal_duplicates",
    "n_signal_rejects",
)
INSERT_LEDGER = (
    f"INSERT INTO {KAFKA_OFFSETS} ({_cols(LEDGER_COLUMNS)}) "
    f"VALUES ({_placeholders(len(LEDGER_COLUMNS))})"
)
# The acknowledgement of a recreated topic moves its ledger rows to the history, in one
# transaction: (epoch, superseded_ns, topic), then DELETE_LEDGER_OF_TOPIC (topic).
_HISTORY_COLUMNS = (*LEDGER_COLUMNS, "topic_epoch", "superseded_ns")
MOVE_LEDGER_TO_HISTORY = (
    f"INSERT INTO {KAFKA_OFFSETS_HISTORY} ({_cols(_HISTORY_COLUMNS)}) "
    f"SELECT {_cols(LEDGER_COLUMNS)}, ?, ? FROM {KAFKA_OFFSETS} WHERE kafka_topic = ?"
)
DELETE_LEDGER_OF_TOPIC = f"DELETE FROM {KAFKA_OFFSETS} WHERE kafka_topic = ?"
# Readers of every batch ever committed (the quality gate of signals, the ingest horizon)
# read the history too: its trades are in market_data.
ALL_LEDGER = (
    f"(SELECT {_cols(LEDGER_COLUMNS)} FROM {KAFKA_OFFSETS} UNION ALL "
    f"SELECT {_cols(LEDGER_COLUMNS)} FROM {KAFKA_OFFSETS_HISTORY})"
)
PARTITION_PROGRESS = (
    "SELECT kafka_topic, kafka_partition, max(stop_offset), count(*), sum(n_messages), "
    "sum(n_trades), sum(n_duplicates), sum(n_rejects), sum(n_gaps), max(committed_ns) "
    f"FROM {KAFKA_OFFSETS} WHERE (? IS NULL OR kafka_topic = ?) "
    "GROUP BY kafka_topic, kafka_partition ORDER BY kafka_topic, kafka_partition"
)
# Each partition's ledger end and latest SIP time (pipeline.warehouse.finality).
LEDGER_FRONTIER = (
    "SELECT kafka_topic, kafka_partition, max(stop_offset), max(max_timestamp_ns) "
    f"FROM {KAFKA_OFFSETS} GROUP BY kafka_topic, kafka_partition"
)
# Batches whose ingest gate failed and whose trades overlap [start_ns, end_ns).
FAILED_BATCHES = (
    "SELECT kafka_topic, kafka_partition, start_offset, stop_offset "
    f"FROM {ALL_LEDGER} AS l WHERE quality_passed = false "
    "AND max_timestamp_ns >= ? AND min_timestamp_ns < ? "
    "ORDER BY kafka_topic, kafka_partition, start_offset"
)

# --- microbatch load (one transaction) -----------------------------------------------------

_TRADE_INSERT_COLS = (*TRADE_COLUMNS, "loaded_ns")
_TRADE_SELECT = ", ".join(
    "CAST(b.trade_date AS DATE)" if c == "trade_date" else f'b."{c}"' for c in TRADE_COLUMNS
)
# A trade is stored once per dedup key: the anti-join skips keys already in the table (a
# NULL key part equals nothing, as in NOT EXISTS). Written as ANTI JOIN, not NOT EXISTS:
# DuckDB plans that as one hash join built on the batch (RIGHT_ANTI) instead of a
# correlated-subquery rewrite (distinct batch keys, a join, then a mark join back). The
# stored side is limited to the batch's trading days (parameters 2 and 3, its first and
# last trade_date): the key holds the day, so no other day can match, and with that
# constant range the scan skips every row group of other days by its zone map. Without it
# DuckDB scans the whole table for every batch (no join filter is pushed into an anti
# join), so a load's cost grew with everything ever stored: 0.10 s for 20,000 rows next to
# an empty table, 0.49 s next to 20,000,000 rows.
INSERT_TRADES = (
    f"INSERT INTO {MARKET_DATA} ({_cols(_TRADE_INSERT_COLS)}) "
    f"SELECT {_TRADE_SELECT}, ? FROM {BATCH_TRADES} AS b "
    f"ANTI JOIN (SELECT trade_date, symbol, exchange, trf_id, trade_id FROM {MARKET_DATA} "
    "WHERE trade_date >= ? AND trade_date <= ?) AS m "
    "ON m.trade_date = CAST(b.trade_date AS DATE) AND m.symbol = b.symbol "
    "AND m.exchange = b.exchange AND m.trf_id = b.trf_id AND m.trade_id = b.trade_id"
)


def _dated_select(columns: Sequence[str]) -> str:
    # The frames carry trade_date as a datetime64 at local midnight: stored as DATE.
    return ", ".join(
        "CAST(b.trade_date AS DATE)" if c == "trade_date" else f'b."{c}"' for c in columns
    )


# A quote is stored once per (symbol, sip_timestamp_ns, sequence_number) (microbatch.QUOTE_KEY);
# trade_date follows from the SIP time and lets the scan skip other days. A NULL sequence
# number equals nothing, so a quote without one is always inserted (it has no key).
INSERT_QUOTES = (
    f"INSERT INTO {MARKET_QUOTES} ({_cols((*QUOTE_COLUMNS, 'loaded_ns'))}) "
    f"SELECT {_dated_select(QUOTE_COLUMNS)}, ? FROM {BATCH_QUOTES} AS b "
    "WHERE NOT EXISTS ("
    f"SELECT 1 FROM {MARKET_QUOTES} AS m "
    "WHERE m.trade_date = CAST(b.trade_date AS DATE) AND m.symbol = b.symbol "
    "AND m.sip_timestamp_ns = b.sip_timestamp_ns AND m.sequence_number = b.sequence_number"
    ")"
)
# A bar is stored once per (symbol, kind, start_ns) (microbatch.AGGREGATE_KEY).
INSERT_AGGREGATES = (
    f"INSERT INTO {MARKET_AGGREGATES} ({_cols((*AGGREGATE_COLUMNS, 'loaded_ns'))}) "
    f"SELECT {_dated_select(AGGREGATE_COLUMNS)}, ? FROM {BATCH_AGGREGATES} AS b "
    "WHERE NOT EXISTS ("
    f"SELECT 1 FROM {MARKET_AGGREGATES} AS m "
    "WHERE m.trade_date = CAST(b.trade_date AS DATE) AND m.symbol = b.symbol "
    "AND m.kind = b.kind AND m.start_ns = b.start_ns"
    ")"
)
# A live record is stored once per input key (microbatch.LIVE_KEY): the at-least-once producer
# repeats records after a crash or a rebalance. As for trades, an ANTI JOIN on a stored side
# limited to the batch's days (parameters 2 and 3): a repeat is the same trade, so the same day.
_LIVE_SELECT = ", ".join(f'b."{c}"' for c in LIVE_SIGNAL_COLUMNS)
INSERT_LIVE_SIGNALS = (
    f"INSERT INTO {LIVE_SIGNALS} ({_cols((*LIVE_SIGNAL_COLUMNS, 'loaded_ns'))}) "
    f"SELECT {_LIVE_SELECT}, ? FROM {BATCH_LIVE} AS b "
    f"ANTI JOIN (SELECT input_topic, input_partition, input_offset FROM {LIVE_SIGNALS} "
    "WHERE date >= ? AND date <= ?) AS m "
    "ON m.input_topic = b.input_topic AND m.input_partition = b.input_partition "
    "AND m.input_offset = b.input_offset"
)
# A refused input record is stored once per input key too (a small table: no day to prune by).
INSERT_LIVE_REJECTS = (
    f"INSERT INTO {LIVE_SIGNAL_REJECTS} ({_cols((*LIVE_REJECT_COLUMNS, 'loaded_ns'))}) "
    f"SELECT {_cols(LIVE_REJECT_COLUMNS)}, ? FROM {BATCH_LIVE_REJECTS} AS b "
    f"WHERE NOT EXISTS (SELECT 1 FROM {LIVE_SIGNAL_REJECTS} AS m "
    "WHERE m.input_topic = b.input_topic AND m.input_partition = b.input_partition "
    "AND m.input_offset = b.input_offset)"
)
INSERT_REJECTS = (
    f"INSERT INTO {REJECTS} ({_cols((*REJECT_COLUMNS, 'loaded_ns'))}) "
    f"SELECT {_cols(REJECT_COLUMNS)}, ? FROM {BATCH_REJECTS}"
)
INSERT_GAPS = (
    f"INSERT INTO {FEED_GAPS} ({_cols((*GAP_COLUMNS, 'loaded_ns'))}) "
    f"SELECT {_cols(GAP_COLUMNS)}, ? FROM {BATCH_GAPS}"
)
QUALITY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "suite",
    "target",
    "expectation",
    "passed",
    "observed",
    "checked_ns",
)
INSERT_QUALITY = (
    f"INSERT INTO {QUALITY_RESULTS} ({_cols(QUALITY_COLUMNS)}) "
    f"VALUES ({_placeholders(len(QUALITY_COLUMNS))})"
)

# --- signals -------------------------------------------------------------------------------

READ_DAY_TRADES = (
    f"SELECT {_cols(DAY_TRADE_COLUMNS)} FROM {MARKET_DATA} "
    "WHERE trade_date = ? AND (in_regular_hours OR NOT ?) "
    # Stable order (statistics.md 1): by symbol and time; equal stamps keep arrival order.
    "ORDER BY symbol, timestamp_ns, kafka_partition, kafka_offset"
)
DELETE_DAY: dict[str, str] = {
    t: f"DELETE FROM {t} WHERE date = ?"
    for t in (TRADING_SIGNALS, SYMBOL_DAY_METRICS, TRADE_INTENSITY)
}
_PROVENANCE = ("kernel_version", "run_id")
INSERT_TRADING_SIGNALS = (
    f"INSERT INTO {TRADING_SIGNALS} ({_cols((*TRADING_SIGNALS_COLUMNS, *_PROVENANCE))}) "
    f"SELECT {_cols(TRADING_SIGNALS_COLUMNS)}, ?, ? FROM {FRAME}"
)
_SDM_PROVENANCE = ("kernel_version", "params", "input_offsets", "run_id")
_SDM_INSERT_COLS = (*SYMBOL_DAY_METRICS_COLUMNS, *FIT_STATE_COLUMNS)
INSERT_SYMBOL_DAY_METRICS = (
    f"INSERT INTO {SYMBOL_DAY_METRICS} ({_cols((*_SDM_INSERT_COLS, *_SDM_PROVENANCE))}) "
    f"SELECT {_cols(_SDM_INSERT_COLS)}, ?, ?, input_offsets, ? FROM {FRAME}"
)
INSERT_TRADE_INTENSITY = (
    f"INSERT INTO {TRADE_INTENSITY} ({_cols((*TRADE_INTENSITY_COLUMNS, *_PROVENANCE))}) "
    f"SELECT {_cols(TRADE_INTENSITY_COLUMNS)}, ?, ? FROM {FRAME}"
)
SIGNAL_RUN_COLUMNS: tuple[str, ...] = (
    "run_id",
    "date",
    "n_symbols",
    "n_trades",
    "n_buckets",
    "kernel_version",
    "params",
    "input_offsets",
    "content_hash",
    "quality_passed",
    "quality_summary",
    "ingested_through_ns",
    "final",
    "computed_ns",
    "ledger_ends",
)
NEWEST_RUN_OF_DAY = f"SELECT max(computed_ns) FROM {SIGNAL_RUNS} WHERE date = ?"
INSERT_SIGNAL_RUN = (
    f"INSERT INTO {SIGNAL_RUNS} ({_cols(SIGNAL_RUN_COLUMNS)}) "
    f"VALUES ({_placeholders(len(SIGNAL_RUN_COLUMNS))})"
)

# --- named reads (commands, demo summary, sensor) ------------------------------------------

# A symbol-day's n and fits as the live path reads them (the "symbol_day_priors" read).
PRIOR_COLUMNS: tuple[str, ...] = (
    "symbol",
    "date",
    "n_returns",
    "garch_scale",
    "garch_omega_scaled",
    "garch_alpha",
    "garch_beta",
    "garch_backcast_scaled",
    "acd_exp_omega",
    "acd_exp_alpha",
    "acd_exp_beta",
    "acd_exp_psi1",
    "acd_diurnal",
    "run_id",
)
# Per-trade batch columns that reconcile compares with the live records.
RECONCILE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "seq",
    "timestamp_ns",
    "price",
    "log_return",
    "lee_mykland_stat",
    "lm_xi",
    "jump_detected",
    "garch_sigma2",
    "standardized_return",
    "bns_stat",
    "conditional_duration",
    "acd_surprise",
    "trade_intensity_zscore",
    "trading_signal",
    "kafka_partition",
    "kafka_offset",
    "run_id",
)
GAP_STATE_COLUMNS: tuple[str, ...] = (
    "subscription",
    "gap_id",
    "repair",
    "repaired",
    "backfilled",
    "last_before_ns",
    "first_after_ns",
    "detected_ns",
    "repaired_ns",
    "repair_detail",
)
SELECT_MIGRATIONS = (
    f"SELECT version, name, checksum, applied_ns FROM {SCHEMA_MIGRATIONS} ORDER BY version"
)
COUNT: dict[str, str] = {t: f"SELECT count(*) FROM {t}" for t in TABLES}

READS: dict[str, str] = {
    # One partition's batches that inserted trades, from an offset on (stale_signals_sensor):
    # (topic, partition, from offset).
    "trade_batches_after": (
        "SELECT kafka_topic, kafka_partition, stop_offset, min_timestamp_ns, max_timestamp_ns "
        f"FROM {KAFKA_OFFSETS} WHERE kafka_topic = ? AND kafka_partition = ? "
        "AND start_offset >= ? AND n_trades > 0 ORDER BY start_offset"
    ),
    # Ledger rows, newest first: (topic or NULL, limit).
    "ledger": (
        f"SELECT {_cols(LEDGER_COLUMNS)} FROM {KAFKA_OFFSETS} "
        "WHERE (? IS NULL OR kafka_topic = ?) ORDER BY committed_ns DESC LIMIT ?"
    ),
    # Latest run per day: (first day, last day).
    "signal_runs_latest": (
        f"SELECT {_cols(SIGNAL_RUN_COLUMNS)} FROM {SIGNAL_RUNS} WHERE date BETWEEN ? AND ? "
        "QUALIFY row_number() OVER (PARTITION BY date ORDER BY computed_ns DESC) = 1 ORDER BY date"
    ),
    # Per day: trades and regular-hours trades loaded. (first day, last day).
    "trades_per_day": (
        "SELECT trade_date, count(*) AS n_trades, "
        "count(*) FILTER (WHERE in_regular_hours) AS n_rth, "
        f"count(DISTINCT symbol) AS n_symbols FROM {MARKET_DATA} "
        "WHERE trade_date BETWEEN ? AND ? GROUP BY trade_date ORDER BY trade_date"
    ),
    # Duplicate dedup keys in market_data (must be empty): ().
    "duplicate_trade_keys": (
        f"SELECT symbol, trade_date, exchange, trf_id, trade_id, count(*) AS n FROM {MARKET_DATA} "
        "GROUP BY ALL HAVING count(*) > 1"
    ),
    # Jumps of a day, strongest first: (day, limit).
    "jumps_of_day": (
        "SELECT symbol, timestamp_ns, price, log_return, lee_mykland_stat, trading_signal "
        f"FROM {TRADING_SIGNALS} WHERE date = ? AND jump_detected "
        "ORDER BY abs(lee_mykland_stat) DESC LIMIT ?"
    ),
    # Signal counts of a day: (day).
    "signal_counts_of_day": (
        f"SELECT trading_signal, count(*) AS n FROM {TRADING_SIGNALS} WHERE date = ? "
        "GROUP BY trading_signal ORDER BY trading_signal"
    ),
    # Rejects by reason: (limit).
    "rejects_by_reason": (
        f"SELECT stage, reason, count(*) AS n FROM {REJECTS} GROUP BY stage, reason "
        "ORDER BY n DESC LIMIT ?"
    ),
    # Kafka append -> warehouse commit latency quantiles, seconds: (q1, q2).
    "append_to_commit_latency": (
        "SELECT quantile_cont((loaded_ns - kafka_ts_ns) / 1e9, ?) AS q1, "
        "quantile_cont((loaded_ns - kafka_ts_ns) / 1e9, ?) AS q2, count(*) AS n "
        f"FROM {MARKET_DATA} WHERE kafka_ts_ns > 0"
    ),
    # Completeness of a day per symbol: (day).
    "day_completeness": (
        "SELECT symbol, trade_date, n_trades, n_rth_trades, rth_minutes_with_trades, rth_minutes, "
        f"n_gaps, gap_seconds, n_gaps_repaired FROM {DAY_COMPLETENESS} WHERE trade_date = ? "
        "ORDER BY symbol"
    ),
    # The state of every feed gap detected since a time (latest record per gap_id, see
    # feed_gap_state), oldest first: (since_ns).
    "feed_gap_states": (
        f"SELECT {_cols(GAP_STATE_COLUMNS)} FROM {FEED_GAP_STATE} WHERE detected_ns >= ? "
        "ORDER BY detected_ns, subscription"
    ),
    # Each symbol's most recent day in [day - max age, day) with a regular-hours return: its
    # n and fits, the live path's priors for day (pipeline/live/priors.py): (day, earliest day).
    "symbol_day_priors": (
        f"SELECT {_cols(PRIOR_COLUMNS)} FROM {SYMBOL_DAY_METRICS} "
        "WHERE date < ? AND date >= ? AND n_returns > 0 "
        "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY date DESC) = 1 ORDER BY symbol"
    ),
    # A day's published per-trade signals with their input offsets (reconcile): (day).
    "trading_signals_of_day": (
        f"SELECT {_cols(RECONCILE_COLUMNS)} FROM {TRADING_SIGNALS} WHERE date = ? "
        "ORDER BY symbol, seq"
    ),
    # Quality verdicts, newest first: (suite or NULL, limit).
    "quality_results": (
        f"SELECT {_cols(QUALITY_COLUMNS)} FROM {QUALITY_RESULTS} WHERE (? IS NULL OR suite = ?) "
        "ORDER BY checked_ns DESC LIMIT ?"
    ),
}

# --- audits (DuckDB files: `microstructure faults load`, tests) ------------------------------
# Not in READS: those are the named reads every backend answers.

# Every stored trade's dedup key: ().
TRADE_KEYS = (
    f"SELECT symbol, trade_date, exchange, trf_id, trade_id FROM {MARKET_DATA} "
    "ORDER BY symbol, trade_date, exchange, trf_id, trade_id"
)
# The published signal rows of a day, provenance columns left out: (day).
SIGNALS_OF_DAY: dict[str, str] = {
    TRADING_SIGNALS: (
        f"SELECT {_cols(TRADING_SIGNALS_COLUMNS)} FROM {TRADING_SIGNALS} WHERE date = ? "
        "ORDER BY symbol, seq"
    ),
    SYMBOL_DAY_METRICS: (
        f"SELECT {_cols(SYMBOL_DAY_METRICS_COLUMNS)} FROM {SYMBOL_DAY_METRICS} WHERE date = ? "
        "ORDER BY symbol"
    ),
    TRADE_INTENSITY: (
        f"SELECT {_cols(TRADE_INTENSITY_COLUMNS)} FROM {TRADE_INTENSITY} WHERE date = ? "
        "ORDER BY symbol, bucket"
    ),
}
