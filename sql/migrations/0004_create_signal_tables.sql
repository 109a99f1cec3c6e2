-- Outputs of udx.kernels.symbol_day, columns as in the statistics spec's output contract
-- (section 5), plus provenance (kernel_version, run_id) and the link back to market_data.
CREATE TABLE IF NOT EXISTS trading_signals (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    seq INTEGER NOT NULL,                  -- position of the print in the partition (stable order)
    timestamp_ns BIGINT NOT NULL,
    price DOUBLE NOT NULL,
    size BIGINT NOT NULL,
    log_return DOUBLE,
    lee_mykland_stat DOUBLE,
    lm_xi DOUBLE,
    jump_detected BOOLEAN NOT NULL,
    garch_sigma2 DOUBLE,
    standardized_return DOUBLE,
    bns_stat DOUBLE,
    conditional_duration DOUBLE,
    acd_surprise DOUBLE,
    trade_intensity_zscore DOUBLE,
    trading_signal VARCHAR NOT NULL,       -- BUY | SELL | HOLD (rule v1)
    kafka_partition INTEGER,
    kafka_offset BIGINT,
    kernel_version VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS symbol_day_metrics (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    n_trades BIGINT NOT NULL,
    n_returns BIGINT NOT NULL,
    first_timestamp_ns BIGINT,
    last_timestamp_ns BIGINT,
    vwap DOUBLE,
    bns_m BIGINT,
    bns_rv DOUBLE,
    bns_bv DOUBLE,
    bns_tq DOUBLE,
    bns_qq DOUBLE,
    bns_rj DOUBLE,
    bns_z DOUBLE,
    bns_p_value DOUBLE,
    bns_jump BOOLEAN,
    garch_omega DOUBLE,
    garch_alpha DOUBLE,
    garch_beta DOUBLE,
    garch_loglik DOUBLE,
    garch_scale DOUBLE,
    garch_converged BOOLEAN,
    acd_exp_omega DOUBLE,
    acd_exp_alpha DOUBLE,
    acd_exp_beta DOUBLE,
    acd_exp_loglik DOUBLE,
    acd_weibull_omega DOUBLE,
    acd_weibull_alpha DOUBLE,
    acd_weibull_beta DOUBLE,
    acd_weibull_gamma DOUBLE,
    acd_weibull_loglik DOUBLE,
    acd_exp_at_boundary BOOLEAN,
    acd_weibull_at_boundary BOOLEAN,
    lm_jump_count BIGINT NOT NULL,
    notes VARCHAR,
    kernel_version VARCHAR NOT NULL,
    params VARCHAR NOT NULL,               -- JSON of every parameter and the signal rule
    input_offsets VARCHAR NOT NULL,        -- JSON {kafka_partition: [first_offset, last_offset]} of its trades
    run_id VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS trade_intensity (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    bucket INTEGER NOT NULL,               -- 0..389
    bucket_start_ns BIGINT NOT NULL,
    count BIGINT NOT NULL,
    z DOUBLE,
    kernel_version VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
);
