"""The paper's failover demonstration on a running cluster, bounded and undone.

Refuses unless the cluster is healthy. A probe sends `rate` requests/s to the VIP (each on a new
connection, `timeout` s each, for at most `max_seconds`); HAProxy is killed on the VRRP MASTER with
Docker's restart policy paused (or Docker would bring it back in a second and the VIP would not move);
the VIP's move is shown; HAProxy is restored (policy back, container started) and the VIP comes back.
Outage = from the first failed request to the first success after it (`ops.probe.time_to_recovery`).
"""

from __future__ import annotations

from collections.abc import Callable

from ops.hosts import Fleet
from ops.probe import Probe, Sample, time_to_recovery
from ops.status import verdict
from ops.wait import Clock, OpsTimeout, wait_for

DONE, FAILED, REFUSED = 0, 1, 3
MOVE_TIMEOUT_S = 30
BACK_TIMEOUT_S = 60
HEALTHY_TIMEOUT_S = 90


def drill(
    cluster: Fleet,
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
    samples: list[Sample],
    problem: str,
) -> str:
    failed = sum(1 for s in samples if not s.ok)
    gap = time_to_recovery(samples)  # the outage: from the first failure to the first success after it
    moved = f"VIP on {backup} after {moved_at - killed_at:.2f}s" if moved_at is not None else "VIP DID NOT MOVE"
    back = f"VIP back after {back_at - killed_at:.2f}s" if back_at is not None else "VIP DID NOT COME BACK"
    lost = "no request failed" if gap == 0.0 else (f"outage {gap:.2f}s" if gap is not None else "outage NOT RECOVERED")
    verdict_word = f"FAILED: {problem}" if problem else "ok"
    return (
        f"drill {verdict_word}: HAProxy killed on {master}; {moved}; {lost} "
        f"({failed} of {len(samples)} requests failed); {back}"
    )
