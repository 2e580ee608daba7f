"""Run the real Pulumi program (`__main__.py`) under Pulumi mocks and record what it declares.

Used by the unit tests (assertions on the graph) and by the lab apply (the same records carried out
for real). Mocks register resources in a valid dependency order: a resource is registered only once
every resource it depends on has been.

The program's invokes (its connectivity checks, pulumi-command's `local.run`) run for real while it
runs, as Pulumi runs them on every preview and every update (`harness/invokes.py`): a failed one fails
the run, before anything is planned. The unit tests pass canned results instead (`invoke=`).
"""

from __future__ import annotations

import json
import re
import runpy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor

from components.settings import CONFIG_NAMESPACE, SECRET_KEYS
from components.tls import TLS_SECRET_KEYS
from harness import invokes
from harness.command_ops import StepError
from harness.state import Resource, unwrap_secrets

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "pi-ha-lb"
# The secret keys as namespaced config keys: what `pulumi config set --secret` marks secret.
SECRET_CONFIG_KEYS = [f"{CONFIG_NAMESPACE}:{key}" for key in (*SECRET_KEYS, *TLS_SECRET_KEYS)]


@dataclass
class Invoked:
    """One invoke the program made, with its result."""

    token: str
    args: dict[str, Any]
    result: dict[str, Any]
    registered_before: int  # how many resources the program had registered when it called it


@dataclass
class Program:
    """Everything one run declared, in registration order, and the stack outputs."""

    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    invokes: list[Invoked] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def find(self, urn: str) -> Resource | None:
        return next((r for r in self.resources if r.urn == urn), None)

    def depends_on(self, resource: Resource, other: Resource) -> bool:
        """True when `resource` waits for `other`, directly, through a parent, or transitively."""
        seen: set[str] = set()
        todo = [resource.urn]
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            current = self.find(urn)
            if current is None:
                continue
            if other.urn in current.dependencies:
                return True
            todo += current.dependencies
            if current.parent:
                todo.append(current.parent)
        return False


def engine_urn(urn: str) -> str:
    """The URN the Pulumi engine gives: the mock monitor puts the root stack's type into its children's type
    chain (`...::pulumi:pulumi:Stack$pihalb:index:HostPreparation::lb1`), the engine leaves it out."""
    return urn.replace("::pulumi:pulumi:Stack$", "::")


def stack_file_config(stack: str) -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml, exactly as shipped."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return dict(data.get("config") or {})


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# Outputs a provider computes on create or update (not copies of inputs), by resource type: an image's
# digest, a command's stdout, a container's ID (`id`: the resource's own ID). The mocks give each a
# placeholder naming the resource and the output; whatever the program derives from it carries the
# placeholder, and the engine puts the real value in once that resource's step is done.
COMPUTED_OUTPUTS = {
    "docker:index/image:Image": ("repoDigest",),
    "command:remote:Command": ("stdout",),
    "docker:index/container:Container": ("id",),
}
COMPUTED = re.compile(r"<computed ([^<>\s]+)::([^<>\s]+)\.(\w+)>")


def computed(type_: str, name: str, output: str) -> str:
    return f"<computed {type_}::{name}.{output}>"


class _Recorder(pulumi.runtime.Mocks):
    def __init__(self, resources: list[Resource], invoke: invokes.Invoke) -> None:
        self.resources = resources
        self.invoke = invoke
        self.invoked: list[Invoked] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        computes = COMPUTED_OUTPUTS.get(args.typ, ())
        for output in computes:
            if output != "id":
                outputs[output] = computed(args.typ, args.name, output)
        return computed(args.typ, args.name, "id") if "id" in computes else f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        """An invoke: carried out (or answered) by `self.invoke`. A failure is recorded and fails the run
        once the program has run (`run` raises it): raised here, it would travel through Pulumi's futures,
        and one never retrieved is logged, traceback and all, whenever it is collected."""
        with self._lock:
            registered = len(self.resources)
        try:
            result = self.invoke(args.token, dict(args.args))
        except Exception as error:  # noqa: BLE001 (any failure of an invoke fails the run, with its message)
            with self._lock:
                self.failures.append(str(error))
            return {}
        with self._lock:
            self.invoked.append(Invoked(args.token, dict(args.args), result, registered))
        return result


class _RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping each registration's parent and dependencies (URNs)."""

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            secret_paths: list[str] = []
            inputs = unwrap_secrets(rpc.deserialize_properties(request.object), secret_paths)
            trigger = None
            if request.HasField("replacement_trigger"):
                trigger = unwrap_secrets(rpc.deserialize_property(request.replacement_trigger), [])
            self.mocks.resources.append(
                Resource(
                    urn=engine_urn(response.urn),
                    type=request.type,
                    custom=request.custom,
                    inputs=inputs,
                    parent=engine_urn(request.parent),
                    dependencies=sorted({engine_urn(u) for u in request.dependencies}),
                    property_dependencies={
                        key: sorted(engine_urn(u) for u in deps.urns)
                        for key, deps in request.propertyDependencies.items()
                    },
                    provider=engine_urn(request.provider),
                    delete_before_replace=request.deleteBeforeReplace,
                    replace_on_changes=list(request.replaceOnChanges),
                    ignore_changes=list(request.ignoreChanges),
                    replacement_trigger=trigger,
                    retain_on_delete=request.retainOnDelete,
                    secret_paths=secret_paths,
                )
            )
        return response


def run(
    stack: str,
    config: dict[str, Any],
    files: Path | None = None,
    preview: bool = False,
    secret_keys: list[str] | None = None,
    declared: list[Resource] | None = None,
    invoke: invokes.Invoke = invokes.run,
) -> Program:
    """Run `__main__.py` for `stack` with `config` (namespaced keys) and return what it declared.

    `files`: the files root the program renders from (its `main(files)`), the project's `files/` unless
    given (a test's or the bench's changed copy). The keys of SECRET_CONFIG_KEYS are set as secrets, as
    `pulumi config set --secret` marks them; `secret_keys` replaces that list (a test of a secret set plain).

    `declared`, when given, receives the registrations as they happen, so a caller can see what was
    registered even when the program fails. `invoke` carries out the program's invokes: for real by
    default (the lab engine's preview and up), canned in the unit tests. A failed invoke raises
    StepError with its message, as `pulumi preview` and `pulumi up` fail with it.
    """
    recorder = _Recorder(declared if declared is not None else [], invoke)
    exported: dict[str, Any] = {}
    runtime_settings.reset_options()
    pulumi.runtime.set_all_config(
        {k: _encode(v) for k, v in config.items()}, SECRET_CONFIG_KEYS if secret_keys is None else secret_keys
    )
    pulumi.runtime.set_mocks(
        recorder, project=PROJECT, stack=stack, preview=preview, monitor=_RecordingMonitor(recorder)
    )
    real_export = pulumi.export

    def capture(name: str, value: Any) -> None:
        exported[name] = value

    @pulumi.runtime.test
    def _program():
        pulumi.export = capture
        try:
            # Not as `__main__` (which runs `main()` itself, as Pulumi runs the program): its `main` with `files`.
            program = runpy.run_path(str(ROOT / "__main__.py"), run_name="pihalb_program")
            program["main"](*(() if files is None else (files,)))
        finally:
            pulumi.export = real_export
        return pulumi.Output.from_input(exported)

    _program()
    if recorder.failures:  # as `pulumi preview` and `pulumi up` fail on a failed invoke, with its message
        raise StepError(recorder.failures[0])
    outputs = {k: _resolve(v) for k, v in exported.items()}
    return Program(stack, recorder.resources, outputs, recorder.invoked)


def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        from pulumi.runtime.sync_await import _sync_await

        return _sync_await(value.future())
    return value
