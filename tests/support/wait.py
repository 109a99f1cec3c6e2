"""The one way tests wait: a deadline-bounded poll, never a bare sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.05, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout_s`` passes.

    Returns the truthy value; raises ``TimeoutError`` naming ``what`` otherwise.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or predicate!r}")
        time.sleep(interval_s)


async def until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.01, what: str = ""
) -> T:
    """Await ``predicate`` becoming truthy, polling on the event loop (:func:`wait_until`'s twin).

    Returns the truthy value; raises ``TimeoutError`` naming ``what`` otherwise, so a
    broken test fails instead of hanging.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what or predicate!r}")
        await asyncio.sleep(interval_s)
