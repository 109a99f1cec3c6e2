-- Nothing is dropped silently: every record that is not a valid trade is kept with its reason.
CREATE TABLE IF NOT EXISTS market_data_rejects (
    stage VARCHAR NOT NULL,                -- feed (rejected by the streamer) | ingest (by the loader)
    reason VARCHAR NOT NULL,
    raw VARCHAR,                           -- the raw frame or record value (latin-1 text)
    symbol VARCHAR,
    receipt_ns BIGINT,
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    loaded_ns BIGINT NOT NULL
);

-- Windows in which the feed may have missed trades (disconnects), per subscription.
CREATE TABLE IF NOT EXISTS feed_gaps (
    subscription VARCHAR NOT NULL,         -- e.g. T.AAPL or T.*
    last_before_ns BIGINT,
    first_after_ns BIGINT,
    reason VARCHAR NOT NULL,
    detected_ns BIGINT NOT NULL,
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    loaded_ns BIGINT NOT NULL
);
