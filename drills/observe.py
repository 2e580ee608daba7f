"""Looking at the lab from outside, as a client and an operator would."""

from __future__ import annotations

import csv
import http.client
import io
import re
import subprocess
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from components import names
from lab.lab import Lab
from lab.output import LabError

PAGE = re.compile(r"Hello world from server (\d+)!")

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A bounded wait gave up; the message says what it waited for and what it saw last."""


@dataclass
class Reply:
    status: int | None
    server: int | None
    headers: dict[str, str]  # names in lower case
    error: str = ""


def get(host: str, port: int = 80, path: str = "/", timeout: float = 2.0, headers: dict | None = None) -> Reply:
    """One HTTP request; failures are returned, not raised, so load and fault tests can count them."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
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


def get_vip(lab: Lab, timeout: float = 2.0) -> Reply:
    """One request to the site through the VIP, on the frontend port the stack sets."""
    return get(str(lab.vip.ip), lab.frontend_port, timeout=timeout)


def wait_until(what: str, predicate: Callable[[], T], timeout: float, interval: float = 0.5) -> T:
    """Poll until `predicate()` is truthy and return it; bounded, raising WaitTimeout with what it waited for."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except LabError as error:  # could not look this time (a busy machine, a host booting): not yet
            last = error
        if last and not isinstance(last, LabError):
            return last
        time.sleep(interval)
    raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


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
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == names.HAPROXY_BACKEND and r["svname"] != "BACKEND"}


def servers_seen_by(lab: Lab, balancer: str) -> dict[str, str]:
    """Server name → status on `balancer`'s stats page, with the stack's stats port and the lab's password."""
    return haproxy_servers(str(lab.host(balancer).address), lab.stats_port, lab.state().stats_password)


def keepalived_state(lab: Lab, name: str) -> str:
    """The VRRP state keepalived last entered on a host (from its journal), or the service state."""
    _, active = lab.sh(name, "systemctl is-active keepalived", check=False)
    if active.strip() != "active":
        return f"keepalived {active.strip()}"
    _, log = lab.sh(name, "journalctl -u keepalived -o cat --no-pager -n 200", check=False)
    states = re.findall(r"Entering (MASTER|BACKUP|FAULT) STATE", log)
    return states[-1] if states else "UNKNOWN"


def vrrp_states_entered(lab: Lab, name: str, since: float) -> list[str]:
    """The VRRP states a balancer entered since `since` (epoch seconds), from the notify hook's journal."""
    _, log = lab.sh(name, f"journalctl -t {names.VRRP_LOG_TAG} -o cat --no-pager --since @{int(since)}", check=False)
    return re.findall(r"entered (\w+) state", log)


def haproxy_alive_flag(lab: Lab, name: str) -> str:
    """What the events watcher last wrote to a balancer's track file ("1" alive, "0" dead)."""
    return lab.sh(name, f"cat {names.HAPROXY_TRACK_FILE}")[1].strip()


def mac_address(lab: Lab, name: str) -> str:
    """The MAC address of a lab host's VRRP interface (the stack's `vrrp.interface`), on the lab network."""
    interface = lab.inventory.settings.cluster.vrrp.interface
    return lab.sh(name, f"cat /sys/class/net/{interface}/address")[1].strip()


def vip_in_arp_cache(lab: Lab) -> str | None:
    """The MAC this machine (the lab's client) sends the VIP's packets to, from its ARP cache; None if absent."""
    out = subprocess.run(["ip", "neigh", "show", "to", str(lab.vip.ip)], capture_output=True, text=True).stdout
    match = re.search(r"lladdr (\S+)", out)
    return match[1] if match else None
