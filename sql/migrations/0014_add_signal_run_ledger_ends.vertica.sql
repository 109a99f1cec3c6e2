-- Vertica twin of 0014_add_signal_run_ledger_ends.sql: same column, same meaning. Sized
-- VARCHAR (see 0001's twin): one "topic:partition": offset pair is under 300 bytes, so 65,000
-- holds a topic of more than 200 partitions. ADD COLUMN IF NOT EXISTS: DDL auto-commits, a
-- re-run after a crash is harmless.
ALTER TABLE signal_runs ADD COLUMN IF NOT EXISTS ledger_ends VARCHAR(65000);
