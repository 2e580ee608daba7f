"""The lab engine: carry out a plan with Pulumi's ordering, saving the checkpoint after every step.

Ordering (pulumi/pulumi pkg/resource/deploy/step_executor.go, deployment_executor.go):
- each declared resource's step starts once the steps of everything it depends on are done (its
  dependencies, property dependencies, provider and parent), several at a time;
- a create-before-delete replacement creates the new resource in that place; its old copy is marked
  pending deletion and deleted at the end, with the resources no longer declared;
- a deleteBeforeReplace replacement deletes (dependents first) and then creates, in its place;
- the deletes at the end run dependents first, several at a time;
- `destroy` deletes everything the checkpoint holds in the same order.
A failed step stops new steps from starting; finished ones stay recorded.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness import rules
from harness.command_ops import CommandOps, InitError, StepError, host_changed
from harness.docker_ops import ContainerOps, ImageOps, ProviderOps, Providers
from harness.graph import run_in_order
from harness.plan import (
    Plan,
    Step,
    delete_order,
    diff,
    has_computed,
    make_plan,
    needs,
    outputs_with_id,
    resolve_computed,
)
from harness.program import PROJECT, Program
from harness.state import STACK_TYPE, Checkpoint, Resource, now

PARALLEL = 10  # Pulumi's default --parallel is large; the lab's two cores are the real limit


class Ops(Protocol):
    def create(self, new: Resource) -> tuple[str, dict]: ...
    def update(self, old: Resource, new: Resource) -> dict: ...
    def delete(self, old: Resource) -> None: ...


@dataclass
class Done:
    """One step carried out."""

    name: str
    type: str
    op: str
    started: float  # monotonic
    seconds: float
    host_changed: bool | None = None


@dataclass
class Report:
    done: list[Done] = field(default_factory=list)

    def ops(self) -> dict[str, str]:
        return {d.name: d.op for d in self.done if d.op != "same"}

    def by_name(self, name: str) -> Done:
        """The step that created, updated or replaced `name` (else its delete)."""
        steps = [d for d in self.done if d.name == name]
        return next((d for d in steps if d.op != "delete"), steps[0])

    def of_type(self, type_: str) -> list[Done]:
        return [d for d in self.done if d.type == type_]


class Engine:
    """Plans and applies one stack's program against its checkpoint."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        root: Path,
        on_docker_ready: Callable[[str], None] | None = None,
        log: Callable[[str], None] = print,
        parallel: int = PARALLEL,
        ops: dict[str, Ops] | None = None,
        stop_after: int | None = None,
    ) -> None:
        """`stop_after`: stop the apply once that many steps have been carried out, as a killed `pulumi up`
        would (the steps in flight finish, no new one starts, the checkpoint says what was done)."""
        self.checkpoint, self.log, self.parallel = checkpoint, log, parallel
        self.stop_after = stop_after
        self.providers = Providers(on_docker_ready)
        lookup = self._lookup
        self.provider_ops = ProviderOps(self.providers)
        self.ops: dict[str, Ops] = {
            rules.COMMAND: CommandOps(),
            rules.DOCKER_PROVIDER: self.provider_ops,
            rules.IMAGE: ImageOps(self.providers, lookup, root),
            rules.CONTAINER: ContainerOps(self.providers, lookup),
        } | (ops or {})
        self._failed = threading.Event()
        self._recording = threading.Lock()
        self._declared: dict[str, Resource] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._kept: set[str] = set()
        self.report = Report()

    def _lookup(self, urn: str) -> Resource | None:
        return (
            self._declared.get(urn)
            or self.checkpoint.get(urn)
            or next((r for r in self.checkpoint.resources if r.urn == urn), None)
        )

    # -- entry points --------------------------------------------------------------------------------------
    def preview(self, program: Program, replace: Collection[str] = ()) -> Plan:
        return make_plan(program, self.checkpoint, replace)

    def up(self, program: Program, replace: Collection[str] = ()) -> tuple[Plan, Report]:
        interrupted = self.checkpoint.interrupted()
        if interrupted:
            ops = ", ".join(f"{p['type']} {p['resource']['urn'].rsplit('::', 1)[-1]}" for p in interrupted)
            self.log(f"warning: the last update was interrupted during: {ops}; continuing from the state it left")
            self.checkpoint.clear_pending()
        plan = make_plan(program, self.checkpoint, replace)
        self._declared = {s.urn: s.new for s in plan.steps if s.new is not None}
        self._names = {(s.new.type, s.name): s.urn for s in plan.steps if s.new is not None}
        self._run_declared(plan)
        # old copies of replacements that the second diff found unneeded stay, and the plan says so
        plan.deletes = [s for s in plan.deletes if s.old is None or s.old.urn not in self._kept]
        self._run_deletes([s.old for s in plan.deletes if s.old is not None])
        self._put_stack(program)
        return plan, self.report

    def destroy(self) -> Report:
        doomed = [r for r in self.checkpoint.resources if r.type != STACK_TYPE]
        self._run_deletes(doomed)
        for stack in [r for r in self.checkpoint.resources if r.type == STACK_TYPE]:
            self.checkpoint.finish({}, remove=stack)
        return self.report

    # -- declared resources --------------------------------------------------------------------------------
    def _run_declared(self, plan: Plan) -> None:
        dependents_first = {s.urn: [d for d in plan.steps if d.dependent_of == s.urn] for s in plan.steps}
        jobs, listed = [], set()
        for step in plan.steps:
            waits = [u for u in needs(step.new) if u in listed]  # type: ignore[arg-type]
            listed.add(step.urn)
            jobs.append((step.urn, waits, functools.partial(self._declared_step, step, dependents_first[step.urn])))
        _raise_first(run_in_order(jobs, self.parallel))

    def _declared_step(self, step: Step, dependents: list[Step]) -> None:
        if self._failed.is_set():
            raise Skipped(step.name)
        try:
            self._carry_out(step, dependents)
        except Exception:
            self._failed.set()  # as Pulumi: no new step starts after a failure; running ones finish
            raise

    def _carry_out(self, step: Step, dependents: list[Step]) -> None:
        new, old = step.new, step.old
        assert new is not None
        started = time.monotonic()
        changed = None
        if not new.custom:  # a component: logical grouping, nothing to carry out
            new.created = old.created if old else now()
            self.checkpoint.put(new)
            return
        ops = self._ops(new)
        if has_computed(new.inputs):
            self._diff_again(step)
        if step.op == "same":
            assert old is not None
            new.id, new.outputs, new.created, new.modified = old.id, old.outputs, old.created, old.modified
            if new.type == rules.DOCKER_PROVIDER:
                self.provider_ops.same(new)
            self.checkpoint.put(new)
            return
        if step.op == "create" or (step.op == "replace" and not step.delete_first):
            self.log(f" {'+' if step.op == 'create' else '++'}  {step.name} creating")
            entry = self.checkpoint.begin("creating", new)
            self._create(ops, new, entry)
            if step.op == "replace" and old is not None:
                self.checkpoint.mark_for_deletion(old)  # deleted at the end (create-before-delete)
            self.checkpoint.finish(entry, put=new)
        elif step.op == "update":
            assert old is not None
            self.log(f" ~  {step.name} updating [{', '.join(step.keys)}]")
            entry = self.checkpoint.begin("updating", new)
            new.id, new.created, new.modified = old.id, old.created, now()
            new.outputs = ops.update(old, new)
            self.checkpoint.finish(entry, put=new)
        else:  # replace, delete before replace
            for dependent in dependents:  # dependents that must be replaced too go first
                if dependent.old is not None and self.checkpoint.get(dependent.urn) is dependent.old:
                    self._delete(dependent.old)
            if old is not None and self.checkpoint.get(old.urn) is old:
                self._delete(old)
            self.log(f" +   {step.name} creating (replacement)")
            entry = self.checkpoint.begin("creating", new)
            self._create(ops, new, entry)
            self.checkpoint.finish(entry, put=new)
        if new.type == rules.COMMAND:
            changed = host_changed(new.outputs)
        self._record(step.name, new.type, step.op, started, changed)

    def _create(self, ops: Ops, new: Resource, entry: dict) -> None:
        """A create that fails after making the thing (a container not healthy in time) keeps it in the state
        with its init error, as Pulumi does: the next `up` with the same inputs updates it, changing nothing."""
        try:
            new.id, new.outputs = ops.create(new)
        except InitError as error:
            new.id, new.outputs, new.init_errors = error.id, error.outputs, [str(error)]
            new.created = new.modified = now()
            self.checkpoint.finish(entry, put=new)
            raise
        new.created = new.modified = now()

    def _diff_again(self, step: Step) -> None:
        """Pulumi's update diffs a resource again once the outputs its inputs come from are known: an image
        rebuilt to the same digest leaves its container alone, a new digest replaces it."""
        new, old = step.new, step.old
        assert new is not None

        def outputs_of(type_: str, name: str) -> dict | None:
            source = self._declared.get(self._names.get((type_, name), ""))
            return outputs_with_id(source) if source is not None else None

        new.inputs = resolve_computed(new.inputs, outputs_of)
        if has_computed(new.inputs):
            raise StepError(f"{step.name}: inputs still unknown after the steps they come from: {new.inputs}")
        if old is None or "--replace" in step.reasons:
            return
        again = diff(old, new, {new.provider_urn} if "provider" in step.reasons and new.provider_urn else set())
        if step.op == "replace" and again.op != "replace" and not step.delete_first:
            self._kept.add(old.urn)
        step.op, step.keys, step.reasons, step.delete_first = again.op, again.keys, again.reasons, again.delete_first

    # -- deletes -------------------------------------------------------------------------------------------
    def _run_deletes(self, doomed: list[Resource]) -> None:
        """Dependents first; independent deletes at the same time."""
        ordered = delete_order(doomed, self.checkpoint.resources)
        jobs = []
        for index, resource in enumerate(ordered):
            # wait for every earlier doomed resource that depends on this one
            waits = [id(r) for r in ordered[:index] if resource.urn in needs(r)]
            jobs.append((id(resource), waits, functools.partial(self._delete_after, resource)))
        _raise_first(run_in_order(jobs, self.parallel))

    def _delete_after(self, resource: Resource) -> None:
        if self._failed.is_set():
            raise Skipped(resource.name)
        try:
            self._delete(resource)
        except Exception:
            self._failed.set()
            raise

    def _delete(self, resource: Resource) -> None:
        started = time.monotonic()
        if resource.custom and not resource.retain_on_delete:
            self.log(f" -   {resource.name} deleting")
            entry = self.checkpoint.begin("deleting", resource)
            self._ops(resource).delete(resource)
            self.checkpoint.finish(entry, remove=resource)
        else:
            self.checkpoint.finish({}, remove=resource)
        self._record(resource.name, resource.type, "delete", started, None)

    # -- helpers -------------------------------------------------------------------------------------------
    def _ops(self, resource: Resource) -> Ops:
        ops = self.ops.get(resource.type)
        if ops is None:
            raise StepError(f"{resource.name}: the lab engine cannot apply resource type {resource.type}")
        return ops

    def _record(self, name: str, type_: str, op: str, started: float, changed: bool | None) -> None:
        seconds = time.monotonic() - started
        with self._recording:
            self.report.done.append(Done(name, type_, op, started, seconds, changed))
            count = len(self.report.done)
        note = "" if changed is None else (" (host changed)" if changed else " (host unchanged)")
        self.log(f"     {name} {op} done in {seconds:.1f}s{note}")
        if count == self.stop_after:
            raise Stopped(f"stopped after step {count} ({name} {op}), as a killed `up` would")

    def _put_stack(self, program: Program) -> None:
        urn = f"urn:pulumi:{program.stack}::{PROJECT}::{STACK_TYPE}::{PROJECT}-{program.stack}"
        self.checkpoint.put(Resource(urn=urn, type=STACK_TYPE, custom=False, outputs=program.outputs))


class Skipped(RuntimeError):
    """Not started: an earlier step failed."""


class Stopped(RuntimeError):
    """The apply was stopped on purpose after a given number of steps (`Engine(stop_after=...)`)."""


def _raise_first(futures) -> None:
    """Wait for every started step, then raise the first real failure (not a knock-on skip)."""
    errors = []
    for future in futures:
        try:
            future.result()
        except Exception as error:
            errors.append(error)
    real = [e for e in errors if not isinstance(e, Skipped)]
    if errors:
        raise (real or errors)[0]
