-- In-database signals for one New York trading day (:day), used by
-- pipeline.warehouse.vertica_backend.VerticaWarehouse.publish_signals_in_database when the
-- warehouse is Vertica (DuckDB computes the same frames in Python with udx.kernels).
--
-- All statements run in ONE transaction, which is the stage of stage-audit-publish. Its first
-- statement copies the day's regular-hours trades into the session's temporary table
-- signal_day_trades (pipeline.warehouse.vertica_backend.CREATE_SIGNAL_DAY_TRADES): one
-- statement, so one committed state of market_data however many loads commit meanwhile
-- (READ COMMITTED gives each statement the latest commit). Every later statement reads that
-- copy, never market_data, so input_offsets, the three tables and the audit describe the
-- same trades. The day is deleted and recomputed by the UDx inside the transaction, the audit queries below read the new rows
-- on the same connection, and only if every check passes are the signal_runs row inserted
-- and the transaction committed. Other sessions keep seeing the last good day until COMMIT;
-- a failed audit rolls everything back.
--
-- Each statement follows a "-- name: <name>" line. Values are bound by name (:day, :run_id,
-- :params); identifiers are constants. The UDx runs OVER (PARTITION BY symbol, trade_date
-- ORDER BY timestamp_ns, kafka_partition, kafka_offset): the stable order of the statistics
-- specification (equal stamps keep arrival order), node-local because signal_day_trades is
-- segmented by HASH(symbol) like market_data. USING PARAMETERS is not used here, so the kernels run with the
-- specification's defaults (sqlfluff parses this file; install.sql shows the parameters).

-- name: stage_day_trades
INSERT INTO signal_day_trades (
    symbol, trade_date, timestamp_ns, price, size, exchange, kafka_partition, kafka_offset
)
SELECT symbol, trade_date, timestamp_ns, price, size, exchange, kafka_partition, kafka_offset
FROM market_data
WHERE trade_date = :day AND in_regular_hours;

-- name: delete_trading_signals
DELETE FROM trading_signals WHERE date = :day;

-- name: delete_symbol_day_metrics
DELETE FROM symbol_day_metrics WHERE date = :day;

-- name: delete_trade_intensity
DELETE FROM trade_intensity WHERE date = :day;

-- name: insert_trading_signals
INSERT INTO trading_signals (
    symbol, date, seq, timestamp_ns, price, size, log_return, lee_mykland_stat, lm_xi,
    jump_detected, garch_sigma2, standardized_return, bns_stat, conditional_duration,
    acd_surprise, trade_intensity_zscore, trading_signal, kafka_partition, kafka_offset,
    kernel_version, run_id
)
SELECT
    u.symbol,
    u.date::DATE,
    u.seq,
    u.timestamp_ns,
    u.price,
    u.size,
    u.log_return,
    u.lee_mykland_stat,
    u.lm_xi,
    u.jump_detected,
    u.garch_sigma2,
    u.standardized_return,
    u.bns_stat,
    u.conditional_duration,
    u.acd_surprise,
    u.trade_intensity_zscore,
    u.trading_signal,
    u.kafka_partition,
    u.kafka_offset,
    u.kernel_version,
    :run_id
FROM (
    SELECT
        batch_microstructure(
            m.timestamp_ns, m.symbol, m.price, m.size, m.exchange::VARCHAR,
            m.kafka_partition, m.kafka_offset
        ) OVER (
            PARTITION BY m.symbol, m.trade_date
            ORDER BY m.timestamp_ns, m.kafka_partition, m.kafka_offset
        )
    FROM signal_day_trades AS m
) AS u
WHERE u.reason IS NULL;

-- name: insert_symbol_day_metrics
INSERT INTO symbol_day_metrics (
    symbol, date, n_trades, n_returns, first_timestamp_ns, last_timestamp_ns, vwap,
    bns_m, bns_rv, bns_bv, bns_tq, bns_qq, bns_rj, bns_z, bns_p_value, bns_jump,
    garch_omega, garch_alpha, garch_beta, garch_loglik, garch_scale, garch_converged,
    acd_exp_omega, acd_exp_alpha, acd_exp_beta, acd_exp_loglik,
    acd_weibull_omega, acd_weibull_alpha, acd_weibull_beta, acd_weibull_gamma,
    acd_weibull_loglik, acd_exp_at_boundary, acd_weibull_at_boundary, lm_jump_count,
    notes, kernel_version, params, input_offsets, run_id
)
SELECT
    u.symbol,
    u.date::DATE,
    u.n_trades,
    u.n_returns,
    u.first_timestamp_ns,
    u.last_timestamp_ns,
    u.vwap,
    u.bns_m,
    u.bns_rv,
    u.bns_bv,
    u.bns_tq,
    u.bns_qq,
    u.bns_rj,
    u.bns_z,
    u.bns_p_value,
    u.bns_jump,
    u.garch_omega,
    u.garch_alpha,
    u.garch_beta,
    u.garch_loglik,
    u.garch_scale,
    u.garch_converged,
    u.acd_exp_omega,
    u.acd_exp_alpha,
    u.acd_exp_beta,
    u.acd_exp_loglik,
    u.acd_weibull_omega,
    u.acd_weibull_alpha,
    u.acd_weibull_beta,
    u.acd_weibull_gamma,
    u.acd_weibull_loglik,
    u.acd_exp_at_boundary,
    u.acd_weibull_at_boundary,
    u.lm_jump_count,
    u.notes,
    u.kernel_version,
    :params,
    COALESCE(o.input_offsets, '{}'),
    :run_id
FROM (
    SELECT
        batch_microstructure_metrics(
            m.timestamp_ns, m.symbol, m.price, m.size, m.exchange::VARCHAR
        ) OVER (
            PARTITION BY m.symbol, m.trade_date
            ORDER BY m.timestamp_ns, m.kafka_partition, m.kafka_offset
        )
    FROM signal_day_trades AS m
) AS u
LEFT JOIN signal_input_offsets AS o ON u.symbol = o.symbol
WHERE u.reason IS NULL;

-- name: insert_trade_intensity
INSERT INTO trade_intensity (
    symbol, date, bucket, bucket_start_ns, count, z, kernel_version, run_id
)
SELECT
    u.symbol,
    u.date::DATE,
    u.bucket,
    u.bucket_start_ns,
    u.count,
    u.z,
    u.kernel_version,
    :run_id
FROM (
    SELECT
        batch_microstructure_intensity(
            m.timestamp_ns, m.symbol, m.price, m.size, m.exchange::VARCHAR
        ) OVER (
            PARTITION BY m.symbol, m.trade_date
            ORDER BY m.timestamp_ns, m.kafka_partition, m.kafka_offset
        )
    FROM signal_day_trades AS m
) AS u;

-- name: input_offsets
SELECT symbol, kafka_partition, MIN(kafka_offset), MAX(kafka_offset)
FROM signal_day_trades
GROUP BY symbol, kafka_partition
ORDER BY symbol, kafka_partition;

-- name: audit
-- One row of counts on the uncommitted day and its staged trades, in the field order of
-- pipeline.warehouse.base.SignalAudit; pipeline.quality.audit_report turns them into the
-- signal suite's checks (one_row_per_trade, signal_values, flags_boolean,
-- finite_statistics, one_row_per_symbol, full_bucket_grid). The UDx writes NaN as NULL
-- ("not defined"), so ABS(x) > 1e300 counts exactly the infinite statistics.
SELECT
    d.n_rth_trades,
    d.n_rth_symbols,
    t.n_signal_rows,
    t.n_bad_labels,
    t.n_null_flags,
    t.n_nonfinite,
    m.n_metric_rows,
    m.n_metric_symbols,
    b.n_bucket_rows,
    (
        SELECT COUNT(*) FROM (
            SELECT symbol, bucket FROM trade_intensity
            WHERE date = :day AND run_id = :run_id
            GROUP BY symbol, bucket
        ) AS k
    ) AS n_bucket_keys,
    t.content_sum
FROM (
    SELECT COUNT(*) AS n_rth_trades, COUNT(DISTINCT symbol) AS n_rth_symbols
    FROM signal_day_trades
) AS d
CROSS JOIN (
    SELECT
        COUNT(*) AS n_signal_rows,
        COALESCE(SUM(CASE
            WHEN trading_signal IS NULL OR trading_signal NOT IN ('BUY', 'SELL', 'HOLD') THEN 1
            ELSE 0
        END), 0) AS n_bad_labels,
        COALESCE(SUM(CASE WHEN jump_detected IS NULL THEN 1 ELSE 0 END), 0) AS n_null_flags,
        COALESCE(SUM(CASE
            WHEN ABS(log_return) > 1e300
                OR ABS(lee_mykland_stat) > 1e300
                OR ABS(lm_xi) > 1e300
                OR ABS(garch_sigma2) > 1e300
                OR ABS(standardized_return) > 1e300
                OR ABS(bns_stat) > 1e300
                OR ABS(conditional_duration) > 1e300
                OR ABS(acd_surprise) > 1e300
                OR ABS(trade_intensity_zscore) > 1e300
                THEN 1
            ELSE 0
        END), 0) AS n_nonfinite,
        COALESCE(SUM(HASH(symbol, seq, timestamp_ns, trading_signal, lee_mykland_stat) % 1000000007), 0)
            AS content_sum
    FROM trading_signals WHERE date = :day AND run_id = :run_id
) AS t
CROSS JOIN (
    SELECT COUNT(*) AS n_metric_rows, COUNT(DISTINCT symbol) AS n_metric_symbols
    FROM symbol_day_metrics WHERE date = :day AND run_id = :run_id
) AS m
CROSS JOIN (
    SELECT COUNT(*) AS n_bucket_rows
    FROM trade_intensity WHERE date = :day AND run_id = :run_id
) AS b;
