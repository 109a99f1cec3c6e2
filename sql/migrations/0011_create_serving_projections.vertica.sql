-- Vertica twin of 0011_create_serving_projections.sql: the same view, and one projection for
-- the MCP server's direct reads (a SELECT-only user in micro_mcp_pool, docs/vertica.md).
-- Differences, and why:
-- * market_data needs nothing new: its superprojection (0001's twin) is already ORDER BY
--   symbol, timestamp_ns and SEGMENTED BY HASH(symbol), so a per-symbol time window of trades
--   is a range scan on the node that holds the symbol.
-- * trading_signals' superprojection is ORDER BY symbol, date, seq (0004's twin), so a time
--   window of one symbol's signals would sort whole symbol-days. trading_signals_by_time holds
--   the same rows and columns ordered by (symbol, timestamp_ns) and segmented like the table
--   (a symbol's signals stay on the node with its trades), so the window is a range scan.
--   Every column is in it: the server's pages need them all, and a partitioned table's
--   partition column (date) must be in each of its projections. KSAFE is omitted, so the
--   database's K-safety applies (buddies named trading_signals_by_time_b0/_b1 from K=1).
-- * A projection created on a table that holds data serves no query until it is refreshed
--   (Vertica docs, "Refreshing projections"). REFRESH('trading_signals') refreshes the table's
--   projections in the foreground, so the migration ends with the projection in use;
--   START_REFRESH() would return at once and refresh every table of the schema in the
--   background. REFRESH of up-to-date projections does nothing, so a re-run is harmless.
--   Refreshed from scratch, the projection answers no historical query at an epoch before the
--   refresh; such queries (AT EPOCH n) read the superprojection instead.
-- * market_data_rejects_served is the only way the MCP role sees rejects: SELECT on a view
--   is checked against the view owner's privileges on the base table, so the role reads the
--   160-character prefix of raw and never the LONG VARCHAR payload.
-- Idempotent (IF NOT EXISTS, CREATE OR REPLACE VIEW): Vertica DDL auto-commits (see 0001's
-- twin). Whether a re-run recognises the existing buddies of a K-safe projection by their
-- base name is for the opt-in suite on a real instance (make test-vertica) to prove.
CREATE PROJECTION IF NOT EXISTS trading_signals_by_time (
    symbol,
    date,
    seq,
    timestamp_ns,
    price,
    size,
    log_return,
    lee_mykland_stat,
    lm_xi,
    jump_detected,
    garch_sigma2,
    standardized_return,
    bns_stat,
    conditional_duration,
    acd_surprise,
    trade_intensity_zscore,
    trading_signal,
    kafka_partition,
    kafka_offset,
    kernel_version,
    run_id
) AS
SELECT
    symbol,
    date,
    seq,
    timestamp_ns,
    price,
    size,
    log_return,
    lee_mykland_stat,
    lm_xi,
    jump_detected,
    garch_sigma2,
    standardized_return,
    bns_stat,
    conditional_duration,
    acd_surprise,
    trade_intensity_zscore,
    trading_signal,
    kafka_partition,
    kafka_offset,
    kernel_version,
    run_id
FROM trading_signals
ORDER BY symbol, timestamp_ns
SEGMENTED BY HASH(symbol) ALL NODES;

SELECT REFRESH('trading_signals');

CREATE OR REPLACE VIEW market_data_rejects_served AS
SELECT
    stage,
    reason,
    symbol,
    receipt_ns,
    loaded_ns,
    kafka_partition,
    kafka_offset,
    LEFT(raw, 160) AS raw
FROM market_data_rejects;
