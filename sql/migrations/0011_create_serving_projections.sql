-- What the MCP server may show of rejected records. The raw payload is untrusted and can be
-- large, so the view keeps its first 160 characters; the server reads the view, never the
-- table (on Vertica its role is granted SELECT on the view only: sql/vertica/mcp_grants.sql).
-- DuckDB has no projections: the sort orders the Vertica twin adds as projections are what the
-- DuckDB read side builds in its own serving copy. So this file holds the view only.
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
