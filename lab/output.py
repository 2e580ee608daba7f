"""What the lab tells its user: timed progress lines, and the one error type every lab step raises."""

from __future__ import annotations

import time

_started = time.monotonic()


class LabError(RuntimeError):
    """A lab step failed; the message says what and what to look at."""


def say(message: str) -> None:
    """Progress line with the time since the lab was loaded, so slow steps show on CI logs."""
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
