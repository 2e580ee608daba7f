"""What the lab tests check on the hosts after a change (the cluster serving, keepalived active on both
balancers with one VIP holder, no build leftovers), and the commands they run as a Pi owner would."""

from __future__ import annotations

import base64
import http.client
import os
import subprocess
import sys
import time

from components import names
from drills import stack
from harness.program import ROOT
from lab.lab import Lab

FAILOVER_S = 30  # bound on a VIP move or a keepalived state change in the lab tests (never asserted as a time)
RATE = 50  # requests per second through the VIP under load, each on a new connection, 1 s timeout


def assert_healthy(lab: Lab) -> None:
    stack.wait_serving(lab)
    for balancer in lab.balancers:
        assert lab.read(balancer.name, "systemctl is-active keepalived", check=False)[1].strip() == "active"
    assert len(lab.vip_holders()) == 1


def assert_no_build_leftovers(lab: Lab) -> None:
    """On every host: no stopped container (the classic build keeps one per step) and no untagged image of
    ours but the build cache of the current tag (names.BUILD_OF_LABEL)."""
    for host in lab.hosts:
        stopped_filter = "--filter status=exited --filter status=created"
        stopped = lab.read(host.name, f"docker ps -a {stopped_filter} --format '{{{{.Names}}}}'")
        assert stopped[1].strip() == "", f"{host.name}: stopped containers left: {stopped[1]}"
        tags = lab.read(host.name, "docker images --format '{{.Repository}}:{{.Tag}}' 'localhost/pihalb/*'")[1].split()
        untagged = f"docker images -q --filter dangling=true --filter label={names.IMAGE_LABEL}"
        built_for = f"docker image inspect --format '{{{{index .Config.Labels \"{names.BUILD_OF_LABEL}\"}}}}'"
        left = lab.read(host.name, f"for i in $({untagged}); do echo $i $({built_for} $i); done")[1].splitlines()
        stale = [line for line in left if line.split()[1:] == [] or line.split()[1] not in tags]
        assert stale == [], f"{host.name}: untagged images of ours left (id, built for): {stale}; tags {tags}"


def ops(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`python -m ops ...` from the repository root; PATH without a Pulumi CLI, so the lab's state is used."""
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and not os.path.exists(os.path.join(d, "pulumi"))
    )
    return subprocess.run(
        [sys.executable, "-m", "ops", *args],
        cwd=ROOT,
        env=os.environ | {"PATH": path},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def said(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def status_code(stack_name: str = "dev") -> int:
    return ops("status", "--stack", stack_name).returncode


def wait_healthy(stack_name: str, timeout: float) -> None:
    """`ops status` healthy (exit 0) within `timeout`, or fail with what it said last."""
    deadline = time.monotonic() + timeout
    while (result := ops("status", "--stack", stack_name)).returncode != 0:
        assert time.monotonic() < deadline, f"ops status not healthy after {timeout:.0f} s: {said(result)}"
        time.sleep(2)


def lab_status() -> subprocess.CompletedProcess:
    """`python -m lab status`: the hosts, keepalived and the VIP from the lab's side."""
    return subprocess.run([sys.executable, "-m", "lab", "status"], capture_output=True, text=True, timeout=60)


def stats_get(address: str, port: int, path: str, password: str | None) -> tuple[int, str]:
    """GET `path` on a balancer's stats port, with the stats login unless `password` is None: status, body."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()
