"""Looking at the lab from outside, as a client and an operator would."""

from __future__ import annotations

import http.client
import re
import subprocess
from base64 import b64encode
from collections.abc import Callable
from typing import TypeVar

from components import names
from lab.lab import Lab
from lab.output import LabError
from ops.hosts import parse_show_stat
from ops.probe import Reply, get
from ops.wait import wait_for

T = TypeVar("T")


def get_vip(lab: Lab, timeout: float = 2.0) -> Reply:
    """One request to the site through the VIP, on the frontend port the stack sets."""
    return get(str(lab.vip.ip), lab.frontend_port, timeout=timeout)


def wait_until(what: str, predicate: Callable[[], T], timeout: float, interval: float = 0.5) -> T:
    """`ops.wait.wait_for` on the wall clock, for the lab: a LabError counts as "not yet" (a busy machine,
    a host booting: could not look this time)."""
    return wait_for(what, predicate, timeout, interval=interval, retry_on=(LabError,))


def haproxy_servers(address: str, port: int, password: str) -> dict[str, str]:
    """Server name → status (UP, DOWN, ...) from a balancer's stats page (CSV); empty when it does not answer."""
    auth = b64encode(f"{names.STATS_USER}:{password}".encode()).decode()
    conn = http.client.HTTPConnection(address, port, timeout=3)
    try:
        conn.request("GET", "/stats;csv", headers={"Authorization": f"Basic {auth}"})
        text = conn.getresponse().read().decode()
    except OSError:
        return {}
    finally:
        conn.close()
    return parse_show_stat(text)


def servers_seen_by(lab: Lab, balancer: str) -> dict[str, str]:
    """Server name → status on `balancer`'s stats page, with the stack's stats port and the lab's password."""
    return haproxy_servers(str(lab.host(balancer).address), lab.stats_port, lab.state().stats_password)


def keepalived_state(lab: Lab, name: str) -> str:
    """The VRRP state keepalived last entered on a host (from its journal), or the service state."""
    _, active = lab.read(name, "systemctl is-active keepalived", check=False)
    if active.strip() != "active":
        return f"keepalived {active.strip()}"
    _, log = lab.read(name, "journalctl -u keepalived -o cat --no-pager -n 200", check=False)
    states = re.findall(r"Entering (MASTER|BACKUP|FAULT) STATE", log)
    return states[-1] if states else "UNKNOWN"


def vrrp_states_entered(lab: Lab, name: str, since: float) -> list[str]:
    """The VRRP states a balancer entered since `since` (epoch seconds), from the notify hook's journal."""
    _, log = lab.read(name, f"journalctl -t {names.VRRP_LOG_TAG} -o cat --no-pager --since @{int(since)}", check=False)
    return re.findall(r"entered (\w+) state", log)


def haproxy_alive_flag(lab: Lab, name: str) -> str:
    """What the events watcher last wrote to a balancer's track file ("1" alive, "0" dead)."""
    return lab.read(name, f"cat {names.HAPROXY_TRACK_FILE}")[1].strip()


def mac_address(lab: Lab, name: str) -> str:
    """The MAC address of a lab host's VRRP interface (the stack's `vrrp.interface`), on the lab network."""
    interface = lab.inventory.settings.cluster.vrrp.interface
    return lab.read(name, f"cat /sys/class/net/{interface}/address")[1].strip()


def vip_in_arp_cache(lab: Lab) -> str | None:
    """The MAC this machine (the lab's client) sends the VIP's packets to, from its ARP cache; None if absent."""
    out = subprocess.run(["ip", "neigh", "show", "to", str(lab.vip.ip)], capture_output=True, text=True).stdout
    match = re.search(r"lladdr (\S+)", out)
    return match[1] if match else None
