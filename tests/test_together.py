"""Values that are each valid must work together, and with the hosts, in the real daemons: values whose
meaning depends on another value, and networks.

Each class has its refusals in test_settings.py and test_settings_together.py; here, what is accepted is
run through the real consumer (haproxy, keepalived) and must behave as written; test_together_inputs.py
has the build, the site and the secrets (nginx, OpenSSH's ssh-keygen, curl).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components.settings import widest_lan_prefix
from tests.daemons import (
    accepted,
    backend_stat,
    balancer_namespaces,
    get_status,
    haproxy_of,
    haproxy_on_loopback,
    wait_until,
)

from .artifact_tools import embedded_file, free_port, script_of

pytestmark = pytest.mark.artifact

# ---- class 3: values whose meaning depends on another value -------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retries_reach_haproxy_as_written(run_stack, tmp_path, retries):
    """`retries: 0` rendered no line, so HAProxy used its default of 3. A request to a server that refuses
    connections is retried exactly `retries` times (HAProxy's own counter, `wretr`)."""
    program = run_stack("dev", lambda config: haproxy_of(config).update(retries=retries))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    assert f"    retries {retries}\n" in cfg
    closed = free_port()  # nothing listens there: every connection attempt is refused
    with haproxy_on_loopback(cfg, tmp_path, closed) as (frontend, runtime):
        assert get_status(frontend) == 503
        assert backend_stat(runtime, "wretr") == str(retries)


@pytest.mark.parametrize(
    "kind, weight, master, backup",
    [
        ("script", 2, 101, 100),
        ("script", -2, 4, 3),
        ("script", 0, 3, 2),
        ("script", 0, 2, 1),
        ("events", 3, 102, 100),
        ("events", 0, 254, 253),
        ("events", 0, 2, 1),
    ],
)
def test_the_handover_moves_the_vip_for_every_accepted_priority_layout(
    run_stack, tmp_path, kind, weight, master, backup
):
    """Two real keepalived, one per namespace, the MASTER on the higher address so that a tie would keep
    the VIP there; the handover file written on the MASTER, as the leave step does: the BACKUP takes the
    VIP within the leave step's own wait. A layout where the lowered MASTER ties the BACKUP is refused."""

    def alter(config):
        cluster = config["pihalb:cluster"]
        lb1, lb2 = cluster["hosts"][3:]
        lb1.update(priority=master, address="172.30.42.22")
        lb2.update(priority=backup, address="172.30.42.21")
        cluster["vrrp"].update(version=3, advertInterval=0.1, track={"kind": kind, "weight": weight})

    program = accepted(run_stack, alter, "cluster.hosts[4].priority")
    if program is None:
        return
    vip = "172.30.42.240"
    leave_script = script_of(program.named("lb1-haproxy-leave"))
    (tmp_path / "lb1").mkdir()
    (tmp_path / "lb2").mkdir()
    with balancer_namespaces("172.30.42.22/24", "172.30.42.21/24") as (lb1, lb2):
        lb1.start_keepalived(embedded_file(program.named("vrrp-lb1-keepalived")), tmp_path / "lb1")
        lb2.start_keepalived(embedded_file(program.named("vrrp-lb2-keepalived")), tmp_path / "lb2")
        wait_until(lambda: lb1.holds(vip) and not lb2.holds(vip), 20, "the VIP on the MASTER alone")
        (tmp_path / "lb1" / "handover").write_text("1\n")
        leave_wait = int(re.search(r"^HANDOVER_TIMEOUT_S=(\d+)$", leave_script, re.M).group(1))
        wait_until(lambda: lb2.holds(vip) and not lb1.holds(vip), leave_wait, "the handover")


def _shims(directory: Path) -> dict[str, str]:
    """`sudo` and `docker` for the rolling scripts on this machine: `docker exec` runs its command here,
    where HAProxy's runtime API is, and `docker inspect` says the container runs."""
    directory.mkdir()
    (directory / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (directory / "docker").write_text('#!/bin/sh\ncase $1 in inspect) echo true ;; exec) shift 2; exec "$@" ;; esac\n')
    for shim in ("sudo", "docker"):
        (directory / shim).chmod(0o755)
    return {"PATH": f"{directory}:/usr/bin:/bin"}


@pytest.mark.parametrize("inter_ms", [500, 2000, 4000])
def test_the_rolling_steps_bring_a_server_back_within_their_wait(run_stack, tmp_path, inter_ms):
    """The drain and ready steps, as rendered, against the real HAProxy: once drained (MAINT), a server is
    UP again at HAProxy's next check, up to one interval after READY, well within the ready step's wait."""
    program = run_stack("dev", lambda config: haproxy_of(config)["healthCheck"].update(interMs=inter_ms))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    drain = script_of(program.named("server1-nginx-drain-on-lb1"))
    ready = script_of(program.named("server1-nginx-ready-on-lb1"))
    wait_s = int(re.search(r"^READY_TIMEOUT_S=(\d+)$", ready, re.M).group(1))
    assert wait_s >= 3 * inter_ms / 1000
    (tmp_path / "site").mkdir()
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path / "site")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = _shims(tmp_path / "bin")
    try:
        with haproxy_on_loopback(cfg, tmp_path, port) as (_, runtime):
            wait_until(lambda: backend_stat(runtime, "status", "server1") == "UP", 10, "server1 UP")
            for script in (drain, ready):
                script = re.sub(r"^RUNTIME_PORT=\d+$", f"RUNTIME_PORT={runtime}", script, flags=re.M)
                started = time.monotonic()
                done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
                assert done.returncode == 0, done.stdout + done.stderr
            took = time.monotonic() - started
            assert backend_stat(runtime, "status", "server1") == "UP"
    finally:
        site.kill()
        site.wait(5)
    assert took <= inter_ms / 1000 + 1.5 <= wait_s


def test_the_slowest_check_interval_fits_in_one_step(run_stack):
    """The ready step's wait at the largest interval accepted stays below the step timeout."""
    from components.remote import STEP_TIMEOUT_S

    program = run_stack("dev", lambda config: haproxy_of(config)["healthCheck"].update(interMs=300_000))
    ready = script_of(program.named("server1-nginx-ready-on-lb1"))
    assert 3 * 300 <= int(re.search(r"^READY_TIMEOUT_S=(\d+)$", ready, re.M).group(1)) < STEP_TIMEOUT_S


# ---- class 2: networks that cannot work ----------------------------------------------------------------


def _lan(vip: str, hosts: str):
    """The VIP, and the five hosts at .11 .12 .13 (servers) .21 .22 (balancers) of `hosts` (a.b.c)."""

    def alter(config):
        cluster = config["pihalb:cluster"]
        cluster["vrrp"]["vip"] = vip
        for host, last in zip(cluster["hosts"], (11, 12, 13, 21, 22), strict=True):
            host["address"] = f"{hosts}.{last}"

    return alter


@pytest.mark.parametrize(
    "vip, hosts",
    [
        ("172.30.42.240/24", "172.30.42"),
        ("10.42.0.240/8", "10.42.0"),
        ("192.168.7.240/16", "192.168.7"),
        ("169.254.7.240/16", "169.254.7"),
        ("172.30.42.240/0", "172.30.42"),
        ("172.30.42.240/11", "172.30.42"),
        ("192.168.7.240/8", "192.168.7"),
        ("100.64.7.240/12", "100.64.7"),
        ("0.42.0.240/24", "0.42.0"),
    ],
)
def test_keepalived_routes_only_the_lan(run_stack, tmp_path, vip, hosts):
    """keepalived gives the MASTER an on-link route for the VIP's whole subnet: accepted, that subnet is a
    LAN the hosts can be on (private blocks as a whole at most, else a /16); anything wider is refused."""
    program = accepted(run_stack, _lan(vip, hosts), "cluster.vrrp.vip", "cluster.hosts")
    if program is None:
        return
    address = f"{hosts}.21/{vip.split('/')[1]}"
    with balancer_namespaces(address) as (lb1,):
        lb1.start_keepalived(embedded_file(program.named("vrrp-lb1-keepalived")), tmp_path)
        wait_until(lambda: lb1.holds(vip.split("/")[0]), 20, "the MASTER to hold the VIP")
        routes = lb1.run("ip", "-4", "route", "show", "dev", "eth0").split()
    on_link = [ipaddress.IPv4Network(word) for word in routes if "/" in word]
    assert on_link == [ipaddress.IPv4Interface(vip).network]
    assert on_link[0].prefixlen >= widest_lan_prefix(ipaddress.IPv4Address(f"{hosts}.21"))
