"""How host scripts run, shared by every component: remote steps, the steps that bring a host back, and
the connectivity check.

Pulumi's rules for `command:remote:Command` (pulumi-command 1.2.1) shape this:
- a changed input is an *update*, which runs `create` again (no `update` is set): so a changed script
  re-runs in place, and the old `delete` never runs because of a change;
- `triggers` force a create-before-delete *replacement* whose old `delete` runs at the end of the
  update: so no step with a `delete` has triggers. The only triggered steps are those that bring a host
  back into service (`bring_back_script`), with nothing to delete, and their triggers are values that
  Pulumi's own state changes exactly when the host may be out of service: nothing changes on an `up` of a
  converged stack, so `pulumi preview --expect-no-changes` passes and an update plan (`--plan`) holds;
- the script travels on the command's standard input, never on its command line: a script carrying
  secrets (configs with passwords) is then not in `ps` on the Pi nor in the provider's error messages,
  and its output is not logged.

The connectivity check is not a resource: pulumi-command's `local.run` invoke runs on every preview and
every update (docs/pulumi-rules.md, 6), so it checks each host before anything touches it without ever
showing as a change.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import pulumi
import pulumi_command as command

# Read the whole script from stdin, then run it with stdin closed, so a command inside it that reads
# stdin (apt, docker) cannot swallow the rest of the script. bash whatever the login shell is. Bounded:
# pulumi-command's timeouts cover only the TCP dial, so nothing else stops a hung step.
STEP_TIMEOUT_S = 1800  # the one step timeout: the real provider runs this line, the lab engine waits as long
STEP_KILL_AFTER_S = 30
CHECK_TIMEOUT_S = 120
_FROM_STDIN = 'script=$(cat) && eval "$script" </dev/null'
# A step that takes a host out of service first prints a fresh run id: its stdout then differs on every
# run, and the step that brings the host back keys on that stdout (see bring_back_script).
RUN_ID_PREFIX = "pihalb-run: "
_RUN_ID = f'echo "{RUN_ID_PREFIX}$(cat /proc/sys/kernel/random/uuid)" && '


def run_script_from_stdin(timeout_s: int = STEP_TIMEOUT_S, run_id: bool = False) -> str:
    """The command line that runs the script arriving on stdin, killed after `timeout_s`."""
    return f"exec timeout --kill-after={STEP_KILL_AFTER_S} {timeout_s} bash -c " + shlex.quote(
        (_RUN_ID if run_id else "") + _FROM_STDIN
    )


RUN_SCRIPT_FROM_STDIN = run_script_from_stdin()
RUN_SCRIPT_WITH_RUN_ID = run_script_from_stdin(run_id=True)


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
    takes_out: bool = False,
) -> command.remote.Command:
    """A remote step: its script runs on create and again, in place, whenever the script changes.

    The scripts are idempotent, so a re-run that finds nothing to do reports no change. The previous
    output is not fed back into the environment: runs must not depend on history. `takes_out`: the step
    may take the host out of service (a drain, a leave, the BACKUP's keepalived paused); it prints a
    fresh run id first, so its `stdout` changes on every run and the step that brings the host back
    (`bring_back_script`) is keyed on it.
    """
    return command.remote.Command(
        name,
        connection=connection,
        create=RUN_SCRIPT_WITH_RUN_ID if takes_out else RUN_SCRIPT_FROM_STDIN,
        stdin=script,
        delete=bash_command(delete_script) if delete_script is not None else None,
        add_previous_output_in_env=False,
        logging=command.remote.Logging.NONE if carries_secrets else command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def bring_back_script(
    name: str,
    connection: command.remote.ConnectionArgs,
    script: str,
    *,
    keyed_on: Sequence[pulumi.Input[str]],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> command.remote.Command:
    """A step that puts a host back into service (a server ready again, a balancer rejoining VRRP, the
    BACKUP's keepalived resumed), keyed on what it protects.

    `keyed_on` becomes the step's `triggers`: the `stdout` of the step that takes the host out (a fresh
    run id on each of its runs) and, where a container was replaced in between, that container's `id`.
    Pulumi's state then re-runs this step exactly when it is needed:
    - the take-out step ran (in this update or in one that stopped before this step): its stdout in the
      state differs from the one recorded here, so this step is replaced, which runs its script;
    - the container was replaced: a new `id`;
    - this step's own create never finished (a failed or killed apply): a failed create leaves no state,
      a replacement that failed leaves the old one with the old triggers, so the next `up` runs it again.
    In a preview, the outputs of a take-out step or container that will change are unknown, so the preview
    shows this step as a replacement too. Nothing changes on an `up` of a converged stack: these steps
    then plan as "same". The replacement is create-before-delete, and this step has no `delete`, so the
    old copy's deletion runs nothing. The script is idempotent: it finds nothing to do for a host already
    in service.
    """
    return command.remote.Command(
        name,
        connection=connection,
        create=RUN_SCRIPT_FROM_STDIN,
        stdin=script,
        triggers=list(keyed_on),
        add_previous_output_in_env=False,
        logging=command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def checked_locally(ssh_command: pulumi.Input[str], script: str) -> pulumi.Output[str]:
    """`script` run on a host through the local `ssh` client, by pulumi-command's `local.run` invoke: on
    every `pulumi preview` and every `pulumi up`, as the program runs, and never a resource (so it never
    shows as a change). Returns its stdout; the program fails, naming the host, when it fails.

    `ssh_command` is the local `ssh` command line that runs a script from its stdin on the host: file
    names and options only, never a secret (the key is in a 0600 file). The script (no secrets either)
    goes on stdin.
    """
    result = command.local.run_output(
        command=ssh_command,
        stdin=script,
        add_previous_output_in_env=False,
        logging=command.local.Logging.STDOUT_AND_STDERR,
    )
    return result.stdout
