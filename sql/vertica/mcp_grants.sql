-- The MCP server's read-only role: SELECT on what its tools read, nothing else.
-- Run as dbadmin after the migrations (microstructure warehouse migrate) and before
-- mcp_user_and_pool.sql, which creates the user and hands it this role. See docs/vertica.md.
-- GRANT is idempotent; CREATE ROLE reports an error if the role exists, which is harmless.
-- No INSERT, UPDATE, DELETE, TRUNCATE or DDL is granted, and the role gets no access to the
-- rejects table itself (untrusted raw payloads, some megabytes long) or schema_migrations.
CREATE ROLE micro_mcp_reader;

GRANT USAGE ON SCHEMA public TO micro_mcp_reader;

-- Tables (GRANT (table) syntax). signal_evaluation feeds get_signal_evaluation; live_signals
-- (migration 0015) the live path's provisional rows of get_real_time_data and
-- get_trading_signals (not live_signal_rejects: raw input payloads, as the rejects table).
GRANT SELECT ON TABLE
market_data,
trading_signals,
symbol_day_metrics,
trade_intensity,
signal_runs,
kafka_offsets,
feed_gaps,
quality_results,
signal_evaluation,
live_signals
TO micro_mcp_reader;

-- Views (GRANT (view) syntax: no TABLE keyword). Vertica checks a view's base tables against
-- the view owner's privileges, not the reader's: market_data_rejects_served (0011) is how the
-- role sees rejects, with raw cut to 160 characters; day_completeness only aggregates tables
-- the role already reads.
GRANT SELECT ON
enriched_market_data,
day_completeness,
market_data_rejects_served
TO micro_mcp_reader;
