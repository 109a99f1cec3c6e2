-- The feed's gap repair and its extra event types (quote.v1, agg.v1), through the same
-- exactly-once load as trades (pipeline/microbatch.py, Warehouse.load_batch).

-- Repair state of a gap record (gap.v1's optional fields). A repaired gap has two records with
-- one gap_id: `pending` when its window closes, then the outcome. Null on rows loaded before
-- this migration and on records of a streamer that did not track repairs.
-- * gap_id: "<detected_ns>:<subscription>";
-- * repair: pending | backfilled | failed | not_attempted | unsupported (quotes, aggregates);
-- * repair_from_ns, repair_to_ns: the SIP window asked from REST, inclusive;
-- * backfilled: trades the backfill added; repair_detail: why not attempted, why it failed;
-- * repaired_ns: when the outcome was known.
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS gap_id VARCHAR;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair VARCHAR;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair_from_ns BIGINT;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair_to_ns BIGINT;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS backfilled BIGINT;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair_detail VARCHAR;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repaired_ns BIGINT;

-- Ledger counts of the new tables (null on rows committed before this migration), so that
-- n_messages = n_trades + n_duplicates + n_rejects + n_gaps + n_quotes + n_quote_duplicates
-- + n_aggregates + n_aggregate_duplicates. n_quotes / n_aggregates are rows inserted; the
-- duplicates were not stored again (same key, in the batch or already stored).
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_quotes BIGINT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_quote_duplicates BIGINT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_aggregates BIGINT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_aggregate_duplicates BIGINT;

-- NBBO quotes (Q), one row per distinct update, with lineage. Key (symbol, sip_timestamp_ns,
-- sequence_number): the provider documents `q` as unique per ticker but the stream has carried
-- two different events with one `q` (README, "Dedup key"), so the SIP time is part of the key:
-- two updates sharing a `q` at different times are both kept, a re-sent update (same SIP time,
-- same `q`) is stored once. It also makes the daily restart of sequence numbers harmless. A
-- quote without a sequence number has no key and is stored as sent.
CREATE TABLE IF NOT EXISTS market_quotes (
    symbol VARCHAR NOT NULL,
    sip_timestamp_ns BIGINT NOT NULL,      -- SIP time, UTC epoch ns
    bid_exchange INTEGER NOT NULL,
    bid_price DOUBLE NOT NULL,             -- 0 = no bid
    bid_size BIGINT NOT NULL,
    ask_exchange INTEGER NOT NULL,
    ask_price DOUBLE NOT NULL,             -- 0 = no ask
    ask_size BIGINT NOT NULL,
    condition INTEGER,
    indicators VARCHAR,                    -- comma list of indicator codes
    sequence_number BIGINT,
    tape INTEGER,
    trade_date DATE NOT NULL,              -- America/New_York date of sip_timestamp_ns
    source VARCHAR NOT NULL,               -- ws | rest | file
    receipt_ns BIGINT,                     -- when the streamer received the frame
    kafka_ts_ns BIGINT,                    -- Kafka append time
    loaded_ns BIGINT NOT NULL,             -- warehouse commit time (load transaction)
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL
);

-- Per-second (A) and per-minute (AM) bars as the provider sends them, one row per bar. Key
-- (symbol, kind, start_ns); the first record of a bar is kept, as for trades.
CREATE TABLE IF NOT EXISTS market_aggregates (
    kind VARCHAR NOT NULL,                 -- A (second) | AM (minute)
    symbol VARCHAR NOT NULL,
    start_ns BIGINT NOT NULL,              -- bar window [start_ns, end_ns), UTC epoch ns
    end_ns BIGINT NOT NULL,
    open DOUBLE NOT NULL,
    high DOUBLE NOT NULL,
    low DOUBLE NOT NULL,
    close DOUBLE NOT NULL,
    volume BIGINT NOT NULL,
    vwap DOUBLE,
    accumulated_volume BIGINT,             -- the day's volume so far
    day_open DOUBLE,
    day_vwap DOUBLE,
    average_size BIGINT,
    otc BOOLEAN NOT NULL,
    trade_date DATE NOT NULL,              -- America/New_York date of start_ns
    receipt_ns BIGINT,
    kafka_ts_ns BIGINT,
    loaded_ns BIGINT NOT NULL,
    kafka_topic VARCHAR NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset BIGINT NOT NULL
);

-- The state of every feed gap: its latest record. An outcome outranks `pending` whatever the
-- load order (pending is only ever followed by its outcome; both travel under one key, so in
-- one partition, but this holds even if they did not); among the rest the last loaded wins.
-- A record without gap_id is a gap of its own. `repaired`: the backfill recovered the window,
-- so no trade of it is missing.
CREATE OR REPLACE VIEW feed_gap_state AS
SELECT
    subscription,
    last_before_ns,
    first_after_ns,
    reason,
    detected_ns,
    gap_id,
    repair,
    repair_from_ns,
    repair_to_ns,
    backfilled,
    repair_detail,
    repaired_ns,
    repaired,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    loaded_ns
FROM (
    SELECT
        subscription,
        last_before_ns,
        first_after_ns,
        reason,
        detected_ns,
        gap_id,
        repair,
        repair_from_ns,
        repair_to_ns,
        backfilled,
        repair_detail,
        repaired_ns,
        CASE WHEN repair = 'backfilled' THEN true ELSE false END AS repaired,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        loaded_ns,
        row_number() OVER (
            PARTITION BY gap_id
            ORDER BY
                CASE WHEN repair = 'pending' THEN 1 ELSE 0 END,
                loaded_ns DESC,
                kafka_partition DESC,
                kafka_offset DESC
        ) AS rn
    FROM feed_gaps
    WHERE gap_id IS NOT NULL
) AS latest
WHERE rn = 1
UNION ALL
SELECT
    subscription,
    last_before_ns,
    first_after_ns,
    reason,
    detected_ns,
    gap_id,
    repair,
    repair_from_ns,
    repair_to_ns,
    backfilled,
    repair_detail,
    repaired_ns,
    CASE WHEN repair = 'backfilled' THEN true ELSE false END AS repaired,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    loaded_ns
FROM feed_gaps
WHERE gap_id IS NULL;

-- 0008's day_completeness, on gap states instead of gap records: a repaired gap's two records
-- no longer count twice, and n_gaps / gap_seconds are what may be missing: gaps the backfill
-- did not recover (pending, failed, not attempted, or of unknown state). n_gaps_repaired
-- counts the recovered ones. Columns as in 0008, n_gaps_repaired added last.
CREATE OR REPLACE VIEW day_completeness AS
WITH days AS (
    SELECT
        symbol,
        trade_date,
        count(*) AS n_trades,
        CAST(sum(CASE WHEN in_regular_hours THEN 1 ELSE 0 END) AS BIGINT) AS n_rth_trades,
        count(DISTINCT CASE
            WHEN ns_from_open >= 0 AND ns_from_open < 23400000000000
                THEN CAST(floor(ns_from_open / 60000000000.0) AS BIGINT)
        END) AS rth_minutes_with_trades,
        min(timestamp_ns - ns_from_open) AS open_ns,
        min(timestamp_ns - ns_from_open) + 23400000000000 AS close_ns
    FROM market_data
    GROUP BY symbol, trade_date
),

gaps AS (
    SELECT
        d.symbol,
        d.trade_date,
        -- BIGINT: DuckDB sums INTEGER into HUGEINT (see 0008).
        CAST(sum(CASE WHEN g.repaired THEN 0 ELSE 1 END) AS BIGINT) AS n_gaps,
        CAST(sum(CASE WHEN g.repaired THEN 1 ELSE 0 END) AS BIGINT) AS n_gaps_repaired,
        sum(
            CASE WHEN g.repaired THEN 0 ELSE (
                least(coalesce(g.first_after_ns, d.close_ns), d.close_ns)
                - greatest(coalesce(g.last_before_ns, d.open_ns), d.open_ns)
            ) / 1e9 END
        ) AS gap_seconds
    FROM days AS d
    INNER JOIN feed_gap_state AS g
        ON (g.subscription = 'T.' || d.symbol OR g.subscription = 'T.*')
        AND coalesce(g.last_before_ns, d.open_ns) < d.close_ns
        AND coalesce(g.first_after_ns, d.close_ns) > d.open_ns
    GROUP BY d.symbol, d.trade_date
)

SELECT
    d.symbol,
    d.trade_date,
    d.n_trades,
    d.n_rth_trades,
    d.rth_minutes_with_trades,
    390 AS rth_minutes,
    coalesce(g.n_gaps, 0) AS n_gaps,
    coalesce(g.gap_seconds, 0) AS gap_seconds,
    d.open_ns,
    d.close_ns,
    coalesce(g.n_gaps_repaired, 0) AS n_gaps_repaired
FROM days AS d
LEFT JOIN gaps AS g ON d.symbol = g.symbol AND d.trade_date = g.trade_date;
