-- Completeness (issue 5.4): how much of a day the warehouse holds, per symbol.
-- Views over market_data and feed_gaps, so they are exactly as complete as the exactly-once
-- load itself and need no write path of their own. No time-zone work: a trade's session open
-- in UTC is timestamp_ns - ns_from_open (computed at load, pipeline/microbatch.py).

-- Trades received per (symbol, minute).
CREATE OR REPLACE VIEW trade_minutes AS
SELECT
    symbol,
    trade_date,
    CAST(floor(ns_from_open / 60000000000.0) AS BIGINT) AS minute_of_session,  -- 0 = 09:30
    -- Integer arithmetic, exact: a DOUBLE quotient of an epoch-ns stamp (~1.5e18, beyond 2^53)
    -- rounds and would put prints up to ~128 ns before a boundary into the next minute.
    timestamp_ns - (timestamp_ns % 60000000000) AS minute_start_ns,
    count(*) AS n_trades,
    min(timestamp_ns) AS first_timestamp_ns,
    max(timestamp_ns) AS last_timestamp_ns
FROM market_data
GROUP BY
    symbol,
    trade_date,
    CAST(floor(ns_from_open / 60000000000.0) AS BIGINT),
    timestamp_ns - (timestamp_ns % 60000000000);

-- Per (symbol, day): regular-hours minutes with trades (of 390) and the feed's gaps that
-- overlap the regular session (subscription T.<symbol> or the wildcard T.*), in seconds.
-- A gap with an unknown end (first_after_ns null) runs to the close.
CREATE OR REPLACE VIEW day_completeness AS
WITH days AS (
    SELECT
        symbol,
        trade_date,
        count(*) AS n_trades,
        -- BIGINT: DuckDB sums INTEGER into HUGEINT (128-bit), which has no Vertica twin and
        -- reaches pandas as float64.
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
        count(*) AS n_gaps,
        sum(
            (
                least(coalesce(g.first_after_ns, d.close_ns), d.close_ns)
                - greatest(coalesce(g.last_before_ns, d.open_ns), d.open_ns)
            ) / 1e9
        ) AS gap_seconds
    FROM days AS d
    INNER JOIN feed_gaps AS g
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
    d.close_ns
FROM days AS d
LEFT JOIN gaps AS g ON d.symbol = g.symbol AND d.trade_date = g.trade_date;
