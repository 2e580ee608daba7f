"""Bounded waits on an injectable clock (the unit tests' fake clock never sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class OpsTimeout(TimeoutError):
    """A bounded wait gave up; the message says what it waited for and what it saw last."""


@dataclass
class Clock:
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def wait_for(what: str, predicate: Callable[[], T], timeout: float, clock: Clock, interval: float = 1.0) -> T:
    """Poll `predicate` until truthy and return it, or raise OpsTimeout after `timeout` seconds."""
    deadline = clock.monotonic() + timeout
    last: T | None = None
    while True:
        last = predicate()
        if last:
            return last
        if clock.monotonic() >= deadline:
            raise OpsTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        clock.sleep(interval)
