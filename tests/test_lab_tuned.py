"""The tuned profile on the lab (Pulumi.dev-tuned.yaml), after the paper's modules: the switch to it under
load with the VIP never leaving the MASTER, faults that must cost no request or move the VIP through the
track file, the ops verbs that take hosts down (a rolling reboot under load, the shutdown, brought back
and re-applied afterwards), a whole-cluster power loss healed without an `up`, and last unicast peers
(tests/test_lab_changes.py starts from its own apply). No test asserts a timing.
"""

from __future__ import annotations

import random
import re
import time

import pytest

from drills import faults, power, stack
from drills.https import certificates_on_both
from drills.load import Load, Recording
from drills.observe import get_vip, haproxy_alive_flag, keepalived_state, wait_until
from lab.lab import Lab
from tests.lab_checks import FAILOVER_S, RATE, lab_status, ops, said, status_code, wait_healthy
from tests.vrrp_checks import assert_no_request_failed, assert_the_master_kept_the_vip

pytestmark = pytest.mark.lab

BOOT_TIMEOUT_S = 240  # five hosts booting on two shared cores, then Docker, HAProxy and keepalived


def without_tls(config: dict) -> None:
    stack.apply_values(config, {"haproxy.tls": None})


@pytest.fixture(scope="module")
def switched(deployed, lab: Lab) -> tuple[float, Recording]:
    """The tuned profile's timers (Pulumi.dev-tuned.yaml, its HTTPS aside) applied over the paper's, under load
    (a rolling change must cost no request): configs, scripts and the watcher, no container or image
    replaced; a new VRRP version and advert interval. When it started, and the load."""
    since = time.time()
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    try:
        applied = stack.apply(lab, without_tls, profile="dev-tuned", log=lambda line: None)
    finally:
        recording = load.finish(tail=3)
    kinds = applied.plan.changes_besides_bring_back()
    assert set(kinds.values()) <= {"update", "create"}, kinds
    assert not [n for n in kinds if n.endswith(("-container", "-image"))], kinds
    stack.wait_serving(lab)
    return since, recording


@pytest.fixture(scope="module")
def tuned(switched, lab: Lab) -> Recording:
    """Then HTTPS, as dev-tuned ships it, under load: the TLS port is published, so both balancers' HAProxy
    containers roll (the BACKUP first, the MASTER after handing the VIP over); then the certificate from the
    lab's Pebble on both, as their timers would get it within minutes. The load of that apply."""
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    try:
        applied = stack.apply(lab, profile="dev-tuned", log=lambda line: None)
    finally:
        recording = load.finish(tail=3)
    replaced = {n for n, kind in applied.plan.changes_besides_bring_back().items() if kind == "replace"}
    assert replaced == {f"{b.name}-haproxy-container" for b in lab.balancers}, replaced
    stack.wait_serving(lab)
    certificates_on_both(lab)
    wait_healthy("dev-tuned", 60)
    return recording


def test_the_switch_to_the_tuned_profile_keeps_the_vip_on_the_master(switched, lab):
    """The BACKUP's keepalived waits stopped while the MASTER reloads (VRRPv2 and v3 do not hear each other).
    First in the module: its check reads the journals since the switch began, and `tuned`'s HTTPS roll hands
    the VIP over on purpose."""
    since, recording = switched
    assert_no_request_failed(recording)
    assert_the_master_kept_the_vip(lab, recording, since)


def test_turning_https_on_rolls_the_balancers_without_a_lost_request(tuned):
    assert_no_request_failed(tuned, vip_moves=True)


def _under_load(lab: Lab, seconds: float, fault_at: float, fault) -> Load:
    """Load through the VIP for `seconds`; `fault()` runs at `fault_at` s into the window."""
    load = Load.through_vip(lab, RATE, seconds, timeout=1.0).start()
    time.sleep(max(0.0, fault_at - load.elapsed()))
    fault()
    return load


def _all_sent(recording: Recording) -> None:
    assert len(recording.samples) == int(recording.seconds * RATE)


def test_tuned_a_killed_server_costs_no_request(tuned, lab):
    killed = lab.servers[1]
    load = _under_load(lab, 10, 2, lambda: faults.kill_nginx(lab, killed.name))
    try:
        recording = load.join()
    finally:
        faults.start_nginx(lab, killed.name)
    _all_sent(recording)
    assert recording.failed == []
    # every server answered, the killed one before the kill
    assert {s.server for s in recording.samples} == set(range(1, len(lab.servers) + 1))


def test_tuned_a_config_rollout_costs_no_request(tuned, lab, tmp_path):
    """The reload must fall inside the load window, or a lossless window proves nothing about it."""
    files = stack.files_with_response_header(tmp_path / "files", "X-Rollout", "tuned")
    window_s = 25  # the apply declares the program and visits every host first: several seconds
    load = Load.through_vip(lab, RATE, window_s, timeout=1.0).start()
    time.sleep(max(0.0, 2 - load.elapsed()))
    applied = stack.apply(lab, profile="dev-tuned", files=files)
    recording = load.join()
    for balancer in lab.balancers:
        step = applied.report.by_name(f"{balancer.name}-haproxy-config")
        assert step.op == "update" and step.host_changed, f"{step.name} did not reload HAProxy"
        started, ended = stack.span(step, load.t0)
        assert started > 0 and ended < window_s - 2, f"{step.name} ran {started:.1f}–{ended:.1f}s, window {window_s}s"
    _all_sent(recording)
    assert recording.failed == []
    assert get_vip(lab).headers.get("x-rollout") == "tuned"


def test_tuned_haproxy_death_moves_the_vip_through_the_track_file(tuned, lab, master, backup):
    faults.kill_haproxy_for_good(lab, master)
    try:
        wait_until(f"the VIP on {backup}", lambda: lab.vip_holders() == [backup], FAILOVER_S)
        assert haproxy_alive_flag(lab, master) == "0"
        assert get_vip(lab).status == 200
    finally:
        faults.restore_haproxy(lab, master)
    wait_until(f"the VIP back on {master}", lambda: lab.vip_holders() == [master], FAILOVER_S)
    assert haproxy_alive_flag(lab, master) == "1"


def test_tuned_master_host_restarted_takes_the_vip_back_serving(tuned, lab, master, backup):
    """After a power cut the host stays off until started; then /run is empty: the track file's directory
    must come back before keepalived."""
    lab.cut_power(master)
    try:
        wait_until(f"the VIP on {backup}", lambda: lab.vip_holders() == [backup], FAILOVER_S)
        assert get_vip(lab).status == 200
        time.sleep(3)  # Docker would have restarted it by now (100 ms back-off) had the kill not cancelled it
        assert lab.container(master).status == "exited"
    finally:
        lab.start_host(master)
    wait_until(f"the VIP back on {master}", lambda: lab.vip_holders() == [master], FAILOVER_S)
    wait_until(f"the site through {master}", lambda: get_vip(lab).status == 200, 10)
    assert keepalived_state(lab, master) == "MASTER"


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


def test_unicast_peers_keep_one_master_with_multicast_blocked(tuned, lab, master, backup):
    applied = stack.apply(lab, stack.unicast, profile="dev-tuned")
    assert applied.report.by_name(f"vrrp-{master}-keepalived").host_changed
    wait_until(f"the VIP on {master}", lambda: lab.vip_holders() == [master], FAILOVER_S)
    faults.block_vrrp_multicast(lab)
    try:
        time.sleep(5)  # many advert intervals: a split brain would have shown by now
        assert lab.vip_holders() == [master]
        assert keepalived_state(lab, backup) == "BACKUP"
        assert lab_status().returncode == 0
    finally:
        faults.unblock_vrrp_multicast(lab)
