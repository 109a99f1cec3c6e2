-- The MCP server's read-only role: SELECT on what its five tools read, nothing else.
-- Run as dbadmin after the migrations (microstructure warehouse migrate) and before
-- mcp_user_and_pool.sql, which creates the user and hands it this role. See docs/vertica.md.
-- GRANT is idempotent; CREATE ROLE reports an error if the role exists, which is harmless.
-- No INSERT, UPDATE, DELETE, TRUNCATE or DDL is granted, and the role gets no access to
-- market_data_rejects (raw payloads) or schema_migrations.
CREATE ROLE micro_mcp_reader;

GRANT USAGE ON SCHEMA public TO micro_mcp_reader;

GRANT SELECT ON TABLE
market_data,
trading_signals,
symbol_day_metrics,
trade_intensity,
signal_runs,
kafka_offsets,
feed_gaps,
quality_results,
enriched_market_data
TO micro_mcp_reader;
