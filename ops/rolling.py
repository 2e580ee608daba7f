"""Rolling reboot, rolling Docker engine restart, and whole-cluster shutdown.

reboot: one host at a time, refusing to start unless the cluster is healthy, and waiting for it to be
healthy again before the next host. Servers first, each drained on both balancers through HAProxy's
runtime API (`state maint`, then no session left), rebooted, its container healthy again, put back
(`state ready`) and UP on both balancers. Then the BACKUP balancer (it carries no traffic). Then the
MASTER, after handing the VIP over: the handover file lowers its VRRP priority (as the program's
rolling steps do, files/scripts/balancer-leave.sh), the BACKUP takes the VIP, only then the MASTER
reboots; when it is back the file is set to 0 (a boot has cleared /run already) and it takes the VIP
back by preemption. Without preemption keepalived is stopped instead (a priority-0 advert), and started
again once the host is back.

restart-engines: the same roll with `systemctl restart docker` in place of the reboot (what an engine
upgrade does to a host): every container comes back by its restart policy, the handover file is set
back to 0 by hand (/run was not cleared).

shutdown: keepalived stopped on the BACKUP then on the MASTER (the VIP is released once, never moved),
then the balancers powered off, then the servers (nothing sends them requests any more). Every host
is powered off even if an earlier one fails; the result says which are still reachable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from components import names, timing
from components.settings import Settings
from ops.hosts import Fleet, HostUnreachable, in_flight, in_parallel, parse_show_stat
from ops.status import verdict
from ops.wait import Clock, OpsTimeout, wait_for

DONE, FAILED, REFUSED = 0, 1, 3


@dataclass(frozen=True)
class Timeouts:
    drain_s: float = timing.DRAIN_TIMEOUT_S
    boot_s: float = 600  # a Pi with an SD card and Docker starting five containers
    container_s: float = 180
    healthy_s: float = 180
    handover_s: float = 30
    off_s: float = 180


def reboot_order(settings: Settings, vip_holder: str) -> list[str]:
    """Servers in inventory order, then the balancer without the VIP, then the one holding it."""
    balancers = [b.name for b in settings.balancers]
    backup = next(name for name in balancers if name != vip_holder)
    return [s.name for s in settings.servers] + [backup, vip_holder]


def shutdown_order(settings: Settings, vip_holder: str | None) -> list[str]:
    """Balancers (the one without the VIP first), then servers: power-off order."""
    balancers = [b.name for b in settings.balancers]
    if vip_holder in balancers:
        balancers = [b for b in balancers if b != vip_holder] + [vip_holder]
    else:
        balancers.reverse()  # the BACKUP first
    return balancers + [s.name for s in settings.servers]


class Rolling:
    def __init__(
        self,
        cluster: Fleet,
        say: Callable[[str], None] = print,
        clock: Clock | None = None,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        self.cluster, self.say, self.clock, self.t = cluster, say, clock or Clock(), timeouts
        self.settings = cluster.settings
        self.balancers = [b.name for b in self.settings.balancers]
        self.started = self.clock.monotonic()

    def log(self, text: str) -> None:
        self.say(f"{self.clock.monotonic() - self.started:6.1f}s {text}")

    # --- reboot --------------------------------------------------------------------------------------------

    def reboot(self) -> int:
        return self._roll("reboot", self._reboot_host)

    def restart_engines(self) -> int:
        return self._roll("engine restart", self._restart_engine)

    def _roll(self, what: str, action: Callable[[str], None]) -> int:
        """`action` on every host, one at a time (servers drained, the MASTER after a handover), refused
        unless the cluster is healthy, and the cluster healthy again after each host."""
        before = verdict(self.settings, self.cluster.facts())
        if not before.healthy:
            self.say(f"{what} refused: the cluster is {before.word}, not healthy; nothing was touched")
            for problem in before.problems:
                self.say(f"  - {problem}")
            return REFUSED
        order = reboot_order(self.settings, before.vip_holders[0])
        self.log(f"rolling {what}, in this order: " + ", ".join(order))
        try:
            for name in order:
                if name in self.balancers:
                    self._roll_balancer(name, "MASTER" if name == order[-1] else "BACKUP", action)
                else:
                    self._roll_server(name, action)
                self._wait_healthy(f"after {name}")
        except (OpsTimeout, HostUnreachable) as error:
            self.log(f"{what} STOPPED: {error}")
            self.say("the cluster may need a hand: see `python -m ops status`")
            return FAILED
        self.log(f"{what} done: {len(order)} hosts, one at a time, the cluster healthy after each")
        return DONE

    def _roll_server(self, name: str, action: Callable[[str], None]) -> None:
        backend = names.HAPROXY_BACKEND
        for balancer in self.balancers:
            self.cluster.runtime(balancer, f"set server {backend}/{name} state maint")
        self.log(f"{name}: in maintenance on {', '.join(self.balancers)}")
        wait_for(
            f"{name}'s requests in flight to finish", lambda: self._sessions(name) == 0, self.t.drain_s, self.clock, 0.5
        )
        action(name)
        wait_for(
            f"{name}'s {names.NGINX_CONTAINER} healthy",
            lambda: self._container_healthy(name),
            self.t.container_s,
            self.clock,
            2,
        )
        for balancer in self.balancers:
            self.cluster.runtime(balancer, f"set server {backend}/{name} state ready")
        wait_for(
            f"{name} UP on {', '.join(self.balancers)}",
            lambda: self._up_everywhere(name),
            timing.ready_timeout_s(self.settings.cluster),
            self.clock,
            0.5,
        )
        self.log(f"{name}: back in service, UP on both balancers")

    def _roll_balancer(self, name: str, role: str, action: Callable[[str], None]) -> None:
        peer = next(b for b in self.balancers if b != name)
        handed_over = stopped = False
        if role == "MASTER":
            if self.settings.cluster.vrrp.preempt:
                self.cluster.set_handover(name, 1)
                handed_over = True
                self.log(f"{name}: VRRP priority lowered (handover file 1): {peer} takes the VIP")
            else:
                self.cluster.stop_keepalived(name)
                stopped = True
                self.log(f"{name}: keepalived stopped (no preemption): {peer} takes the VIP")
            wait_for(
                f"the VIP on {peer}", lambda: self.cluster.vip_holders() == [peer], self.t.handover_s, self.clock, 0.25
            )
            self.clock.sleep(1)  # the peer's gratuitous ARP lands while this HAProxy still answers
        action(name)
        wait_for(
            f"{name}'s {names.HAPROXY_CONTAINER} healthy",
            lambda: self._container_healthy(name),
            self.t.container_s,
            self.clock,
            2,
        )
        if handed_over:
            self.cluster.set_handover(name, 0)  # a boot cleared /run already; as balancer-rejoin.sh does
            self.log(f"{name}: handover file 0, VRRP priority back")
        if stopped:
            self.cluster.start_keepalived(name)  # enabled: a boot started it already; an engine restart did not
            self.log(f"{name}: keepalived started")

    def _reboot_host(self, name: str) -> None:
        self.cluster.mark_boot(name)
        self.cluster.reboot(name)
        self.log(f"{name}: rebooting")
        wait_for(
            f"{name} to boot again and answer over SSH",
            lambda: self.cluster.rebooted(name),
            self.t.boot_s,
            self.clock,
            3,
        )
        self.log(f"{name}: booted, SSH answers")

    def _restart_engine(self, name: str) -> None:
        self.log(f"{name}: restarting dockerd")
        self.cluster.restart_docker(name)
        self.log(f"{name}: dockerd restarted")

    def _sessions(self, server: str) -> int:
        return sum(in_flight(self.cluster.runtime(balancer, "show stat"), server) for balancer in self.balancers)

    def _up_everywhere(self, server: str) -> bool:
        views = [parse_show_stat(self.cluster.runtime(b, "show stat")) for b in self.balancers]
        return all(view.get(server) == "UP" for view in views)

    def _container_healthy(self, name: str) -> bool:
        facts = self.cluster.facts()[name]
        wanted = names.HAPROXY_CONTAINER if name in self.balancers else names.NGINX_CONTAINER
        container = facts.container(wanted)
        return bool(container and container.healthy)

    def _wait_healthy(self, when: str) -> None:
        wait_for(
            f"a healthy cluster {when}",
            lambda: verdict(self.settings, self.cluster.facts()).healthy,
            self.t.healthy_s,
            self.clock,
            2,
        )
        self.log(f"cluster healthy {when}")

    # --- shutdown ------------------------------------------------------------------------------------------

    def shutdown(self) -> int:
        holders = self.cluster.vip_holders()
        order = shutdown_order(self.settings, holders[0] if holders else None)
        self.log(
            "shutdown: keepalived stopped on "
            + ", ".join(o for o in order if o in self.balancers)
            + "; then power off "
            + ", ".join(order)
        )
        for name in [o for o in order if o in self.balancers]:
            try:
                self.cluster.stop_keepalived(name)
                self.log(f"{name}: keepalived stopped")
            except HostUnreachable as error:
                self.log(f"{name}: could not stop keepalived ({error})")
        groups = [[o for o in order if o in self.balancers], [o for o in order if o not in self.balancers]]
        still_up: list[str] = []
        for group in groups:
            for name in group:
                try:
                    self.cluster.poweroff(name)
                    self.log(f"{name}: powering off")
                except HostUnreachable as error:
                    self.log(f"{name}: could not ask it to power off ({error})")
            left = list(group)
            deadline = self.clock.monotonic() + self.t.off_s
            while left and self.clock.monotonic() < deadline:
                self.clock.sleep(3)
                answering = in_parallel(left, self.cluster.reachable)
                left = [name for name in left if answering[name]]
            self.log(f"{', '.join(group)}: " + (f"still answering: {', '.join(left)}" if left else "off"))
            still_up += left
        if still_up:
            self.log(f"shutdown INCOMPLETE: still answering after {self.t.off_s:.0f}s: {', '.join(still_up)}")
            return FAILED
        self.log(f"shutdown done: {len(order)} hosts off (power them on again to bring the cluster back)")
        return DONE
