-- Retention on Vertica: drop whole days with DROP_PARTITIONS (a metadata operation on ROS
-- containers, far cheaper than DELETE, and it leaves no delete vectors behind).
-- Used by pipeline/warehouse/retention.py, one named statement per table; each statement is
-- preceded by a "-- name: <name>" line. Values are bound (:first_day, :last_day, inclusive
-- DATE keys); table names are constants here, never input.
-- The fourth argument 'true' force-splits ROS containers that CALENDAR_HIERARCHY_DAY grouped
-- into months or years, so a range that cuts a group still drops exactly the asked days.
-- DROP_PARTITIONS commits on its own; each table is dropped independently and a re-run is
-- harmless. The offset ledger (kafka_offsets), rejects and gaps are never dropped: the ledger
-- is what keeps a dropped range from being loaded again.

-- name: market_data
SELECT DROP_PARTITIONS('market_data', :first_day, :last_day, 'true');

-- name: trading_signals
SELECT DROP_PARTITIONS('trading_signals', :first_day, :last_day, 'true');

-- name: symbol_day_metrics
SELECT DROP_PARTITIONS('symbol_day_metrics', :first_day, :last_day, 'true');

-- name: trade_intensity
SELECT DROP_PARTITIONS('trade_intensity', :first_day, :last_day, 'true');

-- name: signal_runs
SELECT DROP_PARTITIONS('signal_runs', :first_day, :last_day, 'true');

-- name: live_signals
SELECT DROP_PARTITIONS('live_signals', :first_day, :last_day, 'true');
