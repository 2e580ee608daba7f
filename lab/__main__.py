"""`python -m lab up | down [--all] | status | seed | served | preview | deploy | destroy [--profile P] [...]`.

Manage the five simulated Pis from the repository root, and plan/apply/destroy the program on them with
the lab engine (Pulumi's rules; `preview` touches nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict

from components.cluster import vip_held
from components.settings import ConfigError
from harness.command_ops import StepError
from harness.plan import preview_text
from lab import stack
from lab.inventory import STACK
from lab.lab import HostStatus, Lab
from lab.output import LabError, say

STATUS_COLUMNS = ["name", "address", "container", "systemd", "docker", "keepalived", "vip"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="create or reuse the hosts and wait until systemd and SSH answer")
    down = commands.add_parser("down", help="remove the hosts, their volumes, the network and lab/.state/")
    down.add_argument(
        "--all", action="store_true", help="also remove the host image, an imported base image, the kept HAProxy build"
    )
    commands.add_parser(
        "status",
        help="per host: container, systemd, docker, keepalived, VIP; exit 2 unless exactly one host holds the VIP",
    )
    commands.add_parser("seed", help="copy the base image into every host daemon that Docker runs in")
    commands.add_parser("targets", help="the --target URNs of every host's preparation (for scripts/deploy-dev)")
    commands.add_parser("served", help="wait (bounded) until a page comes through the VIP, and say where")
    commands.add_parser("config-set", help="`pulumi config set` the lab's host keys and secrets (real CLI only)")
    for verb, text in (
        ("preview", "print what `up` would do to the lab's stack, touching nothing"),
        ("deploy", "apply the program to the lab (the lab engine's `pulumi up`), then print the outputs"),
        ("destroy", "delete everything the lab's stack holds, running the delete scripts"),
    ):
        engine_verb = commands.add_parser(verb, help=text)
        engine_verb.add_argument("--profile", default="dev", help="stack file to take the config from (dev-tuned)")
        if verb != "destroy":
            engine_verb.add_argument(
                "--replace", action="append", default=[], metavar="NAME", help="replace it whatever its diff"
            )
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        lab = Lab.from_stack()
        if args.command == "up":
            lab.up()
        elif args.command == "down":
            lab.down(all_images=args.all)
        elif args.command == "targets":
            print("\n".join(stack.host_preparation_targets(stack.declare(lab))))
            return 0
        elif args.command == "served":
            say_served(lab)
        elif args.command == "config-set":
            stack.pulumi_config_set(lab)
        elif args.command in ("preview", "deploy", "destroy"):
            return run_engine(lab, args.command, args.profile, getattr(args, "replace", []))
        elif args.command == "seed":
            for row in lab.status():
                if row.docker == "active":
                    lab.seed_base_image(row.name)
        else:
            rows = lab.status()
            print_status(rows)
            holders = [row.name for row in rows if row.vip]
            print(vip_held(lab.vip.ip, holders))
            if len(holders) != 1:
                return 2
    except LabError as error:
        print(f"lab: error: {error}", file=sys.stderr)
        return 1
    say(f"`{args.command}` took {time.monotonic() - started:.1f}s")
    return 0


def run_engine(lab: Lab, verb: str, profile: str, replace: list[str]) -> int:
    try:
        if verb == "preview":
            print(preview_text(stack.preview(lab, profile, replace=replace), STACK))
        elif verb == "destroy":
            stack.destroy(lab)
            print(f"destroyed: the lab's stack {STACK} holds no resources")
        else:
            applied = stack.up(lab, profile, replace=replace)
            print(preview_text(applied.plan, STACK, verb="Updated"))
            print("Outputs:\n" + json.dumps(applied.program.outputs, indent=2))
            say_served(lab)
    except (StepError, ConfigError) as error:
        print(f"lab: {verb} failed: {error}", file=sys.stderr)
        return 1
    return 0


def say_served(lab: Lab) -> None:
    """Wait (bounded) until a page comes through the VIP, then say where the site is served."""
    say(f"served at {lab.vip_url} ({lab.wait_served()})")


def print_status(rows: list[HostStatus]) -> None:
    cells = [[str(asdict(row)[column]) for column in STATUS_COLUMNS] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(STATUS_COLUMNS)]
    for line in [STATUS_COLUMNS, *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


if __name__ == "__main__":
    sys.exit(main())
