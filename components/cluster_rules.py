"""The rules a whole `pihalb:cluster` must keep across its fields (each field alone is checked by its
model in components/settings.py): the inventory, the VRRP priorities with the track weight and the
handover, the addresses against the VIP's subnet, and one port per listener on each host. Each raises
a Problem naming the key and the fix."""

from __future__ import annotations

from typing import Any

from components.fields import CLUSTER_KEY, CONFIG_NAMESPACE, Problem

Cluster = Any  # a components.settings.Cluster, whose validator calls check_cluster (not imported: no circle)

# keepalived: 255 belongs to the address owner; a tracked priority is clamped to 1..254.
KEEPALIVED_MAX_PRIORITY = 254


def check_cluster(c: Cluster) -> None:
    _check_inventory(c)
    _check_priorities(c)
    _check_addresses(c)
    _check_ports(c)


def _check_inventory(c: Cluster) -> None:
    names = [h.name for h in c.hosts]
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_names:
        raise Problem(f"duplicate host names {dup_names}", "give every host its own name", "hosts")
    addrs = [str(h.address) for h in c.hosts]
    dup_addrs = sorted({a for a in addrs if addrs.count(a) > 1})
    if dup_addrs:
        raise Problem(f"duplicate host addresses {dup_addrs}", "give every host its own address", "hosts")
    if not any(h.role == "server" for h in c.hosts):
        raise Problem("no host has role 'server'", "add at least one host with role: server", "hosts")
    balancers = [h for h in c.hosts if h.role == "balancer"]
    if len(balancers) != 2:
        raise Problem(
            f"{len(balancers)} hosts have role 'balancer'",
            "declare exactly two balancers (one VRRP MASTER, one BACKUP); more balancers would need "
            "more VRRP instances, which this program does not build",
            "hosts",
        )


def _check_priorities(c: Cluster) -> None:
    indexed = sorted(((h.priority, i) for i, h in enumerate(c.hosts) if h.role == "balancer"), reverse=True)
    (high, high_i), (low, low_i) = indexed
    if high == low:
        raise Problem(
            f"both balancers have priority {high}",
            "give the MASTER a higher priority than the BACKUP (e.g. 101 and 100)",
            f"hosts[{low_i}].priority",
        )
    weight = c.vrrp.track.weight
    if weight and abs(weight) <= high - low:  # (weight 0: FAULT when HAProxy dies, whatever the gap)
        raise Problem(
            f"priority gap {high - low} is not smaller than |weight| {abs(weight)}, so a dead HAProxy "
            "on the MASTER would never move the VIP",
            (f"make the gap smaller than the weight (priorities {high}/{high - 1}) or " if abs(weight) > 1 else "")
            + f"raise the weight above {high - low}",
            "vrrp.track.weight",
        )
    for priority, i in indexed:
        if not 1 <= priority + weight <= KEEPALIVED_MAX_PRIORITY:
            raise Problem(
                f"priority {priority} with track weight {weight} gives {priority + weight}, but keepalived clamps a "
                f"tracked priority to 1..{KEEPALIVED_MAX_PRIORITY}, so both balancers could end up equal and a dead "
                "HAProxy would not move the VIP",
                f"keep priority + weight within 1..{KEEPALIVED_MAX_PRIORITY} (e.g. priorities 101/100, weight 2)",
                f"hosts[{i}].priority",
            )
    # The handover: both HAProxys alive (a positive weight counts on both), the MASTER lowered by the
    # handover file's weight, clamped to keepalived's floor of 1. The BACKUP must then be strictly above.
    alive_bonus = max(weight, 0)
    lowered = max(1, high + alive_bonus - handover_weight(high, weight))
    if low + alive_bonus <= lowered:
        raise Problem(
            f"during a handover the MASTER's priority drops to {lowered} (not to 0: that is FAULT, which drops "
            f"the VIP before the peer holds it), and the BACKUP's is {low + alive_bonus}: VRRP breaks that tie by "
            "address, so the VIP may never move and a rolling change of the MASTER times out",
            f"give the BACKUP a priority of at least {lowered - alive_bonus + 1} (e.g. priorities 101/100)",
            f"hosts[{low_i}].priority",
        )


def handover_weight(priority: int, weight: int) -> int:
    """How far the handover file lowers a balancer: to 1 with its HAProxy alive (a positive track weight
    counted), never to 0, which is FAULT (the VIP dropped at once). keepalived takes weights up to 253."""
    return min(253, priority - 1 + max(weight, 0))


def _check_addresses(c: Cluster) -> None:
    vip = c.vrrp.vip
    net = vip.network
    for i, h in enumerate(c.hosts):
        if h.address not in net:
            raise Problem(
                f"VIP subnet {net} does not contain host {h.name} ({h.address})",
                "put the VIP in the hosts' LAN and give it the LAN's prefix",
                "vrrp.vip",
            )
        if h.address in (net.network_address, net.broadcast_address):
            raise Problem(
                f"{h.address} is the network or broadcast address of the VIP's subnet {net}",
                "use the host's own address in the LAN",
                f"hosts[{i}].address",
            )
        if h.address == vip.ip:
            raise Problem(f"VIP {vip.ip} is host {h.name}'s address", "pick an address no host uses", "vrrp.vip")


def _check_ports(c: Cluster) -> None:
    """Whatever listens on one host listens on its own port: sshd, and the ports Docker publishes there.

    Docker cannot publish a port sshd already holds (the container never starts), and a container that
    took it first would lock the program out of the host.
    """
    for i, h in enumerate(c.hosts):
        ssh_key = f"hosts[{i}].port" if h.port is not None else "ssh.port"
        listeners = {ssh_key: (h.port or c.ssh.port, "SSH port")}
        if h.role == "server":
            listeners["nginx.serverPort"] = (c.nginx.server_port, "nginx port")
        else:
            listeners["haproxy.frontendPort"] = (c.haproxy.frontend_port, "HAProxy frontend port")
            listeners["haproxy.statsPort"] = (c.haproxy.stats_port, "HAProxy stats port")
            if c.haproxy.tls is not None:
                listeners["haproxy.tls.port"] = (c.haproxy.tls.port, "HAProxy TLS port")
        taken: dict[int, tuple[str, str]] = {}
        for key, (port, what) in listeners.items():
            if port in taken:
                other_key, other = taken[port]
                raise Problem(
                    f"{h.name}'s {what} {port} is also its {other} ({CONFIG_NAMESPACE}:{CLUSTER_KEY}.{other_key}); "
                    "two listeners cannot share a port on one host",
                    f"give {key} and {other_key} different ports",
                    key,
                )
            taken[port] = (key, what)
