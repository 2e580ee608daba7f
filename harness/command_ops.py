"""remote.Command, as pulumi-command 1.2.1 carries it out (provider/pkg/provider/remote/*.go).

- Create runs `create`; Update runs `update`, or `create` when no `update` is set; Delete runs the
  *old* `delete` over the *old* connection, and nothing when it has none.
- `stdin` is written to the command's standard input; it never appears on a command line.
- `stdout` and `stderr` are outputs (one trailing newline trimmed); a later step may be keyed on them.
- The connection is dialled `dialErrorLimit` times (default 10) with `perDialTimeout` each, and only
  the pinned `hostKey` is accepted.
An input this engine does not know how to honour is an error, never skipped.
"""

from __future__ import annotations

import secrets

from components.remote import STEP_KILL_AFTER_S, STEP_TIMEOUT_S
from harness.ssh import Login, SshError
from harness.state import Resource

KNOWN_INPUTS = {
    "connection",
    "create",
    "update",
    "delete",
    "triggers",
    "stdin",
    "addPreviousOutputInEnv",
    "logging",
}
KNOWN_CONNECTION = {"host", "port", "user", "privateKey", "hostKey", "dialErrorLimit", "perDialTimeout"}
CHANGED_MARKER = "pihalb-changed: "
# A step runs under the host's own `timeout` (components/remote.py, as a real `pulumi up` runs it), so a
# silent step is ended there, after the same time; this bound, just past it, only covers a lost connection.
TIMEOUT_S = STEP_TIMEOUT_S + STEP_KILL_AFTER_S + 10


class StepError(RuntimeError):
    """A step failed; the message names the resource and the host, never a secret input."""


class InitError(StepError):
    """A create that failed after the thing it made exists: Pulumi keeps the resource, with `initErrors`."""

    def __init__(self, message: str, id_: str, outputs: dict) -> None:
        super().__init__(message)
        self.id, self.outputs = id_, outputs


def require_known(resource: Resource, inputs: dict, known: set[str], where: str = "") -> None:
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise StepError(f"{resource.name}: the lab engine cannot honour declared {where}inputs {unknown}")


def login(resource: Resource) -> tuple[Login, int, float]:
    connection = resource.inputs["connection"]
    require_known(resource, connection, KNOWN_CONNECTION, "connection ")
    target = Login(
        host=connection["host"],
        port=int(connection.get("port", 22)),
        user=connection["user"],
        private_key=connection["privateKey"],
        host_key=connection["hostKey"],
    )
    return target, int(connection.get("dialErrorLimit", 10)), float(connection.get("perDialTimeout", 15))


class CommandOps:
    """Create, update and delete of `command:remote:Command`."""

    def create(self, new: Resource) -> tuple[str, dict]:
        return secrets.token_hex(8), self._run(new, new.inputs["create"])

    def update(self, old: Resource, new: Resource) -> dict:
        return self._run(new, new.inputs.get("update") or new.inputs["create"])

    def delete(self, old: Resource) -> None:
        if old.inputs.get("delete"):
            self._run(old, old.inputs["delete"], stdin=False)

    def _run(self, resource: Resource, command: str, stdin: bool = True) -> dict:
        inputs = resource.inputs
        require_known(resource, inputs, KNOWN_INPUTS)
        if inputs.get("addPreviousOutputInEnv", True):
            raise StepError(f"{resource.name}: addPreviousOutputInEnv must be false (runs must not depend on history)")
        target, attempts, dial_timeout = login(resource)
        try:
            code, out, err = target.run(
                command, stdin=inputs.get("stdin") if stdin else None, timeout=TIMEOUT_S, attempts=attempts
            )
        except SshError as error:
            raise StepError(f"step {resource.name}: {error}") from error
        if code != 0:
            raise StepError(
                f"step {resource.name} failed on host {target.host} (exit {code}):\n{out[-2000:]}\n{err[-3000:]}"
            )
        # Outputs as pulumi-command keeps them (remote/commandOutputs.go): one trailing newline trimmed.
        return {**inputs, "stdout": out.removesuffix("\n"), "stderr": err.removesuffix("\n")}


def host_changed(outputs: dict) -> bool | None:
    """What the host script said it changed (`pihalb-changed: yes|no`), if it said."""
    markers = [line for line in outputs.get("stdout", "").splitlines() if line.startswith(CHANGED_MARKER)]
    return markers[-1].removeprefix(CHANGED_MARKER) == "yes" if markers else None
