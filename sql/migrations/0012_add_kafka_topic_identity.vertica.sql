-- Vertica twin of 0012_add_kafka_topic_identity.sql: the same ledger column and the same two
-- tables, same columns, same order, same meaning. Differences, and why:
-- * Sized VARCHARs, INT for BIGINT/INTEGER (see 0001's twin); a topic id is 22 base64
--   characters, VARCHAR(64) leaves room.
-- * ENABLED keys and UNSEGMENTED ALL NODES, as the ledger (0002's twin): small tables read by
--   every load, and a second acknowledgement of one epoch must fail at COMMIT.
-- DDL auto-commits in Vertica: ADD COLUMN IF NOT EXISTS and CREATE TABLE IF NOT EXISTS make a
-- re-run after a crash harmless.

-- Kafka's id of the topic each batch was read from; see the portable file.
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS kafka_topic_id VARCHAR(64);

-- One row per partition of each acknowledged recreation; see the portable file.
CREATE TABLE IF NOT EXISTS kafka_topic_epochs (
    kafka_topic VARCHAR(249) NOT NULL,
    topic_epoch INT NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_topic_id VARCHAR(64) NOT NULL,  -- Kafka's id of the topic acknowledged
    start_offset INT NOT NULL,            -- first offset the epoch loads in this partition
    previous_topic_id VARCHAR(64),        -- the previous epoch's id (null: never recorded)
    acknowledged_ns INT NOT NULL,
    CONSTRAINT pk_kafka_topic_epochs PRIMARY KEY (kafka_topic, topic_epoch, kafka_partition) ENABLED
)
ORDER BY kafka_topic, topic_epoch, kafka_partition
UNSEGMENTED ALL NODES;

-- The ledger rows of earlier topics under the same name; see the portable file.
CREATE TABLE IF NOT EXISTS kafka_offsets_history (
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    start_offset INT NOT NULL,
    stop_offset INT NOT NULL,
    n_messages INT NOT NULL,
    n_trades INT NOT NULL,
    n_duplicates INT NOT NULL,
    n_rejects INT NOT NULL,
    n_gaps INT NOT NULL,
    min_timestamp_ns INT,
    max_timestamp_ns INT,
    quality_passed BOOLEAN,
    quality_summary VARCHAR(65000),
    run_id VARCHAR(128),
    committed_ns INT NOT NULL,
    n_quotes INT,
    n_quote_duplicates INT,
    n_aggregates INT,
    n_aggregate_duplicates INT,
    kafka_topic_id VARCHAR(64),
    topic_epoch INT NOT NULL,             -- the epoch the batch was loaded in
    superseded_ns INT NOT NULL,           -- when the acknowledgement moved it here
    CONSTRAINT pk_kafka_offsets_history
        PRIMARY KEY (kafka_topic, topic_epoch, kafka_partition, start_offset) ENABLED
)
ORDER BY kafka_topic, topic_epoch, kafka_partition, start_offset
UNSEGMENTED ALL NODES;
