"""`python -m ops` against the lab, as a Pi owner runs it (a subprocess, host keys and secrets from the
lab's state when no Pulumi CLI is on PATH), plus what the observability changes add on the hosts:
/metrics on the stats port, the keepalived notify hook, and systemd restarting a killed keepalived.

Runs after the other lab modules (one lab per session), so it first applies the paper's profile from
the repository's own files/; the reboot runs on the tuned profile, then the shutdown (the lab is
brought back and re-applied afterwards), and last a whole-cluster power loss healed without an `up`.
No test asserts a timing.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import re
import subprocess
import sys
import time

import pytest

from components import names, timing
from drills import faults, power, stack
from drills.load import Load, Recording
from drills.observe import get_vip, keepalived_state, mac_address, servers_seen_by, vip_in_arp_cache, wait_until
from harness.program import ROOT
from lab.lab import Lab
from tests.vrrp_checks import assert_no_request_failed, assert_the_master_kept_the_vip

pytestmark = pytest.mark.lab

FAILOVER_S = 30
BOOT_TIMEOUT_S = 240  # five hosts booting on two shared cores, then Docker, HAProxy and keepalived
RATE = 50  # requests per second through the VIP under load, each on a new connection, 1 s timeout


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


@pytest.fixture(scope="module")
def serving(deployed, lab: Lab) -> None:
    """The paper's profile from files/ (earlier modules leave the tuned profile and changed copies)."""
    stack.apply(lab, log=lambda line: None)
    stack.wait_serving(lab)
    wait_until("ops status healthy", lambda: status_code() == 0, 60, interval=2)


def test_status_of_a_healthy_cluster_exits_0(serving, lab, master, backup):
    result = ops("status", "--stack", "dev")
    assert result.returncode == 0, said(result)
    assert f"VIP {lab.vip.ip}: held by {master}" in result.stdout
    assert result.stdout.rstrip().endswith("HEALTHY (exit 0)")
    document = json.loads(ops("status", "--stack", "dev", "--json").stdout)
    assert (document["verdict"], document["exit_code"], document["vip_holders"]) == ("healthy", 0, [master])
    hosts = {h["name"]: h for h in document["hosts"]}
    assert set(hosts) == {h.name for h in lab.hosts}
    assert hosts[master]["vrrp_state"] == "MASTER" and hosts[backup]["vrrp_state"] == "BACKUP"
    assert set(hosts[master]["servers"].values()) == {"UP"} and hosts[master]["keepalived"] == "active"


def test_status_with_a_server_stopped_exits_1_and_drill_refuses(serving, lab, master):
    stopped = lab.servers[1].name
    faults.stop_nginx(lab, stopped)
    try:
        wait_until(f"{stopped} DOWN on {master}", lambda: servers_seen_by(lab, master).get(stopped) == "DOWN", 30)
        result = ops("status", "--stack", "dev")
        assert result.returncode == 1, said(result)
        assert f"{stopped}: DOWN on {master}" in result.stdout and "DEGRADED (exit 1)" in result.stdout
        refused = ops("drill", "--stack", "dev")
        assert refused.returncode == 3, said(refused)
        assert "drill refused: the cluster is degraded" in refused.stdout
        assert lab.sh(master, "docker inspect -f '{{.State.Running}}' pihalb-haproxy")[1].strip() == "true"
    finally:
        faults.start_nginx(lab, stopped)
    wait_until("ops status healthy again", lambda: status_code() == 0, 60, interval=2)


def test_status_with_a_split_brain_exits_2(serving, lab, master):
    both = sorted(h.name for h in lab.balancers)
    faults.block_vrrp_multicast(lab)
    try:
        wait_until("both balancers holding the VIP", lambda: sorted(lab.vip_holders()) == both, FAILOVER_S)
        result = ops("status", "--stack", "dev")
        assert result.returncode == 2, said(result)
        assert "SPLIT BRAIN" in result.stdout
        document = json.loads(ops("status", "--stack", "dev", "--json").stdout)
        assert document["verdict"] == "split brain" and sorted(document["vip_holders"]) == both
    finally:
        faults.unblock_vrrp_multicast(lab)
    wait_until("one holder again", lambda: lab.vip_holders() == [master], FAILOVER_S)
    wait_until("ops status healthy again", lambda: status_code() == 0, 60, interval=2)


def test_a_client_left_on_the_backup_after_two_masters_returns_to_the_master(serving, lab, master, backup):
    """Two MASTERs at once (a blip; a VRRP version rolled out host by host) leave the client's ARP cache on
    whichever sent the last gratuitous ARP. If that one goes back to BACKUP, requests still work, forwarded
    by it (ip_forward), so nothing shows until it reboots: then they time out (the rolling reboot lost 39
    that way). The MASTER's periodic gratuitous ARP (keepalived.conf.j2) brings the client back."""
    refresh_s = timing.GARP_REFRESH_S
    assert get_vip(lab).server is not None
    faults.client_arp_cache_at(lab, backup)
    assert vip_in_arp_cache(lab) == mac_address(lab, backup)
    assert get_vip(lab).server is not None, "forwarded by the BACKUP"
    wait_until(
        "the client's ARP cache on the MASTER again",
        lambda: vip_in_arp_cache(lab) == mac_address(lab, master),
        refresh_s + 2,
        interval=0.2,
    )


def test_drill_moves_the_vip_and_back_and_prints_one_summary(serving, lab, master, backup):
    result = ops("drill", "--stack", "dev", timeout=400)
    assert result.returncode == 0, said(result)
    lines = result.stdout.strip().splitlines()
    assert any(f"HAProxy killed on {master}" in line for line in lines), said(result)
    assert any(f"VIP moved to {backup}" in line for line in lines), said(result)
    assert any(f"VIP back on {master}" in line for line in lines), said(result)
    summary = lines[-1]
    assert summary.startswith(f"drill ok: HAProxy killed on {master}; VIP on {backup} after "), said(result)
    assert re.search(r"(outage \d+\.\d\ds|no request failed) \(\d+ of \d+ requests failed\)", summary), summary
    assert lab.vip_holders() == [master]
    # the notify hook saw both transitions, in the journal and in the state file status reads
    assert lab.sh(master, f"cat {names.VRRP_STATE_FILE}")[1].startswith("MASTER ")
    assert lab.sh(backup, f"cat {names.VRRP_STATE_FILE}")[1].startswith("BACKUP ")
    journal = lab.sh(backup, f"journalctl -t {names.VRRP_LOG_TAG} -o cat --no-pager")[1]
    assert "entered MASTER state" in journal and "entered BACKUP state" in journal
    document = json.loads(ops("status", "--stack", "dev", "--json").stdout)
    transitions = next(h for h in document["hosts"] if h["name"] == backup)["transitions"]
    assert [t["state"] for t in transitions][-2:] == ["MASTER", "BACKUP"]


def _get(address: str, port: int, path: str, password: str | None) -> tuple[int, str]:
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


def test_metrics_on_the_stats_port_return_haproxy_series(serving, lab):
    password = lab.state().stats_password
    for balancer in lab.balancers:
        address = str(balancer.address)
        status, body = _get(address, lab.stats_port, "/metrics", password)
        assert status == 200, body[:500]
        series = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line.startswith("haproxy_")}
        assert {"haproxy_process_uptime_seconds", "haproxy_frontend_http_requests_total"} <= series, sorted(series)
        for server in lab.servers:
            assert (
                f'haproxy_server_status{{proxy="{names.HAPROXY_BACKEND}",server="{server.name}",state="UP"}} 1' in body
            )
        assert _get(address, lab.stats_port, "/metrics", None)[0] == 401
        assert _get(address, lab.stats_port, "/stats", None)[0] == 401


def _keepalived(lab: Lab, host: str) -> tuple[str, str, str]:
    out = lab.sh(host, "systemctl show -p MainPID -p NRestarts -p ActiveState keepalived")[1]
    fields = dict(line.split("=", 1) for line in out.split())
    return fields["MainPID"], fields["NRestarts"], fields["ActiveState"]


def test_a_killed_keepalived_is_restarted_by_systemd(serving, lab, master, backup):
    pid, restarts, state = _keepalived(lab, backup)
    assert state == "active" and pid != "0"
    assert "Restart=on-failure" in lab.sh(backup, "systemctl cat keepalived")[1]
    lab.sh(backup, "killall -9 keepalived")

    def restarted() -> bool:
        new_pid, new_restarts, new_state = _keepalived(lab, backup)
        return new_state == "active" and new_pid not in ("0", pid) and int(new_restarts) == int(restarts) + 1

    wait_until(f"keepalived restarted by systemd on {backup}", restarted, 30)
    wait_until("ops status healthy again", lambda: status_code() == 0, 60, interval=2)
    assert lab.vip_holders() == [master]
    document = json.loads(ops("status", "--stack", "dev", "--json").stdout)
    assert next(h for h in document["hosts"] if h["name"] == backup)["keepalived_restarts"] >= 1


@pytest.fixture(scope="module")
def tuned(serving, lab: Lab) -> tuple[float, Recording]:
    """The tuned profile, where a rolling change under load must cost no request, applied over the paper's
    under load: a new VRRP version and advert interval, the events watcher. When it started, and the load."""
    since = time.time()
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    try:
        stack.apply(lab, profile="dev-tuned", log=lambda line: None)
    finally:
        recording = load.finish(tail=3)
    stack.wait_serving(lab)
    wait_until("ops status healthy", lambda: status_code("dev-tuned") == 0, 60, interval=2)
    return since, recording


def test_the_switch_to_the_tuned_profile_keeps_the_vip_on_the_master(tuned, lab):
    """The BACKUP's keepalived waits stopped while the MASTER reloads (VRRPv2 and v3 do not hear each other)."""
    since, recording = tuned
    assert_no_request_failed(recording)
    assert_the_master_kept_the_vip(lab, recording, since)


def test_rolling_reboot_under_load_costs_no_request(tuned, lab, master, backup):
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    try:
        result = ops("reboot", "--stack", "dev-tuned", timeout=1700)
    finally:
        recording = load.finish(tail=3)
    assert result.returncode == 0, said(result)
    rebooting = [m.group(1) for m in re.finditer(r"^\s*[\d.]+s (\S+): rebooting$", result.stdout, re.M)]
    assert rebooting == [*(s.name for s in lab.servers), backup, master], said(result)
    assert_no_request_failed(recording, vip_moves=True)
    stack.wait_serving(lab)
    assert status_code("dev-tuned") == 0


def test_shutdown_leaves_every_host_stopped(tuned, lab):
    refused = ops("shutdown", "--stack", "dev-tuned")
    assert refused.returncode == 3, said(refused)
    assert all(lab.container(h.name).status == "running" for h in lab.hosts)
    try:
        result = ops("shutdown", "--stack", "dev-tuned", "--yes-really", timeout=900)
        assert result.returncode == 0, said(result)
        order = [m.group(1) for m in re.finditer(r"^\s*[\d.]+s (\S+): powering off$", result.stdout, re.M)]
        assert order == [*(b.name for b in reversed(lab.balancers)), *(s.name for s in lab.servers)], said(result)
        states = {}
        for host in lab.hosts:
            wait_until(f"{host.name}'s container stopped", lambda h=host: lab.container(h.name).status == "exited", 60)
            states[host.name] = lab.container(host.name).status
        assert set(states.values()) == {"exited"}, states
    finally:
        lab.up()
        stack.apply(lab, profile="dev-tuned", log=lambda line: None)
        stack.wait_serving(lab)
    assert status_code("dev-tuned") == 0


def test_a_whole_cluster_power_loss_heals_without_an_up(tuned, lab, master):
    """Every host killed at once, switched on again in a random order with random delays (the seed is
    printed), and no `up`: the site serves, the VIP ends on the MASTER, every server is UP on both
    balancers and `ops status` is healthy, from what the hosts start at boot alone."""
    seed = random.randrange(1_000_000)
    power.cut_everything(lab)
    time.sleep(2)
    back = power.power_back(lab, seed)
    print(f"power back with seed {seed}: order {back.order}, delays {back.delays_s} s")
    power.first_served_after(lab, back.last_start, BOOT_TIMEOUT_S)
    stack.wait_serving(lab, timeout=BOOT_TIMEOUT_S)
    assert keepalived_state(lab, master) == "MASTER"
    wait_until("ops status healthy", lambda: status_code("dev-tuned") == 0, BOOT_TIMEOUT_S, interval=2)
