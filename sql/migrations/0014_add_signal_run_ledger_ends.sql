-- What a signals run read, so a later batch can be told from one it included: the ledger end
-- (next offset) of every partition in the run's snapshot, as JSON {"topic:partition": end}.
-- A batch of the day's regular session that starts at or beyond its partition's end was not
-- read: the day is stale (MCP shows it not final; stale_signals_sensor recomputes it).
-- Null for runs stored before this column existed: their staleness is unknown and not judged.
-- (0012 and 0013 are the ledger's topic id and Vertica's load guard.)
ALTER TABLE signal_runs ADD COLUMN IF NOT EXISTS ledger_ends VARCHAR;
