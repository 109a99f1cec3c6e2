-- Verdicts of the quality gates (pipeline/quality.py), one row per expectation evaluated, so
-- the MCP server and the UI can say why a batch or a day was flagged or blocked.
CREATE TABLE IF NOT EXISTS quality_results (
    run_id VARCHAR NOT NULL,               -- Dagster run (or command) that evaluated the suite
    suite VARCHAR NOT NULL,                -- ingest | signals
    target VARCHAR NOT NULL,               -- offset range "topic:partition:[start,stop)" or a date
    expectation VARCHAR NOT NULL,          -- GX expectation type and column
    passed BOOLEAN NOT NULL,
    observed VARCHAR,                      -- JSON: observed value / unexpected count and sample
    checked_ns BIGINT NOT NULL
);
