-- Vertica twin of 0002_create_kafka_offsets.sql: same columns, same order, same meaning.
-- Differences, and why:
-- * PRIMARY KEY ... ENABLED: Vertica does not enforce keys unless asked
--   (EnableNewPrimaryKeysByDefault=0), and this key is what makes a second loader of the same
--   range fail at COMMIT (OffsetConflict) instead of writing a duplicate ledger row.
-- * UNSEGMENTED ALL NODES: the ledger is tiny and read by every load; a replica on each node
--   makes the next-offset lookup and the key check local.
-- * Sized VARCHARs, INT for BIGINT (see 0001's twin). Idempotent for the reasons given there.
CREATE TABLE IF NOT EXISTS kafka_offsets (
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    start_offset INT NOT NULL,
    stop_offset INT NOT NULL,
    n_messages INT NOT NULL,               -- records actually read in the range
    n_trades INT NOT NULL,                 -- rows inserted into market_data
    n_duplicates INT NOT NULL,             -- trades already stored (same dedup key)
    n_rejects INT NOT NULL,                -- rows inserted into market_data_rejects
    n_gaps INT NOT NULL,                   -- rows inserted into feed_gaps
    min_timestamp_ns INT,                  -- SIP time range of the inserted trades (null: none)
    max_timestamp_ns INT,
    quality_passed BOOLEAN,                -- ingest suite verdict; null = no suite ran
    quality_summary VARCHAR(65000),        -- JSON: failed expectations, if any
    run_id VARCHAR(128),
    committed_ns INT NOT NULL,
    CONSTRAINT pk_kafka_offsets PRIMARY KEY (kafka_topic, kafka_partition, start_offset) ENABLED
)
ORDER BY kafka_topic, kafka_partition, start_offset
UNSEGMENTED ALL NODES;
