"""The lab's one deployment, planned and applied by the lab engine (`harness/`), as `pulumi up` would.

The lab holds one cluster, so it holds one stack: `dev`. Its checkpoint lives with the hosts, in
`lab/.state/engine/` (so `lab down` forgets it with them). A profile such as `dev-tuned` is that
cluster's config taken from another stack file: it is applied to the same stack, as a user changes
settings on one cluster, and its URNs stay `dev`'s.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from components.fields import (
    CONFIG_NAMESPACE,
    HOST_KEYS_KEY,
    SSH_PRIVATE_KEY_KEY,
    STATS_PASSWORD_KEY,
    VRRP_PASSWORD_KEY,
)
from harness import program
from harness.backend import Backend
from harness.engine import Engine, Report
from harness.plan import Plan
from lab import acme, build_cache
from lab.inventory import STACK
from lab.lab import Lab

Alter = Callable[[dict], None]
"""Changes a stack's config in place before the program runs."""


@dataclass
class Applied:
    """What one `up` declared, planned and did."""

    program: program.Program
    plan: Plan
    report: Report


def backend(lab: Lab) -> Backend:
    return Backend(lab.stacks_dir)


def lab_layer(lab: Lab) -> dict:
    """Host keys the lab recorded, and the secrets it generated: what a user would `pulumi config set`."""
    state = lab.state()
    listed = {host.name for host in lab.hosts}  # a host that left the stack file has no key to set
    return {
        f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}": {n: h.host_key for n, h in state.hosts.items() if n in listed},
        f"{CONFIG_NAMESPACE}:{SSH_PRIVATE_KEY_KEY}": state.private_key,
        f"{CONFIG_NAMESPACE}:{VRRP_PASSWORD_KEY}": state.vrrp_password,
        f"{CONFIG_NAMESPACE}:{STATS_PASSWORD_KEY}": state.stats_password,
    }


def config(lab: Lab, profile: str = STACK, alter: Alter | None = None) -> dict:
    """The profile's stack file, the lab's layer on top, then `alter`."""
    values = copy.deepcopy(program.stack_file_config(profile)) | lab_layer(lab)
    if alter:
        alter(values)
    acme.tls_layer(values, acme.lab_pebble(lab))
    return values


def declare(lab: Lab, profile: str = STACK, alter: Alter | None = None, files: Path | None = None) -> program.Program:
    """Run the program for the lab's stack under mocks: what `pulumi preview` would evaluate."""
    return program.run(STACK, config(lab, profile, alter), files)


def engine(lab: Lab, log: Callable[[str], None] = print, stop_after: int | None = None) -> Engine:
    """The engine on the lab's checkpoint; each new Docker daemon gets the base image (no registry here).

    A daemon of a host that left the stack file is only reached to delete what the stack has there: it
    gets nothing."""
    by_address = {str(host.address): host.name for host in lab.hosts}

    balancers = {host.name for host in lab.balancers}

    def seed(address: str) -> None:
        if address in by_address and lab.seed_base_image(by_address[address]) and by_address[address] in balancers:
            build_cache.give(lab.shell, by_address[address])

    return Engine(backend(lab).checkpoint(STACK), program.ROOT, on_docker_ready=seed, log=log, stop_after=stop_after)


def preview(
    lab: Lab, profile: str = STACK, alter: Alter | None = None, files: Path | None = None, replace: Sequence[str] = ()
) -> Plan:
    return engine(lab, log=lambda line: None).preview(declare(lab, profile, alter, files), replace)


def up(
    lab: Lab,
    profile: str = STACK,
    alter: Alter | None = None,
    files: Path | None = None,
    log: Callable[[str], None] = print,
    replace: Sequence[str] = (),
    stop_after: int | None = None,
) -> Applied:
    """`pulumi up` on the lab; `replace`: resource names to replace whatever their diff (`--replace`);
    `stop_after`: stop once that many steps are done (harness.engine.Stopped), as a killed `up` would."""
    declared = declare(lab, profile, alter, files)
    plan, report = engine(lab, log, stop_after).up(declared, replace)
    if any(done.name.endswith("-haproxy-image") and done.op != "delete" for done in report.done):
        build_cache.keep(lab.shell, [host.name for host in lab.balancers])
    return Applied(declared, plan, report)


def host_preparation_targets(declared: program.Program) -> list[str]:
    """`pulumi up --target` URNs that prepare every host: each preparation's commands and their parents.

    `--target` adds only providers and the root stack by itself; a targeted create whose parent has no
    state fails as an untargeted create (pulumi/pulumi step_generator.go; TestTargetUntargetedParent), so
    each command's component goes in the list too.
    """
    targets = []
    for component in [r for r in declared.resources if r.type == "pihalb:index:HostPreparation"]:
        children = [r for r in declared.resources if r.parent == component.urn and r.type == "command:remote:Command"]
        targets += [r.urn for r in (component, *children)]
    return targets


def pulumi_config_set(lab: Lab) -> None:
    """Put the lab layer into the real CLI's stack config, secrets through stdin (never argv)."""
    layer = lab_layer(lab)
    for name, key in layer.pop(f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}").items():
        subprocess.run(
            ["pulumi", "config", "set", "--path", f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}.{name}", key], check=True
        )
    for key, value in layer.items():
        subprocess.run(["pulumi", "config", "set", "--secret", key], input=value, text=True, check=True)


def destroy(lab: Lab, log: Callable[[str], None] = print) -> Report:
    return engine(lab, log).destroy()
