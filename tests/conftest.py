"""Shared fixtures and marker rules.

Unmarked tests are ``unit``. Fixtures that need real services (the Kafka broker)
live in tests/support and are registered here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import kafka as kafka_support

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


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap string of one real KRaft broker per session (skip locally, fail under CI)."""
    yield from kafka_support.start_session_broker(tmp_path_factory.mktemp("kafka-broker"))


@pytest.fixture
def make_kafka_topic(
    kafka_broker: str, request: pytest.FixtureRequest
) -> Iterator[kafka_support.TopicFactory]:
    """Factory of fresh uniquely named topics: ``make_kafka_topic(partitions=3, config=None)``."""
    make, cleanup = kafka_support.topic_factory(kafka_broker, request.node.name)
    yield make
    cleanup()


@pytest.fixture
def kafka_topic(make_kafka_topic: kafka_support.TopicFactory) -> str:
    """A fresh, uniquely named topic with 3 partitions (LogAppendTime); deleted afterwards."""
    return make_kafka_topic(3)
