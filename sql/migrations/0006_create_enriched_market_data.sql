-- Trades joined with their signals (regular-hours prints carry signals; others have nulls).
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
    ON m.kafka_partition = s.kafka_partition AND m.kafka_offset = s.kafka_offset;
