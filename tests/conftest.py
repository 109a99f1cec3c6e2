"""Shared fixtures and marker rules.

Unmarked tests are ``unit``. Fixtures that need real services (the Kafka broker)
live in tests/support and are registered here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MICRO_QUIET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = {"unit", "property", "replay", "kafka", "vertica", "live", "bench"}
    for item in items:
        if not any(m.name in known for m in item.iter_markers()):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def duckdb_file(tmp_path: Path) -> Path:
    """A path for a fresh DuckDB warehouse file (never :memory:)."""
    return tmp_path / "warehouse.duckdb"
