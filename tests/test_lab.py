"""The paper's experiments, automated, on the lab: the program's own declarations applied for real.

Order matters (one deployment, faults injected in turn, each undone before the next). Every wait is
bounded; a missing lab or Docker engine fails, it does not skip. The topology (hosts, roles, VIP,
ports) comes from the lab, which reads it from the stack's settings.
"""

from __future__ import annotations

import pytest

from components import names, render, timing
from components.render import Renderer
from drills import faults, stack
from drills.observe import get_vip, keepalived_state, servers_seen_by, wait_until
from harness.command_ops import StepError
from lab.inventory import HOST_USER
from tests.lab_checks import FAILOVER_S, lab_status

pytestmark = pytest.mark.lab

CONTAINER = "docker:index/container:Container"


def _kinds(applied) -> dict[str, str]:
    """The plan's changes besides the bring-back steps (replaced for their triggers alone) and image rebuilds."""
    return {n: k for n, k in applied.plan.changes_besides_bring_back().items() if not n.endswith("-image")}


def test_first_apply_created_everything_and_changed_every_host(deployed, lab):
    assert set(deployed.plan.kinds().values()) == {"create"}
    assert len(deployed.plan.kinds()) == len(deployed.program.resources)
    installs = [s for s in deployed.report.done if s.name.endswith("-install")]
    assert sorted(s.name for s in installs) == sorted(f"{h.name}-install" for h in lab.hosts)
    assert all(s.host_changed for s in installs)
    assert [s.op for s in deployed.report.of_type(CONTAINER)] == ["create"] * len(lab.hosts)


def test_requests_round_robin_over_the_pages_in_order(deployed, lab):
    count = len(lab.servers)
    servers = [get_vip(lab).server for _ in range(3 * count)]
    assert None not in servers, servers
    assert sorted(set(servers)) == list(range(1, count + 1))
    for previous, current in zip(servers, servers[1:], strict=False):
        assert current == previous % count + 1, servers


def test_backends_see_the_client_address_in_x_forwarded_for(deployed, lab):
    reply = get_vip(lab)
    assert reply.status == 200
    assert reply.headers.get("x-forwarded-for-seen") == str(lab.gateway)


def test_keepalived_states_master_and_backup(deployed, lab, master, backup):
    assert keepalived_state(lab, master) == "MASTER"
    assert keepalived_state(lab, backup) == "BACKUP"
    assert lab.vip_holders() == [master]


def test_a_stopped_server_is_taken_out_and_clients_keep_getting_answers(deployed, lab, master):
    stopped = lab.servers[1]
    others = {number for number, host in enumerate(lab.servers, start=1) if host != stopped}
    faults.stop_nginx(lab, stopped.name)
    try:
        wait_until(
            f"{stopped.name} DOWN on {master}",
            lambda: servers_seen_by(lab, master).get(stopped.name) == "DOWN",
            30,
        )
        replies = [get_vip(lab) for _ in range(4 * len(others))]
        assert [r.status for r in replies] == [200] * len(replies)
        assert {r.server for r in replies} == others
    finally:
        faults.start_nginx(lab, stopped.name)
    wait_until(f"{stopped.name} UP again", lambda: servers_seen_by(lab, master).get(stopped.name) == "UP", 30)


def test_a_server_that_reboots_boots_again_by_itself_and_serves(deployed, lab, master):
    """As a Pi does after `systemctl reboot`, with no hand on the lab: the host container comes back."""
    rebooted = lab.servers[-1]
    started = lab.container(rebooted.name).attrs["State"]["StartedAt"]
    lab.sh(rebooted.name, "systemctl reboot", check=False)
    wait_until(
        f"{rebooted.name} booted again",
        lambda: lab.container(rebooted.name).attrs["State"]["StartedAt"] != started,
        60,
    )
    lab.wait_ready([rebooted.name])
    wait_until(f"{rebooted.name} UP again", lambda: servers_seen_by(lab, master).get(rebooted.name) == "UP", 90)


def test_haproxy_killed_on_master_moves_the_vip_and_back(deployed, lab, master, backup):
    """The paper's test. Docker's restart policy is paused first, or the kill would be undone in ~1 s."""
    faults.kill_haproxy_for_good(lab, master)
    try:
        wait_until(f"the VIP on {backup}", lambda: lab.vip_holders() == [backup], FAILOVER_S)
        assert keepalived_state(lab, backup) == "MASTER"
        assert keepalived_state(lab, master) == "BACKUP"
        wait_until(f"the site through {backup}", lambda: get_vip(lab).status == 200, 10)
    finally:
        faults.restore_haproxy(lab, master)
    wait_until(f"the VIP back on {master} (preemption)", lambda: lab.vip_holders() == [master], FAILOVER_S)
    assert keepalived_state(lab, master) == "MASTER"
    assert keepalived_state(lab, backup) == "BACKUP"
    assert get_vip(lab).status == 200


def test_rejoin_gives_the_vip_priority_back_only_to_a_healthy_haproxy(deployed, lab, backup):
    """A container kept with an init error counts as made: the rejoin step itself must refuse to restore the
    balancer's VRRP priority onto an HAProxy that is not healthy (here stopped), and fail naming it."""
    rejoin = Renderer(render.FILES).balancer_rejoin_script()
    rejoin = rejoin.replace(f"HEALTHY_TIMEOUT_S={timing.READY_TIMEOUT_S}\n", "HEALTHY_TIMEOUT_S=3\n")
    handover = f"cat {names.VRRP_HANDOVER_FILE} 2>/dev/null || echo 0"
    run_rejoin = f"sudo -u {HOST_USER} bash -s <<'REJOIN'\n{rejoin}\nREJOIN"
    lab.sh(backup, f"echo 1 > {names.VRRP_HANDOVER_FILE} && docker stop {names.HAPROXY_CONTAINER}")
    try:
        code, output = lab.sh(backup, run_rejoin, check=False)
        assert code != 0 and f"waiting for {names.HAPROXY_CONTAINER} healthy" in output, output
        assert lab.read(backup, handover)[1].strip() == "1"  # still handed over: the peer keeps the VIP
    finally:
        lab.sh(backup, f"docker start {names.HAPROXY_CONTAINER}")
    health = f"docker inspect -f '{{{{.State.Health.Status}}}}' {names.HAPROXY_CONTAINER}"
    wait_until("HAProxy healthy again", lambda: lab.read(backup, health)[1].strip() == "healthy", 30)
    code, output = lab.sh(backup, run_rejoin.replace("HEALTHY_TIMEOUT_S=3", "HEALTHY_TIMEOUT_S=30"), check=False)
    assert code == 0 and "VRRP priority restored" in output, output
    assert lab.read(backup, handover)[1].strip() == "0"


def test_a_changed_template_is_what_the_lab_runs(deployed, lab, master, tmp_path):
    files = stack.files_with_response_header(tmp_path / "files", "X-Pihalb-Canary", "changed-template")
    applied = stack.apply(lab, files=files)
    # The copy of files/ moves the images' build context (an input): rebuilt from cache, same tags.
    assert _kinds(applied) == {f"{b.name}-haproxy-config": "update" for b in lab.balancers}
    assert applied.report.by_name(f"{master}-haproxy-config").host_changed
    assert applied.report.of_type(CONTAINER) == []
    wait_until(
        "the new config live through the VIP",
        lambda: get_vip(lab).headers.get("x-pihalb-canary") == "changed-template",
        15,
    )
    applied = stack.apply(lab)
    assert applied.report.by_name(f"{master}-haproxy-config").host_changed
    wait_until("the original config back", lambda: "x-pihalb-canary" not in get_vip(lab).headers, 15)


def test_a_second_apply_changes_nothing_and_still_checks_every_host(deployed, lab):
    """A converged stack: the preview and the `up` plan no step (`pulumi preview --expect-no-changes`
    passes), no step runs, and the connectivity check still ran on every host (an invoke, not a step)."""
    assert stack.lab_stack.preview(lab).kinds() == {}
    applied = stack.apply(lab)
    assert applied.plan.kinds() == {} and applied.report.ops() == {}
    checked = sorted(i.args["command"].split(" -- ")[1].split()[0] for i in applied.program.invokes)
    assert checked == sorted(str(h.address) for h in lab.hosts)
    assert all("pong from" in i.result["stdout"] for i in applied.program.invokes)
    assert get_vip(lab).status == 200


def test_an_unreachable_host_fails_the_apply_naming_host_and_step(deployed, lab):
    moved = lab.servers[-1]
    nowhere = str(lab.unused_address())

    def move(config):
        host = next(h for h in stack.cluster(config)["hosts"] if h["name"] == moved.name)
        host["address"] = nowhere

    with pytest.raises(StepError) as failed:
        stack.apply(lab, move)
    assert f"connectivity check of {moved.name} (" in str(failed.value)  # the check fails the run, before any step
    assert nowhere in str(failed.value)


def test_multicast_blocked_splits_the_brain_and_status_says_so(deployed, lab, master):
    """The paper's firewall trouble: with multicast VRRP and adverts dropped, both balancers take the VIP."""
    both = sorted(h.name for h in lab.balancers)
    faults.block_vrrp_multicast(lab)
    try:
        wait_until("both balancers holding the VIP", lambda: sorted(lab.vip_holders()) == both, FAILOVER_S)
        status = lab_status()
        assert status.returncode == 2
        assert "SPLIT BRAIN" in status.stdout
    finally:
        faults.unblock_vrrp_multicast(lab)
    wait_until("one holder again", lambda: lab.vip_holders() == [master], FAILOVER_S)
    assert lab_status().returncode == 0
