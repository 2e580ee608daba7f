"""Invokes (provider functions) the program calls while it runs, as the providers carry them out.

Pulumi runs an invoke whenever the program calls it, in a preview and in an update alike (the engine's
resource monitor hands it to the provider with `Preview` set, and pulumi-command's `local.run` ignores
it: docs/pulumi-rules.md, 6). The lab engine runs the program once per preview and once per up, so it
runs the invokes there too, before it plans anything; a failed invoke fails the program, and so the run.
The only invoke the program makes is `command:local:run` (the connectivity check); any other is an error.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

LOCAL_RUN = "command:local:run"
# pulumi-command 1.2.1 local/base.go BaseInputs + local/run.go RunInputs: what `local.run` accepts.
LOCAL_RUN_INPUTS = {
    "command",
    "stdin",
    "logging",
    "interpreter",
    "dir",
    "environment",
    "assetPaths",
    "archivePaths",
    "addPreviousOutputInEnv",
}
# Those the lab engine carries out; the rest (assets and archives of files the command leaves) are refused.
HONOURED = LOCAL_RUN_INPUTS - {"assetPaths", "archivePaths"}
LOGGING = {"stdout", "stderr", "stdoutAndStderr", "none"}
TIMEOUT_S = 900  # the lab engine's own bound; pulumi-command has none (its context only)

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
"""(token, arguments) -> the function's result, as the provider returns it."""


class InvokeError(RuntimeError):
    """An invoke failed: the program fails with this message."""


def run(token: str, args: dict[str, Any]) -> dict[str, Any]:
    """The lab engine's invokes: each runs for real, as the provider would."""
    if token != LOCAL_RUN:
        raise InvokeError(f"the lab engine cannot run the invoke {token}")
    return local_run(args)


def local_run(args: dict[str, Any]) -> dict[str, Any]:
    """`command:local:run` as pulumi-command 1.2.1 runs it (provider/pkg/provider/local/commandOutputs.go
    `run`, runController.go `Invoke`): `interpreter` (default `/bin/sh -c`) with `command` as its last
    argument, in `dir` (default: the program's working directory), with the process's environment plus
    `environment`, `stdin` on its standard input when non-empty. A non-zero exit is an error that names
    the command and carries its combined output; otherwise the result is the inputs plus `stdout` and
    `stderr`, each without one trailing newline. There is no previous output for an invoke, so
    `addPreviousOutputInEnv` adds nothing."""
    unknown = sorted(set(args) - LOCAL_RUN_INPUTS)
    if unknown:
        raise InvokeError(f"{LOCAL_RUN}: no such inputs {unknown}")
    unsupported = sorted(k for k in set(args) - HONOURED if args[k] is not None)
    if unsupported:
        raise InvokeError(f"{LOCAL_RUN}: the lab engine cannot honour the inputs {unsupported}")
    command = args.get("command")
    if not isinstance(command, str):
        raise InvokeError(f"{LOCAL_RUN}: `command` is required")
    logging = args.get("logging")
    if logging is not None and logging not in LOGGING:
        raise InvokeError(f"{LOCAL_RUN}: logging {logging!r} is not one of {sorted(LOGGING)}")
    interpreter = list(args.get("interpreter") or ["/bin/sh", "-c"])
    environment = {**os.environ, **(args.get("environment") or {})}
    stdin = args.get("stdin") or None
    try:
        done = subprocess.run(
            [*interpreter, command],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=args.get("dir") or os.getcwd(),
            env=environment,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise InvokeError(f"{LOCAL_RUN}: running {json.dumps(command)} took longer than {TIMEOUT_S}s") from error
    except OSError as error:
        raise InvokeError(f"{LOCAL_RUN}: running {json.dumps(command)}: {error}") from error
    if done.returncode != 0:
        # Go's `%w: running %q:\n%s` with exec's "exit status N"; stdout then stderr stand in for the
        # interleaved stream pulumi-command captures.
        raise InvokeError(
            f"invoke of {LOCAL_RUN} failed: exit status {done.returncode}: running {json.dumps(command)}:\n"
            f"{done.stdout}{done.stderr}".rstrip()
        )
    return {**args, "stdout": done.stdout.removesuffix("\n"), "stderr": done.stderr.removesuffix("\n")}
