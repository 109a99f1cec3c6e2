-- Vertica twin of 0007_create_quality_results.sql: same columns, same order, same meaning.
-- Differences, and why: VARCHAR needs a size in Vertica (JSON observations in VARCHAR(65000)),
-- INT for BIGINT; ordered and segmented for the newest-first reads of one suite.
-- Idempotent (IF NOT EXISTS): Vertica DDL auto-commits (see 0001's twin).
CREATE TABLE IF NOT EXISTS quality_results (
    run_id VARCHAR(128) NOT NULL,          -- Dagster run (or command) that evaluated the suite
    suite VARCHAR(16) NOT NULL,            -- ingest | signals
    target VARCHAR(512) NOT NULL,          -- offset range "topic:partition:[start,stop)" or a date
    expectation VARCHAR(512) NOT NULL,     -- GX expectation type and column
    passed BOOLEAN NOT NULL,
    observed VARCHAR(65000),               -- JSON: observed value / unexpected count and sample
    checked_ns INT NOT NULL
)
ORDER BY suite, checked_ns
SEGMENTED BY HASH(run_id) ALL NODES;
