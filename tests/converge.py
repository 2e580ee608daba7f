"""The lab engine on a captured program, with a model of the hosts instead of hosts.

`Hosts` stands in for every provider operation. Commands "run" (a take-out step's stdout carries a fresh
run id, as its command line prints one), images get a digest per build input, containers a fresh ID per
create. It also models what the rolling steps leave behind on the hosts: a server in maintenance on a
balancer (drain → ready), a balancer's VRRP priority handed over (leave → rejoin), the BACKUP's keepalived
stopped (its keepalived step on a changed config → resume), and which servers each balancer's live
haproxy.cfg lists (a reload forgets what the runtime API set: there is no server-state file). `out` is
what is out of service: empty on a converged cluster.

`Hosts(fail_at=N)` fails the N-th operation (1-based), before its effect or, with `effect_first`, after
it: an apply stopped right after N - 1 operations, or a step that failed halfway.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shlex
import threading
import uuid
from collections.abc import Collection
from pathlib import Path

from components.remote import RUN_ID_PREFIX, RUN_SCRIPT_WITH_RUN_ID
from harness import rules
from harness.engine import Engine
from harness.program import Program
from harness.state import Checkpoint, Resource


class Stopped(RuntimeError):
    """The apply stops here (a killed `pulumi up`, a failed step)."""


def _variable(script: str, name: str) -> str | None:
    match = re.search(rf"^{name}=(.*)$", script, re.M)
    return match.group(1) if match else None


class Hosts:
    """Fake ops for every resource type, and the state of the modelled hosts."""

    def __init__(self, fail_at: int | None = None, effect_first: bool = False) -> None:
        self.fail_at, self.effect_first = fail_at, effect_first
        self.operations: list[tuple[str, str]] = []  # (op, name), in the order they ran
        self.out: set[tuple[str, ...]] = set()
        self.labels: dict[str, str] = {}  # running container name -> its spec label
        self.keepalived: dict[str, str] = {}  # balancer -> live keepalived step script
        self.balances: dict[str, set[str]] = {}  # balancer -> the servers its live haproxy.cfg lists
        self.lock = threading.Lock()

    # -- the model of the hosts ------------------------------------------------------------------------------
    def copy(self, fail_at: int | None = None, effect_first: bool = False) -> Hosts:
        other = Hosts(fail_at, effect_first)
        other.out, other.labels, other.keepalived = set(self.out), dict(self.labels), dict(self.keepalived)
        other.balances = {balancer: set(servers) for balancer, servers in self.balances.items()}
        return other

    def _effect(self, resource: Resource) -> None:
        """What the step's script does to the hosts (files/scripts/*.sh, reduced to service state)."""
        name, script = resource.name, resource.inputs.get("stdin", "")
        if match := re.fullmatch(r"(.+)-nginx-drain-on-(.+)", name):
            server, balancer = match.groups()
            # Nothing to drain before HAProxy runs there, nor for a server its config does not list yet.
            if f"{balancer}-haproxy-container" in self.labels and server in self.balances.get(balancer, ()):
                self.out.add(("maintenance", server, balancer))
        elif match := re.fullmatch(r"(.+)-nginx-ready-on-(.+)", name):
            self.out.discard(("maintenance", *match.groups()))
        elif match := re.fullmatch(r"(.+)-haproxy-config", name):
            # A new config is reloaded (master-worker); without a server-state file the new workers start
            # from the config, so what the runtime API set (maintenance) is gone on that balancer.
            balancer = match.group(1)
            self.out -= {entry for entry in self.out if entry[0] == "maintenance" and entry[2] == balancer}
            config = base64.b64decode(shlex.split(_variable(script, "CONFIG_B64") or "''")[0]).decode()
            self.balances[balancer] = set(re.findall(r"^\s*server (\S+) ", config, re.M))
        elif match := re.fullmatch(r"(.+)-haproxy-leave", name):
            balancer = match.group(1)
            running = self.labels.get(f"{balancer}-haproxy-container")
            if running is not None and running != _variable(script, "CONTAINER_SPEC"):
                self.out.add(("handed over", balancer))
        elif match := re.fullmatch(r"(.+)-haproxy-rejoin", name):
            self.out.discard(("handed over", match.group(1)))
        elif match := re.fullmatch(r"vrrp-(.+)-keepalived", name):
            balancer = match.group(1)
            if _variable(script, "PAUSE_FOR_PEER") == "yes" and self.keepalived.get(balancer) != script:
                self.out.add(("keepalived stopped", balancer))  # paused, or only enabled on the first run
            self.keepalived[balancer] = script
        elif match := re.fullmatch(r"vrrp-(.+)-keepalived-resume", name):
            self.out.discard(("keepalived stopped", match.group(1)))

    def _operation(self, op: str, resource: Resource) -> None:
        with self.lock:
            self.operations.append((op, resource.name))
            failing = self.fail_at is not None and len(self.operations) == self.fail_at
            if failing and not self.effect_first:
                raise Stopped(f"stopped before {op} of {resource.name}")
            if op != "delete" and resource.type == rules.COMMAND:
                self._effect(resource)
            if resource.type == rules.CONTAINER:
                if op == "delete":
                    self.labels.pop(resource.name, None)
                elif op == "create":
                    labels = resource.inputs.get("labels") or [{}]
                    self.labels[resource.name] = labels[0].get("value", "")
            if failing:
                raise Stopped(f"{op} of {resource.name} failed after its effect")

    # -- the provider operations -----------------------------------------------------------------------------
    def _outputs(self, resource: Resource) -> dict:
        inputs = resource.inputs
        if resource.type == rules.COMMAND:
            run_id = f"{RUN_ID_PREFIX}{uuid.uuid4()}\n" if inputs.get("create") == RUN_SCRIPT_WITH_RUN_ID else ""
            return {**inputs, "stdout": f"{run_id}pihalb-changed: no", "stderr": ""}
        if resource.type == rules.IMAGE:
            digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
            return {**inputs, "repoDigest": f"sha256:{digest}"}
        return dict(inputs)

    def create(self, new: Resource) -> tuple[str, dict]:
        self._operation("create", new)
        outputs = self._outputs(new)
        if new.type == rules.CONTAINER:
            container_id = uuid.uuid4().hex
            return container_id, {**outputs, "id": container_id}
        if new.type == rules.IMAGE:
            return new.inputs["imageName"], outputs
        return f"{new.name}-{uuid.uuid4().hex[:8]}", outputs

    def update(self, old: Resource, new: Resource) -> dict:
        self._operation("update", new)
        outputs = self._outputs(new)
        return {**outputs, "id": old.id} if new.type == rules.CONTAINER else outputs

    def delete(self, old: Resource) -> None:
        self._operation("delete", old)

    def same(self, new: Resource) -> None:
        """A provider left as it is."""


class MemoryCheckpoint(Checkpoint):
    """A checkpoint kept in memory only (the engine saves after every step; the sweeps run hundreds)."""

    def __init__(self, resources: list[Resource] | None = None, pending: list | None = None) -> None:
        super().__init__(Path("/nonexistent/state.json"), resources or [], pending or [])

    def _save(self) -> None:
        pass

    def copy(self) -> MemoryCheckpoint:
        return MemoryCheckpoint(copy.deepcopy(self.resources), copy.deepcopy(self.pending))


def up(checkpoint: Checkpoint, program: Program, hosts: Hosts, replace: Collection[str] = ()):
    """One `up` of `program` against `checkpoint` and the modelled hosts: (plan, report)."""
    ops = dict.fromkeys((rules.COMMAND, rules.DOCKER_PROVIDER, rules.IMAGE, rules.CONTAINER), hosts)
    eng = Engine(checkpoint, Path("."), log=lambda line: None, parallel=1, ops=ops)
    eng.provider_ops = hosts  # type: ignore[assignment]
    return eng.up(program, replace)


def converged(program: Program) -> tuple[MemoryCheckpoint, Hosts]:
    """The checkpoint and hosts after `program`'s first `up`."""
    checkpoint, hosts = MemoryCheckpoint(), Hosts()
    up(checkpoint, program, hosts)
    assert not hosts.out, hosts.out
    return checkpoint, hosts
