"""`python -m ops` without a network: the verdict and its exit codes from canned host facts, the JSON
shape, the stack's config as ops reads it; the keepalived notify hook and drop-in as shipped."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from components import names, render
from components.settings import CLUSTER_KEY, CONFIG_NAMESPACE, parse_cluster
from harness import program
from ops import __main__ as cli
from ops import config as ops_config
from ops import status
from ops.hosts import facts_script, parse_show_stat
from tests.ops_fakes import FakeFleet, cluster_facts, show_stat

unit = pytest.mark.unit


# ---- facts and the verdict ----------------------------------------------------------------------------


@unit
def test_facts_of_a_balancer_are_parsed_from_one_script_output(settings):
    facts = cluster_facts(settings)
    lb1, lb2 = facts["lb1"], facts["lb2"]
    assert lb1.holds_vip and not lb2.holds_vip
    assert (lb1.vrrp_state, lb1.vrrp_since) == ("MASTER", "2026-11-28T16:10:05.123Z")
    assert [t.state for t in lb1.transitions] == ["BACKUP", "MASTER"]
    assert lb1.servers == {"server1": "UP", "server2": "UP", "server3": "UP"}
    assert lb1.container(names.HAPROXY_CONTAINER).healthy and lb1.keepalived_restarts == 0
    assert facts["server1"].container(names.NGINX_CONTAINER).healthy
    assert facts["server1"].servers == {} and facts["server1"].keepalived == "-"


@unit
def test_the_facts_script_asks_what_status_needs():
    from components.settings import Host

    balancer = facts_script(Host(name="lb1", address="10.0.0.2", role="balancer", priority=101), tls=False)
    for needle in (
        "systemctl is-active docker",
        "systemctl is-active keepalived",
        "docker ps",
        "ip -4 -o addr",
        "journalctl -u keepalived -o short-iso",
        names.VRRP_STATE_FILE,
        "show stat",
        '/dev/tcp/127.0.0.1/"$1"',
        str(names.HAPROXY_RUNTIME_PORT),
    ):
        assert needle in balancer, needle
    server = facts_script(Host(name="s1", address="10.0.0.3", role="server"), tls=False)
    assert "keepalived" not in server and "show stat" not in server
    subprocess.run(["bash", "-n"], input=balancer, text=True, check=True)


@unit
def test_show_stat_view_ignores_frontends_and_the_backend_line():
    view = parse_show_stat(show_stat({"server1": "UP", "server2": "DOWN", "server3": "MAINT"}))
    assert view == {"server1": "UP", "server2": "DOWN", "server3": "MAINT"}
    assert parse_show_stat("") == {} and parse_show_stat("garbage") == {}


@unit
def test_healthy_cluster_exits_0(settings):
    facts = cluster_facts(settings)
    result = status.verdict(settings, facts)
    assert (result.code, result.word, result.vip_holders, result.problems) == (0, "healthy", ["lb1"], [])
    text = status.table(settings, facts, result)
    assert "VIP 172.30.42.240: held by lb1" in text and text.endswith("HEALTHY (exit 0)")
    assert "lb1 last transitions:" in text


@unit
def test_one_server_down_on_the_balancers_is_degraded(settings):
    down = {s.name: ("DOWN" if s.name == "server2" else "UP") for s in settings.servers}
    facts = cluster_facts(settings, views={"lb1": down, "lb2": down})
    result = status.verdict(settings, facts)
    assert (result.code, result.word) == (1, "degraded")
    assert "server2: DOWN on lb1" in result.problems and "server2: DOWN on lb2" in result.problems


@unit
def test_a_stopped_nginx_container_is_degraded(settings):
    stopped = {"containers": f"{names.NGINX_CONTAINER}\texited\tExited (0) 3 seconds ago"}
    result = status.verdict(settings, cluster_facts(settings, server3=stopped))
    assert result.code == 1 and any(p.startswith("server3: pihalb-nginx exited") for p in result.problems)


@unit
def test_one_balancer_down_is_degraded(settings):
    result = status.verdict(settings, cluster_facts(settings, unreachable=("lb2",)))
    assert result.code == 1 and result.problems[0].startswith("lb2 unreachable")
    killed = {"keepalived": "failed"}
    assert status.verdict(settings, cluster_facts(settings, lb2=killed)).code == 1


@unit
def test_split_brain_exits_2(settings):
    facts = cluster_facts(settings, holder=("lb1", "lb2"))
    result = status.verdict(settings, facts)
    assert (result.code, result.word, result.vip_holders) == (2, "split brain", ["lb1", "lb2"])
    assert "SPLIT BRAIN, held by lb1, lb2" in status.table(settings, facts, result)


@unit
def test_vip_on_no_balancer_is_an_outage(settings):
    facts = cluster_facts(settings, holder=())
    result = status.verdict(settings, facts)
    assert (result.code, result.word) == (2, "outage")
    assert "NOT HELD by any balancer" in status.table(settings, facts, result)


@unit
def test_vip_on_a_balancer_whose_haproxy_is_dead_is_an_outage(settings):
    dead = {"containers": f"{names.HAPROXY_CONTAINER}\texited\tExited (137) 2 seconds ago", "stat": ""}
    assert status.verdict(settings, cluster_facts(settings, lb1=dead)).code == 2


@unit
def test_vip_on_the_backup_is_degraded_while_preemption_is_on(settings):
    result = status.verdict(settings, cluster_facts(settings, holder=("lb2",)))
    assert result.code == 1 and "preemption" in result.problems[-1]


@unit
def test_status_json_shape_and_exit_code(settings, capsys):
    fake = FakeFleet(settings, cluster_facts(settings, holder=("lb1", "lb2")))
    code = cli.main(["status", "--stack", "dev", "--json"], cluster=fake)
    document = json.loads(capsys.readouterr().out)
    assert code == 2 == document["exit_code"]
    assert set(document) == {"stack", "vip", "verdict", "exit_code", "vip_holders", "problems", "hosts"}
    assert (document["stack"], document["vip"], document["verdict"]) == ("dev", "172.30.42.240", "split brain")
    assert [h["name"] for h in document["hosts"]] == ["server1", "server2", "server3", "lb1", "lb2"]
    lb1 = document["hosts"][3]
    assert lb1["holds_vip"] is True and lb1["servers"]["server1"] == "UP" and lb1["vrrp_state"] == "MASTER"
    assert lb1["transitions"][-1] == {"at": "2026-11-28T16:10:05+0000", "state": "MASTER"}
    assert lb1["containers"][names.HAPROXY_CONTAINER]["state"] == "running"


# ---- config ------------------------------------------------------------------------------------------


@unit
def test_pulumi_json_values_and_object_values():
    text = json.dumps(
        {
            "pihalb:cluster": {"value": '{"a": 1}', "objectValue": {"a": 1}, "secret": False},
            "pihalb:hostKeys": {"value": '{"lb1": "ssh-ed25519 AAAA"}', "secret": False},
            "pihalb:statsPassword": {"value": "s3cret-pw", "secret": True},
        }
    )
    layer = ops_config.parse_pulumi_json(text)
    assert layer["pihalb:cluster"] == {"a": 1} and layer["pihalb:statsPassword"] == "s3cret-pw"
    assert layer["pihalb:hostKeys"] == '{"lb1": "ssh-ed25519 AAAA"}'  # parsed by get_object, as Pulumi does


@unit
def test_config_is_validated_as_the_program_validates_it(stack_config):
    values = ops_config.held_as_secrets(stack_config("dev"))
    values["pihalb:hostKeys"] = json.dumps(values["pihalb:hostKeys"])  # as `pulumi config --json` gives it
    settings, secrets = ops_config.settings_from(values)
    assert [b.name for b in settings.balancers] == ["lb1", "lb2"]
    assert set(secrets) == {"sshPrivateKey", "vrrpPassword", "statsPassword"}
    values["pihalb:vrrpPassword"] = ops_config.Secret("far-too-long")
    with pytest.raises(ValueError, match="pihalb:vrrpPassword"):
        ops_config.settings_from(values)


@unit
def test_a_secret_pulumi_holds_as_plain_text_is_refused_as_the_program_refuses_it(stack_config):
    values = stack_config("dev")
    held_as_secrets = set(program.SECRET_CONFIG_KEYS) - {"pihalb:statsPassword"}
    entries = {
        key: {"value": v if isinstance(v, str) else json.dumps(v), "secret": key in held_as_secrets}
        for key, v in values.items()
    }
    with pytest.raises(ValueError) as refused:
        ops_config.settings_from(ops_config.parse_pulumi_json(json.dumps(entries)))
    assert str(refused.value).startswith("pihalb:statsPassword: set as a plain value")
    assert "pulumi config set --secret pihalb:statsPassword" in str(refused.value)


@unit
def test_host_keys_and_secrets_come_from_pulumi_when_present_else_the_lab(monkeypatch, stack_config):
    layer = {k: v for k, v in ops_config.held_as_secrets(stack_config("dev")).items() if k != "pihalb:cluster"}
    monkeypatch.setattr(ops_config, "pulumi_layer", lambda stack: layer)
    monkeypatch.setattr(ops_config, "lab_layer", lambda stack: {})
    assert ops_config.user_layer("pi", which=lambda name: "/usr/bin/pulumi") == (layer, "pulumi")
    assert ops_config.user_layer("pi", which=lambda name: None) == ({}, "lab")
    loaded = ops_config.load_stack("dev", layer=lambda stack: (layer, "pulumi"))
    assert loaded.source == "pulumi" and loaded.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


# ---- the keepalived notify hook, real-time hook and drop-in, as keepalived.sh ships them -----------------


def _dev_cluster():
    return parse_cluster(program.stack_file_config("dev")[f"{CONFIG_NAMESPACE}:{CLUSTER_KEY}"])


def _keepalived_script() -> str:
    return render.Renderer(render.FILES).keepalived_script(_dev_cluster(), "global_defs {\n}\n", pause_for_peer=False)


def _hook(marker: str) -> str:
    match = re.search(rf"<<'{marker}'\n(.*?)\n{marker}\n", _keepalived_script(), re.S)
    assert match, f"keepalived.sh carries its {marker} hook in a quoted here-document"
    # keepalived.sh puts its inputs in for these after the quoted here-document, as the test does here.
    return match.group(1).replace("@LOG_TAG@", names.VRRP_LOG_TAG) + "\n"


@unit
def test_keepalived_sh_installs_the_hooks_and_the_drop_in_before_the_config():
    script = _keepalived_script()
    hook = script.index('install_if_different "$notify_script" 0755 "$NOTIFY"')
    realtime = script.index('install_if_different "$realtime_script" 0755 "$REALTIME"')
    dropin = script.index('install_if_different "$dropin" 0644 "$DROPIN"')
    assert hook < realtime < dropin < script.index("keepalived --config-test")
    assert "[Service]\nRestart=on-failure\nRestartSec=1\nExecStartPost=-$REALTIME \\$MAINPID" in script
    assert "daemon-reload" in script
    delete = render.Renderer(render.FILES).keepalived_delete_script()
    for key, path in [
        ("NOTIFY", names.KEEPALIVED_NOTIFY),
        ("STATE_FILE", names.VRRP_STATE_FILE),
        ("REALTIME", names.KEEPALIVED_REALTIME),
        ("DROPIN", names.KEEPALIVED_DROPIN),
    ]:
        assert f"\n{key}={path}\n" in script and f"\n{key}={path}\n" in delete, key
    cluster = _dev_cluster()
    master, backup = sorted((h for h in cluster.hosts if h.role == "balancer"), key=lambda h: -(h.priority or 0))
    conf = render.Renderer(render.FILES).keepalived_conf(cluster, master, backup, master, "secret")
    assert f"\n    notify {names.KEEPALIVED_NOTIFY}\n" in conf
    assert "vrrp_rt_priority" not in conf  # keepalived's own real-time setting dies on reload (keepalived.sh)


def _run_realtime_hook(tmp_path, refuse: bool) -> list[str]:
    """The real-time hook with chrt, prlimit, pgrep and logger recording their arguments in one log."""
    hook = _hook("REALTIME").replace("@RT_PRIORITY@", "40").replace("@RTTIME_US@", "1000000")
    (tmp_path / "hook").write_text(hook)
    subprocess.run([shutil.which("shellcheck") or "shellcheck", "--severity=style", str(tmp_path / "hook")], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    fakes = {
        "pgrep": 'echo "$*" >>LOG; echo 4242',
        "prlimit": 'echo "prlimit $*" >>LOG',
        "chrt": f'echo "chrt $*" >>LOG; exit {1 if refuse else 0}',
        "logger": 'echo "logger $*" >>LOG',
    }
    for name, body in fakes.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body.replace("LOG", str(log)) + "\n")
        (bin_dir / name).chmod(0o755)
    subprocess.run(["sh", str(tmp_path / "hook"), "4141"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, check=True)
    return log.read_text().splitlines()


@pytest.mark.artifact
def test_realtime_hook_limits_then_schedules_keepalived_and_its_vrrp_process(tmp_path):
    assert _run_realtime_hook(tmp_path, refuse=False) == [
        "-P 4141 -x keepalived",
        "prlimit --pid 4141 --rttime=1000000",
        "chrt --rr --pid 40 4141",  # no reset-on-fork: a VRRP process started again is real-time too
        "prlimit --pid 4242 --rttime=1000000",
        "chrt --rr --reset-on-fork --pid 40 4242",  # its notify hooks are not
        "logger -t pihalb-vrrp keepalived 4141 and its VRRP process 4242 real-time (SCHED_RR 40)",
    ]


@pytest.mark.artifact
def test_realtime_hook_refused_leaves_keepalived_niced_and_says_so(tmp_path):
    calls = _run_realtime_hook(tmp_path, refuse=True)
    assert calls[-1] == "logger -t pihalb-vrrp real-time scheduling refused: keepalived stays niced"
    assert not [c for c in calls if "4242" in c and c.startswith("chrt")]


@pytest.mark.artifact
def test_notify_hook_logs_and_writes_state_and_timestamp(tmp_path):
    hook = _hook("NOTIFY")
    (tmp_path / "hook").write_text(hook)
    subprocess.run([shutil.which("shellcheck") or "shellcheck", "--severity=style", str(tmp_path / "hook")], check=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "logger").write_text(f'#!/bin/sh\necho "$@" >>{tmp_path}/journal\n')
    (bin_dir / "logger").chmod(0o755)
    state = tmp_path / "state"
    runnable = tmp_path / "runnable"
    runnable.write_text(hook.replace("@STATE_FILE@", str(state)))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    for new_state in ("BACKUP", "MASTER"):
        subprocess.run(["sh", str(runnable), "INSTANCE", "VI_1", new_state, "101"], env=env, check=True)
    assert re.fullmatch(r"MASTER \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\n", state.read_text())
    assert (tmp_path / "journal").read_text().splitlines() == [
        "-t pihalb-vrrp INSTANCE VI_1 entered BACKUP state (priority 101)",
        "-t pihalb-vrrp INSTANCE VI_1 entered MASTER state (priority 101)",
    ]
    assert oct(state.stat().st_mode & 0o777) == "0o644"
