"""Environment parsing: one set of readers for the platform's and the MCP server's settings."""

from __future__ import annotations

import pytest

from mcp_server.settings import McpSettings
from pipeline.errors import ConfigError
from pipeline.settings import Settings, env_csv, env_float, env_int


def test_readers_name_the_variable_and_the_bound() -> None:
    env = {"A": " 7 ", "B": "x", "C": "0.5", "D": "a, ,b,"}
    assert env_int(env, "A", 1, minimum=1) == 7
    assert env_int(env, "UNSET", 3, minimum=1) == 3
    with pytest.raises(ConfigError, match=r"B is 'x' and must be an integer"):
        env_int(env, "B", 1)
    with pytest.raises(ConfigError, match=r"A is 7 and must be at least 8"):
        env_int(env, "A", 1, minimum=8)
    assert env_float(env, "C", 1.0, minimum=0.1) == 0.5
    with pytest.raises(ConfigError, match=r"B is 'x' and must be a number"):
        env_float(env, "B", 1.0, minimum=0.0)
    assert env_csv(env, "D") == ("a", "b")


def test_both_settings_read_through_the_same_rules() -> None:
    with pytest.raises(ConfigError, match="MICROSTRUCTURE_TOPIC_PARTITIONS is 0"):
        Settings.from_env({"MICROSTRUCTURE_TOPIC_PARTITIONS": "0"})
    with pytest.raises(ConfigError, match="MICROSTRUCTURE_MCP_QUERY_TIMEOUT_S is 'soon'"):
        McpSettings.from_env({"MICROSTRUCTURE_MCP_QUERY_TIMEOUT_S": "soon"})
    s = McpSettings.from_env(
        {
            "MICROSTRUCTURE_MCP_ALLOWED_HOSTS": "a.example, b.example",
            "MICROSTRUCTURE_MCP_RATE": "2.5",
        }
    )
    assert s.allowed_hosts == ("a.example", "b.example")
    assert s.rate_per_s == 2.5
