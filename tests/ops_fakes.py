"""The unit tests' stand-ins for a stack's hosts under `python -m ops`: canned facts, a fake fleet, a fake clock."""

from __future__ import annotations

import copy
import re

from components import names
from ops.hosts import HostFacts, parse_facts
from ops.wait import Clock

STAT_HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status"
JOURNAL = (
    "2026-11-28T16:10:01+0000 {name} Keepalived_vrrp[812]: (VI_1) Entering BACKUP STATE\n"
    "2026-11-28T16:10:05+0000 {name} Keepalived_vrrp[812]: (VI_1) Entering {state} STATE\n"
)


def show_stat(view: dict[str, str], sessions: int = 0) -> str:
    rows = [f"servers,{name},0,0,{sessions},1,,9,0,0,,0,,0,0,0,0,{st}" for name, st in view.items()]
    frontend = "http_in,FRONTEND,,,0,1,4096,9,0,0,0,0,0,,,,,OPEN"
    return "\n".join([STAT_HEADER, frontend, *rows, "servers,BACKEND,,,,,,,,,,,,,,,,UP"])


def host_text(settings, name: str, holder: list[str], view: dict[str, str] | None = None, **overrides: str) -> str:
    """What facts_script prints on a healthy host; `overrides` replace whole sections."""
    host = next(h for h in settings.cluster.hosts if h.name == name)
    vip = settings.cluster.vrrp.vip.ip
    container = names.HAPROXY_CONTAINER if host.role == "balancer" else names.NGINX_CONTAINER
    addr = f"2: eth0    inet {host.address}/24 brd 172.30.42.255 scope global eth0\\       valid_lft forever"
    if name in holder:
        addr += f"\n2: eth0    inet {vip}/24 scope global secondary eth0\\       valid_lft forever"
    sections = {
        "docker": "active",
        "containers": f"{container}\trunning\tUp 5 minutes (healthy)",
        "addr": addr,
    }
    if host.role == "balancer":
        state = "MASTER" if name in holder else "BACKUP"
        sections |= {
            "keepalived": "active",
            "restarts": "0",
            "state": f"{state} 2026-11-28T16:10:05.123Z",
            "journal": JOURNAL.format(name=name, state=state),
            "handover": "",
            "stat": show_stat(view or {s.name: "UP" for s in settings.servers}),
        }
    sections |= overrides
    return "".join(f"@@{key}\n{value}\n" for key, value in sections.items())


def cluster_facts(settings, holder=("lb1",), views=None, unreachable=(), **host_overrides) -> dict[str, HostFacts]:
    views = views or {}
    facts = {}
    for host in settings.cluster.hosts:
        if host.name in unreachable:
            facts[host.name] = HostFacts(host.name, host.role, str(host.address), error="connection refused")
            continue
        text = host_text(settings, host.name, list(holder), views.get(host.name), **host_overrides.get(host.name, {}))
        facts[host.name] = parse_facts(host, str(settings.cluster.vrrp.vip.ip), text)
    return facts


class FakeFleet:
    """The hosts of the dev stack, in memory: VIP holder, servers in maintenance, calls in order."""

    def __init__(self, settings, facts=None):
        self.settings = settings
        self.fixed = facts
        self.holder = ["lb1"]
        self.maint: set[str] = set()
        self.haproxy_dead: set[str] = set()
        self.calls: list[tuple[str, ...]] = []
        self.handover = {"lb1": 0, "lb2": 0}

    def _view(self) -> dict[str, str]:
        return {s.name: "MAINT" if s.name in self.maint else "UP" for s in self.settings.servers}

    def facts(self):
        if self.fixed is not None:
            return copy.deepcopy(self.fixed)
        overrides = {
            name: {"containers": f"{names.HAPROXY_CONTAINER}\texited\tExited (137) 1 second ago"}
            for name in self.haproxy_dead
        }
        return cluster_facts(self.settings, self.holder, {b: self._view() for b in ("lb1", "lb2")}, **overrides)

    def vip_holders(self):
        return list(self.holder)

    def runtime(self, balancer, command):
        self.calls.append(("runtime", balancer, command))
        if match := re.fullmatch(r"set server servers/(\S+) state (maint|ready)", command):
            (self.maint.add if match.group(2) == "maint" else self.maint.discard)(match.group(1))
            return ""
        return show_stat(self._view())

    def kill_haproxy(self, balancer):
        self.calls.append(("kill_haproxy", balancer))
        self.haproxy_dead.add(balancer)
        self.holder = ["lb2" if balancer == "lb1" else "lb1"]

    def restore_haproxy(self, balancer):
        self.calls.append(("restore_haproxy", balancer))
        self.haproxy_dead.discard(balancer)
        self.holder = ["lb1"]

    def set_handover(self, balancer, value):
        self.calls.append(("set_handover", balancer, str(value)))
        self.handover[balancer] = value
        self.holder = ["lb2"] if (balancer, value) == ("lb1", 1) else ["lb1"]

    def stop_keepalived(self, balancer):
        self.calls.append(("stop_keepalived", balancer))

    def start_keepalived(self, balancer):
        self.calls.append(("start_keepalived", balancer))

    def restart_docker(self, name):
        self.calls.append(("restart_docker", name, "+".join(self.holder)))

    def mark_boot(self, name):
        self.calls.append(("mark_boot", name))

    def rebooted(self, name):
        return True

    def reboot(self, name):
        self.calls.append(("reboot", name, "+".join(self.holder)))
        if name == "lb1":
            self.handover["lb1"] = 0  # /run is a tmpfs
            self.holder = ["lb1"]  # preemption once its HAProxy runs

    def poweroff(self, name):
        self.calls.append(("poweroff", name))

    def reachable(self, name):
        return not any(call == ("poweroff", name) for call in self.calls)


class FakeClock(Clock):
    def __init__(self):
        self.now = 0.0
        super().__init__(monotonic=lambda: self.now, sleep=self._sleep)

    def _sleep(self, seconds):
        self.now += seconds
