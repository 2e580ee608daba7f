"""The lab's hosts operated as real Pis are, by the same ops code: `python -m ops`'s scripts, procedures
and verdict, sent through the lab's console cable (`docker exec` as root) instead of SSH.

What the lab tests and the bench do to a running cluster as an operator would (a rolling engine restart,
HAProxy killed for a drill, a handover) goes through here, so there is one copy of each action.
"""

from __future__ import annotations

from docker.errors import APIError

from lab import stack as lab_stack
from lab.lab import Lab
from lab.output import LabError
from lab.stack import Alter
from ops.config import held_as_secrets, settings_from
from ops.hosts import HostUnreachable, ScriptedFleet


class ConsoleRunner:
    """`ops.hosts.Runner` over `docker exec` into the lab's hosts (root; `sudo -n` is a no-op there)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def run(self, name: str, script: str, timeout: float, check: bool = True) -> str:
        try:
            code, out, err = self.lab.shell.bash(name, script, timeout=timeout)
        except (LabError, APIError) as error:  # a host stopped, removed, or docker exec failing
            raise HostUnreachable(f"{name}: {error}") from error
        if code == 124:
            raise HostUnreachable(f"{name}: timed out after {timeout:.0f}s")
        if check and code != 0:
            raise HostUnreachable(f"{name}: exit {code}: {err.strip() or out.strip()}")
        return out


def lab_fleet(lab: Lab, profile: str | None = None, alter: Alter | None = None) -> ScriptedFleet:
    """The lab's hosts operated through `ConsoleRunner`, with the settings of the profile applied to them
    (its stack file, `alter`ed, read as `python -m ops --stack` reads it). Without a profile: the lab's
    own inventory settings, enough for an action on one host (no status, no procedure: those read the
    stack's VRRP and health-check values)."""
    if profile is None:
        return ScriptedFleet(lab.inventory.settings, ConsoleRunner(lab))
    settings, _ = settings_from(held_as_secrets(lab_stack.config(lab, profile, alter)))
    return ScriptedFleet(settings, ConsoleRunner(lab))
