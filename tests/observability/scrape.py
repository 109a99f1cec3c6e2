"""Scraping a real ``/metrics`` endpoint in tests."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.wait import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    """Return ``{(sample name, sorted labels): value}`` of one scrape."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(url, headers=headers, timeout=10)
    r.raise_for_status()
    out: Samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_scrape(
    url: str, ok: Callable[[Samples], bool], what: str, timeout_s: float = 30.0
) -> Samples:
    """Scrape until ``ok(samples)`` holds (deadline-bounded); return that scrape."""
    seen: list[Samples] = []

    def attempt() -> bool:
        seen[:] = [scrape(url)]
        return ok(seen[0])

    wait_until(attempt, timeout_s=timeout_s, what=what)
    return seen[0]
