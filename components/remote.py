"""One way to run a host script over SSH, shared by every component."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

import pulumi
import pulumi_command as command

from components.render import sha256


def bash_command(script: pulumi.Input[str]) -> pulumi.Output[str]:
    """Run the script with bash whatever the login shell is."""
    return pulumi.Output.from_input(script).apply(lambda text: f"exec bash -c {shlex.quote(text)}")


def remote_script(
    name: str,
    connection: command.remote.ConnectionArgs,
    script: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
    delete_script: pulumi.Input[str] | None = None,
) -> command.remote.Command:
    """A remote command re-run exactly when its script (inputs included) changes.

    The trigger is the script's hash, so a changed template or value re-runs it, and an unchanged one
    does not. The scripts are idempotent, so a re-run that finds nothing to do reports no change.
    The previous output is not fed back into the environment: runs must not depend on history.
    """
    create = bash_command(script)
    trigger = pulumi.Output.secret(pulumi.Output.from_input(script).apply(sha256))
    return command.remote.Command(
        name,
        connection=connection,
        create=create,
        delete=bash_command(delete_script) if delete_script is not None else None,
        triggers=[trigger],
        add_previous_output_in_env=False,
        logging=command.remote.Logging.STDOUT_AND_STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
