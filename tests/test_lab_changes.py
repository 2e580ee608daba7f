"""Changes applied as `pulumi up` applies them (the lab engine: Pulumi's update/replace/delete rules),
under load through the VIP, with the tuned profile (TLS on: every other request over HTTPS).

For each change: the plan's step kinds (what Pulumi would do), then what it cost (no request may fail),
then the cluster afterwards (the site serves through the VIP, keepalived is active on both balancers,
exactly one holds the VIP). Changes build on each other, in file order; then a server leaves and comes
back, an apply is killed midway and the next one converges, and the stack is destroyed and comes back.
No test asserts a timing.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.changes import KEEPALIVED_TOGGLES
from bench.sweep import Change, sweep
from components import names, render
from components.debian import HAPROXY_PINNED_VERSION
from components.settings import Settings, parse_cluster
from drills import https, maintenance, stack
from drills.load import Load, Recording
from drills.observe import get_vip
from harness import program
from harness.command_ops import StepError
from harness.program import ROOT
from lab.images import BASE_IMAGE
from lab.inventory import CLUSTER_CONFIG_KEY, Inventory
from lab.lab import Lab
from tests.lab_checks import RATE, assert_healthy, assert_no_build_leftovers
from tests.vrrp_checks import assert_no_request_failed, assert_the_master_kept_the_vip

pytestmark = pytest.mark.lab

PROFILE = "dev-tuned"
CONTAINER = "docker:index/container:Container"


class Changes:
    """The files copy the program renders from, and the cluster values changed so far (path -> value)."""

    def __init__(self, lab: Lab, files: Path) -> None:
        self.lab, self.files = lab, files
        self.values: dict[str, object] = {}
        self.site = https.site(lab, PROFILE)

    def load(self) -> Load:
        """The load a change runs under: with TLS on, every other request over HTTPS (a new handshake each)."""
        if self.site is None:
            return Load.through_vip(self.lab, RATE, 1800, timeout=1.0)
        return self.site.load_beside_http(self.lab, RATE, 1800, timeout=1.0)

    def alter(self, config: dict) -> None:
        stack.apply_values(config, self.values)

    def append(self, relative: str, line: str) -> None:
        with open(self.files / relative, "a") as handle:
            handle.write(line + "\n")

    def apply_under_load(self, replace=()) -> tuple[stack.lab_stack.Applied, Recording]:
        load = self.load().start()
        time.sleep(1)
        try:
            applied = stack.apply(
                self.lab, self.alter, log=lambda line: None, profile=PROFILE, files=self.files, replace=replace
            )
        finally:
            recording = load.finish(tail=3)
        return applied, recording


def changed(applied) -> dict[str, str]:
    """The plan's changes, without the bring-back steps (replaced for their triggers alone: the unit tests
    in tests/test_program_changes.py and tests/test_converge.py assert exactly when they run)."""
    return applied.plan.changes_besides_bring_back()


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
    stack.apply(lab, log=lambda line: None, profile=PROFILE, files=files)
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
    servers = [s.name for s in lab.servers]
    for previous, following in zip(servers, servers[1:], strict=False):  # one server out at a time
        back = max(ended(done(f"{previous}-nginx-ready-on-{b.name}")) for b in lab.balancers)
        assert done(f"{following}-nginx-container").started >= back
    # Each old nginx got its stop signal (SIGQUIT: finish what is in flight) and no SIGKILL after it.
    for server in servers:
        events = f"docker events --since {since} --until $(date +%s) --filter container={names.NGINX_CONTAINER}"
        signals = lab.read(server, f"{events} --filter event=kill --format '{{{{.Actor.Attributes.signal}}}}'")[1]
        assert signals.split() == ["3"], (server, signals)
    assert_no_request_failed(recording)
    assert_healthy(lab)
    assert_no_build_leftovers(lab)


@pytest.mark.parametrize(
    ("path", "value", "steps", "vip_stays"),
    [
        ("haproxy.timeouts.clientMs", 11000, ("haproxy", "config"), True),  # a haproxy.cfg value: reloaded
        # A keepalived value, nothing deleted: a weight that would let the BACKUP outbid the MASTER were both
        # reloaded in turn (0 -> 2: 253 against 252). The BACKUP waits stopped while the MASTER reloads.
        (KEEPALIVED_TOGGLES["tuned"][0], KEEPALIVED_TOGGLES["tuned"][2], ("vrrp", "keepalived"), True),
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
    changes.values["haproxy.source.version"] = HAPROXY_PINNED_VERSION
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
    assert_no_build_leftovers(lab)


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
    rebuilt = {f"{server}-nginx-image": "replace", f"{server}-nginx-image-prune": "update"}
    assert changed(applied) == rebuilt | {f"{server}-nginx-container": "replace"} | drains
    tag = applied.program.named(f"{server}-nginx-image").inputs["imageName"]
    running = lab.read(server, f"docker inspect -f '{{{{.Image}}}}' {names.NGINX_CONTAINER}")[1].strip()
    assert running == lab.read(server, f"docker image inspect -f '{{{{.Id}}}}' {tag}")[1].strip()
    assert lab.read(server, f"docker exec {names.NGINX_CONTAINER} cat /etc/pihalb-base-moved")[1].strip() == "moved"
    assert_no_request_failed(recording)
    assert_healthy(lab)


def test_docker_engines_restarted_host_by_host_cost_no_request(changes, lab):
    """An engine upgrade's restart, done as README says (a server drained first, the MASTER after handing
    the VIP over): nothing fails, every container comes back by its restart policy, and the next `up`
    finds nothing to change."""
    load = changes.load().start()
    try:
        maintenance.restart_engines_rolling(lab, PROFILE, changes.alter)
    finally:
        recording = load.finish(tail=3)
    assert_no_request_failed(recording, vip_moves=True)
    assert_healthy(lab)
    again = stack.apply(lab, changes.alter, log=lambda line: None, profile=PROFILE, files=changes.files)
    assert again.plan.kinds() == {}  # the containers kept their IDs: nothing to bring back either


def grown_lab(lab: Lab, hosts: list[dict]) -> Lab:
    """The lab of the stack file with `hosts` instead: what `python -m lab up` makes after a user adds a Pi."""
    raw = copy.deepcopy(program.stack_file_config(lab.inventory.stack)[CLUSTER_CONFIG_KEY]) | {"hosts": hosts}
    return Lab(lab.root, Inventory(lab.inventory.stack, Settings(cluster=parse_cluster(raw), host_keys={})))


def test_a_server_added_to_the_stack_file_gets_a_host_and_joins_after_its_container_answers(changes, lab):
    """A fourth Pi in the stack file: `lab up` makes it, the program prepares it, builds its image and the
    balancers send it requests only once its container answers."""
    original = stack.cluster(stack.lab_stack.config(lab, PROFILE))["hosts"]
    joining = {"name": "server4", "address": str(lab.unused_address()), "role": "server"}
    hosts = [*original[: len(lab.servers)], joining, *original[len(lab.servers) :]]  # servers listed first
    grown = grown_lab(lab, hosts)
    grown.up()
    changes.lab, changes.values["hosts"] = grown, hosts
    try:
        applied, recording = changes.apply_under_load()
    finally:
        changes.lab = lab
    kinds = changed(applied)
    made = {"server4-nginx-container", "server4-nginx-image", "server4-install", "server4-nginx-image-prune"}
    assert {n for n, k in kinds.items() if k == "create"} >= made
    assert {n: k for n, k in kinds.items() if k != "create"} == on_balancers(lab, "config")
    assert_no_request_failed(recording)
    assert_healthy(grown)
    assert {get_vip(lab).server for _ in range(3 * len(grown.servers))} == set(range(1, len(grown.servers) + 1))


def test_a_server_removed_from_the_stack_file_leaves_the_balancers_then_its_host(changes, lab):
    """The stack file back to three servers: the deploy deletes server4's resources over its old connection
    after the balancers stopped sending to it; the next `lab up` removes the host; nothing is left to do."""
    del changes.values["hosts"]
    applied, recording = changes.apply_under_load()
    kinds = changed(applied)
    assert {n: k for n, k in kinds.items() if k != "delete"} == on_balancers(lab, "config")
    deleted = sorted(n for n, k in kinds.items() if k == "delete")
    assert deleted and all(n.startswith("server4") for n in deleted), deleted
    assert {"server4-nginx-container", "server4-install"} <= set(deleted)
    done = applied.report.by_name  # the step itself, not the end-of-update delete of its old copy
    configs_done = max(ended(done(f"{b.name}-haproxy-config")) for b in lab.balancers)
    assert next(d for d in applied.report.done if d.name == "server4-nginx-container").started >= configs_done
    assert_no_request_failed(recording)
    lab.up()
    assert "pihalb-lab-server4" not in {c.name for c in lab.docker.containers.list(all=True)}
    assert stack.lab_stack.preview(lab, PROFILE, changes.alter, files=changes.files).kinds() == {}
    assert_healthy(lab)


def test_a_keepalived_roll_stopped_after_any_step_heals_on_the_next_up(changes, lab):
    """The stopping-point sweep (bench/sweep) for one change class in CI: a keepalived.conf value, whose roll
    pauses the BACKUP's keepalived; stopped after step 1, 2, ... and then run whole, each time followed by
    an `up`, after which every convergence check holds (the BACKUP not left paused among them)."""
    change = Change(PROFILE, changes.files, dict(changes.values))
    rows = sweep(lab, "keepalived", change, log=lambda line: None)
    changes.values = change.values
    assert len(rows) >= 3 and rows[-1]["stopped_after"] is None, rows
    assert [(r["stopped_after"], r["checks"]) for r in rows if not r["converged"]] == []


def test_an_apply_killed_midway_converges_on_the_next_up(changes, lab):
    """Killed right after the first server's new container is up: the next `up` finishes the roll."""
    changes.append("nginx/Dockerfile", "# nginx image v3")
    code = (
        "import json, sys; from pathlib import Path; from drills import stack; from lab.lab import Lab;"
        "values = json.loads(sys.argv[2]);"
        "alter = lambda config: stack.apply_values(config, values);"
        "stack.apply(Lab.from_stack(), alter, profile=sys.argv[3], files=Path(sys.argv[1]))"
    )
    load = changes.load().start()
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(changes.files), json.dumps(changes.values), PROFILE],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    first = lab.servers[0].name
    try:
        for line in child.stdout:  # type: ignore[union-attr]
            if f"{first}-nginx-container replace done" in line:
                child.kill()
                break
        child.wait(timeout=600)
        assert child.returncode == -signal.SIGKILL, f"the apply ended by itself ({child.returncode}), not killed"
        applied = stack.apply(lab, changes.alter, log=lambda line: None, profile=PROFILE, files=changes.files)
    finally:
        recording = load.finish(tail=3)
    kinds = changed(applied)
    assert kinds.get(f"{first}-nginx-container") is None  # done before the kill: not redone
    for server in lab.servers[1:]:
        assert kinds[f"{server.name}-nginx-container"] == "replace"
    assert_no_request_failed(recording)
    assert_healthy(lab)
    again = stack.apply(lab, changes.alter, log=lambda line: None, profile=PROFILE, files=changes.files)
    assert again.plan.kinds() == {}  # converged: not even a bring-back step left


def test_a_container_that_fails_its_health_check_stops_the_apply_and_the_next_up_recovers(changes, lab):
    """`wait=True`: an nginx image that builds but cannot start fails its create; no other server is
    touched, the load is still served, and the next good `up` brings the server back into service on
    both balancers (its ready steps are keyed on its drains, which ran, and on its container)."""
    dockerfile = changes.files / "nginx" / "Dockerfile"
    good = dockerfile.read_text()
    dockerfile.write_text(good + 'CMD ["nginx", "-g", "daemon off; no_such_directive on;"]\n')
    first, *others = [s.name for s in lab.servers]
    inspect = f"docker inspect -f '{{{{.Id}}}}' {names.NGINX_CONTAINER}"
    before = {server: lab.read(server, inspect, check=False)[1] for server in others}
    load = changes.load().start()
    try:
        with pytest.raises(StepError, match="not healthy"):
            stack.apply(lab, changes.alter, log=lambda line: None, profile=PROFILE, files=changes.files)
    finally:
        recording = load.finish(tail=3)
    assert {server: lab.read(server, inspect, check=False)[1] for server in others} == before  # the roll stopped
    assert_no_request_failed(recording)
    # Kept with its init error, as pulumi-docker does: the same inputs again would only update it, in place.
    again = stack.lab_stack.preview(lab, PROFILE, changes.alter, files=changes.files)
    assert again.kinds()[f"{first}-nginx-container"] == "update"
    dockerfile.write_text(good)
    applied = stack.apply(lab, changes.alter, log=lambda line: None, profile=PROFILE, files=changes.files)
    assert changed(applied)[f"{first}-nginx-container"] == "replace"  # a new image replaces the kept one
    assert {applied.plan.kinds()[f"{first}-nginx-ready-on-{b.name}"] for b in lab.balancers} == {"replace"}
    assert_healthy(lab)
