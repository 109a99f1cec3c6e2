-- Vertica twin of 0015_create_live_signals.sql: the same tables, columns, order and meaning.
-- Differences, and why:
-- * Sized VARCHARs, INT for BIGINT/INTEGER, FLOAT for DOUBLE (see 0001's twin); params is the
--   parameter set's JSON (VARCHAR(65000), as symbol_day_metrics.params); raw as
--   market_data_rejects.raw.
-- * live_signals is laid out as trading_signals_by_time (0011's twin): ORDER BY symbol,
--   timestamp_ns (a symbol's newest live signal and a time window of them are range scans),
--   SEGMENTED BY HASH(symbol) (on the node with the symbol's trades), PARTITION BY date with
--   CALENDAR_HIERARCHY_DAY (retention drops whole days).
-- * live_signal_rejects is small (one row per refused input record): UNSEGMENTED ALL NODES,
--   ordered by its input key, which the load's anti-join looks up.
-- DDL auto-commits in Vertica: CREATE TABLE IF NOT EXISTS and ADD COLUMN IF NOT EXISTS make a
-- re-run after a crash harmless.
CREATE TABLE IF NOT EXISTS live_signals (
    symbol VARCHAR(16) NOT NULL,
    date DATE NOT NULL,
    seq INT NOT NULL,
    timestamp_ns INT NOT NULL,
    price FLOAT NOT NULL,
    size INT NOT NULL,
    log_return FLOAT,
    lee_mykland_stat FLOAT,
    lm_xi FLOAT,
    lm_n INT,
    lm_n_rule VARCHAR(16),
    jump_detected BOOLEAN NOT NULL,
    garch_sigma2 FLOAT,
    standardized_return FLOAT,
    bns_stat FLOAT,
    conditional_duration FLOAT,
    acd_surprise FLOAT,
    trade_intensity_zscore FLOAT,
    trading_signal VARCHAR(4) NOT NULL,
    in_order BOOLEAN,
    garch_params VARCHAR(256),
    acd_params VARCHAR(256),
    kernel_version VARCHAR(64) NOT NULL,
    params VARCHAR(65000),
    input_topic VARCHAR(249) NOT NULL,
    input_partition INT NOT NULL,
    input_offset INT NOT NULL,
    emitted_ns INT,
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL,
    loaded_ns INT NOT NULL
)
ORDER BY symbol, timestamp_ns
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2);

CREATE TABLE IF NOT EXISTS live_signal_rejects (
    stage VARCHAR(16) NOT NULL,
    reason VARCHAR(1024) NOT NULL,
    raw LONG VARCHAR(16000000),
    input_topic VARCHAR(249) NOT NULL,
    input_partition INT NOT NULL,
    input_offset INT NOT NULL,
    kernel_version VARCHAR(64),
    emitted_ns INT,
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL,
    loaded_ns INT NOT NULL
)
ORDER BY input_topic, input_partition, input_offset
UNSEGMENTED ALL NODES;

-- Ledger counts of the signals topic's batches; see the portable file.
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_signals INT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_signal_duplicates INT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_signal_rejects INT;
ALTER TABLE kafka_offsets_history ADD COLUMN IF NOT EXISTS n_signals INT;
ALTER TABLE kafka_offsets_history ADD COLUMN IF NOT EXISTS n_signal_duplicates INT;
ALTER TABLE kafka_offsets_history ADD COLUMN IF NOT EXISTS n_signal_rejects INT;
