"""One way to run a host script over SSH, shared by every component.

Pulumi's rules for `command:remote:Command` (pulumi-command 1.2.1) shape this:
- a changed input is an *update*, which runs `create` again (no `update` is set): so a changed script
  re-runs in place, and the old `delete` never runs because of a change;
- `triggers` force a create-before-delete *replacement* whose old `delete` runs at the end of the
  update: so no step with a `delete` has triggers; the only triggered steps are those run on every
  up (the connectivity check, the steps that put a host back into service), with nothing to delete;
- the script travels on the command's standard input, never on its command line: a script carrying
  secrets (configs with passwords) is then not in `ps` on the Pi nor in the provider's error messages,
  and its output is not logged.
"""

from __future__ import annotations

import shlex
import uuid
from collections.abc import Sequence

import pulumi
import pulumi_command as command

# Read the whole script from stdin, then run it with stdin closed, so a command inside it that reads
# stdin (apt, docker) cannot swallow the rest of the script. bash whatever the login shell is. Bounded:
# pulumi-command's timeouts cover only the TCP dial, so nothing else stops a hung step.
STEP_TIMEOUT_S = 1800
RUN_SCRIPT_FROM_STDIN = f"exec timeout --kill-after=30 {STEP_TIMEOUT_S} bash -c " + shlex.quote(
    'script=$(cat) && eval "$script" </dev/null'
)


def bash_command(script: str) -> str:
    """A script small and secret-free enough for the command line (the delete scripts)."""
    return f"exec bash -c {shlex.quote(script)}"


def remote_script(
    name: str,
    connection: command.remote.ConnectionArgs,
    script: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    delete_script: str | None = None,
    carries_secrets: bool = False,
) -> command.remote.Command:
    """A remote step: its script runs on create and again, in place, whenever the script changes.

    The scripts are idempotent, so a re-run that finds nothing to do reports no change. The previous
    output is not fed back into the environment: runs must not depend on history.
    """
    return command.remote.Command(
        name,
        connection=connection,
        create=RUN_SCRIPT_FROM_STDIN,
        stdin=script,
        delete=bash_command(delete_script) if delete_script is not None else None,
        add_previous_output_in_env=False,
        logging=command.remote.Logging.NONE if carries_secrets else command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def every_run_script(
    name: str,
    connection: command.remote.ConnectionArgs,
    script: str,
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> command.remote.Command:
    """A step that runs on every `pulumi up`: a fresh trigger value replaces it each time.

    pulumi-command's documented way to re-run a command is a changed trigger; the replacement is
    create-before-delete and this step has no `delete`, so nothing is undone. Steps that depend on it
    wait for it, and are not re-run because of it. For checks, and for the steps that bring a host
    back into service: those must run even when the apply that took it out failed halfway.
    """
    return command.remote.Command(
        name,
        connection=connection,
        create=RUN_SCRIPT_FROM_STDIN,
        stdin=script,
        triggers=[uuid.uuid4().hex],
        add_previous_output_in_env=False,
        logging=command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
