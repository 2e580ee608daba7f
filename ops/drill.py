"""The paper's failover demonstration on a running cluster, bounded and undone.

Refuses unless the cluster is healthy. A probe sends `rate` requests/s to the VIP (each on a new
connection, `timeout` s each, for at most `max_seconds`); HAProxy is killed on the VRRP MASTER with
Docker's restart policy paused (or Docker would bring it back in a second and the VIP would not move);
the VIP's move is shown; HAProxy is restored (policy back, container started) and the VIP comes back.
Outage = from the first failed request to the first success after it.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops.hosts import Cluster
from ops.status import verdict
from ops.wait import Clock, OpsTimeout, wait_for

DONE, FAILED, REFUSED = 0, 1, 3
MOVE_TIMEOUT_S = 30
BACK_TIMEOUT_S = 60
HEALTHY_TIMEOUT_S = 90


def http_ok(host: str, port: int, timeout: float) -> bool:
    """One GET / on a new connection: True on a 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class Probe:
    """`fetch()` called `rate` times a second in the background until `stop()` or `max_seconds`."""

    fetch: Callable[[], bool]
    rate: int = 20
    max_seconds: float = 60.0
    timeout: float = 1.0
    clock: Clock = field(default_factory=Clock)
    samples: list[tuple[float, bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self.t0 = 0.0

    def start(self) -> Probe:
        self.t0 = self.clock.monotonic()
        self._thread.start()
        return self

    def elapsed(self) -> float:
        return self.clock.monotonic() - self.t0

    def stop(self) -> list[tuple[float, bool]]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        return sorted(self.samples)

    def _one(self) -> None:
        sent = self.elapsed()
        self.samples.append((round(sent, 3), self.fetch()))

    def _drive(self) -> None:
        workers = int(self.rate * self.timeout * 2) + 4
        with ThreadPoolExecutor(max_workers=workers) as pool:
            i = 0
            while not self._stop.is_set() and (due := i / self.rate) < self.max_seconds:
                i += 1
                delay = self.t0 + due - self.clock.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                pool.submit(self._one)


def outage(samples: list[tuple[float, bool]]) -> float | None:
    """From the first failure to the first success after it; 0 when nothing failed, None if none came."""
    failures = [t for t, ok in samples if not ok]
    if not failures:
        return 0.0
    after = [t for t, ok in samples if ok and t > failures[0]]
    return round(after[0] - failures[0], 3) if after else None


def drill(
    cluster: Cluster,
    probe: Probe,
    say: Callable[[str], None] = print,
    clock: Clock | None = None,
    baseline_s: float = 2.0,
) -> int:
    clock = clock or Clock()
    settings = cluster.settings
    before = verdict(settings, cluster.facts())
    if not before.healthy:
        say(f"drill refused: the cluster is {before.word}, not healthy; nothing was touched")
        for problem in before.problems:
            say(f"  - {problem}")
        return REFUSED
    master = before.vip_holders[0]
    backup = next(b.name for b in settings.balancers if b.name != master)
    preempt = settings.cluster.vrrp.preempt
    probe.start()
    say(
        f"{probe.elapsed():5.1f}s probe: {probe.rate} req/s to the VIP, {probe.timeout:.0f}s timeout, "
        f"at most {probe.max_seconds:.0f}s"
    )
    clock.sleep(baseline_s)
    moved_at = back_at = None
    problem = ""
    killed_at = probe.elapsed()
    try:
        cluster.kill_haproxy(master)
        say(f"{killed_at:5.1f}s HAProxy killed on {master} (the MASTER), its restart policy paused")
        try:
            wait_for(f"the VIP on {backup}", lambda: cluster.vip_holders() == [backup], MOVE_TIMEOUT_S, clock, 0.25)
            moved_at = probe.elapsed()
            say(f"{moved_at:5.1f}s VIP moved to {backup}")
        except OpsTimeout as error:
            problem = str(error)
            say(f"{probe.elapsed():5.1f}s {error}")
    finally:
        cluster.restore_haproxy(master)
        restored_at = probe.elapsed()
        say(f"{restored_at:5.1f}s HAProxy restored on {master} (restart policy back, started)")

    def back() -> bool:
        holders = cluster.vip_holders()
        return holders == [master] if preempt else len(holders) == 1

    try:
        wait_for(
            f"the VIP back on {master}" if preempt else "the VIP on one balancer", back, BACK_TIMEOUT_S, clock, 0.25
        )
        back_at = probe.elapsed()
        say(f"{back_at:5.1f}s VIP back on {cluster.vip_holders()[0]}")
        clock.sleep(baseline_s)
    except OpsTimeout as error:
        problem = problem or str(error)
        say(f"{probe.elapsed():5.1f}s {error}")
    samples = probe.stop()
    try:
        wait_for("a healthy cluster", lambda: verdict(settings, cluster.facts()).healthy, HEALTHY_TIMEOUT_S, clock, 2)
    except OpsTimeout as error:
        problem = problem or str(error)
    say(summary(master, backup, killed_at, moved_at, back_at, samples, problem))
    return FAILED if problem or moved_at is None or back_at is None else DONE


def summary(
    master: str,
    backup: str,
    killed_at: float,
    moved_at: float | None,
    back_at: float | None,
    samples: list[tuple[float, bool]],
    problem: str,
) -> str:
    failed = sum(1 for _, ok in samples if not ok)
    gap = outage(samples)
    moved = f"VIP on {backup} after {moved_at - killed_at:.2f}s" if moved_at is not None else "VIP DID NOT MOVE"
    back = f"VIP back after {back_at - killed_at:.2f}s" if back_at is not None else "VIP DID NOT COME BACK"
    lost = "no request failed" if gap == 0.0 else (f"outage {gap:.2f}s" if gap is not None else "outage NOT RECOVERED")
    verdict_word = f"FAILED: {problem}" if problem else "ok"
    return (
        f"drill {verdict_word}: HAProxy killed on {master}; {moved}; {lost} "
        f"({failed} of {len(samples)} requests failed); {back}"
    )
