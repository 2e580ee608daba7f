"""`python -m harness preview|up|destroy STACK [--replace NAME]`: the lab engine, for a stack's program and checkpoint.

preview prints the plan and touches nothing; up applies it and prints the stack outputs; destroy
deletes everything the checkpoint holds, running the delete scripts. The host keys and secrets come
from `.pihalb-engine/STACK/config.json` (a JSON object of namespaced keys, written by you, 0600). The
lab's own stack goes through `python -m lab preview|deploy|destroy`, which supplies the lab's keys and
seeds its base image into each new Docker daemon (a fresh lab host needs it before its first build).
"""

from __future__ import annotations

import argparse
import json
import sys

from components.settings import ConfigError
from harness import program
from harness.backend import ROOT, Backend
from harness.command_ops import StepError
from harness.engine import Engine
from harness.plan import preview_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("verb", choices=["preview", "up", "destroy"])
    parser.add_argument("stack")
    parser.add_argument(
        "--replace", action="append", default=[], metavar="NAME|URN", help="replace it whatever its diff (up, preview)"
    )
    args = parser.parse_args(argv)
    backend = Backend()
    engine = Engine(backend.checkpoint(args.stack), ROOT)
    try:
        if args.verb == "destroy":
            engine.destroy()
            print(f"destroyed: the checkpoint of {args.stack} holds no resources")
            return 0
        declared = program.run(args.stack, backend.config(args.stack))
        if args.verb == "preview":
            print(preview_text(engine.preview(declared, args.replace), args.stack))
            return 0
        plan, _ = engine.up(declared, args.replace)
        print(preview_text(plan, args.stack, verb="Updated"))
        print("Outputs:")
        print(json.dumps(declared.outputs, indent=2))
    except ConfigError as error:  # as the Pulumi CLI prints a RunError: the message, no traceback
        print(
            f"error: {error}\n(values that cannot live in Pulumi.{args.stack}.yaml go in "
            f"{backend.stack_dir(args.stack) / 'config.json'})",
            file=sys.stderr,
        )
        return 1
    except StepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
