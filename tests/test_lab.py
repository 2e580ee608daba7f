"""The paper's experiments, automated, on the lab: the program's own declarations applied for real.

Order matters (one deployment, faults injected in turn, each undone before the next). Every wait is
bounded; a missing lab or Docker engine fails, it does not skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from components import render
from harness import lab_stack
from harness.apply import ApplyError
from harness.load import Load
from harness.observe import get, haproxy_servers, keepalived_state, wait_until
from lab.lab import Lab

pytestmark = pytest.mark.lab

VIP = "172.30.42.240"
FAILOVER_S = 30


@pytest.fixture(scope="module")
def lab():
    """A fresh lab: hosts as a new Pi would be, without Docker (base images are kept between runs).

    PIHALB_REUSE_LAB=1 keeps a running lab instead (a developer's shortcut; the first-apply test then
    fails, as it should: those hosts are not fresh).
    """
    lab = Lab.from_stack()
    if not os.environ.get("PIHALB_REUSE_LAB"):
        lab.down()
    lab.up()
    yield lab
    if not os.environ.get("PIHALB_KEEP_LAB"):
        lab.down()


@pytest.fixture(scope="module")
def deployed(lab):
    program, report = lab_stack.apply(lab)
    lab_stack.wait_serving(lab)
    return program, report


def _stats(lab):
    return lab.state()["stats_password"]


def test_first_apply_changed_every_host(deployed):
    _, report = deployed
    installs = [s for s in report.steps if s.name.endswith("-install")]
    assert len(installs) == 5 and all(s.changed for s in installs)
    assert sorted(s.action for s in report.of_type("docker:index/container:Container")) == ["created"] * 5


def test_requests_round_robin_over_the_three_pages_in_order(deployed):
    servers = [get(VIP).server for _ in range(9)]
    assert None not in servers, servers
    assert sorted(set(servers)) == [1, 2, 3]
    for previous, current in zip(servers, servers[1:], strict=False):
        assert current == previous % 3 + 1, servers


def test_backends_see_the_client_address_in_x_forwarded_for(deployed, lab):
    reply = get(VIP)
    assert reply.status == 200
    assert reply.headers.get("x-forwarded-for-seen") == str(lab.gateway)


def test_keepalived_states_master_and_backup(deployed, lab):
    assert keepalived_state(lab, "lb1") == "MASTER"
    assert keepalived_state(lab, "lb2") == "BACKUP"
    assert lab.vip_holders() == ["lb1"]


def test_a_stopped_server_is_taken_out_and_clients_keep_getting_answers(deployed, lab):
    lab.sh("server2", "docker stop pihalb-nginx")
    try:
        wait_until(
            "server2 DOWN on lb1",
            lambda: haproxy_servers("172.30.42.21", 8404, _stats(lab)).get("server2") == "DOWN",
            30,
        )
        replies = [get(VIP) for _ in range(12)]
        assert [r.status for r in replies] == [200] * 12
        assert {r.server for r in replies} == {1, 3}
    finally:
        lab.sh("server2", "docker start pihalb-nginx")
    wait_until(
        "server2 UP again", lambda: haproxy_servers("172.30.42.21", 8404, _stats(lab)).get("server2") == "UP", 30
    )


def test_haproxy_killed_on_master_moves_the_vip_and_back(deployed, lab):
    """The paper's test. Docker's restart policy is paused first, or the kill would be undone in ~1 s."""
    lab_stack.kill_haproxy_for_good(lab, "lb1")
    try:
        wait_until("the VIP on lb2", lambda: lab.vip_holders() == ["lb2"], FAILOVER_S)
        assert keepalived_state(lab, "lb2") == "MASTER"
        assert keepalived_state(lab, "lb1") == "BACKUP"
        wait_until("the site through lb2", lambda: get(VIP).status == 200, 10)
    finally:
        lab_stack.restore_haproxy(lab, "lb1")
    wait_until("the VIP back on lb1 (preemption)", lambda: lab.vip_holders() == ["lb1"], FAILOVER_S)
    assert keepalived_state(lab, "lb1") == "MASTER"
    assert keepalived_state(lab, "lb2") == "BACKUP"
    assert get(VIP).status == 200


def test_a_changed_template_is_what_the_lab_runs(deployed, lab, tmp_path, monkeypatch):
    files = lab_stack.files_with_response_header(tmp_path / "files", "X-Pihalb-Canary", "changed-template")
    monkeypatch.setattr(render, "FILES_DIR", files)
    _, report = lab_stack.apply(lab)
    assert report.by_name("lb1-haproxy-config").changed
    assert not report.by_name("server1-install").changed
    assert [s.action for s in report.of_type("docker:index/container:Container")] == ["unchanged"] * 5
    wait_until(
        "the new config live through the VIP", lambda: get(VIP).headers.get("x-pihalb-canary") == "changed-template", 15
    )
    monkeypatch.undo()
    _, report = lab_stack.apply(lab)
    assert report.by_name("lb1-haproxy-config").changed
    wait_until("the original config back", lambda: "x-pihalb-canary" not in get(VIP).headers, 15)


def test_a_second_apply_changes_nothing(deployed, lab):
    _, report = lab_stack.apply(lab)
    commands = report.of_type("command:remote:Command")
    assert len(commands) == 16
    assert [s.name for s in commands if s.changed] == []
    assert {s.action for s in report.of_type("docker:index/container:Container")} == {"unchanged"}
    assert {s.action for s in report.of_type("docker:index/image:Image")} == {"present"}
    assert get(VIP).status == 200


def test_an_unreachable_host_fails_the_apply_naming_host_and_step(deployed, lab):
    def move_server3(config):
        config["pihalb:cluster"]["hosts"][2]["address"] = "172.30.42.99"

    with pytest.raises(ApplyError) as failed:
        lab_stack.apply(lab, move_server3)
    assert "server3-ping" in str(failed.value)
    assert "172.30.42.99" in str(failed.value)


def _status(lab) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab", "status"], capture_output=True, text=True, timeout=60)


def test_multicast_blocked_splits_the_brain_and_status_says_so(deployed, lab):
    """The paper's firewall trouble: with multicast VRRP and adverts dropped, both balancers take the VIP."""
    lab_stack.block_vrrp_multicast(lab)
    try:
        wait_until("both balancers holding the VIP", lambda: lab.vip_holders() == ["lb1", "lb2"], FAILOVER_S)
        status = _status(lab)
        assert status.returncode == 2
        assert "SPLIT BRAIN" in status.stdout
    finally:
        lab_stack.unblock_vrrp_multicast(lab)
    wait_until("one holder again", lambda: lab.vip_holders() == ["lb1"], FAILOVER_S)
    assert _status(lab).returncode == 0


@pytest.fixture(scope="module")
def tuned(deployed, lab):
    """The tuned profile (Pulumi.dev-tuned.yaml) applied over the paper's deployment: configs only."""
    _, report = lab_stack.apply(lab, stack="dev-tuned")
    assert {s.action for s in report.of_type("docker:index/image:Image")} == {"present"}
    lab_stack.wait_serving(lab)


def _under_load(lab, seconds: float, fault_at: float, fault) -> Load:
    load = Load(VIP, 50, seconds, timeout=1.0, lab=lab).start()
    time.sleep(max(0.0, fault_at - load.elapsed()))
    fault()
    return load


def test_tuned_a_killed_server_costs_no_request(tuned, lab):
    load = _under_load(lab, 10, 2, lambda: lab.sh("server2", "docker kill pihalb-nginx"))
    try:
        recording = load.join()
    finally:
        lab.sh("server2", "docker start pihalb-nginx")
    assert len(recording.samples) == 500
    assert recording.failed == []
    assert {s.server for s in recording.samples} == {1, 2, 3}  # server2 answered before the kill


def test_tuned_a_config_rollout_costs_no_request(tuned, lab, tmp_path, monkeypatch):
    files = lab_stack.files_with_response_header(tmp_path / "files", "X-Rollout", "tuned")
    monkeypatch.setattr(render, "FILES_DIR", files)
    load = _under_load(lab, 12, 2, lambda: lab_stack.apply(lab, stack="dev-tuned"))
    recording = load.join()
    assert recording.failed == []
    assert get(VIP).headers.get("x-rollout") == "tuned"


def test_tuned_haproxy_death_moves_the_vip_through_the_track_file(tuned, lab):
    lab_stack.kill_haproxy_for_good(lab, "lb1")
    try:
        wait_until("the VIP on lb2", lambda: lab.vip_holders() == ["lb2"], FAILOVER_S)
        assert lab.sh("lb1", "cat /run/pihalb/haproxy-alive")[1].strip() == "0"
        assert get(VIP).status == 200
    finally:
        lab_stack.restore_haproxy(lab, "lb1")
    wait_until("the VIP back on lb1", lambda: lab.vip_holders() == ["lb1"], FAILOVER_S)
    assert lab.sh("lb1", "cat /run/pihalb/haproxy-alive")[1].strip() == "1"


def test_tuned_master_host_restarted_takes_the_vip_back_serving(tuned, lab):
    """After a reboot /run is empty: the track file's directory must come back before keepalived."""
    lab.stop_host("lb1")
    try:
        wait_until("the VIP on lb2", lambda: lab.vip_holders() == ["lb2"], FAILOVER_S)
        assert get(VIP).status == 200
    finally:
        lab.start_host("lb1")
    wait_until("the VIP back on lb1", lambda: lab.vip_holders() == ["lb1"], FAILOVER_S)
    wait_until("the site through lb1", lambda: get(VIP).status == 200, 10)
    assert keepalived_state(lab, "lb1") == "MASTER"


def test_unicast_peers_keep_one_master_with_multicast_blocked(tuned, lab):
    _, report = lab_stack.apply(lab, lambda c: c["pihalb:cluster"]["vrrp"].update(mode="unicast"), stack="dev-tuned")
    assert report.by_name("vrrp-lb1-keepalived").changed
    wait_until("the VIP on lb1", lambda: lab.vip_holders() == ["lb1"], FAILOVER_S)
    lab_stack.block_vrrp_multicast(lab)
    try:
        time.sleep(5)  # many advert intervals: a split brain would have shown by now
        assert lab.vip_holders() == ["lb1"]
        assert keepalived_state(lab, "lb2") == "BACKUP"
        assert _status(lab).returncode == 0
    finally:
        lab_stack.unblock_vrrp_multicast(lab)
