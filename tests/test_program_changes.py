"""The program under Pulumi mocks, changed: the plan the lab engine's planner makes for each kind of
change (no change, a template, a keepalived value, a Dockerfile, a page, a new image), and the rolling
order of the steps a change runs."""

from __future__ import annotations

import re

import pytest

from components.remote import RUN_SCRIPT_FROM_STDIN, RUN_SCRIPT_WITH_RUN_ID
from harness.program import computed
from tests.program_views import (
    COMMAND,
    embedded_file,
    hosts,
    planned,
    program_config,
    script_of,
)

pytestmark = pytest.mark.unit


def _append_comment(files, relative: str) -> None:
    with open(files / relative, "a") as handle:
        handle.write("# a change\n")


def test_nothing_changed_plans_no_step(run_stack, stack):
    """A converged stack previews no change (`pulumi preview --expect-no-changes`), whatever its profile."""
    assert planned(run_stack(stack), run_stack(stack)) == {}


def test_a_changed_haproxy_template_updates_the_config_steps_in_place(run_stack, files_copy):
    before = run_stack("dev", files=files_copy)
    _append_comment(files_copy, "templates/haproxy.cfg.j2")
    assert planned(before, run_stack("dev", files=files_copy)) == {
        "lb1-haproxy-config": "update",
        "lb2-haproxy-config": "update",
    }


def test_a_changed_keepalived_value_updates_keepalived_resumes_the_backup_and_deletes_nothing(run_stack):
    def weight(config):
        config["pihalb:cluster"]["vrrp"]["track"]["weight"] = 3

    before = run_stack("dev")
    assert planned(before, run_stack("dev", weight)) == {
        "vrrp-lb1-keepalived": "update",
        "vrrp-lb2-keepalived": "update",
        "vrrp-lb2-keepalived-resume": "replace",  # keyed on the BACKUP step's run: it starts it again
    }


def test_a_changed_dockerfile_rebuilds_its_images_and_replaces_their_containers(run_stack, files_copy):
    before = run_stack("dev", files=files_copy)
    _append_comment(files_copy, "nginx/Dockerfile")
    changes = planned(before, run_stack("dev", files=files_copy))
    servers = [h["name"] for h in hosts(before, "server")]
    rolling = {f"{s}-nginx-drain-on-{lb}": "update" for s in servers for lb in ("lb1", "lb2")}
    rolling |= {f"{s}-nginx-ready-on-{lb}": "replace" for s in servers for lb in ("lb1", "lb2")}  # new container
    images = {f"{s}-nginx-{step}": "update" for s in servers for step in ("image", "image-prune")}
    assert changes == rolling | images | {f"{s}-nginx-container": "replace" for s in servers}


def test_unicast_mode_names_the_other_balancer_as_peer(run_stack):
    def unicast(config):
        config["pihalb:cluster"]["vrrp"]["mode"] = "unicast"

    program = run_stack("dev", unicast)
    lb1, lb2 = hosts(program, "balancer")
    conf = embedded_file(program.named("vrrp-lb1-keepalived"))
    assert f"unicast_src_ip {lb1['address']}" in conf
    assert re.search(r"unicast_peer \{\s+" + re.escape(lb2["address"]) + r"\s+\}", conf)


@pytest.mark.parametrize(("stack", "alive_s"), [("dev", 2), ("dev-tuned", 1)])
def test_each_balancer_hands_packets_of_unknown_connections_to_the_vip_to_the_other(run_stack, stack, alive_s):
    """vrrp-host.sh's handoff chain: the VIP, the peer as TEE gateway, the peer's VRRP packets as its sign of
    life for two adverts (whole seconds: 2 at the paper's 1 s adverts, at least 1 at 0.03 s)."""
    program = run_stack(stack)
    lb1, lb2 = hosts(program, "balancer")
    vip = program_config(program)["vrrp"]["vip"].split("/")[0]
    for host, peer in ((lb1, lb2), (lb2, lb1)):
        script = script_of(program.named(f"vrrp-{host['name']}-vrrp-host"))
        assert {f"PEER={peer['address']}", f"VIP={vip}", f"PEER_ALIVE_S={alive_s}"} <= set(script.splitlines())
        for rule in ("-s $PEER/32 -p vrrp -m recent", "! -d $VIP/32 -j RETURN", "-j TEE --gateway $PEER"):
            assert rule in script


def test_deploy_devs_targets_carry_each_commands_parent_chain(run_stack):
    """`pulumi up --target` fails on a targeted create whose parent has no state: parents go in the list."""
    from lab.stack import host_preparation_targets

    program = run_stack("dev")
    targets = host_preparation_targets(program)
    for urn in targets:
        assert "pulumi:pulumi:Stack$" not in urn  # the engine's URN form, not the mocks'
        parent = program.find(urn).parent
        while not parent.endswith(f"pulumi:pulumi:Stack::pi-ha-lb-{program.stack}"):
            assert parent in targets, (urn, parent)
            parent = program.find(parent).parent
    names = {program.find(u).name for u in targets}
    assert names == {f"{h['name']}{suffix}" for h in hosts(program) for suffix in ("", "-install")}


def test_changes_roll_one_host_at_a_time(program):
    """Servers in inventory order, each drained on both balancers before its container goes and back
    in service before the next; the BACKUP balancer before the MASTER; VRRP steps BACKUP first."""
    servers = [h["name"] for h in hosts(program, "server")]
    master, backup = "lb1", "lb2"
    for i, server in enumerate(servers):
        container = program.named(f"{server}-nginx-container")
        for lb in (master, backup):
            drain, ready = (
                program.named(f"{server}-nginx-drain-on-{lb}"),
                program.named(f"{server}-nginx-ready-on-{lb}"),
            )
            assert program.depends_on(container, drain) and program.depends_on(ready, container)
            assert program.depends_on(drain, program.named(f"{server}-nginx-image"))  # out only once built
            assert drain.inputs["connection"]["host"] == program.outputs["balancers"][lb]
            if i:
                for previous_lb in (master, backup):
                    assert program.depends_on(drain, program.named(f"{servers[i - 1]}-nginx-ready-on-{previous_lb}"))
    assert program.depends_on(program.named(f"{master}-haproxy-leave"), program.named(f"{backup}-haproxy-rejoin"))
    for lb in (master, backup):  # a balancer leaves only once its new image is built and its config checked
        leave = program.named(f"{lb}-haproxy-leave")
        assert program.depends_on(leave, program.named(f"{lb}-haproxy-image"))
        assert program.depends_on(leave, program.named(f"{lb}-haproxy-config"))
    assert program.depends_on(program.named(f"{master}-haproxy-container"), program.named(f"{master}-haproxy-leave"))
    for step in ("vrrp-host", "keepalived"):
        assert program.depends_on(program.named(f"vrrp-{master}-{step}"), program.named(f"vrrp-{backup}-{step}"))


def test_the_backups_keepalived_waits_stopped_until_the_master_has_reloaded(program):
    """keepalived.sh pauses the BACKUP on a changed config; the resume step, after the MASTER's, is keyed on
    each run of the BACKUP's step."""
    master, backup = program.outputs["vrrpMaster"], "lb2"
    master_step, backup_step = (program.named(f"vrrp-{lb}-keepalived") for lb in (master, backup))
    assert re.search(r"^PAUSE_FOR_PEER=yes$", script_of(backup_step), re.M)
    assert re.search(r"^PAUSE_FOR_PEER=no$", script_of(master_step), re.M)
    advert = program_config(program)["vrrp"]["advertInterval"]
    assert re.search(rf"^PEER_TAKEOVER_S={4 * advert + 1:g}$", script_of(master_step), re.M)
    resume = program.named(f"vrrp-{backup}-keepalived-resume")
    assert program.depends_on(resume, master_step) and program.depends_on(master_step, backup_step)
    assert resume.inputs["connection"]["host"] == program.outputs["balancers"][backup]
    assert (
        resume.inputs["triggers"] == [computed(COMMAND, backup_step.name, "stdout")] and "delete" not in resume.inputs
    )
    assert (
        backup_step.inputs["create"] == RUN_SCRIPT_WITH_RUN_ID and master_step.inputs["create"] == RUN_SCRIPT_FROM_STDIN
    )


def test_a_new_image_replaces_one_container_and_reruns_only_its_rolling_steps(run_stack, files_copy):
    before = run_stack("dev", files=files_copy)
    _append_comment(files_copy, "haproxy/Dockerfile")
    changes = planned(before, run_stack("dev", files=files_copy))
    steps = ("image", "image-prune", "leave")
    rolled = {f"{lb}-haproxy-{step}": "update" for lb in ("lb1", "lb2") for step in steps}
    rejoins = {f"{lb}-haproxy-rejoin": "replace" for lb in ("lb1", "lb2")}  # after its leave, a new container
    assert changes == rolled | rejoins | {f"{lb}-haproxy-container": "replace" for lb in ("lb1", "lb2")} | {
        f"{lb}-haproxy-config": "update"
        for lb in ("lb1", "lb2")  # checked by the new image's own haproxy -c
    }


def test_a_page_change_rewrites_the_page_and_leaves_the_container(run_stack, files_copy):
    before = run_stack("dev", files=files_copy)
    _append_comment(files_copy, "templates/index.html.j2")
    servers = [h["name"] for h in hosts(before, "server")]
    assert planned(before, run_stack("dev", files=files_copy)) == {f"{s}-nginx-page": "update" for s in servers}
