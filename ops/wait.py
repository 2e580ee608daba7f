"""Bounded waits on an injectable clock (the unit tests' fake clock never sleeps): the one wait of ops,
the drills, the lab tests and the bench."""

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


def wait_for(
    what: str,
    predicate: Callable[[], T],
    timeout: float,
    clock: Clock | None = None,
    interval: float = 1.0,
    retry_on: tuple[type[Exception], ...] = (),
) -> T:
    """Poll `predicate` until truthy and return it, or raise OpsTimeout after `timeout` seconds. An error of
    a `retry_on` type means "could not look this time", not yet: it is kept as the last thing seen."""
    clock = clock or Clock()
    deadline = clock.monotonic() + timeout
    last: T | Exception | None = None
    while True:
        try:
            last = predicate()
        except retry_on as error:
            last = error
        if last and not isinstance(last, Exception):
            return last  # type: ignore[return-value]
        if clock.monotonic() >= deadline:
            raise OpsTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        clock.sleep(interval)
