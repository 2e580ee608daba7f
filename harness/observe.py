"""Looking at the lab from outside, as a client and an operator would."""

from __future__ import annotations

import csv
import http.client
import io
import re
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass

PAGE = re.compile(r"Hello world from server (\d+)!")


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


def wait_until(what: str, predicate: Callable[[], object], timeout: float, interval: float = 0.5):
    """Poll until `predicate()` is truthy; bounded, and says what it waited for when it gives up."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def haproxy_servers(address: str, port: int, password: str) -> dict[str, str]:
    """Server name → status (UP, DOWN, ...) from a balancer's stats page (CSV)."""
    auth = b64encode(f"admin:{password}".encode()).decode()
    conn = http.client.HTTPConnection(address, port, timeout=3)
    try:
        conn.request("GET", "/stats;csv", headers={"Authorization": f"Basic {auth}"})
        text = conn.getresponse().read().decode()
    except OSError:
        return {}
    finally:
        conn.close()
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows if r["pxname"] == "servers" and r["svname"] != "BACKEND"}


def keepalived_state(lab, name: str) -> str:
    """The VRRP state keepalived last entered on a host (from its journal), or the service state."""
    _, active = lab.sh(name, "systemctl is-active keepalived", check=False)
    if active.strip() != "active":
        return f"keepalived {active.strip()}"
    _, log = lab.sh(name, "journalctl -u keepalived -o cat --no-pager -n 200", check=False)
    states = re.findall(r"Entering (MASTER|BACKUP|FAULT) STATE", log)
    return states[-1] if states else "UNKNOWN"
