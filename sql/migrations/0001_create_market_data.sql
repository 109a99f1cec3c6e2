-- Trades as loaded from Kafka, one row per distinct print, with lineage.
-- Derived columns (trade_date, in_regular_hours, ns_from_open) are computed once at load
-- (pipeline/microbatch.py) so SQL and the UDx never do time-zone work.
CREATE TABLE IF NOT EXISTS market_data (
    symbol VARCHAR NOT NULL,
    timestamp_ns BIGINT NOT NULL,          -- SIP time, UTC epoch ns
    price DOUBLE NOT NULL,
    size BIGINT NOT NULL,
    exchange INTEGER NOT NULL,
    trade_id VARCHAR NOT NULL,
    trf_id INTEGER NOT NULL,               -- 0 = not a TRF print
    tape INTEGER,
    conditions VARCHAR,                    -- comma list of Polygon condition codes
    sequence_number BIGINT,
    trf_timestamp_ns BIGINT,
    trade_date DATE NOT NULL,              -- America/New_York date of timestamp_ns
    in_regular_hours BOOLEAN NOT NULL,     -- 09:30:00 <= tod <= 16:00:00, inclusive
    ns_from_open BIGINT NOT NULL,          -- ns since 09:30 New York on trade_date (negative before)
    source VARCHAR NOT NULL,               -- ws | rest | file
    receipt_ns BIGINT,                     -- when the streamer received the frame
    kafka_ts_ns BIGINT,                    -- Kafka append time
    loaded_ns BIGINT NOT NULL,             -- warehouse commit time (load transaction)
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL
);
