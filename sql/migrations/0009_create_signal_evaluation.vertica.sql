-- Vertica twin of 0009_create_signal_evaluation.sql: same columns, same order, same meaning.
-- Differences, and why: sized VARCHARs (JSON in VARCHAR(65000)), FLOAT for DOUBLE, INT for
-- BIGINT/INTEGER; a few dozen rows per evaluation, so one replica per node (UNSEGMENTED).
-- Idempotent (IF NOT EXISTS): Vertica DDL auto-commits (see 0001's twin).
CREATE TABLE IF NOT EXISTS signal_evaluation (
    evaluation_id VARCHAR(64) NOT NULL,
    computed_ns INT NOT NULL,
    start_date DATE NOT NULL,              -- first trading day evaluated
    end_date DATE NOT NULL,                -- last trading day evaluated (inclusive)
    symbol VARCHAR(16) NOT NULL,           -- a symbol, or '*' for all symbols pooled
    horizon_s INT NOT NULL,                -- 60, 300, 1800: previous-tick price at t + h, same session
    n_signals INT NOT NULL,                -- BUY + SELL signals with a return at this horizon
    n_buy INT NOT NULL,
    n_sell INT NOT NULL,
    n_effective FLOAT NOT NULL,            -- independent observations the overlapping returns are worth
    n_days INT NOT NULL,                   -- symbol-days with at least one signal measured
    hit_rate FLOAT,                        -- share of signed returns > 0
    mean_bp FLOAT,
    sd_bp FLOAT,
    t_stat FLOAT,                          -- mean / overlap-aware standard error
    random_n INT NOT NULL,                 -- random entries measured (seeded; same days, same BUY share)
    random_hit_rate FLOAT,
    random_mean_bp FLOAT,
    random_sd_bp FLOAT,
    random_t_stat FLOAT,
    edge_bp FLOAT,                         -- mean_bp - random_mean_bp
    edge_t_stat FLOAT,                     -- Welch t of the edge
    edge_p_value FLOAT,                    -- two-sided
    edge_p_adjusted FLOAT,                 -- Bonferroni over the evaluation's tested rows
    verdict VARCHAR(16) NOT NULL,          -- too_few_signals | edge | negative_edge | no_edge
    min_signals INT NOT NULL,              -- below this (or 10 effective observations): too_few_signals
    random_per_signal INT NOT NULL,
    seed INT NOT NULL,
    kernel_version VARCHAR(64),            -- of the signals evaluated (null: several)
    signal_runs VARCHAR(65000) NOT NULL    -- JSON {day: run_id} of the signal runs evaluated
)
ORDER BY computed_ns, symbol, horizon_s
UNSEGMENTED ALL NODES;
