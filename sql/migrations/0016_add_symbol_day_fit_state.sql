-- What the live path (docs/live.md) needs to filter a symbol's next day with this day's fits,
-- beyond the fitted parameters already stored: GARCH omega in the fit's scaled units and the
-- fit's backcast (the 0.94-EWMA of the day's first 75 scaled squared returns, arch's start),
-- the exponential ACD fit's psi_1 (mean adjusted duration) and the day's diurnal curve as JSON
-- {"knots_s", "knot_means_s", "second_derivs": [...], "slope_left", "slope_right", "floor"}
-- (full-precision floats). Null where the fit is missing, for days stored before this column
-- existed, and for days computed in Vertica by the UDx (it does not output them).
-- (0015 is another change's number.)
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS garch_omega_scaled DOUBLE;
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS garch_backcast_scaled DOUBLE;
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS acd_exp_psi1 DOUBLE;
ALTER TABLE symbol_day_metrics ADD COLUMN IF NOT EXISTS acd_diurnal VARCHAR;
