-- Install the batch_microstructure UDx (vsql, as dbadmin, on the initiator node):
--   udx/vertica/build_depends.sh /opt/micro/udx   # copies the UDx, builds site-packages
--   vsql -v library="'/opt/micro/udx/batch_microstructure.py'" \
--        -v depends="'/opt/micro/udx/site-packages/'" -f udx/vertica/install.sql
-- (build_depends.sh prints this command with your paths.) vsql substitutes :library and
-- :depends textually: CREATE LIBRARY takes string literals, not expressions.
-- CREATE LIBRARY copies the file and the DEPENDS directory (trailing '/' required) from this
-- node to every node. Re-running replaces the library (CREATE OR REPLACE) and the functions.
--
-- Kept apart from the other SQL: sqlfluff's vertica dialect cannot parse CREATE LIBRARY,
-- CREATE TRANSFORM FUNCTION or USING PARAMETERS, so tests/vertica/test_sql.py checks this
-- file with narrower string assertions.

CREATE OR REPLACE LIBRARY micro_udx
    AS :library
    DEPENDS :depends
    LANGUAGE 'Python';

-- batch_microstructure(timestamp_ns INT, symbol VARCHAR, price FLOAT, size INT, exchange VARCHAR)
CREATE OR REPLACE TRANSFORM FUNCTION batch_microstructure
    AS LANGUAGE 'Python' NAME 'BatchMicrostructureFactory' LIBRARY micro_udx FENCED;

-- The overload with lineage: (..., kafka_partition INT, kafka_offset INT), used by signals.sql.
CREATE OR REPLACE TRANSFORM FUNCTION batch_microstructure
    AS LANGUAGE 'Python' NAME 'BatchMicrostructureLineageFactory' LIBRARY micro_udx FENCED;

CREATE OR REPLACE TRANSFORM FUNCTION batch_microstructure_metrics
    AS LANGUAGE 'Python' NAME 'BatchMicrostructureMetricsFactory' LIBRARY micro_udx FENCED;

CREATE OR REPLACE TRANSFORM FUNCTION batch_microstructure_intensity
    AS LANGUAGE 'Python' NAME 'BatchMicrostructureIntensityFactory' LIBRARY micro_udx FENCED;

-- Who may run them: every user (the functions read only what the caller may read).
GRANT EXECUTE ON TRANSFORM FUNCTION batch_microstructure(INT, VARCHAR, FLOAT, INT, VARCHAR) TO PUBLIC;
GRANT EXECUTE ON TRANSFORM FUNCTION
    batch_microstructure(INT, VARCHAR, FLOAT, INT, VARCHAR, INT, INT) TO PUBLIC;
GRANT EXECUTE ON TRANSFORM FUNCTION
    batch_microstructure_metrics(INT, VARCHAR, FLOAT, INT, VARCHAR) TO PUBLIC;
GRANT EXECUTE ON TRANSFORM FUNCTION
    batch_microstructure_intensity(INT, VARCHAR, FLOAT, INT, VARCHAR) TO PUBLIC;

-- Smoke test: one day, non-default parameters (K, alpha) through USING PARAMETERS.
SELECT batch_microstructure(timestamp_ns, symbol, price, size, exchange::VARCHAR
                            USING PARAMETERS lm_window = 270, alpha = 0.01)
       OVER (PARTITION BY symbol, trade_date ORDER BY timestamp_ns, kafka_partition, kafka_offset)
FROM market_data
WHERE trade_date = (SELECT MAX(trade_date) FROM market_data) AND in_regular_hours
LIMIT 5;
