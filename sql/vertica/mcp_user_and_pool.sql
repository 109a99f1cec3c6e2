-- The MCP server's user and resource pool (vsql, as dbadmin; see docs/vertica.md):
--   vsql -f sql/vertica/mcp_grants.sql
--   vsql -v mcp_password="'<password>'" -f sql/vertica/mcp_user_and_pool.sql
-- Kept apart from the other files because sqlfluff's vertica dialect cannot parse
-- CREATE RESOURCE POOL, CREATE USER ... IDENTIFIED BY / RESOURCE POOL, GRANT USAGE ON
-- RESOURCE POOL or ALTER USER ... DEFAULT ROLE; tests/vertica/test_sql.py checks this file
-- with narrower string assertions instead.
--
-- Sizing (docs/vertica.md): an MCP answer is capped in rows and bytes, so a query needs little
-- memory; MAXCONCURRENCY bounds how many AI-client queries run at once, QUEUETIMEOUT makes a
-- burst fail fast instead of piling up, RUNTIMECAP kills a runaway scan, and the pool can only
-- borrow up to MAXMEMORYSIZE from GENERAL, so the MCP server can never starve ingest or the
-- signals UDx.
CREATE RESOURCE POOL micro_mcp_pool
    MEMORYSIZE '1G'
    MAXMEMORYSIZE '4G'
    PLANNEDCONCURRENCY 4
    MAXCONCURRENCY 8
    QUEUETIMEOUT 30
    RUNTIMECAP '60 seconds'
    RUNTIMEPRIORITY MEDIUM;

-- Loads and the signals UDx get their own pool so that a day's backfill cannot starve the
-- per-minute microbatches of memory (EXECUTIONPARALLELISM AUTO uses every core per node).
CREATE RESOURCE POOL micro_etl_pool
    MEMORYSIZE '4G'
    MAXMEMORYSIZE '60%'
    PLANNEDCONCURRENCY 4
    MAXCONCURRENCY 6
    QUEUETIMEOUT 600
    RUNTIMECAP '2 hours'
    RUNTIMEPRIORITY HIGH;

CREATE USER micro_mcp
    IDENTIFIED BY :mcp_password
    RESOURCE POOL micro_mcp_pool
    MAXCONNECTIONS 16 ON DATABASE
    IDLESESSIONTIMEOUT '10 minutes';

GRANT USAGE ON RESOURCE POOL micro_mcp_pool TO micro_mcp;

-- The role and its SELECT grants come from mcp_grants.sql; make it the user's default role so
-- a plain connection (no SET ROLE) has exactly SELECT.
GRANT micro_mcp_reader TO micro_mcp;

ALTER USER micro_mcp DEFAULT ROLE micro_mcp_reader;
