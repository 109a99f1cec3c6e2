-- Topic identity in the offset ledger (issue 14.5). Kafka offsets mean something only within
-- one topic: deleted and recreated under the same name, a topic starts again at offset 0 with
-- a new topic id. The ledger knew topics by name only, so loading went on from the old ledger
-- end and the new topic's offsets below it were never loaded (pipeline/warehouse/
-- topic_identity.py has the whole mechanism).

-- Kafka's id of the topic each batch was read from (base64 of the UUID, as Kafka's tools print
-- it). NULL on rows written before this migration: the next load adopts them.
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS kafka_topic_id VARCHAR;

-- One row per partition of each acknowledged recreation (`microstructure kafka
-- acknowledge-topic`): "from epoch topic_epoch on, topic id X is the topic named kafka_topic,
-- and this partition loads from start_offset". Epoch 0, the topic first loaded, has no rows
-- here. The key makes a second, concurrent acknowledgement of the same epoch fail.
CREATE TABLE IF NOT EXISTS kafka_topic_epochs (
    kafka_topic VARCHAR NOT NULL,
    topic_epoch INTEGER NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_topic_id VARCHAR NOT NULL,      -- Kafka's id of the topic acknowledged
    start_offset BIGINT NOT NULL,         -- first offset the epoch loads in this partition
    previous_topic_id VARCHAR,            -- the previous epoch's id (null: never recorded)
    acknowledged_ns BIGINT NOT NULL,
    PRIMARY KEY (kafka_topic, topic_epoch, kafka_partition)
);

-- The ledger rows of earlier topics under the same name, moved here by the acknowledgement in
-- its one transaction: kafka_offsets keeps only the current topic's rows, so its key, its
-- next offset (max(stop_offset)) and every reader of it stay right, and nothing is deleted.
-- Columns as kafka_offsets, then the epoch the rows were loaded in and when they were moved.
CREATE TABLE IF NOT EXISTS kafka_offsets_history (
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    start_offset BIGINT NOT NULL,
    stop_offset BIGINT NOT NULL,
    n_messages BIGINT NOT NULL,
    n_trades BIGINT NOT NULL,
    n_duplicates BIGINT NOT NULL,
    n_rejects BIGINT NOT NULL,
    n_gaps BIGINT NOT NULL,
    min_timestamp_ns BIGINT,
    max_timestamp_ns BIGINT,
    quality_passed BOOLEAN,
    quality_summary VARCHAR,
    run_id VARCHAR,
    committed_ns BIGINT NOT NULL,
    n_quotes BIGINT,
    n_quote_duplicates BIGINT,
    n_aggregates BIGINT,
    n_aggregate_duplicates BIGINT,
    kafka_topic_id VARCHAR,
    topic_epoch INTEGER NOT NULL,         -- the epoch the batch was loaded in
    superseded_ns BIGINT NOT NULL,        -- when the acknowledgement moved it here
    PRIMARY KEY (kafka_topic, topic_epoch, kafka_partition, start_offset)
);
