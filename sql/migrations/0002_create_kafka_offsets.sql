-- The offset ledger: one row per committed microbatch. The warehouse, not Kafka, owns
-- offsets: a partition's next offset is max(stop_offset). Ranges are half-open [start, stop).
-- The key (topic, partition, start_offset) makes a second loader of the same range fail.
CREATE TABLE IF NOT EXISTS kafka_offsets (
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    start_offset BIGINT NOT NULL,
    stop_offset BIGINT NOT NULL,
    n_messages BIGINT NOT NULL,            -- records actually read in the range
    n_trades BIGINT NOT NULL,              -- rows inserted into market_data
    n_duplicates BIGINT NOT NULL,          -- trades already stored (same dedup key)
    n_rejects BIGINT NOT NULL,             -- rows inserted into market_data_rejects
    n_gaps BIGINT NOT NULL,                -- rows inserted into feed_gaps
    min_timestamp_ns BIGINT,               -- SIP time range of the inserted trades (null: none)
    max_timestamp_ns BIGINT,
    quality_passed BOOLEAN,                -- ingest suite verdict; null = no suite ran
    quality_summary VARCHAR,               -- JSON: failed expectations, if any
    run_id VARCHAR,
    committed_ns BIGINT NOT NULL,
    PRIMARY KEY (kafka_topic, kafka_partition, start_offset)
);
