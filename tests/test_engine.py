"""The lab engine's rules, each on a small synthetic program, with recording fakes instead of hosts.

Every rule here is Pulumi's (docs/pulumi-rules.md has the citations); the lab tests then run the same
engine against real hosts.
"""

from __future__ import annotations

import json
import threading

import pytest

from harness import rules
from harness.command_ops import InitError
from harness.engine import Stopped
from harness.graph import run_in_order
from harness.plan import make_plan, preview_text, resource_of
from harness.program import Program
from harness.state import SECRET_SIG, SECRET_SIG_KEY, Checkpoint
from tests.engine_fakes import command, container, declared_as, engine, image, provider, up, urn

pytestmark = pytest.mark.unit


def test_first_up_creates_everything_in_dependency_order(tmp_path):
    first = command("a")
    second = command("b", deps=[first.urn])
    _, calls = up(tmp_path, [first, second])
    assert [c[:2] for c in calls] == [("create", "a"), ("create", "b")]


def test_an_unchanged_program_changes_nothing(tmp_path):
    program = [command("a"), command("b")]
    up(tmp_path, program)
    plan, calls = up(tmp_path, [command("a"), command("b")])
    assert calls == [] and plan.changes == 0


def test_a_changed_script_is_an_update_that_runs_create_and_never_the_old_delete(tmp_path):
    up(tmp_path, [command("a", "v1", delete="undo")])
    plan, calls = up(tmp_path, [command("a", "v2", delete="undo")])
    assert plan.kinds() == {"a": "update"} and plan.step("a").keys == ("stdin",)
    assert calls == [("update", "a", "v2")]


def test_changed_triggers_replace_create_before_delete_with_the_old_delete_last(tmp_path):
    """The trap the program used to fall into: the old delete undoes the change, after everything else."""
    up(tmp_path, [command("a", "v1", delete="undo", triggers=["h1"]), command("z")])
    plan, calls = up(tmp_path, [command("a", "v2", delete="undo", triggers=["h2"]), command("z", "new")])
    assert plan.step("a").op == "replace" and plan.step("a").reasons == ("triggers",)
    assert not plan.step("a").delete_first
    assert calls[0] == ("create", "a", "v2")
    assert calls[-1] == ("delete", "a", "undo@10.0.0.1")


def test_the_old_delete_runs_over_the_old_connection(tmp_path):
    up(tmp_path, [command("a", delete="undo", host="10.0.0.1", triggers=[1])])
    _, calls = up(tmp_path, [command("a", delete="undo", host="10.0.0.9", triggers=[2])])
    assert ("delete", "a", "undo@10.0.0.1") in calls


def test_a_changed_connection_is_an_update(tmp_path):
    up(tmp_path, [command("a", host="10.0.0.1")])
    plan, _ = up(tmp_path, [command("a", host="10.0.0.2")])
    assert plan.kinds() == {"a": "update"} and plan.step("a").keys == ("connection",)


def test_container_changes_that_force_new_replace_it_delete_first(tmp_path):
    up(tmp_path, [provider(), container("web", uploads=[{"file": "/i", "content": "1"}])])
    plan, calls = up(tmp_path, [provider(), container("web", uploads=[{"file": "/i", "content": "2"}])])
    step = plan.step("web")
    assert step.op == "replace" and step.delete_first and step.reasons == ("uploads",)
    assert [c[:2] for c in calls] == [("delete", "web"), ("create", "web")]


def test_container_restart_policy_and_grace_are_updates(tmp_path):
    up(tmp_path, [provider(), container("web", destroyGraceSeconds=0)])
    plan, _ = up(tmp_path, [provider(), container("web", restart="always", destroyGraceSeconds=10)])
    assert plan.kinds() == {"web": "update"}


def test_an_image_change_is_an_update_and_its_container_replaced(tmp_path):
    img = image("img:1")
    up(tmp_path, [provider(), img, container("web", "img:1", deps=[img.urn])])
    img2 = image("img:2")
    plan, _ = up(tmp_path, [provider(), img2, container("web", "img:2", deps=[img2.urn])])
    assert plan.kinds() == {"image": "update", "web": "replace"}


def test_a_provider_config_change_is_an_update_and_leaves_its_resources_alone(tmp_path):
    up(tmp_path, [provider("ssh://pi@10.0.0.1:22"), container("web")])
    plan, _ = up(tmp_path, [provider("ssh://pi@10.0.0.1:2222"), container("web")])
    assert plan.kinds() == {"host-docker": "update"}


def test_replace_on_changes_and_replacement_trigger_and_ignore_changes(tmp_path):
    a = command("a")
    a.replace_on_changes = ["stdin"]
    b = command("b")
    b.replacement_trigger = "t1"
    c = command("c")
    up(tmp_path, [a, b, c])
    a2, b2, c2 = command("a", "x"), command("b"), command("c", "changed")
    a2.replace_on_changes = ["stdin"]
    b2.replacement_trigger = "t2"
    c2.ignore_changes = ["stdin"]
    plan, _ = up(tmp_path, [a2, b2, c2])
    assert plan.kinds() == {"a": "replace", "b": "replace"}
    assert plan.step("b").reasons == ("replacementTrigger",)


def test_removed_resources_are_deleted_dependents_first(tmp_path):
    base = command("base", delete="d-base")
    middle = command("middle", deps=[base.urn], delete="d-middle")
    top = command("top", deps=[middle.urn], delete="d-top")
    keep = command("keep")
    up(tmp_path, [base, middle, top, keep])
    plan, calls = up(tmp_path, [keep])
    assert [c[1] for c in calls] == ["top", "middle", "base"]
    assert plan.counts()["delete"] == 3


def test_delete_before_replace_deletes_dependents_whose_replacing_inputs_come_from_it(tmp_path):
    """calculateDependentReplacements: a property dependency that would force a replace goes first."""
    a = command("a", "v1")
    a.delete_before_replace = True
    dependent = container("web", deps=[a.urn])
    dependent.property_dependencies = {"image": [a.urn]}
    only_ordered = command("after", deps=[a.urn])  # depends_on only: left alone
    up(tmp_path, [provider(), a, dependent, only_ordered])
    a2 = command("a", "v1", triggers=["new"])
    a2.delete_before_replace = True
    dependent2 = container("web", deps=[a2.urn])
    dependent2.property_dependencies = {"image": [a2.urn]}
    plan, calls = up(tmp_path, [provider(), a2, dependent2, command("after", deps=[a2.urn])])
    assert plan.kinds() == {"a": "replace", "web": "replace"}
    assert [c[:2] for c in calls] == [("delete", "web"), ("delete", "a"), ("create", "a"), ("create", "web")]


def test_destroy_deletes_everything_in_reverse_dependency_order(tmp_path):
    base = command("base", delete="d")
    top = command("top", deps=[base.urn], delete="d")
    up(tmp_path, [base, top])
    eng, recorder = engine(tmp_path)
    eng.destroy()
    assert [c[1] for c in recorder.calls] == ["top", "base"]
    assert json.loads((tmp_path / "state.json").read_text())["deployment"]["resources"] == []


def test_a_failed_step_stops_new_steps_and_the_next_up_converges(tmp_path):
    a = command("a")
    b = command("b", deps=[a.urn])
    c = command("c", deps=[b.urn])
    with pytest.raises(RuntimeError, match="create of b failed"):
        up(tmp_path, [a, b, c], fail="create:b")
    state = json.loads((tmp_path / "state.json").read_text())["deployment"]
    assert [r["urn"].rsplit("::", 1)[-1] for r in state["resources"]] == ["a"]
    assert state["pending_operations"][0]["type"] == "creating"  # what was in flight when it stopped
    plan, calls = up(tmp_path, [command("a"), command("b", deps=[a.urn]), command("c", deps=[b.urn])])
    assert plan.kinds() == {"b": "create", "c": "create"} and [c[1] for c in calls] == ["b", "c"]


def test_a_create_that_fails_after_making_the_thing_is_kept_and_the_next_up_is_an_empty_update(tmp_path):
    """pulumi-docker's Container: a `wait` timeout is an init error; Pulumi keeps the container in the state
    and, with the same inputs, the next `up` updates it (the provider then changes nothing), so its
    dependents run on a container that never turned healthy (docs/pulumi-rules.md §3)."""
    web = container("web")
    after = command("rejoin", deps=[web.urn])
    with pytest.raises(InitError, match="not healthy"):
        up(tmp_path, [provider(), web, after], fail="init:web")
    kept = Checkpoint.load(tmp_path / "state.json").get(web.urn)
    assert kept is not None and kept.id == "web-id" and kept.init_errors == ["create of web: not healthy"]
    plan, calls = up(tmp_path, [provider(), container("web"), command("rejoin", deps=[web.urn])])
    assert plan.kinds() == {"web": "update", "rejoin": "create"}
    assert [c[:2] for c in calls] == [("update", "web"), ("create", "rejoin")]
    assert Checkpoint.load(tmp_path / "state.json").get(web.urn).init_errors == []
    again = Program("t", [provider(), container("web"), command("rejoin", deps=[web.urn])], {"out": 1})
    assert make_plan(again, engine(tmp_path)[0].checkpoint).kinds() == {}  # cleared by the update


@pytest.mark.parametrize("stop_after", [1, 2])
def test_an_apply_stopped_after_n_steps_keeps_those_and_the_next_up_does_the_rest(tmp_path, stop_after):
    """The stopping-point sweep's stop (bench/sweep): no new step starts after the Nth, as after a kill."""
    chain = [command("a"), command("b", deps=[urn(rules.COMMAND, "a")]), command("c", deps=[urn(rules.COMMAND, "b")])]
    eng, recorder = engine(tmp_path)
    eng.stop_after = stop_after
    with pytest.raises(Stopped, match=f"after step {stop_after}"):
        eng.up(Program("t", chain, {"out": 1}))
    assert [c[1] for c in recorder.calls] == ["a", "b", "c"][:stop_after]
    plan, calls = up(tmp_path, chain)
    assert [c[1] for c in calls] == ["a", "b", "c"][stop_after:]


def test_an_interrupted_replace_deletes_the_old_copy_on_the_next_up(tmp_path):
    up(tmp_path, [command("a", delete="undo", triggers=[1]), command("z")])
    with pytest.raises(RuntimeError):
        up(tmp_path, [command("a", delete="undo", triggers=[2]), command("z", "x")], fail="update:z")
    checkpoint = Checkpoint.load(tmp_path / "state.json")
    assert [r.name for r in checkpoint.pending_deletions()] == ["a"]
    plan, calls = up(tmp_path, [command("a", delete="undo", triggers=[2]), command("z", "x")])
    assert ("delete", "a", "undo@10.0.0.1") in calls and not Checkpoint.load(
        tmp_path / "state.json"
    ).pending_deletions()


def test_the_checkpoint_has_pulumis_export_shape_with_secrets_marked(tmp_path):
    up(tmp_path, [command("a", "secret-script")])
    document = json.loads((tmp_path / "state.json").read_text())
    assert document["version"] == 3
    resources = document["deployment"]["resources"]
    command_entry = next(r for r in resources if r["type"] == rules.COMMAND)
    assert {"urn", "custom", "id", "type", "inputs", "outputs", "parent", "created", "modified"} <= set(command_entry)
    assert command_entry["inputs"]["stdin"][SECRET_SIG_KEY] == SECRET_SIG
    assert command_entry["inputs"]["connection"]["privateKey"][SECRET_SIG_KEY] == SECRET_SIG
    assert resources[-1]["type"] == "pulumi:pulumi:Stack" and resources[-1]["outputs"] == {"out": 1}
    assert (tmp_path / "state.json").stat().st_mode & 0o077 == 0


def test_preview_prints_pulumi_like_lines_and_touches_nothing(tmp_path):
    up(tmp_path, [command("a", "v1", delete="undo"), command("gone"), provider(), container("web")])
    eng, recorder = engine(tmp_path)
    before = (tmp_path / "state.json").read_text()
    program = Program(
        "t", [command("a", "v2", delete="undo"), command("new"), provider(), container("web", "img:2")], {}
    )
    text = preview_text(eng.preview(program), "t")
    assert recorder.calls == [] and (tmp_path / "state.json").read_text() == before
    assert " ~   command:remote:Command" in text and "[diff: ~stdin]" in text
    assert " +-  docker:index/container:Container" in text and "replace: image; delete before replace" in text
    assert " +   command:remote:Command               new" in text
    assert " -   command:remote:Command               gone" in text


def test_make_plan_needs_rules_for_every_type(tmp_path):
    """A type without diff rules can be created (nothing to diff), but its next plan refuses to guess."""
    bucket = "aws:s3/bucket:Bucket"
    checkpoint = Checkpoint.load(tmp_path / "state.json")
    declared = declared_as(bucket, "b", {"x": 1})
    assert make_plan(Program("t", [declared], {}), checkpoint).kinds() == {"b": "create"}  # a create needs no diff
    checkpoint.put(resource_of(declared))
    changed = declared_as(bucket, "b", {"x": 2})
    with pytest.raises(ValueError, match=f"no diff rules for resource type {bucket}"):
        make_plan(Program("t", [changed], {}), checkpoint)


def test_an_image_must_pin_the_classic_builder_the_lab_drives(tmp_path):
    """pulumi-docker builds with BuildKit unless told otherwise; the lab builds with the classic builder."""
    from harness.command_ops import StepError
    from harness.docker_ops import ImageOps
    from harness.plan import resource_of

    declared = image()
    declared.inputs = declared.inputs | {"skipPush": True}
    ops = ImageOps(providers=None, lookup=lambda urn: None, root=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(StepError, match="builderVersion=BuilderV1"):
        ops.create(resource_of(declared))


def test_a_step_waiting_for_its_dependencies_holds_no_worker():
    """Pulumi's --parallel counts running steps: with 2 workers, `b` waiting for `a` must not keep `c`, which
    `a` waits for, from running (a worker blocked on `a` would deadlock here, and the timeout fail it)."""
    c_ran = threading.Event()
    order = []

    def job(name: str, wait_for: threading.Event | None = None):
        def run() -> None:
            if wait_for is not None:
                assert wait_for.wait(5), f"{name} waited for a job that never started"
            order.append(name)
            if name == "c":
                c_ran.set()

        return run

    jobs = [("a", [], job("a", c_ran)), ("b", ["a"], job("b")), ("c", [], job("c"))]
    results = run_in_order(jobs, parallel=2)
    assert [f.exception() for f in results] == [None] * 3
    assert order == ["c", "a", "b"]


def test_a_failed_step_fails_what_waits_for_it_without_running_it():
    ran = []

    def fail() -> None:
        raise RuntimeError("a broke")

    results = run_in_order(
        [("a", [], fail), ("b", ["a"], lambda: ran.append("b")), ("c", [], lambda: ran.append("c"))], 2
    )
    assert [str(f.exception()) for f in results[:2]] == ["a broke", "a broke"] and ran == ["c"]
