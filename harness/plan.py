"""The planner: the program just declared, diffed against the checkpoint with each provider's rules.

Pulumi's step generator, reduced to what this program uses (pulumi/pulumi pkg/resource/deploy/
step_generator.go; citations in docs/pulumi-rules.md):
- a URN not in the state is a create; one in it is diffed by its provider (`rules.provider_diff`), then
  `ignoreChanges` drops inputs, `replaceOnChanges` and `replacementTrigger` turn changes into a replace,
  and a resource whose provider changed or is replaced is replaced;
- a replace is create-before-delete unless `deleteBeforeReplace`: the new one is created in the
  resource's place in the graph and the old one is deleted at the end, with the other deletes;
- with `deleteBeforeReplace` the old one is deleted first, and before it every dependent whose inputs
  come from it and whose own provider would replace it for that (calculateDependentReplacements);
- URNs in the state that the program no longer declares are deleted, dependents before what they
  depend on; old copies pending deletion (an interrupted replace) are deleted too;
- an input derived from an output that a changing resource computes (an image's digest) is unknown:
  it counts as changed in the plan, and the resource is diffed again once it is known.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

from harness import rules
from harness.program import COMPUTED, Program
from harness.state import STACK_TYPE, Checkpoint, Resource


@dataclass
class Step:
    """One resource's part of an update."""

    op: str  # same, create, update, replace, delete
    new: Resource | None
    old: Resource | None
    keys: tuple[str, ...] = ()  # changed inputs
    reasons: tuple[str, ...] = ()  # why it is replaced
    delete_first: bool = False  # replace with deleteBeforeReplace
    dependent_of: str = ""  # set on deletes done first because a deleteBeforeReplace dependency goes

    @property
    def urn(self) -> str:
        return (self.new or self.old).urn  # type: ignore[union-attr]

    @property
    def type(self) -> str:
        return (self.new or self.old).type  # type: ignore[union-attr]

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


@dataclass
class Plan:
    """Steps for the declared resources (in registration order), then deletes (dependents first)."""

    steps: list[Step]
    deletes: list[Step]
    outputs: dict = field(default_factory=dict)

    def step(self, name: str) -> Step:
        """The declared resource's step, else its delete."""
        matches = [s for s in self.steps if s.name == name] or [s for s in self.deletes if s.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} steps for {name!r}")
        return matches[0]

    def kinds(self) -> dict[str, str]:
        """Resource name → op, for every resource that changes."""
        found = {s.name: s.op for s in self.steps if s.op != "same"}
        found.update({s.name: "delete" for s in self.deletes if s.name not in found})
        return found

    def changes_besides_bring_back(self) -> dict[str, str]:
        """`kinds()` without the steps replaced for their `triggers` alone: the program's bring-back steps
        (ready, rejoin, resume), which run after the step that took a host out or a new container."""
        bring_back = {s.name for s in self.steps if s.op == "replace" and tuple(s.keys) == ("triggers",)}
        return {name: op for name, op in self.kinds().items() if name not in bring_back}

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step.op] = counts.get(step.op, 0) + 1
        removed = [s for s in self.deletes if not any(t.urn == s.urn for t in self.steps)]
        if removed:
            counts["delete"] = len(removed)
        return counts

    @property
    def changes(self) -> int:
        return sum(n for op, n in self.counts().items() if op != "same")


def resource_of(declared: Resource) -> Resource:
    """The checkpoint's own copy of a declared resource (the apply gives it an id and outputs; the
    program's record stays as declared)."""
    return replace(
        declared,
        dependencies=list(declared.dependencies),
        property_dependencies=dict(declared.property_dependencies),
        replace_on_changes=list(declared.replace_on_changes),
        ignore_changes=list(declared.ignore_changes),
        secret_paths=list(declared.secret_paths),
    )


def _delete_first(new: Resource) -> bool:
    """A replacement deletes first when the program asks (deleteBeforeReplace) or the provider always does."""
    return new.delete_before_replace or new.type in rules.ALWAYS_DELETE_BEFORE_REPLACE


def diff(old: Resource, new: Resource, replaced_providers: set[str]) -> Step:
    """The provider's diff, then the engine's own rules on top."""
    new_inputs = dict(new.inputs)
    for key in new.ignore_changes:  # ignoreChanges: keep the old value of these inputs
        top = key.split(".", 1)[0].split("[", 1)[0]
        if top in old.inputs:
            new_inputs[top] = old.inputs[top]
        else:
            new_inputs.pop(top, None)
    new.inputs = new_inputs
    provider = rules.provider_diff(new.type, old.inputs, new_inputs)
    reasons = list(provider.replaces)
    reasons += [
        k for k in provider.changed if k not in reasons and rules.matches_replace_on_changes(k, new.replace_on_changes)
    ]
    if new.replacement_trigger is not None and _canonical(new.replacement_trigger) != _canonical(
        old.replacement_trigger
    ):
        reasons.append("replacementTrigger")
    # A provider whose config changes is updated in place (pulumi-docker marks no config key as replacing
    # it); its resources are replaced only when they move to another provider or it is replaced.
    if new.provider_urn and (new.provider_urn != old.provider_urn or new.provider_urn in replaced_providers):
        reasons.append("provider")
    if reasons:
        return Step("replace", new, old, provider.changed, tuple(reasons), delete_first=_delete_first(new))
    # A resource kept with init errors is updated even with no change: an empty update (ENG step_generator.go).
    return Step("update" if provider.changed or old.init_errors else "same", new, old, provider.changed)


def resolve_computed(value: Any, outputs_of: Callable[[str, str], dict | None]) -> Any:
    """`value` with each computed-output placeholder replaced by the real output, where it is known
    (`outputs_of(type, name)` returns the outputs of a resource whose step is done or unchanged)."""
    if isinstance(value, str):

        def real(match: re.Match) -> str:
            outputs = outputs_of(match[1], match[2])
            return str(outputs[match[3]]) if outputs and match[3] in outputs else match[0]

        return COMPUTED.sub(real, value)
    if isinstance(value, dict):
        return {k: resolve_computed(v, outputs_of) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_computed(v, outputs_of) for v in value]
    return value


def outputs_with_id(resource: Resource) -> dict | None:
    """A resource's outputs and its ID (`id`, which the program can read as an output too), once it has one."""
    return {**resource.outputs, "id": resource.id} if resource.id else None


def has_computed(value: Any) -> bool:
    return bool(COMPUTED.search(_canonical(value)))


def make_plan(program: Program, checkpoint: Checkpoint, replace: Collection[str] = ()) -> Plan:
    """The steps of an update. An input derived from an output a changing resource computes is unknown
    until that resource's step is done: it counts as changed here, and the apply diffs again once it
    is known (as Pulumi's preview and update do). `replace`: names or URNs to replace whatever their
    diff says (`pulumi up --replace`)."""
    steps: list[Step] = []
    replaced_providers: set[str] = set()
    known: dict[tuple[str, str], dict] = {}  # outputs of the resources left unchanged
    for declared in program.resources:
        new = resource_of(declared)
        new.inputs = resolve_computed(new.inputs, lambda type_, name: known.get((type_, name)))
        old = checkpoint.get(declared.urn)
        if old is None:
            steps.append(Step("create", new, None))
            continue
        step = diff(old, new, replaced_providers)
        if declared.urn in replace or declared.name in replace:
            step = Step("replace", new, old, step.keys, (*step.reasons, "--replace"), delete_first=_delete_first(new))
        if step.op == "same":
            known[(declared.type, declared.name)] = outputs_with_id(old)
        if step.op == "replace" and new.type.startswith("pulumi:providers:"):
            replaced_providers.add(new.urn)
        steps.append(step)
    _add_dependent_replacements(steps, checkpoint)
    declared_urns = {s.urn for s in steps}
    gone = [r for r in checkpoint.resources if r.type != STACK_TYPE and (r.delete or r.urn not in declared_urns)]
    replaced_later = [s.old for s in steps if s.op == "replace" and not s.delete_first and s.old is not None]
    deletes = [Step("delete", None, r) for r in delete_order(gone + replaced_later, checkpoint.resources)]
    return Plan(steps, deletes, program.outputs)


def _add_dependent_replacements(steps: list[Step], checkpoint: Checkpoint) -> None:
    """deleteBeforeReplace: dependents whose replace-forcing inputs come from the replaced resource go too."""
    by_urn = {s.urn: s for s in steps}
    for step in [s for s in steps if s.op == "replace" and s.delete_first]:
        for dependent in checkpoint.resources:
            keys = [k for k, urns in dependent.property_dependencies.items() if step.urn in urns]
            uses_provider = dependent.provider_urn == step.urn
            if not keys and not uses_provider:
                continue
            forced = uses_provider or any(
                rules.provider_diff(dependent.type, {k: None}, {k: "unknown"}).replaces for k in keys
            )
            target = by_urn.get(dependent.urn)
            if forced and target is not None and target.op in ("same", "update"):
                target.op, target.reasons, target.delete_first = "replace", (f"dependency {step.name}",), True
                target.dependent_of = step.urn


def delete_order(doomed: list[Resource], snapshot: list[Resource]) -> list[Resource]:
    """Dependents before what they depend on (dependencies, property dependencies, provider, parent)."""
    remaining = list(doomed)
    ordered: list[Resource] = []
    while remaining:
        blocked = {urn for r in remaining for urn in needs(r) if any(o is not r and o.urn == urn for o in remaining)}
        ready = [r for r in remaining if r.urn not in blocked]
        if not ready:  # a cycle cannot come from Pulumi's graph; delete the rest in reverse order
            ready = list(reversed(remaining))
        for resource in reversed(ready):
            ordered.append(resource)
        remaining = [r for r in remaining if all(r is not x for x in ready)]
    return ordered


def needs(resource: Resource) -> set[str]:
    needs = set(resource.dependencies) | {u for urns in resource.property_dependencies.values() for u in urns}
    if resource.provider_urn:
        needs.add(resource.provider_urn)
    if resource.parent:
        needs.add(resource.parent)
    return needs


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def preview_text(plan: Plan, stack: str, verb: str = "Previewing update") -> str:
    """A Pulumi-like preview: one line per resource that changes, then the summary."""
    symbols = {"create": "+ ", "update": "~ ", "replace": "+-", "delete": "- "}
    lines = [f"{verb} ({stack}):", f"     {'Type':<36} {'Name':<34} {'Plan':<10} Info"]
    for step in plan.steps:
        if step.op == "same":
            continue
        info = f"[diff: {' '.join('~' + k for k in step.keys)}]" if step.keys else ""
        if step.op == "replace":
            info = f"{info} replace: {', '.join(step.reasons)}".strip()
            if step.delete_first:
                info += "; delete before replace"
        lines.append(f" {symbols[step.op]}  {step.type:<36} {step.name:<34} {step.op:<10} {info}".rstrip())
    declared = {s.urn for s in plan.steps}
    for step in plan.deletes:
        if step.urn in declared:
            continue
        lines.append(f" {symbols['delete']}  {step.type:<36} {step.name:<34} delete")
    counts = plan.counts()
    lines.append("Resources:")
    for op in ("create", "update", "replace", "delete"):
        if counts.get(op):
            lines.append(f"    {symbols[op].strip()} {counts[op]} to {op}")
    lines.append(f"    {plan.changes} changes. {counts.get('same', 0)} unchanged")
    return "\n".join(lines)
