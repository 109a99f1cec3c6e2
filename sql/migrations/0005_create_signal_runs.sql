-- One row per published (date) signals run: what was computed, from what, by which kernel.
CREATE TABLE IF NOT EXISTS signal_runs (
    run_id VARCHAR NOT NULL,
    date DATE NOT NULL,
    n_symbols BIGINT NOT NULL,
    n_trades BIGINT NOT NULL,
    kernel_version VARCHAR NOT NULL,
    params VARCHAR NOT NULL,               -- JSON
    input_offsets VARCHAR NOT NULL,        -- JSON {partition: [min_offset, max_offset]} of the trades read
    content_hash VARCHAR NOT NULL,         -- hash of the published rows (deterministic replay)
    quality_passed BOOLEAN NOT NULL,
    final BOOLEAN NOT NULL,                -- ingest had passed the close + grace when computed
    computed_ns BIGINT NOT NULL
);
