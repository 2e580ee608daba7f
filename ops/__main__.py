"""`python -m ops <verb> --stack <name>`: operate a deployed cluster (the lab's or your Pis').

  status    per host: SSH, Docker, containers, keepalived and its VRRP state and last transitions, the
            VIP, HAProxy's view of each server, with TLS on each balancer's certificate. Exit 0 healthy,
            1 degraded, 2 outage or split brain.
  drill     the paper's failover test, bounded: refused unless healthy; a probe on the VIP; HAProxy killed
            on the MASTER (restart policy paused); the VIP moves; restored; the VIP comes back.
  reboot    rolling reboot, one host at a time: servers (drained), the BACKUP, the MASTER (VIP handed over).
  restart-engines  the same roll restarting dockerd instead of rebooting (a Docker engine upgrade's restart).
  shutdown  the whole cluster: keepalived off on BACKUP then MASTER, balancers off, servers off.

Exit codes of drill, reboot, restart-engines, shutdown: 0 done, 1 failed midway (see the output), 3 refused (cluster not
healthy, or shutdown without --yes-really). 4: the stack's config is unusable. 64: bad arguments.
Host keys and secrets come from `pulumi config --show-secrets` when the Pulumi CLI is on PATH, else
from the lab's state (lab/.state/).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import NoReturn

from ops import drill as drill_verb
from ops import rolling, status
from ops.config import OpsConfigError, load_stack
from ops.hosts import Fleet, HostUnreachable, ScriptedFleet, SshRunner
from ops.probe import Probe, get

CONFIG_ERROR, USAGE = 4, 64


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # exit 2 means "outage" for status: usage errors are 64
        self.print_usage(sys.stderr)
        self.exit(USAGE, f"{self.prog}: error: {message}\n")


def parser() -> Parser:
    top = Parser(prog="python -m ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = top.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for name, text in (
        ("status", "health of every host; exit 0 healthy, 1 degraded, 2 outage or split brain"),
        ("drill", "kill HAProxy on the MASTER, watch the VIP move and come back, measure the outage"),
        ("reboot", "rolling reboot, one host at a time, the cluster healthy between hosts"),
        ("restart-engines", "rolling dockerd restart, as reboot does it (an engine upgrade's restart)"),
        ("shutdown", "power the whole cluster off (needs --yes-really)"),
    ):
        verb = verbs.add_parser(name, help=text, description=text)
        verb.add_argument("--stack", required=True, help="the stack (Pulumi.<stack>.yaml), e.g. pi or dev")
        if name == "status":
            verb.add_argument("--json", action="store_true", help="one JSON document instead of the table")
        if name == "drill":
            verb.add_argument("--rate", type=int, default=20, help="probe requests per second (default 20)")
            verb.add_argument("--max-seconds", type=float, default=60, help="probe length bound (default 60)")
        if name == "shutdown":
            verb.add_argument("--yes-really", action="store_true", help="confirm: every host is powered off")
    return top


def main(argv: list[str] | None = None, cluster: Fleet | None = None) -> int:
    args = parser().parse_args(argv)
    if args.verb == "shutdown" and not args.yes_really:
        print("shutdown refused: it powers off every host of the stack; add --yes-really", file=sys.stderr)
        return rolling.REFUSED
    if cluster is None:
        try:
            config = load_stack(args.stack)
        except (OpsConfigError, ValueError) as error:  # ConfigError is a ValueError
            print(f"ops: stack {args.stack}: {error}", file=sys.stderr)
            return CONFIG_ERROR
        cluster = ScriptedFleet(config.settings, SshRunner(config))
    try:
        return run(args, cluster)
    except HostUnreachable as error:
        print(f"ops: {args.verb} stopped: {error}", file=sys.stderr)
        return rolling.FAILED


def run(args: argparse.Namespace, cluster: Fleet) -> int:
    settings = cluster.settings
    if args.verb == "status":
        facts = cluster.facts()
        result = status.verdict(settings, facts)
        if args.json:
            print(json.dumps(status.document(args.stack, settings, facts, result), indent=2))
        else:
            print(status.table(settings, facts, result))
        return result.code
    if args.verb == "drill":
        vip, port = str(settings.cluster.vrrp.vip.ip), settings.cluster.haproxy.frontend_port
        probe = Probe(lambda: get(vip, port, timeout=1.0), rate=args.rate, max_seconds=args.max_seconds, timeout=1.0)
        return drill_verb.drill(cluster, probe, say=_say)
    ops = rolling.Rolling(cluster, say=_say)
    verb = {"reboot": ops.reboot, "restart-engines": ops.restart_engines, "shutdown": ops.shutdown}[args.verb]
    return verb()


def _say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
