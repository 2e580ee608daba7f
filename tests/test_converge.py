"""Converged means converged: the whole program, applied by the lab engine to modelled hosts (tests/converge.py).

A converged stack plans no step, for every shipped profile. A step that brings a host back into service
runs again exactly when what it protects changed in Pulumi's state (the step that took the host out ran,
its container was replaced, its own create never finished). And a roll stopped after any step, or at a
step that failed halfway, leaves nothing out of service once the next `up` has run, after which the
plan is empty again.
"""

from __future__ import annotations

import pytest

from bench.changes import KEEPALIVED_TOGGLES
from harness import program
from harness.plan import make_plan, preview_text

from .conftest import STACKS, canned_invoke
from .converge import Hosts, MemoryCheckpoint, Stopped, converged, up

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("stack", STACKS)
def test_a_converged_stack_plans_no_step_and_an_up_changes_nothing(run_stack, stack):
    checkpoint, hosts = converged(run_stack(stack))
    again = run_stack(stack)
    plan = make_plan(again, checkpoint)
    assert plan.kinds() == {} and plan.changes == 0
    assert "    0 changes." in preview_text(plan, stack)
    quiet = hosts.copy()
    up(checkpoint, again, quiet)
    assert quiet.operations == []  # no command ran, nothing was built, created or deleted


def _with_state(checkpoint: MemoryCheckpoint, name: str, **changes) -> MemoryCheckpoint:
    """A copy of `checkpoint` with `name`'s id or outputs changed (as a stopped apply would leave it)."""
    copy = checkpoint.copy()
    resource = next(r for r in copy.resources if r.name == name)
    if "id" in changes:
        resource.id = changes.pop("id")
    resource.outputs = resource.outputs | changes
    return copy


def test_a_bring_back_step_runs_again_exactly_when_what_it_protects_changed_in_the_state(run_stack):
    program = run_stack("dev-tuned")
    checkpoint, _ = converged(program)

    def plan(state: MemoryCheckpoint) -> dict[str, str]:
        return make_plan(program, state).kinds()

    # The container replaced, the apply stopped before its ready steps: both run.
    replaced = _with_state(checkpoint, "server1-nginx-container", id="another-container")
    assert plan(replaced) == {"server1-nginx-ready-on-lb1": "replace", "server1-nginx-ready-on-lb2": "replace"}
    # A drain ran (the run id it printed is in the state), its ready step did not: that one runs.
    drained = _with_state(checkpoint, "server2-nginx-drain-on-lb1", stdout="pihalb-run: another\npihalb-changed: yes")
    assert plan(drained) == {"server2-nginx-ready-on-lb1": "replace"}
    left = _with_state(checkpoint, "lb2-haproxy-leave", stdout="pihalb-run: another\npihalb-changed: yes")
    assert plan(left) == {"lb2-haproxy-rejoin": "replace"}
    rebuilt = _with_state(checkpoint, "lb1-haproxy-container", id="another-container")
    assert plan(rebuilt) == {"lb1-haproxy-rejoin": "replace"}
    paused = _with_state(checkpoint, "vrrp-lb2-keepalived", stdout="pihalb-run: another\npihalb-changed: yes")
    assert plan(paused) == {"vrrp-lb2-keepalived-resume": "replace"}
    # A ready step whose create never finished: not in the state, so created again.
    unfinished = checkpoint.copy()
    unfinished.resources = [r for r in unfinished.resources if r.name != "server3-nginx-ready-on-lb2"]
    assert plan(unfinished) == {"server3-nginx-ready-on-lb2": "create"}
    # What a bring-back step does not protect does not re-run it: another step's output, the MASTER's.
    for name in ("server1-install", "server1-nginx-page", "vrrp-lb1-keepalived", "lb1-haproxy-config"):
        assert plan(_with_state(checkpoint, name, stdout="something else")) == {}, name


def _value(path: str, value):
    def alter(config: dict) -> None:
        node = config["pihalb:cluster"]
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        node[last] = value

    return alter


def _without_server3(config: dict) -> None:
    config["pihalb:cluster"]["hosts"] = [h for h in config["pihalb:cluster"]["hosts"] if h["name"] != "server3"]
    config["pihalb:hostKeys"].pop("server3")


def _append(relative: str):
    def change(files) -> None:
        with open(files / relative, "a") as handle:
            handle.write("# a change\n")

    return change


# Change classes: name -> (profile before, profile after, config change, files change), all on the stack
# `dev` (a profile is a stack file's config, as the lab applies them). The files change is made to a copy of
# files/ that both programs render from, after the program before it was captured.
CHANGES = {
    "first deployment": (None, "dev-tuned", None, None),
    "page": ("dev-tuned", "dev-tuned", None, _append("templates/index.html.j2")),
    "nginx image": ("dev-tuned", "dev-tuned", None, _append("nginx/Dockerfile")),
    "haproxy image": ("dev-tuned", "dev-tuned", None, _append("haproxy/Dockerfile")),
    "haproxy.cfg value": ("dev-tuned", "dev-tuned", _value("haproxy.timeouts.clientMs", 11000), None),
    "keepalived value": ("dev-tuned", "dev-tuned", _value(*KEEPALIVED_TOGGLES["tuned"][::2]), None),
    "keepalived identity": ("dev-tuned", "dev-tuned", _value("vrrp.mode", "unicast"), None),
    "host scripts": ("dev-tuned", "dev-tuned", None, _append("scripts/vrrp-host.sh")),
    "server removed": ("dev-tuned", "dev-tuned", _without_server3, None),
    "server added": ("dev-tuned", "dev-tuned", "server added", None),
    "profile switch": ("dev", "dev-tuned", None, None),
}


@pytest.fixture
def programs(stack_config, files_copy):
    def run(profile: str, alter=None) -> program.Program:
        config = stack_config(profile)
        if alter:
            alter(config)
        return program.run("dev", config, files_copy, invoke=canned_invoke)

    def capture(change: str):
        before_profile, after_profile, alter, files_change = CHANGES[change]
        if change == "server added":  # the same two programs as a removal, the other way round
            return run(before_profile, _without_server3), run(after_profile)
        before = run(before_profile) if before_profile else None
        if files_change:
            files_change(files_copy)
        return before, run(after_profile, alter if callable(alter) else None)

    return capture


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_roll_stopped_after_any_step_or_failing_halfway_heals_on_the_next_up(programs, change):
    """For every stopping point N of the roll: the apply stops before its N-th operation (a killed `up`),
    or that operation fails after its effect (a drain that failed its wait, say); the next `up` of the same
    program leaves nothing out of service, and the plan after it is empty. An `up` that reverts the change
    after a stop between steps heals too."""
    before, after = programs(change)
    if before is None:
        checkpoint, hosts = MemoryCheckpoint(), Hosts()
    else:
        checkpoint, hosts = converged(before)
    full = hosts.copy()
    up(checkpoint.copy(), after, full)
    assert not full.out and full.operations, change
    failures = []
    for n in range(1, len(full.operations) + 1):
        for effect_first, target in ((False, after), (True, after), (False, before)):
            if target is None:
                continue
            state, model = checkpoint.copy(), hosts.copy(fail_at=n, effect_first=effect_first)
            with pytest.raises(Stopped):
                up(state, after, model)
            stopped_with = set(model.out)
            model.fail_at = None
            up(state, target, model)
            left = make_plan(target, state).kinds()
            if model.out or left:
                how = "failed after its effect" if effect_first else "stopped before it"
                failures.append(
                    (
                        n,
                        full.operations[n - 1],
                        how,
                        "reverted" if target is before else "",
                        stopped_with,
                        model.out,
                        left,
                    )
                )
    assert failures == []


def test_a_take_out_step_that_failed_halfway_then_a_reverting_up_is_healed_by_replacing_its_bring_back_step(
    programs,
):
    """The one case Pulumi's state cannot see (README, the bring-back steps): a drain that took the server
    out and then failed keeps its old inputs in the state, so an `up` that reverts the change finds nothing
    to do. `pulumi up --replace` on the ready step puts the server back."""
    before, after = programs("nginx image")
    checkpoint, hosts = converged(before)
    full = hosts.copy()
    up(checkpoint.copy(), after, full)
    n = full.operations.index(("update", "server1-nginx-drain-on-lb1")) + 1
    model = hosts.copy(fail_at=n, effect_first=True)
    with pytest.raises(Stopped):
        up(checkpoint, after, model)
    model.fail_at = None
    up(checkpoint, before, model)
    assert model.out == {("maintenance", "server1", "lb1")}
    up(checkpoint, before, model, replace=["server1-nginx-ready-on-lb1"])
    assert model.out == set() and make_plan(before, checkpoint).kinds() == {}
