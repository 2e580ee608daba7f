"""Requests to the site at a fixed rate, each on a new connection and each recorded: the one probe of
`python -m ops drill`, the lab tests' and the bench's load (`drills.load.Load`), and how long a failure
lasted.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops.wait import Clock

PAGE = re.compile(r"Hello world from server (\d+)!")


@dataclass
class Reply:
    status: int | None
    server: int | None
    headers: dict[str, str]  # names in lower case
    error: str = ""

    @property
    def ok(self) -> bool:
        """A 200 with a server's page: the site answered."""
        return self.status == 200 and self.server is not None


@dataclass(frozen=True)
class Https:
    """HTTPS under a site name: SNI and the certificate check use `name`, the connection goes to the given
    host (the VIP, or one balancer). `context` holds the trusted roots; a new handshake per request."""

    name: str
    context: ssl.SSLContext

    def connection(self, host: str, port: int, timeout: float) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(self.name, port, timeout=timeout, context=self.context)
        conn._create_connection = lambda address, *args, **kwargs: socket.create_connection(  # type: ignore[attr-defined]
            (host, address[1]), *args, **kwargs
        )
        return conn


def get(
    host: str,
    port: int = 80,
    path: str = "/",
    timeout: float = 2.0,
    headers: dict | None = None,
    https: Https | None = None,
) -> Reply:
    """One HTTP(S) request; failures are returned, not raised, so load and fault tests can count them."""
    conn = https.connection(host, port, timeout) if https else http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        match = PAGE.search(body)
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, int(match.group(1)) if match else None, headers)
    except (OSError, http.client.HTTPException) as error:
        return Reply(None, None, {}, f"{type(error).__name__}: {error}")
    finally:
        conn.close()


@dataclass
class Sample:
    t: float  # when the request went out, seconds from the probe's start
    ok: bool
    server: int | None = None
    detail: str = ""
    latency: float = 0.0  # seconds from connect to the whole reply read


def time_to_recovery(samples: Sequence[Sample], steady_s: float = 0.0) -> float | None:
    """From the first failure to the first success after which nothing failed for `steady_s` (0: the first
    success after it, the drill's outage); 0 when nothing failed, None when no such success came."""
    failed = [s.t for s in samples if not s.ok]
    if not failed:
        return 0.0
    for sample in samples:
        if sample.ok and sample.t > failed[0] and not any(sample.t < f <= sample.t + steady_s for f in failed):
            return round(sample.t - failed[0], 3)
    return None


@dataclass
class Probe:
    """`fetch()` called `rate` times a second in the background, each call recorded as a Sample, until
    `stop()`, or until `max_seconds` (which `join` lets the window reach; it may be shortened meanwhile)."""

    fetch: Callable[[], Reply]
    rate: int = 20
    max_seconds: float = 60.0
    timeout: float = 1.0
    clock: Clock = field(default_factory=Clock)
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self.t0 = 0.0

    def start(self, delay: float = 0.0) -> Probe:
        """Begin the window `delay` seconds from now."""
        self.t0 = self.clock.monotonic() + delay
        self._thread.start()
        return self

    def elapsed(self) -> float:
        """Seconds since the window began (negative just before the first request)."""
        return self.clock.monotonic() - self.t0

    def stop(self) -> list[Sample]:
        """End the window now; every request, in the order sent."""
        self._stop.set()
        return self.join(self.timeout + 5)

    def join(self, timeout: float | None = None) -> list[Sample]:
        """Wait for the window to end by itself; every request, in the order sent."""
        self._thread.join(timeout=timeout if timeout is not None else self.max_seconds + 30)
        self.samples.sort(key=lambda s: s.t)
        return list(self.samples)

    def _one(self) -> None:
        sent = self.elapsed()  # when it really went out, not when it was due: a late request is no alibi
        reply = self.fetch()
        latency = self.elapsed() - sent
        detail = reply.error or str(reply.status)
        self.samples.append(Sample(round(sent, 3), reply.ok, reply.server, detail, round(latency, 6)))

    def _drive(self) -> None:
        # Enough workers that requests hanging for the whole timeout never delay the ones due after them.
        with ThreadPoolExecutor(max_workers=int(self.rate * self.timeout * 2) + 8) as pool:
            i = 0
            while not self._stop.is_set() and (due := i / self.rate) < self.max_seconds:
                i += 1
                delay = self.t0 + due - self.clock.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                pool.submit(self._one)
