-- Vertica twin of 0008_create_completeness_views.sql: same views, same columns, same rows.
-- Differences, and why:
-- * No WITH clause in day_completeness: Vertica documents a view's query as a SELECT statement,
--   so the two CTEs are derived tables. The session bounds of a symbol-day are therefore
--   computed a second time inside the gaps table; that pass reads four of the first pass's
--   columns and, with a trade_date filter on the view, the same day partition.
-- * INT for BIGINT (64-bit in Vertica). Dividing by 60000000000.0 gives an exact NUMERIC in
--   Vertica, so FLOOR of it is the minute (also before the open, where ns_from_open < 0).
-- * The gap join keeps its OR and range predicates on an inner join (Vertica accepts any join
--   predicate there); the outer join that keeps symbol-days without gaps is on equality only.
-- Idempotent (CREATE OR REPLACE VIEW): Vertica DDL auto-commits (see 0001's twin).

-- Trades received per (symbol, minute).
CREATE OR REPLACE VIEW trade_minutes AS
SELECT
    symbol,
    trade_date,
    CAST(FLOOR(ns_from_open / 60000000000.0) AS INT) AS minute_of_session,  -- 0 = 09:30
    timestamp_ns - (timestamp_ns % 60000000000) AS minute_start_ns,
    COUNT(*) AS n_trades,
    MIN(timestamp_ns) AS first_timestamp_ns,
    MAX(timestamp_ns) AS last_timestamp_ns
FROM market_data
GROUP BY
    symbol,
    trade_date,
    CAST(FLOOR(ns_from_open / 60000000000.0) AS INT),
    timestamp_ns - (timestamp_ns % 60000000000);

-- Per (symbol, day): regular-hours minutes with trades (of 390) and the feed's gaps that
-- overlap the regular session (subscription T.<symbol> or the wildcard T.*), in seconds.
-- A gap with an unknown end (first_after_ns null) runs to the close.
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
    d.close_ns
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
        COUNT(*) AS n_gaps,
        SUM(
            (
                LEAST(COALESCE(fg.first_after_ns, s.close_ns), s.close_ns)
                - GREATEST(COALESCE(fg.last_before_ns, s.open_ns), s.open_ns)
            ) / 1e9
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
    INNER JOIN feed_gaps AS fg
        ON (fg.subscription = 'T.' || s.symbol OR fg.subscription = 'T.*')
        AND COALESCE(fg.last_before_ns, s.open_ns) < s.close_ns
        AND COALESCE(fg.first_after_ns, s.close_ns) > s.open_ns
    GROUP BY s.symbol, s.trade_date
) AS g ON d.symbol = g.symbol AND d.trade_date = g.trade_date;
