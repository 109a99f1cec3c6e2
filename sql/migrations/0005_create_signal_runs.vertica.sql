-- Vertica twin of 0005_create_signal_runs.sql: same columns, same order, same meaning.
-- Differences, and why: sized VARCHARs, INT for BIGINT; a few rows a day, so one replica per
-- node (UNSEGMENTED); partitioned by date so retention drops a day's runs with its signals.
-- Idempotent (IF NOT EXISTS): Vertica DDL auto-commits (see 0001's twin).
CREATE TABLE IF NOT EXISTS signal_runs (
    run_id VARCHAR(128) NOT NULL,
    date DATE NOT NULL,
    n_symbols INT NOT NULL,
    n_trades INT NOT NULL,
    kernel_version VARCHAR(64) NOT NULL,
    params VARCHAR(65000) NOT NULL,        -- JSON
    input_offsets VARCHAR(65000) NOT NULL, -- JSON {partition: [min_offset, max_offset]} of the trades read
    content_hash VARCHAR(128) NOT NULL,    -- hash of the published rows (deterministic replay)
    quality_passed BOOLEAN NOT NULL,
    final BOOLEAN NOT NULL,                -- ingest had passed the close + grace when computed
    computed_ns INT NOT NULL
)
ORDER BY date, run_id
UNSEGMENTED ALL NODES
PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2);
