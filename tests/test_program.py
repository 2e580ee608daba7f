"""The whole program under Pulumi mocks, for every shipped stack file: assertions on the graph."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from components import names
from components.remote import CHECK_TIMEOUT_S, RUN_SCRIPT_WITH_RUN_ID, run_script_from_stdin
from harness.program import Program, computed
from tests.program_views import (
    COMMAND,
    CONTAINER,
    IMAGE,
    PROVIDER,
    embedded_file,
    embedded_page,
    hosts,
    program_config,
)

from .conftest import STATS_PASSWORD, VRRP_PASSWORD

pytestmark = pytest.mark.unit


def test_a_docker_provider_per_host_over_ssh(program):
    cluster = program_config(program)
    providers = {p.name: p for p in program.of_type(PROVIDER)}
    assert sorted(providers) == sorted(f"{h['name']}-docker" for h in hosts(program))
    for host in hosts(program):
        provider = providers[f"{host['name']}-docker"]
        user = host.get("user") or cluster["ssh"]["user"]
        assert provider.inputs["host"] == f"ssh://{user}@{host['address']}:{cluster['ssh']['port']}"
        opts = json.loads(provider.inputs["sshOpts"])  # provider inputs reach the engine JSON-encoded
        assert "StrictHostKeyChecking=yes" in opts and "BatchMode=yes" in opts
        known_hosts = next(o.split("=", 1)[1] for o in opts if o.startswith("UserKnownHostsFile="))
        with open(known_hosts) as handle:
            assert handle.read().startswith(f"{host['address']} ssh-ed25519 ")
        key_file = opts[opts.index("-i") + 1]
        with open(key_file) as handle:
            assert "PRIVATE KEY" in handle.read()


def test_images_for_the_stack_platform_on_their_own_host(program):
    cluster = program_config(program)
    expected = {f"{h['name']}-nginx-image": h["name"] for h in hosts(program, "server")}
    expected |= {f"{h['name']}-haproxy-image": h["name"] for h in hosts(program, "balancer")}
    images = program.of_type(IMAGE)
    assert sorted(i.name for i in images) == sorted(expected)
    for image in images:
        build = image.inputs["build"]
        assert build["platform"] == cluster["platform"]
        assert build["args"]["BASE_IMAGE"] == cluster["baseImage"]
        assert build["dockerfile"] == f"files/{image.name.split('-')[1]}/Dockerfile"  # relative: no diff elsewhere
        assert build["context"] == f"files/{image.name.split('-')[1]}" and build["builderVersion"] == "BuilderV1"
        assert image.inputs["skipPush"] is True
        assert image.provider.split("::")[-2] == f"{expected[image.name]}-docker"


def test_three_servers_and_two_balancers_run(program):
    containers = {c.name: c for c in program.of_type(CONTAINER)}
    servers = [c for n, c in sorted(containers.items()) if n.endswith("-nginx-container")]
    balancers = [c for n, c in containers.items() if n.endswith("-haproxy-container")]
    assert len(servers) == 3 and len(balancers) == 2
    pages = [embedded_page(program.named(c.name.replace("-container", "-page"))) for c in servers]
    assert [re.search(r"Hello world from server (\d)!", p).group(1) for p in pages] == ["1", "2", "3"]
    for container in servers + balancers:
        assert container.inputs["restart"] == "always"
        assert container.inputs["wait"] is True and container.inputs["healthcheck"]["tests"][:2] == ["CMD", "bash"]
        assert container.inputs["destroyGraceSeconds"] == 10  # a stop signal, then time to finish
        assert container.inputs["logOpts"] == {"max-size": "10m", "max-file": "3"}
        assert "uploads" not in container.inputs  # an upload is ForceNew: a page change would replace it
        image = program.named(container.name.replace("-container", "-image"))
        assert container.inputs["image"] == computed(IMAGE, image.name, "repoDigest")  # by ID, not by tag
    cluster = program_config(program)
    for container in balancers:
        assert {"internal": 8080.0, "external": float(cluster["haproxy"]["frontendPort"])} in container.inputs["ports"]


def test_haproxy_config_lists_every_server_and_the_paper_options(program):
    servers = hosts(program, "server")
    haproxy = program_config(program)["haproxy"]
    check = haproxy["healthCheck"]
    for balancer in hosts(program, "balancer"):
        cfg = embedded_file(program.named(f"{balancer['name']}-haproxy-config"))
        for i, server in enumerate(servers):
            assert f"server {server['name']} {server['address']}:80 check" in cfg, i
        for line in (
            "option forwardfor",
            "option httplog",
            f"balance {haproxy['balance']}",
            f"option httpchk GET {check['path']}",
            f"http-check expect status {check['expectStatus']}",
            f"timeout connect {haproxy['timeouts']['connectMs']}",
            f"default-server inter {check['interMs']} fall {check['fall']} rise {check['rise']}",
        ):
            assert line in cfg
        assert ("option redispatch" in cfg) == haproxy.get("redispatch", False)
        assert f"stats auth admin:{STATS_PASSWORD}" in cfg


def test_keepalived_only_on_balancers_with_states_and_priorities(program):
    cluster = program_config(program)
    balancer_addresses = {h["address"] for h in hosts(program, "balancer")}
    keepalived = [c for c in program.of_type(COMMAND) if c.name.endswith("-keepalived")]
    assert len(keepalived) == 2
    states = {}
    for command in keepalived:
        assert command.inputs["connection"]["host"] in balancer_addresses
        conf = embedded_file(command)
        state = re.search(r"state (\w+)", conf).group(1)
        priority = int(re.search(r"^\s*priority (\d+)", conf, re.M).group(1))
        states[state] = priority
        assert "virtual_router_id 51" in conf
        assert cluster["vrrp"]["vip"] in conf
        track = cluster["vrrp"]["track"]
        if track.get("kind", "script") == "script":
            assert 'script "/usr/bin/killall -0 haproxy"' in conf
            assert f"interval {track['interval']}" in conf and "track_script {" in conf
        else:
            assert f"file {names.HAPROXY_TRACK_FILE}" in conf and "track_file {" in conf
        assert f"weight {track['weight']}" in conf
        assert (f"auth_pass {VRRP_PASSWORD}" in conf) == (cluster["vrrp"]["version"] == 2)
    by_priority = sorted(hosts(program, "balancer"), key=lambda h: -h["priority"])
    assert states == {"MASTER": by_priority[0]["priority"], "BACKUP": by_priority[1]["priority"]}
    assert program.outputs["vrrpMaster"] == "lb1"


def test_every_step_of_a_host_waits_for_its_connectivity_check_and_preparation(program):
    """The check is an invoke (no resource): the install step registers only once it has answered."""
    invoked = {i.args["command"].split(" -- ")[1].split()[0]: i for i in program.invokes}
    assert sorted(invoked) == sorted(h["address"] for h in hosts(program))
    for host in hosts(program):
        install = program.named(f"{host['name']}-install")
        assert invoked[host["address"]].registered_before <= program.resources.index(install)
        on_host = [c for c in program.of_type(COMMAND) if c.inputs["connection"]["host"] == host["address"]]
        on_host += [r for r in program.resources if r.provider and f"::{host['name']}-docker::" in r.provider]
        later = [r for r in on_host if r.name != install.name]
        assert later, host
        for resource in later:
            assert program.depends_on(resource, install), resource.name


def test_the_connectivity_check_runs_the_script_over_ssh_with_no_secret_on_its_command_line(program, ssh_private_key):
    """`local.run` on every preview and up: the local ssh client, the key file the Docker provider uses, the
    pinned host key, the script on stdin; the command line names files and the host, never a secret."""
    cluster = program_config(program)
    for host in hosts(program):
        check = next(i for i in program.invokes if f" -- {host['address']} " in i.args["command"])
        assert check.token == "command:local:run"
        assert set(check.args) == {"command", "stdin", "addPreviousOutputInEnv", "logging"}
        assert "EXPECTED_ARCH=" in check.args["stdin"] and "sudo -n true" in check.args["stdin"]
        words = shlex.split(check.args["command"].split(" || ")[0])
        assert words[0] == "ssh" and words[words.index("-l") + 1] == (host.get("user") or cluster["ssh"]["user"])
        options = [words[i + 1] for i, w in enumerate(words) if w == "-o"]
        assert {"BatchMode=yes", "StrictHostKeyChecking=yes", "IdentitiesOnly=yes", "ControlPath=none"} <= set(options)
        known_hosts = next(o.split("=", 1)[1] for o in options if o.startswith("UserKnownHostsFile="))
        assert Path(known_hosts).read_text().startswith(f"{host['address']} ssh-ed25519 ")
        key_file = Path(words[words.index("-i") + 1])
        assert key_file.read_text().strip() == ssh_private_key.strip() and key_file.stat().st_mode & 0o077 == 0
        assert words[-1] == run_script_from_stdin(CHECK_TIMEOUT_S)  # the script comes on stdin
        assert f"connectivity check of {host['name']} (" in check.args["command"]  # a failure names the host
        for secret in (ssh_private_key, VRRP_PASSWORD, STATS_PASSWORD):
            assert secret not in check.args["command"] and secret not in check.args["stdin"]


def test_balancers_wait_for_servers_and_keepalived_for_balancers(program):
    for balancer in hosts(program, "balancer"):
        config = program.named(f"{balancer['name']}-haproxy-config")
        for server in hosts(program, "server"):
            assert program.depends_on(config, program.named(f"{server['name']}-nginx-container"))
        container = program.named(f"{balancer['name']}-haproxy-container")
        assert program.depends_on(container, config)
        for other in hosts(program, "balancer"):
            keepalived = program.named(f"vrrp-{other['name']}-keepalived")
            assert program.depends_on(keepalived, container)


def bring_back_steps(program: Program) -> dict[str, list[str]]:
    """Each step that brings a host back, with what its triggers are: (resource name, output) pairs."""
    servers, (master, backup) = [h["name"] for h in hosts(program, "server")], ("lb1", "lb2")
    steps = {
        f"{s}-nginx-ready-on-{lb}": [(f"{s}-nginx-container", "id"), (f"{s}-nginx-drain-on-{lb}", "stdout")]
        for s in servers
        for lb in (master, backup)
    }
    steps |= {
        f"{lb}-haproxy-rejoin": [(f"{lb}-haproxy-container", "id"), (f"{lb}-haproxy-leave", "stdout")]
        for lb in (master, backup)
    }
    steps[f"vrrp-{backup}-keepalived-resume"] = [(f"vrrp-{backup}-keepalived", "stdout")]
    return steps


def test_remote_commands_rerun_as_updates_and_only_bring_back_steps_are_triggered(program):
    """Triggers replace a Command, and a replacement runs the old delete: only steps without one may have
    them. The bring-back steps are keyed on what they protect: the stdout of the step that takes the host
    out (which prints a fresh run id on every run) and the container they wait for; never a fresh value."""
    bring_back = bring_back_steps(program)
    take_out = {source for keys in bring_back.values() for source, output in keys if output == "stdout"}
    for command in program.of_type(COMMAND):
        assert command.inputs["addPreviousOutputInEnv"] is False
        assert command.inputs["connection"]["hostKey"].startswith("ssh-ed25519 ")
        assert (command.inputs["create"] == RUN_SCRIPT_WITH_RUN_ID) == (command.name in take_out), command.name
        if command.name in bring_back:
            types = {name: program.named(name).type for name, _ in bring_back[command.name]}
            assert command.inputs["triggers"] == [computed(types[n], n, o) for n, o in bring_back[command.name]]
            assert "delete" not in command.inputs
            for name, _ in bring_back[command.name]:
                assert program.depends_on(command, program.named(name))
        else:
            assert "triggers" not in command.inputs, command.name
    assert len(bring_back) == 2 * len(hosts(program, "server")) + 3


def test_secrets_stay_secret(program, ssh_private_key):
    for command in program.of_type(COMMAND):
        assert "connection.privateKey" in command.secret_paths or "connection" in command.secret_paths
    for name in ("haproxy-config", "keepalived"):
        for command in [c for c in program.of_type(COMMAND) if c.name.endswith(name)]:
            assert "stdin" in command.secret_paths, command.name
            assert command.inputs["logging"] == "none", command.name  # their output is not logged either
    secrets = (ssh_private_key, VRRP_PASSWORD, STATS_PASSWORD)

    def without_secrets(value, path: str, secret: set[str], removed: set[str]):
        """A copy of `value` without the values at the secret paths (named as the harness names them)."""
        if isinstance(value, dict):
            items = [(f"{path}.{k}" if path else str(k), k, v) for k, v in value.items()]
            removed.update(p for p, _, _ in items if p in secret)
            return {k: without_secrets(v, p, secret, removed) for p, k, v in items if p not in secret}
        if isinstance(value, list):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
            removed.update(p for p, _ in items if p in secret)
            return [without_secrets(v, p, secret, removed) for p, v in items if p not in secret]
        return value

    for resource in program.resources:
        removed: set[str] = set()
        plain = without_secrets(resource.inputs, "", set(resource.secret_paths), removed)
        assert removed == set(resource.secret_paths), resource.name  # only those paths, and each of them
        text = json.dumps(plain)  # the rest of every input, e.g. a command's connection.host and .user
        for secret in secrets:
            assert secret not in text, (resource.name, secret[:4])


def test_stack_outputs(program):
    cluster = program_config(program)
    vip = cluster["vrrp"]["vip"].split("/")[0]
    assert program.outputs["vipUrl"] == f"http://{vip}/"
    assert program.outputs["servers"] == {h["name"]: h["address"] for h in hosts(program, "server")}
    assert program.outputs["balancers"] == {h["name"]: h["address"] for h in hosts(program, "balancer")}
    assert program.outputs["vrrpMaster"] == "lb1"
