"""The cluster's health from its hosts' facts: a verdict with an exit code, a table, a JSON document.

0 healthy: every host up, every server UP on both balancers, keepalived active on both, the VIP on one
  balancer (the intended MASTER, when preemption is on) whose HAProxy runs.
1 degraded: still serving, but something is down or out: a server (host, container, or not UP on a
  balancer), one balancer (host, Docker, keepalived, HAProxy), a handover left set, the VIP on the BACKUP;
  with TLS on, a balancer's certificate missing or with fewer than CERT_MIN_DAYS_LEFT days left (a sixth
  of its lifetime, if less: ops/certs.py), or the two balancers serving different certificates.
2 outage or split brain: the VIP held by no balancer, by both, or by one whose HAProxy is not running,
  or no server UP behind the VIP holder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from components import names
from components.cluster import vip_held
from components.settings import Settings
from ops.certs import CERT_MIN_DAYS_LEFT, describe, renewal_overdue
from ops.hosts import HostFacts

HEALTHY, DEGRADED, OUTAGE = 0, 1, 2


@dataclass
class Verdict:
    code: int
    word: str  # healthy, degraded, outage, split brain
    vip_holders: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return self.code == HEALTHY


def _host_problems(facts: HostFacts) -> list[str] | None:
    """What every host needs (SSH, Docker); None when it cannot even be reached."""
    if not facts.reachable:
        return None
    return [f"{facts.name}: docker {facts.docker}"] if facts.docker != "active" else []


def balancer_problems(facts: HostFacts) -> list[str]:
    """Why this balancer could not carry the VIP (empty: it can)."""
    name = facts.name
    problems = _host_problems(facts)
    if problems is None:
        return [f"{name} unreachable ({facts.error})"]
    if facts.keepalived != "active":
        problems.append(f"{name}: keepalived {facts.keepalived}")
    haproxy = facts.container(names.HAPROXY_CONTAINER)
    if haproxy is None or not haproxy.healthy:
        problems.append(f"{name}: {names.HAPROXY_CONTAINER} {_describe(haproxy)}")
    if facts.vrrp_state == "FAULT":
        problems.append(f"{name}: keepalived in FAULT state")
    if facts.handover not in ("", "0"):
        problems.append(f"{name}: VRRP handover file set ({facts.handover}): its priority is lowered")
    return problems


def server_problems(facts: HostFacts) -> list[str]:
    name = facts.name
    problems = _host_problems(facts)
    if problems is None:
        return [f"{name} unreachable ({facts.error})"]
    nginx = facts.container(names.NGINX_CONTAINER)
    if nginx is None or not nginx.healthy:
        problems.append(f"{name}: {names.NGINX_CONTAINER} {_describe(nginx)}")
    return problems


def certificate_problems(settings: Settings, facts: dict[str, HostFacts]) -> list[str]:
    """With TLS on: each reachable balancer has a certificate that lasts, and both the same one (else the
    site's certificate changes when the VIP moves)."""
    if settings.cluster.haproxy.tls is None:
        return []
    problems = []
    served = {}
    for balancer in settings.balancers:
        name, found = balancer.name, facts[balancer.name]
        if not found.reachable:
            continue  # already a problem
        cert = found.certificate
        if cert is None:
            problems.append(f"{name}: TLS on, but no certificate in {names.HAPROXY_PEM_FILE}")
            continue
        served[name] = cert
        if cert.days_left < 0:
            problems.append(f"{name}: certificate expired on {cert.not_after}")
        elif renewal_overdue(cert):
            problems.append(
                f"{name}: certificate expires in {cert.days_left} days (fewer than {CERT_MIN_DAYS_LEFT}, or less "
                f"than a sixth of its lifetime: is the renewal failing?)"
            )
    if len({cert.sha256 for cert in served.values()}) > 1:
        differ = ", ".join(f"{name} sha256 {cert.sha256[:16]} until {cert.not_after}" for name, cert in served.items())
        problems.append(f"the balancers serve different certificates: {differ}")
    return problems


def _describe(container: Any) -> str:
    return "missing" if container is None else f"{container.state} ({container.status})"


def _serving(status: str | None) -> bool:
    return bool(status) and status.split()[0] == "UP"  # "UP", "UP 1/2" (going down, still serving)


def verdict(settings: Settings, facts: dict[str, HostFacts]) -> Verdict:
    vip = settings.cluster.vrrp.vip.ip
    balancers = [b.name for b in settings.balancers]
    holders = [name for name in balancers if facts[name].holds_vip]
    degraded: list[str] = []
    broken = {name: balancer_problems(facts[name]) for name in balancers}
    for problems in broken.values():
        degraded += problems
    degraded += certificate_problems(settings, facts)
    viewers = [b for b in balancers if facts[b].reachable and facts[b].servers]
    for server in settings.servers:
        degraded += server_problems(facts[server.name])
        for b in viewers:
            status = facts[b].servers.get(server.name)
            if status is None:
                degraded.append(f"{server.name}: not in {b}'s backend")
            elif not _serving(status):
                degraded.append(f"{server.name}: {status} on {b}")
    if len(holders) > 1:
        return Verdict(OUTAGE, "split brain", holders, [f"VIP {vip} held by {' and '.join(holders)}", *degraded])
    if not holders:
        return Verdict(OUTAGE, "outage", holders, [f"VIP {vip} held by no balancer", *degraded])
    holder = facts[holders[0]]
    haproxy = holder.container(names.HAPROXY_CONTAINER)
    if haproxy is None or haproxy.state != "running":
        return Verdict(OUTAGE, "outage", holders, [f"VIP on {holder.name}, whose HAProxy is not running", *degraded])
    if holder.servers and not any(_serving(s) for s in holder.servers.values()):
        return Verdict(OUTAGE, "outage", holders, [f"no server UP on {holder.name}, the VIP holder", *degraded])
    if settings.cluster.vrrp.preempt and holder.name != balancers[0] and not broken[balancers[0]]:
        degraded.append(f"VIP on {holder.name}, not on the MASTER {balancers[0]} (preemption pending?)")
    if degraded:
        return Verdict(DEGRADED, "degraded", holders, degraded)
    return Verdict(HEALTHY, "healthy", holders)


COLUMNS = ["host", "role", "address", "ssh", "docker", "container", "keepalived", "vrrp", "vip", "haproxy sees"]


def _row(facts: HostFacts) -> list[str]:
    if not facts.reachable:
        return [facts.name, facts.role, facts.address, "DOWN", *["-"] * 6]
    container = names.HAPROXY_CONTAINER if facts.role == "balancer" else names.NGINX_CONTAINER
    found = facts.container(container)
    state = "missing" if found is None else ("healthy" if found.healthy else found.status or found.state)
    vrrp = f"{facts.vrrp_state} since {facts.vrrp_since}" if facts.vrrp_state else "-"
    seen = " ".join(f"{name}:{status.replace(' ', '')}" for name, status in facts.servers.items()) or "-"
    keepalived = facts.keepalived
    if facts.keepalived_restarts:
        keepalived += f" ({facts.keepalived_restarts} restarts)"
    return [
        facts.name,
        facts.role,
        facts.address,
        "ok",
        facts.docker,
        f"{container.removeprefix('pihalb-')} {state}",
        keepalived,
        vrrp,
        "VIP" if facts.holds_vip else "-",
        seen if facts.role == "balancer" else "-",
    ]


def table(settings: Settings, facts: dict[str, HostFacts], result: Verdict) -> str:
    rows = [COLUMNS] + [_row(facts[h.name]) for h in settings.cluster.hosts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for balancer in settings.balancers:
        history = facts[balancer.name].transitions
        if history:
            lines.append(f"{balancer.name} last transitions: " + ", ".join(f"{t.at} {t.state}" for t in history))
    if settings.cluster.haproxy.tls is not None:
        for balancer in settings.balancers:
            found = facts[balancer.name]
            if found.reachable:
                cert = found.certificate
                lines.append(f"{balancer.name} certificate: {describe(cert) if cert else 'none'}")
    lines.append(vip_held(settings.cluster.vrrp.vip.ip, result.vip_holders))
    lines += [f"  - {problem}" for problem in result.problems]
    lines.append(f"{result.word.upper()} (exit {result.code})")
    return "\n".join(lines)


def document(stack: str, settings: Settings, facts: dict[str, HostFacts], result: Verdict) -> dict[str, Any]:
    """The `--json` output; with TLS on, each balancer's entry has its `certificate` (null: none)."""
    hosts = [facts[h.name].to_json() for h in settings.cluster.hosts]
    if settings.cluster.haproxy.tls is not None:
        for entry in hosts:
            if entry["role"] == "balancer":
                cert = facts[entry["name"]].certificate
                entry["certificate"] = asdict(cert) if cert else None
    return {
        "stack": stack,
        "vip": str(settings.cluster.vrrp.vip.ip),
        "verdict": result.word,
        "exit_code": result.code,
        "vip_holders": result.vip_holders,
        "problems": result.problems,
        "hosts": hosts,
    }
