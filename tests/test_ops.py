"""`python -m ops` without a network: the verdict and its exit codes from canned host facts, the JSON
shape, the reboot and shutdown order, refusals; the keepalived notify hook and drop-in as shipped."""

from __future__ import annotations

import copy
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
from ops import drill, rolling, status
from ops.hosts import HostFacts, HostUnreachable, ScriptedFleet, facts_script, parse_facts, parse_show_stat
from ops.probe import Sample, time_to_recovery
from ops.wait import Clock

unit = pytest.mark.unit

STAT_HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status"
JOURNAL = (
    "2026-11-28T16:10:01+0000 {name} Keepalived_vrrp[812]: (VI_1) Entering BACKUP STATE\n"
    "2026-11-28T16:10:05+0000 {name} Keepalived_vrrp[812]: (VI_1) Entering {state} STATE\n"
)


@pytest.fixture
def settings(stack_config):
    return ops_config.settings_from(ops_config.held_as_secrets(stack_config("dev")))[0]


def show_stat(view: dict[str, str], sessions: int = 0) -> str:
    rows = [f"servers,{name},0,0,{sessions},1,,9,0,0,,0,,0,0,0,0,{st}" for name, st in view.items()]
    frontend = "http_in,FRONTEND,,,0,1,4096,9,0,0,0,0,0,,,,,OPEN"
    return "\n".join([STAT_HEADER, frontend, *rows, "servers,BACKEND,,,,,,,,,,,,,,,,UP"])


def host_text(settings, name: str, holder: list[str], view: dict[str, str] | None = None, **overrides: str) -> str:
    """What facts_script prints on a healthy host; `overrides` replace whole sections."""
    host = next(h for h in settings.cluster.hosts if h.name == name)
    vip = settings.cluster.vrrp.vip.ip
    container = names.HAPROXY_CONTAINER if host.role == "balancer" else names.NGINX_CONTAINER
    addr = f"2: eth0    inet {host.address}/24 brd 172.30.42.255 scope global eth0\\       valid_lft forever"
    if name in holder:
        addr += f"\n2: eth0    inet {vip}/24 scope global secondary eth0\\       valid_lft forever"
    sections = {
        "docker": "active",
        "containers": f"{container}\trunning\tUp 5 minutes (healthy)",
        "addr": addr,
    }
    if host.role == "balancer":
        state = "MASTER" if name in holder else "BACKUP"
        sections |= {
            "keepalived": "active",
            "restarts": "0",
            "state": f"{state} 2026-11-28T16:10:05.123Z",
            "journal": JOURNAL.format(name=name, state=state),
            "handover": "",
            "stat": show_stat(view or {s.name: "UP" for s in settings.servers}),
        }
    sections |= overrides
    return "".join(f"@@{key}\n{value}\n" for key, value in sections.items())


def cluster_facts(settings, holder=("lb1",), views=None, unreachable=(), **host_overrides) -> dict[str, HostFacts]:
    views = views or {}
    facts = {}
    for host in settings.cluster.hosts:
        if host.name in unreachable:
            facts[host.name] = HostFacts(host.name, host.role, str(host.address), error="connection refused")
            continue
        text = host_text(settings, host.name, list(holder), views.get(host.name), **host_overrides.get(host.name, {}))
        facts[host.name] = parse_facts(host, str(settings.cluster.vrrp.vip.ip), text)
    return facts


class FakeFleet:
    """The hosts of the dev stack, in memory: VIP holder, servers in maintenance, calls in order."""

    def __init__(self, settings, facts=None):
        self.settings = settings
        self.fixed = facts
        self.holder = ["lb1"]
        self.maint: set[str] = set()
        self.haproxy_dead: set[str] = set()
        self.calls: list[tuple[str, ...]] = []
        self.handover = {"lb1": 0, "lb2": 0}

    def _view(self) -> dict[str, str]:
        return {s.name: "MAINT" if s.name in self.maint else "UP" for s in self.settings.servers}

    def facts(self):
        if self.fixed is not None:
            return copy.deepcopy(self.fixed)
        overrides = {
            name: {"containers": f"{names.HAPROXY_CONTAINER}\texited\tExited (137) 1 second ago"}
            for name in self.haproxy_dead
        }
        return cluster_facts(self.settings, self.holder, {b: self._view() for b in ("lb1", "lb2")}, **overrides)

    def vip_holders(self):
        return list(self.holder)

    def runtime(self, balancer, command):
        self.calls.append(("runtime", balancer, command))
        if match := re.fullmatch(r"set server servers/(\S+) state (maint|ready)", command):
            (self.maint.add if match.group(2) == "maint" else self.maint.discard)(match.group(1))
            return ""
        return show_stat(self._view())

    def kill_haproxy(self, balancer):
        self.calls.append(("kill_haproxy", balancer))
        self.haproxy_dead.add(balancer)
        self.holder = ["lb2" if balancer == "lb1" else "lb1"]

    def restore_haproxy(self, balancer):
        self.calls.append(("restore_haproxy", balancer))
        self.haproxy_dead.discard(balancer)
        self.holder = ["lb1"]

    def set_handover(self, balancer, value):
        self.calls.append(("set_handover", balancer, str(value)))
        self.handover[balancer] = value
        self.holder = ["lb2"] if (balancer, value) == ("lb1", 1) else ["lb1"]

    def stop_keepalived(self, balancer):
        self.calls.append(("stop_keepalived", balancer))

    def start_keepalived(self, balancer):
        self.calls.append(("start_keepalived", balancer))

    def restart_docker(self, name):
        self.calls.append(("restart_docker", name, "+".join(self.holder)))

    def mark_boot(self, name):
        self.calls.append(("mark_boot", name))

    def rebooted(self, name):
        return True

    def reboot(self, name):
        self.calls.append(("reboot", name, "+".join(self.holder)))
        if name == "lb1":
            self.handover["lb1"] = 0  # /run is a tmpfs
            self.holder = ["lb1"]  # preemption once its HAProxy runs

    def poweroff(self, name):
        self.calls.append(("poweroff", name))

    def reachable(self, name):
        return not any(call == ("poweroff", name) for call in self.calls)


class FakeClock(Clock):
    def __init__(self):
        self.now = 0.0
        super().__init__(monotonic=lambda: self.now, sleep=self._sleep)

    def _sleep(self, seconds):
        self.now += seconds


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

    balancer = facts_script(Host(name="lb1", address="10.0.0.2", role="balancer", priority=101))
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
    server = facts_script(Host(name="s1", address="10.0.0.3", role="server"))
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


# ---- reboot, shutdown, drill ---------------------------------------------------------------------------


@unit
def test_reboot_goes_servers_then_backup_then_master_after_the_handover(settings):
    fake = FakeFleet(settings)
    lines: list[str] = []
    assert rolling.Rolling(fake, say=lines.append, clock=FakeClock()).reboot() == rolling.DONE
    reboots = [call for call in fake.calls if call[0] == "reboot"]
    assert [call[1] for call in reboots] == ["server1", "server2", "server3", "lb2", "lb1"]
    assert reboots[-1] == ("reboot", "lb1", "lb2")  # the VIP had left the MASTER before it went down
    for server in ("server1", "server2", "server3"):
        steps = [c for c in fake.calls if server in c[-1] or c[1] == server]
        kinds = [c[0] if c[0] != "runtime" else c[2].rsplit(" ", 1)[-1] for c in steps]
        assert kinds == ["maint", "maint", "mark_boot", "reboot", "ready", "ready"], steps
        assert {c[1] for c in steps if c[0] == "runtime"} == {"lb1", "lb2"}
    handover = [c for c in fake.calls if c[0] in ("set_handover", "reboot") and "lb1" in c[1]]
    assert handover == [("set_handover", "lb1", "1"), ("reboot", "lb1", "lb2"), ("set_handover", "lb1", "0")]
    assert fake.maint == set() and fake.holder == ["lb1"]


@unit
def test_reboot_and_drill_refuse_a_degraded_cluster_and_touch_nothing(settings, capsys):
    down = {s.name: ("DOWN" if s.name == "server1" else "UP") for s in settings.servers}
    fake = FakeFleet(settings, cluster_facts(settings, views={"lb1": down, "lb2": down}))
    lines: list[str] = []
    assert rolling.Rolling(fake, say=lines.append, clock=FakeClock()).reboot() == rolling.REFUSED
    assert drill.drill(fake, FakeProbe(), say=lines.append, clock=FakeClock()) == drill.REFUSED
    assert fake.calls == []
    assert "drill refused: the cluster is degraded" in "\n".join(lines)
    assert cli.main(["drill", "--stack", "dev"], cluster=fake) == 3


class FakeProbe:
    rate, timeout, max_seconds = 20, 1.0, 60.0

    def __init__(self, samples=()):
        self.samples = list(samples)
        self.started = False

    def start(self):
        self.started = True
        return self

    def elapsed(self):
        return 1.0

    def stop(self):
        return self.samples


@unit
def test_drill_kills_the_master_restores_it_and_prints_one_summary(settings):
    fake = FakeFleet(settings)
    samples = [Sample(t, ok) for t, ok in [(0.5, True), (2.1, False), (2.2, False), (2.9, True), (3.0, True)]]
    lines: list[str] = []
    assert drill.drill(fake, FakeProbe(samples), say=lines.append, clock=FakeClock()) == drill.DONE
    assert [c for c in fake.calls if c[0] != "runtime"] == [("kill_haproxy", "lb1"), ("restore_haproxy", "lb1")]
    assert any("VIP moved to lb2" in line for line in lines)
    assert lines[-1].startswith("drill ok: HAProxy killed on lb1; VIP on lb2 after")
    assert "outage 0.80s (2 of 5 requests failed)" in lines[-1]


def _samples(*pairs):
    return [Sample(t, ok) for t, ok in pairs]


@unit
def test_the_drills_outage_runs_from_the_first_failure_to_the_first_success_after_it():
    assert time_to_recovery(_samples((0.0, True), (1.0, True))) == 0.0
    assert time_to_recovery(_samples((0.0, True), (1.0, False), (1.5, False), (2.25, True))) == 1.25
    assert time_to_recovery(_samples((0.0, True), (1.0, False))) is None


@unit
def test_recovery_with_a_steady_window_waits_for_a_success_nothing_failed_after():
    flapping = _samples((0.0, True), (1.0, False), (1.5, True), (2.0, False), (2.5, True), (5.0, True))
    assert time_to_recovery(flapping) == 0.5
    assert time_to_recovery(flapping, steady_s=2.0) == 1.5
    assert time_to_recovery(_samples((1.0, False), (1.5, True), (2.0, False)), steady_s=2.0) is None


@unit
def test_engine_restart_rolls_like_the_reboot_with_the_master_handed_over_and_back(settings):
    fake = FakeFleet(settings)
    lines: list[str] = []
    assert rolling.Rolling(fake, say=lines.append, clock=FakeClock()).restart_engines() == rolling.DONE
    restarts = [call for call in fake.calls if call[0] == "restart_docker"]
    assert [call[1] for call in restarts] == ["server1", "server2", "server3", "lb2", "lb1"]
    assert restarts[-1] == ("restart_docker", "lb1", "lb2")  # the VIP had left the MASTER first
    steps = [c for c in fake.calls if "server2" in c[-1] or c[1] == "server2"]
    kinds = [c[0] if c[0] != "runtime" else c[2].rsplit(" ", 1)[-1] for c in steps]
    assert kinds == ["maint", "maint", "restart_docker", "ready", "ready"], steps
    handover = [c for c in fake.calls if c[0] in ("set_handover", "restart_docker") and "lb1" in c[1]]
    assert handover == [("set_handover", "lb1", "1"), ("restart_docker", "lb1", "lb2"), ("set_handover", "lb1", "0")]
    assert not any(c[0] in ("reboot", "mark_boot") for c in fake.calls)
    assert fake.maint == set() and fake.holder == ["lb1"]
    assert cli.main(["restart-engines", "--stack", "dev"], cluster=FakeFleet(settings)) == rolling.DONE


class RecordingRunner:
    """A `Runner` that answers every script with `out` and keeps what it was sent."""

    def __init__(self, out: str = "", fail: set[str] = frozenset()):
        self.out, self.fail, self.sent = out, fail, []

    def run(self, name, script, timeout, check=True):
        self.sent.append((name, script))
        if name in self.fail:
            raise HostUnreachable(f"{name}: connection refused")
        return self.out


@unit
def test_the_fleet_sends_each_action_as_one_script_through_its_runner(settings):
    runner = RecordingRunner()
    fleet = ScriptedFleet(settings, runner)
    fleet.kill_haproxy("lb1")
    fleet.set_handover("lb1", 1)
    fleet.restart_docker("server1")
    assert [name for name, _ in runner.sent] == ["lb1", "lb1", "server1"]
    kill, handover, restart = (script for _, script in runner.sent)
    assert f"docker update --restart=no {names.HAPROXY_CONTAINER}" in kill and "killall -9 haproxy" in kill
    assert handover == f"echo 1 | sudo -n tee {names.VRRP_HANDOVER_FILE} >/dev/null"
    assert restart == "sudo -n systemctl restart docker"


@unit
def test_the_fleet_reports_an_unreachable_host_in_its_facts_and_as_no_vip(settings):
    vip = settings.cluster.vrrp.vip.ip
    fleet = ScriptedFleet(settings, RecordingRunner(out=f"inet {vip}/24", fail={"lb2", "server3"}))
    assert fleet.vip_holders() == ["lb1"]
    facts = fleet.facts()
    assert not facts["server3"].reachable and "connection refused" in facts["server3"].error
    assert facts["server1"].reachable and not fleet.reachable("lb2")


@unit
def test_shutdown_needs_yes_really_then_goes_keepalived_balancers_servers(settings):
    fake = FakeFleet(settings)
    assert cli.main(["shutdown", "--stack", "dev"], cluster=fake) == 3 and fake.calls == []
    lines: list[str] = []
    assert rolling.Rolling(fake, say=lines.append, clock=FakeClock()).shutdown() == rolling.DONE
    assert fake.calls == [
        ("stop_keepalived", "lb2"),
        ("stop_keepalived", "lb1"),
        ("poweroff", "lb2"),
        ("poweroff", "lb1"),
        ("poweroff", "server1"),
        ("poweroff", "server2"),
        ("poweroff", "server3"),
    ]


@unit
def test_bad_arguments_exit_64_not_2():
    with pytest.raises(SystemExit) as exited:
        cli.main(["status"])
    assert exited.value.code == 64


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


# ---- the keepalived notify hook and restart drop-in, as keepalived.sh ships them -----------------------


def _dev_cluster():
    return parse_cluster(program.stack_file_config("dev")[f"{CONFIG_NAMESPACE}:{CLUSTER_KEY}"])


def _keepalived_script() -> str:
    return render.Renderer(render.FILES).keepalived_script(_dev_cluster(), "global_defs {\n}\n", pause_for_peer=False)


def _notify_script() -> str:
    match = re.search(r"<<'NOTIFY'\n(.*?)\nNOTIFY\n", _keepalived_script(), re.S)
    assert match, "keepalived.sh carries the notify hook in a quoted here-document"
    # keepalived.sh puts its inputs in for these after the quoted here-document, as the test does here.
    return match.group(1).replace("@LOG_TAG@", names.VRRP_LOG_TAG) + "\n"


@unit
def test_keepalived_sh_installs_the_hook_and_the_restart_drop_in_before_the_config():
    script = _keepalived_script()
    hook = script.index('install_if_different "$notify_script" 0755 "$NOTIFY"')
    dropin = script.index("/etc/systemd/system/keepalived.service.d/pihalb-restart.conf")
    assert hook < dropin < script.index("keepalived --config-test")
    assert "[Service]\nRestart=on-failure\nRestartSec=1" in script and "daemon-reload" in script
    delete = render.Renderer(render.FILES).keepalived_delete_script()
    for path in (names.KEEPALIVED_NOTIFY, "pihalb-restart.conf", names.VRRP_STATE_FILE):
        assert path in delete
    assert f"\nNOTIFY={names.KEEPALIVED_NOTIFY}\n" in script and f"\nSTATE_FILE={names.VRRP_STATE_FILE}\n" in script
    cluster = _dev_cluster()
    master, backup = sorted((h for h in cluster.hosts if h.role == "balancer"), key=lambda h: -(h.priority or 0))
    conf = render.Renderer(render.FILES).keepalived_conf(cluster, master, backup, master, "secret")
    assert f"\n    notify {names.KEEPALIVED_NOTIFY}\n" in conf


@pytest.mark.artifact
def test_notify_hook_logs_and_writes_state_and_timestamp(tmp_path):
    hook = _notify_script()
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
