-- Vertica twin of 0016_add_symbol_day_fit_state.sql: same columns, same meaning. FLOAT for
-- DOUBLE; the diurnal JSON has at most 13 knots (390 minutes in 30-minute bins) of three
-- floats each, under 1,500 bytes, so VARCHAR(65000) is ample. ADD COLUMN IF NOT EXISTS: DDL
-- auto-commits, a re-run after a crash is harmless. The in-database UDx path does not write
-- these columns (they stay null there; docs/live.md).
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS garch_omega_scaled FLOAT;
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS garch_backcast_scaled FLOAT;
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS acd_exp_psi1 FLOAT;
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS acd_diurnal VARCHAR(65000);
