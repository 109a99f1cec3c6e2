-- Signal effectiveness (`microstructure evaluate`, pipeline/evaluate.py): per evaluation, per
-- symbol ('*' = all symbols pooled) and horizon, the forward returns after BUY/SELL signals
-- against random entry times on the same days. History is kept: readers take the newest
-- evaluation_id (computed_ns) of a range. Returns are signed (a SELL's return is negated)
-- and in basis points.
CREATE TABLE IF NOT EXISTS signal_evaluation (
    evaluation_id VARCHAR NOT NULL,
    computed_ns BIGINT NOT NULL,
    start_date DATE NOT NULL,              -- first trading day evaluated
    end_date DATE NOT NULL,                -- last trading day evaluated (inclusive)
    symbol VARCHAR NOT NULL,               -- a symbol, or '*' for all symbols pooled
    horizon_s INTEGER NOT NULL,            -- 60, 300, 1800: previous-tick price at t + h, same session
    n_signals BIGINT NOT NULL,             -- BUY + SELL signals with a return at this horizon
    n_buy BIGINT NOT NULL,
    n_sell BIGINT NOT NULL,
    n_effective DOUBLE NOT NULL,           -- independent observations the overlapping returns are worth
    n_days BIGINT NOT NULL,                -- symbol-days with at least one signal measured
    hit_rate DOUBLE,                       -- share of signed returns > 0
    mean_bp DOUBLE,
    sd_bp DOUBLE,
    t_stat DOUBLE,                         -- mean / overlap-aware standard error
    random_n BIGINT NOT NULL,              -- random entries measured (seeded; same days, same BUY share)
    random_hit_rate DOUBLE,
    random_mean_bp DOUBLE,
    random_sd_bp DOUBLE,
    random_t_stat DOUBLE,
    edge_bp DOUBLE,                        -- mean_bp - random_mean_bp
    edge_t_stat DOUBLE,                    -- Welch t of the edge
    edge_p_value DOUBLE,                   -- two-sided
    edge_p_adjusted DOUBLE,                -- Bonferroni over the evaluation's tested rows
    verdict VARCHAR NOT NULL,              -- too_few_signals | edge | negative_edge | no_edge
    min_signals INTEGER NOT NULL,          -- below this (or 10 effective observations): too_few_signals
    random_per_signal INTEGER NOT NULL,
    seed BIGINT NOT NULL,
    kernel_version VARCHAR,                -- of the signals evaluated (null: several)
    signal_runs VARCHAR NOT NULL           -- JSON {day: run_id} of the signal runs evaluated
);
