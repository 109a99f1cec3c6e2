-- Vertica twin of 0003_create_rejects_and_gaps.sql: same columns, same order, same meaning.
-- Differences, and why:
-- * raw is LONG VARCHAR: a rejected frame can exceed VARCHAR's 65,000-byte limit and must be
--   kept whole (nothing is dropped silently).
-- * Sized VARCHARs, INT for BIGINT (see 0001's twin); both tables are small audit trails,
--   segmented by their lineage so loads spread evenly. Idempotent (IF NOT EXISTS).
CREATE TABLE IF NOT EXISTS market_data_rejects (
    stage VARCHAR(16) NOT NULL,            -- feed (rejected by the streamer) | ingest (by the loader)
    reason VARCHAR(1024) NOT NULL,
    raw LONG VARCHAR(16000000),            -- the raw frame or record value (latin-1 text)
    symbol VARCHAR(16),
    receipt_ns INT,
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL,
    loaded_ns INT NOT NULL
)
ORDER BY kafka_topic, kafka_partition, kafka_offset
SEGMENTED BY HASH(kafka_partition, kafka_offset) ALL NODES;

-- Windows in which the feed may have missed trades (disconnects), per subscription.
CREATE TABLE IF NOT EXISTS feed_gaps (
    subscription VARCHAR(64) NOT NULL,     -- e.g. T.AAPL or T.*
    last_before_ns INT,
    first_after_ns INT,
    reason VARCHAR(1024) NOT NULL,
    detected_ns INT NOT NULL,
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL,
    loaded_ns INT NOT NULL
)
ORDER BY subscription, detected_ns
UNSEGMENTED ALL NODES;
