"""The lab engine and computed outputs: an input from an output unknown in the plan and diffed again
once known, steps keyed on outputs, and the SSH shim made once for providers configured in parallel."""

from __future__ import annotations

import json
import os
import time

import pytest

from harness import rules
from harness.engine import Engine
from harness.program import Program
from harness.state import Checkpoint, Resource
from tests.engine_fakes import Recorder, command, container, image, provider, urn

pytestmark = pytest.mark.unit


class Builder(Recorder):
    """A recorder whose images come out with the given digests, one per build, as a daemon computes them."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__()
        self.digests = digests

    def create(self, new):
        if new.type != rules.IMAGE:
            return super().create(new)
        self._note("build", new)
        return new.inputs["imageName"], {**new.inputs, "repoDigest": self.digests.pop(0)}

    def update(self, old, new):
        return self.create(new)[1] if new.type == rules.IMAGE else super().update(old, new)


def by_digest(digests: list[str], tmp_path, replace=()):
    """One up of an image, a container running it by digest and a step whose script names the digest."""
    from harness.program import computed

    digest = computed(rules.IMAGE, "image", "repoDigest")
    img = image()
    web = container("web", digest, deps=[img.urn])
    drain = command("drain", f"drain for {digest}", deps=[img.urn])
    recorder = Builder(digests)
    ops = dict.fromkeys((rules.COMMAND, rules.DOCKER_PROVIDER, rules.IMAGE, rules.CONTAINER), recorder)
    eng = Engine(Checkpoint.load(tmp_path / "state.json"), tmp_path, log=lambda line: None, parallel=4, ops=ops)
    eng.provider_ops = recorder
    program = Program("t", [provider(), img, drain, web], {})
    preview = {s.name: s.op for s in eng.preview(program, replace).steps if s.op != "same"}
    plan, _ = eng.up(program, replace)
    return preview, plan.kinds(), recorder.calls, eng.checkpoint


def test_an_input_from_a_computed_output_is_unknown_in_the_plan_and_diffed_again_once_known(tmp_path):
    """As Pulumi does with an image's repoDigest: a rebuild that yields the same digest leaves the
    container alone; a new digest replaces it and re-runs the step that names it."""
    _, _, calls, checkpoint = by_digest(["sha256:1"], tmp_path)
    assert ("create", "web", "sha256:1") in calls and ("create", "drain", "drain for sha256:1") in calls
    assert "<computed" not in json.dumps([r.inputs for r in checkpoint.resources])  # never stored
    preview, kinds, calls, _ = by_digest(["sha256:1"], tmp_path, replace=["image"])  # rebuilt, same digest
    assert preview == {"image": "replace", "drain": "update", "web": "replace"}  # unknown until built
    assert kinds == {"image": "replace"} and [c[:2] for c in calls if c[1] != "image"] == []
    preview, kinds, calls, _ = by_digest(["sha256:2"], tmp_path, replace=["image"])  # rebuilt, new digest
    assert kinds == {"image": "replace", "drain": "update", "web": "replace"}
    assert ("update", "drain", "drain for sha256:2") in calls
    assert [c[:2] for c in calls if c[1] == "web"] == [("delete", "web"), ("create", "web")]
    _, kinds, calls, _ = by_digest([], tmp_path)  # nothing rebuilt: the digest in state is known
    assert kinds == {} and calls == []


def test_the_ssh_shim_is_made_once_when_providers_are_configured_in_parallel(monkeypatch):
    """Parallel first configurations once made two shims: one provider's options were then not found."""
    from concurrent.futures import ThreadPoolExecutor

    from harness import docker_ops

    docker_ops._make_shim_dir.cache_clear()
    monkeypatch.setenv("PATH", os.environ["PATH"])
    made = []
    real = docker_ops.tempfile.mkdtemp

    def slow_mkdtemp(**kwargs):
        made.append(kwargs)
        time.sleep(0.05)  # widen the window the race needed
        return real(**kwargs)

    monkeypatch.setattr(docker_ops.tempfile, "mkdtemp", slow_mkdtemp)
    with ThreadPoolExecutor(8) as pool:
        dirs = set(pool.map(lambda _: docker_ops._shim_dir(), range(8)))
    assert len(dirs) == 1 and len(made) == 1
    assert os.environ["PATH"].split(os.pathsep)[0] == str(dirs.pop())
    docker_ops._make_shim_dir.cache_clear()


class Runner(Recorder):
    """A recorder whose commands print a fresh run id and whose containers get a fresh ID on each create,
    as the hosts and the Docker daemon do."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0

    def _outputs(self, new) -> dict:
        self.runs += 1
        outputs = dict(new.inputs)
        if new.type == rules.COMMAND:
            outputs["stdout"] = f"run {self.runs}"
        return outputs

    def create(self, new):
        super().create(new)
        if new.type == rules.CONTAINER:
            outputs = self._outputs(new)  # its ID is the resource's own, not among the outputs
            return f"container-{self.runs}", outputs
        return f"{new.name}-id", self._outputs(new)

    def update(self, old, new):
        super().update(old, new)
        return self._outputs(new)


def keyed(image_tag: str = "img:1", out_script: str = "take out", restart: str = "unless-stopped") -> list[Resource]:
    """A step keyed on a container's ID and on another step's stdout (computed outputs), as the program's
    ready steps are on their container and drain."""
    from harness.program import computed

    web = container("web", image_tag, restart=restart)
    out = command("out", out_script)
    back = command(
        "back",
        "bring back",
        deps=[web.urn, out.urn],
        triggers=[computed(rules.CONTAINER, "web", "id"), computed(rules.COMMAND, "out", "stdout")],
    )
    back.property_dependencies = {"triggers": [web.urn, out.urn]}
    return [provider(), out, web, back]


def test_a_step_keyed_on_computed_outputs_is_same_until_they_change_and_unknown_in_the_preview(tmp_path):
    """Triggers from a container's `id` and a command's `stdout`: resolved once those steps are done, never
    stored as placeholders, the same on an unchanged `up`, and a replace when either changes (shown as a
    replace in the preview, where the new value is unknown)."""

    def apply(resources: list[Resource]):
        recorder = Runner()
        ops = dict.fromkeys((rules.COMMAND, rules.DOCKER_PROVIDER, rules.IMAGE, rules.CONTAINER), recorder)
        eng = Engine(Checkpoint.load(tmp_path / "state.json"), tmp_path, log=lambda line: None, parallel=4, ops=ops)
        eng.provider_ops = recorder
        program = Program("t", resources, {})
        preview = eng.preview(program).kinds()
        plan, _ = eng.up(program)
        return preview, plan.kinds(), [c[:2] for c in recorder.calls]

    _, kinds, calls = apply(keyed())
    assert set(kinds.values()) == {"create"} and calls.index(("create", "back")) == len(calls) - 1
    state = Checkpoint.load(tmp_path / "state.json")
    web, out, back = (
        state.get(urn(t, n)) for t, n in ((rules.CONTAINER, "web"), (rules.COMMAND, "out"), (rules.COMMAND, "back"))
    )
    assert back.inputs["triggers"] == [web.id, out.outputs["stdout"]]  # the real values, never a placeholder
    assert web.id.startswith("container-") and out.outputs["stdout"].startswith("run ")
    assert apply(keyed()) == ({}, {}, [])  # nothing changed: nothing planned, nothing run
    preview, kinds, calls = apply(keyed(out_script="take out, changed"))  # the take-out step runs again
    assert preview == kinds == {"out": "update", "back": "replace"}
    assert calls == [("update", "out"), ("create", "back"), ("delete", "back")]
    preview, kinds, calls = apply(keyed(image_tag="img:2", out_script="take out, changed"))  # a new container
    assert preview == kinds == {"web": "replace", "back": "replace"}
    assert calls == [("delete", "web"), ("create", "web"), ("create", "back"), ("delete", "back")]
    assert apply(keyed(image_tag="img:2", out_script="take out, changed")) == ({}, {}, [])
    # An in-place update of the container keeps its ID: a replace in the preview (unknown there), nothing
    # in the update, and the applied plan says so (no delete of an old copy that was kept).
    preview, kinds, calls = apply(keyed(image_tag="img:2", out_script="take out, changed", restart="always"))
    assert preview == {"web": "update", "back": "replace"} and kinds == {"web": "update"}
    assert calls == [("update", "web")]
