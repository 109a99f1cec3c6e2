"""The real Kafka broker of a test session, and fresh topics for each test.

One KRaft broker per pytest session on free ports in a temporary directory, run from the
jar cache under ``$MICROSTRUCTURE_HOME/kafka`` (``make test`` fetches it first; a
missing cache is fetched here). The JVM is started with ``die_with_parent`` so it dies
with pytest even on ``kill -9``, and the fixture stops it at the end of the session.

When the broker cannot start the Kafka tests are skipped with the reason locally and
fail under CI (``CI`` set to 1/true/yes), where a skip would hide a broken set-up.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.kafka.broker import LocalBroker, delete_topic, ensure_topic, free_port
from pipeline.settings import Settings


def in_ci() -> bool:
    """Return True when running under CI, where a missing broker is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def broker_unavailable(reason: str) -> None:
    """Skip locally, fail under CI."""
    if in_ci():
        pytest.fail(f"Kafka broker unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"Kafka broker unavailable: {reason}")


def start_session_broker(state_dir: Path) -> Iterator[str]:
    """Start one broker for the session, yield its bootstrap string, stop it afterwards."""
    settings = Settings.from_env()
    broker = LocalBroker(
        kafka_home=settings.home / "kafka",
        version=settings.kafka_version,
        port=free_port(),
        controller_port=free_port(),
        state_dir=state_dir,
        heap_mb=512,
        die_with_parent=True,
    )
    try:
        broker.up(timeout_s=90.0)
    except PipelineError as e:
        broker.down(timeout_s=10.0)
        broker_unavailable(str(e))
    try:
        yield broker.bootstrap
    finally:
        broker.down(timeout_s=20.0)


def topic_name(test_name: str) -> str:
    """Return a unique, legal topic name derived from the test's name."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", test_name)[:80]
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"


TopicFactory = Callable[..., str]


def topic_factory(bootstrap: str, test_name: str) -> tuple[TopicFactory, Callable[[], None]]:
    """Return ``(make_topic, cleanup)``; ``make_topic(partitions=3, config=None) -> name``."""
    made: list[str] = []

    def make_topic(partitions: int = 3, config: Mapping[str, str] | None = None) -> str:
        name = topic_name(test_name)
        ensure_topic(bootstrap, name, partitions, config=config, timeout_s=30.0)
        made.append(name)
        return name

    def cleanup() -> None:
        for name in made:
            delete_topic(bootstrap, name, timeout_s=30.0)

    return make_topic, cleanup
