"""Changes applied as `pulumi up` applies them (the lab engine: Pulumi's update/replace/delete rules),
under load through the VIP, with the tuned profile.

For each change: the plan's step kinds (what Pulumi would do), then what it cost (no request may fail),
then the cluster afterwards (the site serves through the VIP, keepalived is active on both balancers,
exactly one holds the VIP). Changes build on each other, in file order; then a server leaves and comes
back, an apply is killed midway and the next one converges, and the stack is destroyed and comes back.
No test asserts a timing.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from components import render
from components.settings import CONFIG_NAMESPACE, HOST_KEYS_KEY
from drills import maintenance, stack
from drills.load import Load, Recording
from drills.observe import get_vip
from harness.command_ops import StepError
from harness.program import ROOT
from lab.images import BASE_IMAGE
from lab.lab import Lab
from tests.vrrp_checks import assert_no_request_failed, assert_the_master_kept_the_vip

pytestmark = pytest.mark.lab

PROFILE = "dev-tuned"
RATE = 50  # requests per second, each on a new connection, 1 s timeout
CONTAINER = "docker:index/container:Container"


class Changes:
    """The files copy the program renders from, and the cluster values changed so far (path -> value)."""

    def __init__(self, lab: Lab, files: Path) -> None:
        self.lab, self.files = lab, files
        self.values: dict[str, object] = {}

    def alter(self, config: dict) -> None:
        apply_values(config, self.values)

    def append(self, relative: str, line: str) -> None:
        with open(self.files / relative, "a") as handle:
            handle.write(line + "\n")

    def apply_under_load(self, replace=()) -> tuple[stack.lab_stack.Applied, Recording]:
        load = Load.through_vip(self.lab, RATE, 1800, timeout=1.0).start()
        time.sleep(1)
        try:
            applied = stack.apply(
                self.lab, self.alter, log=lambda line: None, stack=PROFILE, files=self.files, replace=replace
            )
        finally:
            recording = load.finish(tail=3)
        return applied, recording


def apply_values(config: dict, values: dict[str, object]) -> None:
    """Cluster values by path; a `hosts` list also drops the host keys of hosts it leaves out (a user removing
    a Pi removes its pinned key too: keys for hosts not in the cluster are refused)."""
    if "hosts" in values:
        kept = {h["name"] for h in values["hosts"]}  # type: ignore[union-attr]
        keys = config[f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}"]
        config[f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}"] = {name: key for name, key in keys.items() if name in kept}
    for path, value in values.items():
        node = stack.cluster(config)
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value


def changed(applied) -> dict[str, str]:
    """The plan's changes, without the bring-back steps (replaced for their triggers alone: the unit tests
    in tests/test_program.py and tests/test_converge.py assert exactly when they run)."""
    return applied.plan.changes_besides_bring_back()


def assert_healthy(lab: Lab) -> None:
    stack.wait_serving(lab)
    for balancer in lab.balancers:
        assert lab.sh(balancer.name, "systemctl is-active keepalived", check=False)[1].strip() == "active"
    assert len(lab.vip_holders()) == 1


def ended(step) -> float:
    return step.started + step.seconds


def servers(lab: Lab, *steps: str, kind: str = "update") -> dict[str, str]:
    return {f"{s.name}-nginx-{step}": kind for s in lab.servers for step in steps}


def on_balancers(lab: Lab, *steps: str, kind: str = "update") -> dict[str, str]:
    return {f"{b.name}-haproxy-{step}": kind for b in lab.balancers for step in steps}


def vrrp(lab: Lab, step: str) -> dict[str, str]:
    return {f"vrrp-{b.name}-{step}": "update" for b in lab.balancers}


def rolled_servers(lab: Lab) -> dict[str, str]:
    balancers = [b.name for b in lab.balancers]
    rolling = {f"{s.name}-nginx-drain-on-{b}": "update" for s in lab.servers for b in balancers}
    return rolling | servers(lab, "image", "image-prune") | servers(lab, "container", kind="replace")


@pytest.fixture(scope="module")
def changes(deployed, lab: Lab, tmp_path_factory) -> Changes:
    """The tuned profile, rendered from a copy of files/ that the tests change (the baseline apply)."""
    files = tmp_path_factory.mktemp("changes") / "files"
    shutil.copytree(render.FILES, files)
    state = Changes(lab, files)
    stack.apply(lab, log=lambda line: None, stack=PROFILE, files=files)
    assert_healthy(lab)
    return state


def test_a_new_page_rewrites_the_page_files_and_replaces_nothing(changes, lab):
    changes.append("templates/index.html.j2", "<!-- page v2 -->")
    applied, recording = changes.apply_under_load()
    assert changed(applied) == servers(lab, "page")
    assert_no_request_failed(recording)
    connection = http.client.HTTPConnection(str(lab.servers[0].address), lab.server_port, timeout=5)
    connection.request("GET", "/")
    assert "<!-- page v2 -->" in connection.getresponse().read().decode()
    assert_healthy(lab)


def test_a_new_nginx_image_rolls_the_servers_one_at_a_time(changes, lab):
    changes.append("nginx/Dockerfile", "# nginx image v2")
    since = int(time.time()) - 1
    applied, recording = changes.apply_under_load()
    assert changed(applied) == rolled_servers(lab)
    done = applied.report.by_name  # the step itself, not the end-of-update delete of its old copy
    names = [s.name for s in lab.servers]
    for previous, following in zip(names, names[1:], strict=False):  # one server out at a time
        back = max(ended(done(f"{previous}-nginx-ready-on-{b.name}")) for b in lab.balancers)
        assert done(f"{following}-nginx-container").started >= back
    # Each old nginx got its stop signal (SIGQUIT: finish what is in flight) and no SIGKILL after it.
    for server in names:
        events = f"docker events --since {since} --until $(date +%s) --filter container={render.NGINX_CONTAINER}"
        signals = lab.sh(server, f"{events} --filter event=kill --format '{{{{.Actor.Attributes.signal}}}}'")[1]
        assert signals.split() == ["3"], (server, signals)
    assert_no_request_failed(recording)
    assert_healthy(lab)


@pytest.mark.parametrize(
    ("path", "value", "steps", "vip_stays"),
    [
        ("haproxy.timeouts.clientMs", 11000, ("haproxy", "config"), True),  # a haproxy.cfg value: reloaded
        # A keepalived value, nothing deleted: a weight that would let the BACKUP outbid the MASTER were both
        # reloaded in turn (0 -> 2: 102 against 101). The BACKUP waits stopped while the MASTER reloads.
        ("vrrp.track.weight", 2, ("vrrp", "keepalived"), True),
        # A change of the instance's identity: keepalived starts a new instance on each host, the BACKUP's
        # takes the VIP while the MASTER's starts, then the MASTER takes it back (two VIP moves).
        ("vrrp.mode", "unicast", ("vrrp", "keepalived"), False),
    ],
    ids=["haproxy.cfg", "keepalived.conf", "keepalived.conf-identity"],
)
def test_a_config_value_is_reloaded_in_place_on_both_balancers(changes, lab, path, value, steps, vip_stays):
    """Changed, then changed back (the profile's own value stays for the tests after this one)."""
    kind, step = steps
    expected = on_balancers(lab, step) if kind == "haproxy" else vrrp(lab, step)

    def apply_it() -> None:
        since = time.time()
        applied, recording = changes.apply_under_load()
        assert changed(applied) == expected
        assert_no_request_failed(recording, vip_moves=not vip_stays)
        if vip_stays:
            assert_the_master_kept_the_vip(lab, recording, since)
        else:
            assert lab.vip_holders() == [lab.balancers[0].name]

    changes.values[path] = value
    apply_it()
    del changes.values[path]
    apply_it()
    assert_healthy(lab)


def test_edited_host_scripts_rerun_in_place_backup_first(changes, lab):
    changes.append("scripts/vrrp-host.sh", "# firewall script v2")
    changes.append("scripts/haproxy-watch.sh", "# watcher script v2")
    applied, recording = changes.apply_under_load()
    assert changed(applied) == vrrp(lab, "vrrp-host") | vrrp(lab, "haproxy-watch")
    done = applied.report.by_name  # the step itself, not the end-of-update delete of its old copy
    assert done(f"vrrp-{lab.master.name}-vrrp-host").started >= done(f"vrrp-{lab.backup.name}-vrrp-host").started
    assert_no_request_failed(recording)
    assert_healthy(lab)


@pytest.mark.slow
def test_a_haproxy_source_version_rolls_backup_then_master(changes, lab):
    """Pinning the version Debian serves here: a new build argument, so new images and containers. HAProxy
    is compiled again on both balancers (8 min on the lab), so CI leaves it out (`scripts/test -m slow`);
    the base-image test below rolls the balancers the same way with its builds cached."""
    changes.values["haproxy.source.version"] = "2.6.12-1+deb12u3"
    applied, recording = changes.apply_under_load()
    assert changed(applied) == on_balancers(lab, "image", "image-prune", "config", "leave") | on_balancers(
        lab, "container", kind="replace"
    )
    done = applied.report.by_name  # the step itself, not the end-of-update delete of its old copy
    backup_back = done(f"{lab.backup.name}-haproxy-rejoin")
    assert done(f"{lab.master.name}-haproxy-leave").started >= ended(backup_back)
    assert_no_request_failed(recording, vip_moves=True)
    assert_healthy(lab)


def test_a_new_base_image_rolls_every_container(changes, lab):
    """`baseImage` under another name (the same image, so every build hits its cache): every image gets a
    new tag and every container is rolled: servers one at a time, the BACKUP balancer before the MASTER."""
    changes.values["baseImage"] = maintenance.base_image_alias(lab)
    applied, recording = changes.apply_under_load()
    kinds = changed(applied)
    containers = {n for n, k in kinds.items() if n.endswith("-container")}
    assert containers == {f"{h.name}-{'haproxy' if h in lab.balancers else 'nginx'}-container" for h in lab.hosts}
    assert {kinds[n] for n in containers} == {"replace"} and set(kinds.values()) == {"replace", "update"}
    done = applied.report.by_name  # the step itself, not the end-of-update delete of its old copy
    assert done(f"{lab.master.name}-haproxy-leave").started >= ended(done(f"{lab.backup.name}-haproxy-rejoin"))
    assert_no_request_failed(recording, vip_moves=True)
    assert_healthy(lab)


def test_an_image_rebuilt_under_its_tag_replaces_its_container_by_digest(changes, lab):
    """`pulumi up --replace` on an image (the recovery after a prune, or to take a moved base tag): the
    rebuild keeps its tag but, from another base, gets another ID. Containers run images by ID, so this
    one is replaced, drained first; nothing else changes. (The base is the previous test's `baseImage`
    alias: the lab re-seeds its own base name into each daemon at every apply.)"""
    server, base = lab.servers[0].name, changes.values["baseImage"]
    moved = f"FROM {base}\nRUN echo moved > /etc/pihalb-base-moved\n"  # the same tag, another image
    lab.sh(server, f"printf {shlex.quote(moved)} | docker build -q -t {base} -")
    try:
        applied, recording = changes.apply_under_load(replace=[f"{server}-nginx-image"])
    finally:
        lab.sh(server, f"docker tag {BASE_IMAGE} {base}")  # the alias back on the lab's own base
    drains = {f"{server}-nginx-drain-on-{b.name}": "update" for b in lab.balancers}
    assert changed(applied) == {f"{server}-nginx-image": "replace", f"{server}-nginx-container": "replace"} | drains
    tag = applied.program.named(f"{server}-nginx-image").inputs["imageName"]
    running = lab.sh(server, f"docker inspect -f '{{{{.Image}}}}' {render.NGINX_CONTAINER}")[1].strip()
    assert running == lab.sh(server, f"docker image inspect -f '{{{{.Id}}}}' {tag}")[1].strip()
    assert lab.sh(server, f"docker exec {render.NGINX_CONTAINER} cat /etc/pihalb-base-moved")[1].strip() == "moved"
    assert_no_request_failed(recording)
    assert_healthy(lab)


def test_docker_engines_restarted_host_by_host_cost_no_request(changes, lab):
    """An engine upgrade's restart, done as README says (a server drained first, the MASTER after handing
    the VIP over): nothing fails, every container comes back by its restart policy, and the next `up`
    finds nothing to change."""
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    try:
        maintenance.restart_engines_rolling(lab)
    finally:
        recording = load.finish(tail=3)
    assert_no_request_failed(recording, vip_moves=True)
    assert_healthy(lab)
    again = stack.apply(lab, changes.alter, log=lambda line: None, stack=PROFILE, files=changes.files)
    assert again.plan.kinds() == {}  # the containers kept their IDs: nothing to bring back either


def test_a_removed_server_leaves_the_balancers_before_it_goes(changes, lab):
    leaving = lab.servers[-1].name
    original = [h for h in stack.cluster(stack.lab_stack.config(lab, PROFILE))["hosts"]]
    changes.values["hosts"] = [h for h in original if h["name"] != leaving]
    applied, recording = changes.apply_under_load()
    kinds = changed(applied)
    assert {n: k for n, k in kinds.items() if k != "delete"} == on_balancers(lab, "config")
    deleted = sorted(n for n, k in kinds.items() if k == "delete")
    assert deleted and all(n.startswith(leaving) for n in deleted), deleted
    assert f"{leaving}-nginx-container" in deleted and f"{leaving}-nginx-image" in deleted
    done = applied.report.by_name  # the step itself, not the end-of-update delete of its old copy
    configs_done = max(
        done(f"{b.name}-haproxy-config").started + done(f"{b.name}-haproxy-config").seconds for b in lab.balancers
    )
    assert next(d for d in applied.report.done if d.name == f"{leaving}-nginx-container").started >= configs_done
    assert lab.sh(leaving, "sudo docker ps -aq --filter name=pihalb", check=False)[1].strip() == ""
    assert_no_request_failed(recording)
    del changes.values["hosts"]


def test_a_server_added_joins_after_its_container_answers(changes, lab):
    joining = lab.servers[-1].name
    applied, recording = changes.apply_under_load()
    kinds = changed(applied)
    assert {n for n, k in kinds.items() if k == "create"} >= {f"{joining}-nginx-container", f"{joining}-nginx-image"}
    assert {n: k for n, k in kinds.items() if k != "create"} == on_balancers(lab, "config")
    assert_no_request_failed(recording)
    assert_healthy(lab)
    assert {get_vip(lab).server for _ in range(3 * len(lab.servers))} == set(range(1, len(lab.servers) + 1))


def test_an_apply_killed_midway_converges_on_the_next_up(changes, lab):
    """Killed right after the first server's new container is up: the next `up` finishes the roll."""
    changes.append("nginx/Dockerfile", "# nginx image v3")
    code = (
        "import json, sys; from pathlib import Path; from drills import stack; from lab.lab import Lab;"
        "from tests.test_lab_changes import apply_values;"
        "values = json.loads(sys.argv[2]);"
        "stack.apply(Lab.from_stack(), lambda c: apply_values(c, values), stack=sys.argv[3], files=Path(sys.argv[1]))"
    )
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(changes.files), json.dumps(changes.values), PROFILE],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first = lab.servers[0].name
    try:
        for line in child.stdout:  # type: ignore[union-attr]
            if f"{first}-nginx-container replace done" in line:
                child.kill()
                break
        child.wait(timeout=600)
        assert child.returncode != 0, "the apply finished before it could be killed"
        applied = stack.apply(lab, changes.alter, log=lambda line: None, stack=PROFILE, files=changes.files)
    finally:
        recording = load.finish(tail=3)
    kinds = changed(applied)
    assert kinds.get(f"{first}-nginx-container") is None  # done before the kill: not redone
    for server in lab.servers[1:]:
        assert kinds[f"{server.name}-nginx-container"] == "replace"
    assert_no_request_failed(recording)
    assert_healthy(lab)
    again = stack.apply(lab, changes.alter, log=lambda line: None, stack=PROFILE, files=changes.files)
    assert again.plan.kinds() == {}  # converged: not even a bring-back step left


def test_a_container_that_fails_its_health_check_stops_the_apply_and_the_next_up_recovers(changes, lab):
    """`wait=True`: an nginx image that builds but cannot start fails its create; no other server is
    touched, the load is still served, and the next good `up` brings the server back into service on
    both balancers (its ready steps are keyed on its drains, which ran, and on its container)."""
    dockerfile = changes.files / "nginx" / "Dockerfile"
    good = dockerfile.read_text()
    dockerfile.write_text(good + 'CMD ["nginx", "-g", "daemon off; no_such_directive on;"]\n')
    first, *others = [s.name for s in lab.servers]
    inspect = f"docker inspect -f '{{{{.Id}}}}' {render.NGINX_CONTAINER}"
    before = {server: lab.sh(server, inspect, check=False)[1] for server in others}
    load = Load.through_vip(lab, RATE, 1800, timeout=1.0).start()
    try:
        with pytest.raises(StepError, match="not healthy"):
            stack.apply(lab, changes.alter, log=lambda line: None, stack=PROFILE, files=changes.files)
    finally:
        recording = load.finish(tail=3)
    assert {server: lab.sh(server, inspect, check=False)[1] for server in others} == before  # the roll stopped
    assert_no_request_failed(recording)
    dockerfile.write_text(good)
    applied = stack.apply(lab, changes.alter, log=lambda line: None, stack=PROFILE, files=changes.files)
    assert changed(applied)[f"{first}-nginx-container"] == "create"  # the failed create left nothing in state
    assert {applied.plan.kinds()[f"{first}-nginx-ready-on-{b.name}"] for b in lab.balancers} == {"replace"}
    assert_healthy(lab)


def test_destroy_leaves_nothing_of_pihalb_and_up_brings_it_back(changes, lab):
    """Checked on every host: containers, tagged images, units, files, firewall rules, the VIP; Docker stays.
    The images' build-cache layers stay (untagged, as `docker image prune` finds them): the next `up`
    rebuilds from them instead of compiling HAProxy again."""
    stack.lab_stack.destroy(lab, log=lambda line: None)
    checks = {
        "containers": "sudo docker ps -aq --filter name=pihalb",
        "images": "sudo docker images -q --filter 'reference=localhost/pihalb/*'",
        "units": "systemctl list-unit-files 'pihalb*' --no-legend; systemctl is-active keepalived || true",
        "files": "ls -d /etc/pihalb /etc/keepalived/keepalived.conf /etc/systemd/system/pihalb-*"
        " /usr/local/sbin/pihalb-* /etc/sysctl.d/60-pihalb-vrrp.conf /etc/tmpfiles.d/pihalb.conf 2>/dev/null || true",
        "firewall": "sudo iptables -S INPUT | grep -E 'vrrp| 112 |224.0.0.0' || true",
        "vip": f"ip -4 -o addr | grep ' {lab.vip.ip}/' || true",
    }
    for host in lab.hosts:
        for what, command in checks.items():
            output = lab.sh(host.name, command, check=False)[1].strip()
            left = output.replace("inactive", "").strip()
            assert left == "", f"{host.name}: {what} left after destroy: {output}"
        assert lab.sh(host.name, "systemctl is-active docker", check=False)[1].strip() == "active"
    assert stack.lab_stack.backend(lab).checkpoint("dev").resources == []
    applied = stack.apply(lab, changes.alter, log=lambda line: None, stack=PROFILE, files=changes.files)
    assert set(changed(applied).values()) == {"create"}
    assert_healthy(lab)
