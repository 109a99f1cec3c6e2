-- Vertica twin of 0001_create_market_data.sql: same columns, same order, same meaning.
-- Differences, and why:
-- * VARCHAR needs a size in Vertica (default 80 bytes); sizes fit the widest value the feed
--   sends (Kafka topic names are at most 249 characters).
-- * DOUBLE -> FLOAT (Vertica's FLOAT is 64-bit IEEE), BIGINT/INTEGER -> INT (64-bit).
-- * ORDER BY symbol, timestamp_ns: the superprojection's sort order serves the per-symbol,
--   time-ordered scans of the signals UDx and the MCP range reads.
-- * SEGMENTED BY HASH(symbol): a symbol's rows live on one node, so
--   batch_microstructure(...) OVER (PARTITION BY symbol, trade_date ...) runs node-local.
-- * PARTITION BY trade_date, grouped by CALENDAR_HIERARCHY_DAY: one ROS container per recent
--   day, older days merged into months and years (stay well under ~50 partitions per
--   projection); retention drops whole days with DROP_PARTITIONS (sql/vertica/retention.sql).
-- DDL auto-commits in Vertica, so a migration cannot share a transaction with its ledger row:
-- every statement here is idempotent (IF NOT EXISTS) and a re-run after a crash is harmless.
CREATE TABLE IF NOT EXISTS market_data (
    symbol VARCHAR(16) NOT NULL,
    timestamp_ns INT NOT NULL,             -- SIP time, UTC epoch ns
    price FLOAT NOT NULL,
    size INT NOT NULL,
    exchange INT NOT NULL,
    trade_id VARCHAR(64) NOT NULL,
    trf_id INT NOT NULL,                   -- 0 = not a TRF print
    tape INT,
    conditions VARCHAR(256),               -- comma list of Polygon condition codes
    sequence_number INT,
    trf_timestamp_ns INT,
    trade_date DATE NOT NULL,              -- America/New_York date of timestamp_ns
    in_regular_hours BOOLEAN NOT NULL,     -- 09:30:00 <= tod <= 16:00:00, inclusive
    ns_from_open INT NOT NULL,             -- ns since 09:30 New York on trade_date (negative before)
    source VARCHAR(16) NOT NULL,           -- ws | rest | file
    receipt_ns INT,                        -- when the streamer received the frame
    kafka_ts_ns INT,                       -- Kafka append time
    loaded_ns INT NOT NULL,                -- warehouse commit time (load transaction)
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL
)
ORDER BY symbol, timestamp_ns
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY trade_date GROUP BY CALENDAR_HIERARCHY_DAY(trade_date, 2, 2);
