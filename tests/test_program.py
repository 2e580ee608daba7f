"""The whole program under Pulumi mocks, for every shipped stack file: assertions on the graph."""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil

import pytest

from components import render
from harness.program import Program

from .conftest import STACKS, STATS_PASSWORD, VRRP_PASSWORD

pytestmark = pytest.mark.unit

COMMAND = "command:remote:Command"
PROVIDER = "pulumi:providers:docker"
IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"


def script_of(resource, step: str = "create") -> str:
    """The bash script a remote command runs for `step` (`exec bash -c '<script>'`)."""
    words = shlex.split(resource.inputs[step])
    assert words[:3] == ["exec", "bash", "-c"]
    return words[3]


def embedded_file(resource) -> str:
    """The config file a script carries as CONFIG_B64."""
    match = re.search(r"^CONFIG_B64=(\S+)$", script_of(resource), re.M)
    return base64.b64decode(shlex.split(match.group(1))[0]).decode()


def hosts(program: Program, role: str | None = None) -> list[dict]:
    cluster = program_config(program)
    return [h for h in cluster["hosts"] if role in (None, h["role"])]


def program_config(program: Program) -> dict:
    from harness.program import stack_file_config

    return stack_file_config(program.stack)["pihalb:cluster"]


@pytest.fixture(params=STACKS)
def stack(request):
    return request.param


@pytest.fixture
def program(run_stack, stack):
    return run_stack(stack)


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
        assert build["dockerfile"].endswith(f"files/{image.name.split('-')[1]}/Dockerfile")
        assert image.inputs["skipPush"] is True
        assert image.provider.split("::")[-2] == f"{expected[image.name]}-docker"


def test_three_servers_and_two_balancers_run(program):
    containers = {c.name: c for c in program.of_type(CONTAINER)}
    servers = [c for n, c in sorted(containers.items()) if n.endswith("-nginx-container")]
    balancers = [c for n, c in containers.items() if n.endswith("-haproxy-container")]
    assert len(servers) == 3 and len(balancers) == 2
    pages = [c.inputs["uploads"][0]["content"] for c in servers]
    assert [re.search(r"Hello world from server (\d)!", p).group(1) for p in pages] == ["1", "2", "3"]
    for container in servers + balancers:
        assert container.delete_before_replace  # fixed names and ports: the old one must go first
        assert container.inputs["restart"] == "unless-stopped"
        assert (
            container.inputs["image"]
            == program.named(container.name.replace("-container", "-image")).inputs["imageName"]
        )
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
        priority = int(re.search(r"priority (\d+)", conf).group(1))
        states[state] = priority
        assert "virtual_router_id 51" in conf
        assert cluster["vrrp"]["vip"] in conf
        track = cluster["vrrp"]["track"]
        if track.get("kind", "script") == "script":
            assert 'script "/usr/bin/killall -0 haproxy"' in conf
            assert f"interval {track['interval']}" in conf and "track_script {" in conf
        else:
            assert f"file {render.HAPROXY_TRACK_FILE}" in conf and "track_file {" in conf
        assert f"weight {track['weight']}" in conf
        assert (f"auth_pass {VRRP_PASSWORD}" in conf) == (cluster["vrrp"]["version"] == 2)
    assert states == {"MASTER": 101, "BACKUP": 100}
    assert program.outputs["vrrpMaster"] == "lb1"


def test_every_step_of_a_host_waits_for_its_preparation(program):
    for host in hosts(program):
        ping = program.named(f"{host['name']}-ping")
        install = program.named(f"{host['name']}-install")
        assert program.depends_on(install, ping)
        on_host = [c for c in program.of_type(COMMAND) if c.inputs["connection"]["host"] == host["address"]]
        on_host += [r for r in program.resources if r.provider and f"::{host['name']}-docker::" in r.provider]
        later = [r for r in on_host if r.name not in (ping.name, install.name)]
        assert later, host
        for resource in later:
            assert program.depends_on(resource, install), resource.name


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


def test_remote_commands_are_idempotent_shaped(program):
    for command in program.of_type(COMMAND):
        assert command.inputs["addPreviousOutputInEnv"] is False
        assert len(command.inputs["triggers"]) == 1
        assert command.inputs["triggers"][0] == render.sha256(script_of(command))
        assert "set -eu" in script_of(command)
        assert command.inputs["connection"]["hostKey"].startswith("ssh-ed25519 ")


def test_secrets_stay_secret(program, ssh_private_key):
    for command in program.of_type(COMMAND):
        assert "connection.privateKey" in command.secret_paths or "connection" in command.secret_paths
    for name in ("haproxy-config", "keepalived"):
        for command in [c for c in program.of_type(COMMAND) if c.name.endswith(name)]:
            assert "create" in command.secret_paths, command.name
    secrets = (ssh_private_key, VRRP_PASSWORD, STATS_PASSWORD)
    for resource in program.resources:
        plain = {k: v for k, v in resource.inputs.items() if k not in {p.split(".")[0] for p in resource.secret_paths}}
        text = json.dumps(plain)
        for secret in secrets:
            assert secret not in text, (resource.name, secret[:4])


def test_stack_outputs(program):
    cluster = program_config(program)
    vip = cluster["vrrp"]["vip"].split("/")[0]
    assert program.outputs["vipUrl"] == f"http://{vip}/"
    assert program.outputs["servers"] == {h["name"]: h["address"] for h in hosts(program, "server")}
    assert program.outputs["balancers"] == {h["name"]: h["address"] for h in hosts(program, "balancer")}
    assert program.outputs["vrrpMaster"] == "lb1"


def _with_appended(tmp_path, monkeypatch, relative: str) -> None:
    """Point the program at a copy of `files/` where one file has an extra comment line."""
    files = tmp_path / "files"
    shutil.copytree(render.files_dir(), files)
    with open(files / relative, "a") as handle:
        handle.write("# a change\n")
    monkeypatch.setattr(render, "FILES_DIR", files)


def test_a_changed_template_changes_only_its_triggers(run_stack, tmp_path, monkeypatch):
    before = run_stack("dev")
    _with_appended(tmp_path, monkeypatch, "templates/haproxy.cfg.j2")
    after = run_stack("dev")
    for command in before.of_type(COMMAND):
        changed = after.named(command.name).inputs["triggers"] != command.inputs["triggers"]
        assert changed == command.name.endswith("-haproxy-config"), command.name
    for image in before.of_type(IMAGE):  # a config change is a reload, not a new image or container
        assert after.named(image.name).inputs["imageName"] == image.inputs["imageName"]


def test_a_changed_dockerfile_changes_the_image_tag(run_stack, tmp_path, monkeypatch):
    before = run_stack("dev")
    _with_appended(tmp_path, monkeypatch, "nginx/Dockerfile")
    after = run_stack("dev")
    for image in before.of_type(IMAGE):
        changed = after.named(image.name).inputs["imageName"] != image.inputs["imageName"]
        assert changed == image.name.endswith("-nginx-image"), image.name


def test_unicast_mode_names_the_other_balancer_as_peer(run_stack):
    def unicast(config):
        config["pihalb:cluster"]["vrrp"]["mode"] = "unicast"

    program = run_stack("dev", unicast)
    lb1, lb2 = hosts(program, "balancer")
    conf = embedded_file(program.named("vrrp-lb1-keepalived"))
    assert f"unicast_src_ip {lb1['address']}" in conf
    assert re.search(r"unicast_peer \{\s+" + re.escape(lb2["address"]) + r"\s+\}", conf)
