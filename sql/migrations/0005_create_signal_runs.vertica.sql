-- Vertica twin of 0005_create_signal_runs.sql: same columns, same order, same meaning.
-- Differences, and why: sized VARCHARs, INT for BIGINT; the key is ENABLED (Vertica does not
-- enforce keys unless asked); a few rows a day, so one replica per node (UNSEGMENTED);
-- partitioned by date so retention drops a day's runs together with its signals.
-- Idempotent (IF NOT EXISTS): Vertica DDL auto-commits (see 0001's twin).
CREATE TABLE IF NOT EXISTS signal_runs (
    run_id VARCHAR(128) NOT NULL,
    date DATE NOT NULL,
    n_symbols INT NOT NULL,
    n_trades INT NOT NULL,
    n_buckets INT NOT NULL,
    kernel_version VARCHAR(64) NOT NULL,
    params VARCHAR(65000) NOT NULL,        -- JSON
    input_offsets VARCHAR(65000) NOT NULL, -- JSON {kafka_partition: [first_offset, last_offset]} of the trades read
    content_hash VARCHAR(128) NOT NULL,    -- hash of the published rows (deterministic replay)
    quality_passed BOOLEAN,                -- signal suite verdict; null = no suite ran
    quality_summary VARCHAR(65000),        -- JSON: failed expectations, if any
    ingested_through_ns INT,               -- latest SIP time loaded when computed (basis of final)
    final BOOLEAN NOT NULL,                -- ingest had passed the close + grace when computed
    computed_ns INT NOT NULL,
    CONSTRAINT pk_signal_runs PRIMARY KEY (run_id, date) ENABLED
)
ORDER BY date, run_id
UNSEGMENTED ALL NODES
PARTITION BY date GROUP BY CALENDAR_HIERARCHY_DAY(date, 2, 2);
