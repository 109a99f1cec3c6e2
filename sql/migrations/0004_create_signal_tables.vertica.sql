-- Vertica twin of 0004_create_signal_tables.sql: same tables, columns, order and meaning.
-- Differences, and why:
-- * SEGMENTED BY HASH(symbol), like market_data: the UDx writes each symbol-day on the node
--   that holds its trades, and the view enriched_market_data joins node-locally.
-- * ORDER BY symbol, date (and seq / bucket): reads are per symbol and day, in print order.
-- * PARTITION BY date with CALENDAR_HIERARCHY_DAY: publishing replaces a whole day, and
--   retention drops whole days with DROP_PARTITIONS.
-- * Sized VARCHARs (JSON in VARCHAR(65000)), FLOAT for DOUBLE, INT for BIGINT/INTEGER.
-- Idempotent (IF NOT EXISTS): Vertica DDL auto-commits (see 0001's twin).
CREATE TABLE IF NOT EXISTS trading_signals (
    symbol VARCHAR(16) NOT NULL,
    date DATE NOT NULL,
    seq INT NOT NULL,                      -- position of the print in the partition (stable order)
    timestamp_ns INT NOT NULL,
    price FLOAT NOT NULL,
    size INT NOT NULL,
    log_return FLOAT,
    lee_mykland_stat FLOAT,
    lm_xi FLOAT,
    jump_detected BOOLEAN NOT NULL,
    garch_sigma2 FLOAT,
    standardized_return FLOAT,
    bns_stat FLOAT,
    conditional_duration FLOAT,
    acd_surprise FLOAT,
    trade_intensity_zscore FLOAT,
    trading_signal VARCHAR(4) NOT NULL,    -- BUY | SELL | HOLD (rule v1)
    kafka_partition INT,
    kafka_offset INT,
    kernel_version VARCHAR(64) NOT NULL,
    run_id VARCHAR(128) NOT NULL
)
ORDER BY symbol, date, seq
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2);

CREATE TABLE IF NOT EXISTS symbol_day_metrics (
    symbol VARCHAR(16) NOT NULL,
    date DATE NOT NULL,
    n_trades INT NOT NULL,
    n_returns INT NOT NULL,
    first_timestamp_ns INT,
    last_timestamp_ns INT,
    vwap FLOAT,
    bns_m INT,
    bns_rv FLOAT,
    bns_bv FLOAT,
    bns_tq FLOAT,
    bns_qq FLOAT,
    bns_rj FLOAT,
    bns_z FLOAT,
    bns_p_value FLOAT,
    bns_jump BOOLEAN,
    garch_omega FLOAT,
    garch_alpha FLOAT,
    garch_beta FLOAT,
    garch_loglik FLOAT,
    garch_scale FLOAT,
    garch_converged BOOLEAN,
    acd_exp_omega FLOAT,
    acd_exp_alpha FLOAT,
    acd_exp_beta FLOAT,
    acd_exp_loglik FLOAT,
    acd_weibull_omega FLOAT,
    acd_weibull_alpha FLOAT,
    acd_weibull_beta FLOAT,
    acd_weibull_gamma FLOAT,
    acd_weibull_loglik FLOAT,
    acd_exp_at_boundary BOOLEAN,
    acd_weibull_at_boundary BOOLEAN,
    lm_jump_count INT NOT NULL,
    notes VARCHAR(4096),
    kernel_version VARCHAR(64) NOT NULL,
    params VARCHAR(65000) NOT NULL,        -- JSON of every parameter and the signal rule
    input_offsets VARCHAR(65000) NOT NULL, -- JSON {kafka_partition: [first_offset, last_offset]} of its trades
    run_id VARCHAR(128) NOT NULL
)
ORDER BY symbol, date
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2);

CREATE TABLE IF NOT EXISTS trade_intensity (
    symbol VARCHAR(16) NOT NULL,
    date DATE NOT NULL,
    bucket INT NOT NULL,                   -- 0..389
    bucket_start_ns INT NOT NULL,
    count INT NOT NULL,
    z FLOAT,
    kernel_version VARCHAR(64) NOT NULL,
    run_id VARCHAR(128) NOT NULL
)
ORDER BY symbol, date, bucket
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2);
