-- Vertica twin of 0010_add_gap_repair_quotes_aggregates.sql: same columns, same order, same
-- meaning, same view rows. Differences, and why:
-- * Sized VARCHARs, INT for BIGINT/INTEGER, FLOAT for DOUBLE (see 0001's twin). gap_id holds
--   "<detected_ns>:<subscription>" (subscription is VARCHAR(64)); repair_detail is an error
--   text, cut to 1,000 characters by the loader (pipeline/microbatch.py) so it fits 4,096 bytes.
-- * market_quotes and market_aggregates are laid out as market_data: ORDER BY symbol and time
--   (per-symbol, time-ordered scans and the dedup anti-join of a load), SEGMENTED BY
--   HASH(symbol) (a symbol's rows on one node), PARTITION BY trade_date with
--   CALENDAR_HIERARCHY_DAY (one ROS container per recent day; whole days can be dropped).
-- * No WITH clause in day_completeness and derived tables instead (see 0008's twin); the
--   per-gap sums are CASE expressions, as there.
-- DDL auto-commits in Vertica: ADD COLUMN IF NOT EXISTS, CREATE TABLE IF NOT EXISTS and
-- CREATE OR REPLACE VIEW make a re-run after a crash harmless.

-- Repair state of a gap record (gap.v1's optional fields); see the portable file.
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS gap_id VARCHAR(128);
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair VARCHAR(16);
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair_from_ns INT;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair_to_ns INT;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS backfilled INT;
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repair_detail VARCHAR(4096);
ALTER TABLE feed_gaps ADD COLUMN IF NOT EXISTS repaired_ns INT;

-- Ledger counts of the new tables; see the portable file.
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_quotes INT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_quote_duplicates INT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_aggregates INT;
ALTER TABLE kafka_offsets ADD COLUMN IF NOT EXISTS n_aggregate_duplicates INT;

-- NBBO quotes (Q), key (symbol, sip_timestamp_ns, sequence_number); see the portable file.
CREATE TABLE IF NOT EXISTS market_quotes (
    symbol VARCHAR(16) NOT NULL,
    sip_timestamp_ns INT NOT NULL,         -- SIP time, UTC epoch ns
    bid_exchange INT NOT NULL,
    bid_price FLOAT NOT NULL,              -- 0 = no bid
    bid_size INT NOT NULL,
    ask_exchange INT NOT NULL,
    ask_price FLOAT NOT NULL,              -- 0 = no ask
    ask_size INT NOT NULL,
    condition INT,
    indicators VARCHAR(256),               -- comma list of indicator codes
    sequence_number INT,
    tape INT,
    trade_date DATE NOT NULL,              -- America/New_York date of sip_timestamp_ns
    source VARCHAR(16) NOT NULL,           -- ws | rest | file
    receipt_ns INT,                        -- when the streamer received the frame
    kafka_ts_ns INT,                       -- Kafka append time
    loaded_ns INT NOT NULL,                -- warehouse commit time (load transaction)
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL
)
ORDER BY symbol, sip_timestamp_ns
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY trade_date GROUP BY CALENDAR_HIERARCHY_DAY(trade_date, 2, 2);

-- Per-second (A) and per-minute (AM) bars, key (symbol, kind, start_ns); see the portable file.
CREATE TABLE IF NOT EXISTS market_aggregates (
    kind VARCHAR(2) NOT NULL,              -- A (second) | AM (minute)
    symbol VARCHAR(16) NOT NULL,
    start_ns INT NOT NULL,                 -- bar window [start_ns, end_ns), UTC epoch ns
    end_ns INT NOT NULL,
    open FLOAT NOT NULL,
    high FLOAT NOT NULL,
    low FLOAT NOT NULL,
    close FLOAT NOT NULL,
    volume INT NOT NULL,
    vwap FLOAT,
    accumulated_volume INT,                -- the day's volume so far
    day_open FLOAT,
    day_vwap FLOAT,
    average_size INT,
    otc BOOLEAN NOT NULL,
    trade_date DATE NOT NULL,              -- America/New_York date of start_ns
    receipt_ns INT,
    kafka_ts_ns INT,
    loaded_ns INT NOT NULL,
    kafka_topic VARCHAR(249) NOT NULL,
    kafka_partition INT NOT NULL,
    kafka_offset INT NOT NULL
)
ORDER BY symbol, start_ns
SEGMENTED BY HASH(symbol) ALL NODES
PARTITION BY trade_date GROUP BY CALENDAR_HIERARCHY_DAY(trade_date, 2, 2);

-- The state of every feed gap: its latest record; see the portable file.
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
        ROW_NUMBER() OVER (
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

-- 0008's day_completeness on gap states: n_gaps / gap_seconds are the gaps the backfill did
-- not recover, n_gaps_repaired the recovered ones (added last); see the portable file.
CREATE OR REPLACE VIEW day_completeness AS
SELECT
    d.symbol,
    d.trade_date,
    d.n_trades,
    d.n_rth_trades,
    d.rth_minutes_with_trades,
    390 AS rth_minutes,
    COALESCE(g.n_gaps, 0) AS n_gaps,
    COALESCE(g.gap_seconds, 0) AS gap_seconds,
    d.open_ns,
    d.close_ns,
    COALESCE(g.n_gaps_repaired, 0) AS n_gaps_repaired
FROM (
    SELECT
        symbol,
        trade_date,
        COUNT(*) AS n_trades,
        SUM(CASE WHEN in_regular_hours THEN 1 ELSE 0 END) AS n_rth_trades,
        COUNT(DISTINCT CASE
            WHEN ns_from_open >= 0 AND ns_from_open < 23400000000000
                THEN CAST(FLOOR(ns_from_open / 60000000000.0) AS INT)
        END) AS rth_minutes_with_trades,
        MIN(timestamp_ns - ns_from_open) AS open_ns,
        MIN(timestamp_ns - ns_from_open) + 23400000000000 AS close_ns
    FROM market_data
    GROUP BY symbol, trade_date
) AS d
LEFT JOIN (
    SELECT
        s.symbol,
        s.trade_date,
        SUM(CASE WHEN fg.repaired THEN 0 ELSE 1 END) AS n_gaps,
        SUM(CASE WHEN fg.repaired THEN 1 ELSE 0 END) AS n_gaps_repaired,
        SUM(
            CASE WHEN fg.repaired THEN 0 ELSE (
                LEAST(COALESCE(fg.first_after_ns, s.close_ns), s.close_ns)
                - GREATEST(COALESCE(fg.last_before_ns, s.open_ns), s.open_ns)
            ) / 1e9 END
        ) AS gap_seconds
    FROM (
        SELECT
            symbol,
            trade_date,
            MIN(timestamp_ns - ns_from_open) AS open_ns,
            MIN(timestamp_ns - ns_from_open) + 23400000000000 AS close_ns
        FROM market_data
        GROUP BY symbol, trade_date
    ) AS s
    INNER JOIN feed_gap_state AS fg
        ON (fg.subscription = 'T.' || s.symbol OR fg.subscription = 'T.*')
        AND COALESCE(fg.last_before_ns, s.open_ns) < s.close_ns
        AND COALESCE(fg.first_after_ns, s.close_ns) > s.open_ns
    GROUP BY s.symbol, s.trade_date
) AS g ON d.symbol = g.symbol AND d.trade_date = g.trade_date;
