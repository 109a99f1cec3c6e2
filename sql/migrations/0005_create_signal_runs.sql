-- One row per published signals run of a day (history is kept: hourly provisional runs, then
-- the final one). The current run of a day is the latest computed_ns; every row of
-- trading_signals / symbol_day_metrics / trade_intensity carries its run_id.
CREATE TABLE IF NOT EXISTS signal_runs (
    run_id VARCHAR NOT NULL,
    date DATE NOT NULL,
    n_symbols BIGINT NOT NULL,
    n_trades BIGINT NOT NULL,
    n_buckets BIGINT NOT NULL,
    kernel_version VARCHAR NOT NULL,
    params VARCHAR NOT NULL,               -- JSON
    input_offsets VARCHAR NOT NULL,        -- JSON {kafka_partition: [first_offset, last_offset]} of the trades read
    content_hash VARCHAR NOT NULL,         -- hash of the published rows (deterministic replay)
    quality_passed BOOLEAN,                -- signal suite verdict; null = no suite ran
    quality_summary VARCHAR,               -- JSON: failed expectations, if any
    ingested_through_ns BIGINT,            -- latest SIP time loaded when computed (basis of final)
    final BOOLEAN NOT NULL,                -- ingest had passed the close + grace when computed
    computed_ns BIGINT NOT NULL,
    PRIMARY KEY (run_id, date)
);
