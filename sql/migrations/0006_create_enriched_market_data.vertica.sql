-- Vertica twin of 0006_create_enriched_market_data.sql: same columns, same rows.
-- Difference, and why: the join also matches symbol and day. A signal row and its trade
-- always agree on both, so the result is the same, but with both tables segmented by
-- HASH(symbol) and partitioned by day the optimizer can join node-locally (no resegmentation
-- across the cluster) and prune day partitions when the caller filters on trade_date.
CREATE OR REPLACE VIEW enriched_market_data AS
SELECT
    m.symbol,
    m.timestamp_ns,
    m.price,
    m.size,
    m.exchange,
    m.trade_id,
    m.conditions,
    m.trade_date,
    m.in_regular_hours,
    m.kafka_partition,
    m.kafka_offset,
    s.log_return,
    s.lee_mykland_stat,
    s.lm_xi,
    s.jump_detected,
    s.garch_sigma2,
    s.standardized_return,
    s.bns_stat,
    s.conditional_duration,
    s.acd_surprise,
    s.trade_intensity_zscore,
    s.trading_signal,
    s.kernel_version
FROM market_data AS m
LEFT JOIN trading_signals AS s
    ON
        m.symbol = s.symbol
        AND m.trade_date = s.date
        AND m.kafka_partition = s.kafka_partition
        AND m.kafka_offset = s.kafka_offset;
