"""Small synthetic programs for the lab engine's tests: resources declared as the program would, and
recording fakes for every type's operations instead of hosts."""

from __future__ import annotations

import threading

from harness import rules
from harness.command_ops import InitError
from harness.engine import Engine
from harness.program import Program
from harness.state import Checkpoint, Resource

STACK = "urn:pulumi:t::p::pulumi:pulumi:Stack::p-t"
PROVIDER_URN = "urn:pulumi:t::p::pulumi:providers:docker::host-docker"


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:t::p::{type_}::{name}"


def declared_as(type_: str, name: str, inputs: dict, deps=(), provider: str = "", **fields) -> Resource:
    """A custom resource as the program declares it, a child of the stack."""
    return Resource(
        urn=urn(type_, name),
        type=type_,
        custom=True,
        inputs=inputs,
        parent=STACK,
        dependencies=sorted(deps),
        provider=provider,
        **fields,
    )


def command(name: str, script: str = "echo hi", deps=(), delete: str | None = None, host: str = "10.0.0.1", **extra):
    inputs = {
        "connection": {"host": host, "user": "pi", "privateKey": "KEY", "hostKey": "ssh-ed25519 AAAA"},
        "create": "run",
        "stdin": script,
        "addPreviousOutputInEnv": False,
    }
    if delete:
        inputs["delete"] = delete
    inputs |= extra
    return declared_as(
        rules.COMMAND,
        name,
        inputs,
        deps,
        secret_paths=["connection.privateKey", "stdin"],
        replace_on_changes=["triggers[*]"],
    )


def provider(host: str = "ssh://pi@10.0.0.1:22") -> Resource:
    return Resource(urn=PROVIDER_URN, type=rules.DOCKER_PROVIDER, custom=True, inputs={"host": host}, parent=STACK)


def container(name: str, image: str = "img:1", deps=(), **extra) -> Resource:
    inputs = {"name": name, "image": image, "restart": "unless-stopped"} | extra
    property_dependencies = (
        {"image": [urn(rules.IMAGE, "image")]} if "image" in [d.split("::")[-1] for d in deps] else {}
    )
    return declared_as(
        rules.CONTAINER, name, inputs, deps, provider=f"{PROVIDER_URN}::id", property_dependencies=property_dependencies
    )


def image(tag: str = "img:1") -> Resource:
    inputs = {"imageName": tag, "build": {"context": "files/x"}}
    return declared_as(rules.IMAGE, "image", inputs, provider=f"{PROVIDER_URN}::id")


class Recorder:
    """Fake ops for every type: records (op, name, detail) in order, optionally failing one step."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail
        self.lock = threading.Lock()

    def _note(self, op: str, resource, detail: str = "") -> None:
        with self.lock:
            self.calls.append((op, resource.name, detail))
        if self.fail == f"{op}:{resource.name}":
            raise RuntimeError(f"{op} of {resource.name} failed")
        if self.fail == f"init:{resource.name}":  # made, then failed (a container not healthy in time)
            raise InitError(f"{op} of {resource.name}: not healthy", f"{resource.name}-id", dict(resource.inputs))

    def create(self, new):
        self._note("create", new, new.inputs.get("stdin", new.inputs.get("image", "")))
        return f"{new.name}-id", dict(new.inputs)

    def update(self, old, new):
        self._note("update", new, new.inputs.get("stdin", ""))
        return dict(new.inputs)

    def delete(self, old):
        self._note("delete", old, old.inputs.get("delete", "") + "@" + old.inputs.get("connection", {}).get("host", ""))

    def same(self, new):
        pass


def engine(tmp_path, fail: str | None = None) -> tuple[Engine, Recorder]:
    recorder = Recorder(fail)
    ops = dict.fromkeys((rules.COMMAND, rules.DOCKER_PROVIDER, rules.IMAGE, rules.CONTAINER), recorder)
    checkpoint = Checkpoint.load(tmp_path / "state.json")
    eng = Engine(checkpoint, tmp_path, log=lambda line: None, parallel=4, ops=ops)
    eng.provider_ops = recorder  # providers are "configured" by the recorder
    return eng, recorder


def up(tmp_path, resources: list[Resource], fail: str | None = None):
    eng, recorder = engine(tmp_path, fail)
    plan, _ = eng.up(Program("t", resources, {"out": 1}))
    return plan, recorder.calls
