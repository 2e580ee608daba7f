"""`python -m ops` procedures on a fake fleet: the reboot, engine restart and shutdown order, the drill,
refusals; the fleet's scripts through a recording runner; the probe's recovery time."""

from __future__ import annotations

import pytest

from components import names
from ops import __main__ as cli
from ops import drill, rolling
from ops.hosts import HostUnreachable, ScriptedFleet
from ops.probe import Sample, time_to_recovery
from tests.ops_fakes import FakeClock, FakeFleet, cluster_facts

unit = pytest.mark.unit


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
