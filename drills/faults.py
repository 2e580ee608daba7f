"""Faults injected into the running lab, each with its undoing: the paper's experiments and a few more."""

from __future__ import annotations

import subprocess

from components import names
from drills.observe import mac_address
from lab.lab import Lab
from ops.lab_fleet import lab_fleet

VRRP_MULTICAST_GROUP = "224.0.0.18"  # where VRRP adverts go (RFC 3768/5798)


def kill_haproxy(lab: Lab, host: str) -> None:
    """HAProxy's process killed; Docker's restart policy brings it back within about a second."""
    lab.sh(host, "killall -9 haproxy")


def kill_haproxy_for_good(lab: Lab, host: str) -> None:
    """The paper's kill of HAProxy; Docker's restart policy is paused first, or it would undo it in ~0.3 s
    (`python -m ops drill`'s kill)."""
    lab_fleet(lab).kill_haproxy(host)


def restore_haproxy(lab: Lab, host: str) -> None:
    """Restart policy back, container started (`python -m ops drill`'s restore)."""
    lab_fleet(lab).restore_haproxy(host)


def stop_haproxy(lab: Lab, host: str) -> None:
    lab.sh(host, f"docker stop {names.HAPROXY_CONTAINER}")


def start_haproxy(lab: Lab, host: str) -> None:
    lab.sh(host, f"docker start {names.HAPROXY_CONTAINER}")


def stop_keepalived(lab: Lab, host: str) -> None:
    lab_fleet(lab).stop_keepalived(host)


def start_keepalived(lab: Lab, host: str) -> None:
    lab_fleet(lab).start_keepalived(host)


def stop_nginx(lab: Lab, host: str) -> None:
    lab.sh(host, f"docker stop {names.NGINX_CONTAINER}")


def kill_nginx(lab: Lab, host: str) -> None:
    lab.sh(host, f"docker kill {names.NGINX_CONTAINER}")


def start_nginx(lab: Lab, host: str) -> None:
    lab.sh(host, f"docker start {names.NGINX_CONTAINER}")


def block_vrrp_multicast(lab: Lab) -> None:
    """The paper's firewall trouble: VRRP adverts to the multicast group dropped on both balancers."""
    for host in lab.balancers:
        lab.sh(host.name, f"iptables -I INPUT 1 -d {VRRP_MULTICAST_GROUP} -j DROP")


def unblock_vrrp_multicast(lab: Lab) -> None:
    for host in lab.balancers:
        lab.sh(host.name, f"while iptables -D INPUT -d {VRRP_MULTICAST_GROUP} -j DROP 2>/dev/null; do :; done")


def client_arp_cache_at(lab: Lab, host: str) -> None:
    """The client's ARP cache sends the VIP to `host`, as the last gratuitous ARP of a second MASTER leaves it
    (a blip, or a VRRP version rolled out host by host, where neither hears the other for a moment)."""
    mac = mac_address(lab, host)
    device = (
        subprocess.run(["ip", "-o", "route", "get", str(lab.vip.ip)], capture_output=True, text=True, check=True)
        .stdout.split(" dev ")[1]
        .split()[0]
    )
    subprocess.run(
        ["ip", "neigh", "replace", str(lab.vip.ip), "lladdr", mac, "dev", device, "nud", "reachable"], check=True
    )


def undo_all(lab: Lab) -> None:
    """Everything a fault above stops, started again (hosts stopped with `lab.stop_host` excepted)."""
    fleet = lab_fleet(lab)
    for host in lab.balancers:
        fleet.start_keepalived(host.name)
        fleet.restore_haproxy(host.name)
    for host in lab.servers:
        lab.sh(host.name, f"docker start {names.NGINX_CONTAINER} >/dev/null")
