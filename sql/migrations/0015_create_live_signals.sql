-- The live path's history (issue 17.5): the records `microstructure live-signals` wrote to the
-- trading-signals topic, loaded by the same exactly-once microbatches as market data (one
-- ledger row per batch in kafka_offsets, under the signals topic's name and Kafka topic id).
--
-- The producer is at-least-once: a record produced again after a crash or a rebalance carries
-- the same input (topic, partition, offset) in its headers and an identical payload. That input
-- key identifies a live record: each table below holds it once (the load skips keys already
-- stored, in the batch or before it, and counts them in kafka_offsets.n_signal_duplicates).
-- The first copy loaded is the one kept (docs/live.md: repeats are byte-identical; a repeat
-- that differed would be counted as a duplicate all the same).

-- One trade's provisional statistics and signal (signal.v1; columns as trading_signals where
-- they mean the same, plus the live path's own: the provisional n and its rule, arrival order,
-- the parameter provenance, where the input was and where the record was).
CREATE TABLE IF NOT EXISTS live_signals (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,                    -- the New York trading day of the print
    seq INTEGER NOT NULL,                  -- the print's position in its symbol-day, arrival order
    timestamp_ns BIGINT NOT NULL,          -- SIP time of the print
    price DOUBLE NOT NULL,
    size BIGINT NOT NULL,
    log_return DOUBLE,
    lee_mykland_stat DOUBLE,
    lm_xi DOUBLE,
    lm_n BIGINT,                           -- the provisional n of the Lee-Mykland threshold
    lm_n_rule VARCHAR,                     -- prior | running (docs/live.md)
    jump_detected BOOLEAN NOT NULL,
    garch_sigma2 DOUBLE,
    standardized_return DOUBLE,
    bns_stat DOUBLE,
    conditional_duration DOUBLE,
    acd_surprise DOUBLE,
    trade_intensity_zscore DOUBLE,
    trading_signal VARCHAR NOT NULL,       -- BUY | SELL | HOLD (rule v1, provisional flag)
    in_order BOOLEAN,                      -- false: older than the symbol's previous print
    garch_params VARCHAR,                  -- source of the GARCH parameters (null: none)
    acd_params VARCHAR,                    -- source of the ACD parameters (null: none)
    kernel_version VARCHAR NOT NULL,       -- header kernel_version
    params VARCHAR,                        -- header params: the parameter set, JSON
    input_topic VARCHAR NOT NULL,          -- the input key: where the trade is in market data
    input_partition INTEGER NOT NULL,
    input_offset BIGINT NOT NULL,
    emitted_ns BIGINT,                     -- Kafka timestamp of the signal record (produce time)
    kafka_topic VARCHAR NOT NULL,          -- where the signal record is (the ledger's range)
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    loaded_ns BIGINT NOT NULL
);

-- An input record the live path could not turn into a signal (reject.v1 of stage
-- live-signals: undecodable, bad price, stale day), with its reason and raw input value.
CREATE TABLE IF NOT EXISTS live_signal_rejects (
    stage VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    raw VARCHAR,
    input_topic VARCHAR NOT NULL,
    input_partition INTEGER NOT NULL,
    input_offset BIGINT NOT NULL,
    kernel_version VARCHAR,
    emitted_ns BIGINT,
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL,
    loaded_ns BIGINT NOT NULL
);

-- What a batch of the signals topic stored and skipped (0 on market-data batches; null on
-- rows written before this migration): live_signals rows inserted, input keys already stored
-- (in the batch or before it), live_signal_rejects rows inserted. n_rejects keeps its meaning
-- (records of the batch's own topic that could not be decoded: market_data_rejects).
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_signals BIGINT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_signal_duplicates BIGINT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_signal_rejects BIGINT;
ALTER TABLE kafka_offsets_history ADD COLUMN IF NOT EXISTS n_signals BIGINT;
ALTER TABLE kafka_offsets_history ADD COLUMN IF NOT EXISTS n_signal_duplicates BIGINT;
ALTER TABLE kafka_offsets_history ADD COLUMN IF NOT EXISTS n_signal_rejects BIGINT;
