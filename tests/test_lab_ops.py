"""`python -m ops` against the lab, as a Pi owner runs it (a subprocess, host keys and secrets from the
lab's state when no Pulumi CLI is on PATH), plus what the observability changes add on the hosts:
/metrics on the stats port, the keepalived notify hook, and systemd restarting a killed keepalived.

Runs right after tests/test_lab.py, on the paper's profile from the repository's own files/ (its apply
changes nothing then); the verbs that take hosts down run on the tuned profile, in tests/test_lab_tuned.py.
No test asserts a timing.
"""

from __future__ import annotations

import json
import re

import pytest

from components import names, timing
from drills import faults, stack
from drills.observe import get_vip, mac_address, servers_seen_by, vip_in_arp_cache, wait_until
from lab.lab import Lab
from tests.lab_checks import FAILOVER_S, ops, said, stats_get, status_code

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def serving(deployed, lab: Lab) -> None:
    """The paper's profile from files/, as tests/test_lab.py leaves it, and `ops status` agreeing."""
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
        assert lab.read(master, "docker inspect -f '{{.State.Running}}' pihalb-haproxy")[1].strip() == "true"
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
    assert lab.read(master, f"cat {names.VRRP_STATE_FILE}")[1].startswith("MASTER ")
    assert lab.read(backup, f"cat {names.VRRP_STATE_FILE}")[1].startswith("BACKUP ")
    journal = lab.read(backup, f"journalctl -t {names.VRRP_LOG_TAG} -o cat --no-pager")[1]
    assert "entered MASTER state" in journal and "entered BACKUP state" in journal
    document = json.loads(ops("status", "--stack", "dev", "--json").stdout)
    transitions = next(h for h in document["hosts"] if h["name"] == backup)["transitions"]
    assert [t["state"] for t in transitions][-2:] == ["MASTER", "BACKUP"]


def test_metrics_on_the_stats_port_return_haproxy_series(serving, lab):
    password = lab.state().stats_password
    for balancer in lab.balancers:
        address = str(balancer.address)
        status, body = stats_get(address, lab.stats_port, "/metrics", password)
        assert status == 200, body[:500]
        series = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line.startswith("haproxy_")}
        assert {"haproxy_process_uptime_seconds", "haproxy_frontend_http_requests_total"} <= series, sorted(series)
        for server in lab.servers:
            assert (
                f'haproxy_server_status{{proxy="{names.HAPROXY_BACKEND}",server="{server.name}",state="UP"}} 1' in body
            )
        assert stats_get(address, lab.stats_port, "/metrics", None)[0] == 401
        assert stats_get(address, lab.stats_port, "/stats", None)[0] == 401


def _keepalived(lab: Lab, host: str) -> tuple[str, str, str]:
    out = lab.read(host, "systemctl show -p MainPID -p NRestarts -p ActiveState keepalived")[1]
    fields = dict(line.split("=", 1) for line in out.split())
    return fields["MainPID"], fields["NRestarts"], fields["ActiveState"]


def test_a_killed_keepalived_is_restarted_by_systemd(serving, lab, master, backup):
    pid, restarts, state = _keepalived(lab, backup)
    assert state == "active" and pid != "0"
    assert "Restart=on-failure" in lab.read(backup, "systemctl cat keepalived")[1]
    lab.sh(backup, "killall -9 keepalived")

    def restarted() -> bool:
        new_pid, new_restarts, new_state = _keepalived(lab, backup)
        return new_state == "active" and new_pid not in ("0", pid) and int(new_restarts) == int(restarts) + 1

    wait_until(f"keepalived restarted by systemd on {backup}", restarted, 30)
    wait_until("ops status healthy again", lambda: status_code() == 0, 60, interval=2)
    assert lab.vip_holders() == [master]
    document = json.loads(ops("status", "--stack", "dev", "--json").stdout)
    assert next(h for h in document["hosts"] if h["name"] == backup)["keepalived_restarts"] >= 1
