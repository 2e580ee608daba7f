"""Every stopping point of every roll: a change applied and stopped right after step N, for every N, then
`up` again, and the cluster checked for convergence.

`bench/sweep [--classes page,keepalived,...] [--profile dev-tuned]` needs the lab deployed with the profile
(it applies it first). Each stopping point costs two applies: the change, stopped after N steps (the steps
in flight finish, as after a killed `pulumi up`), and the `up` that must heal it. The next stopping point
makes the next change of the same class (a new comment, the value toggled back), so the cluster never has to
be reset. Writes docs/bench/sweep.json and the table docs/bench/sweep.md (change class x stopping point ->
converged), which the README quotes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.changes import KEEPALIVED_TOGGLES  # noqa: E402
from components import names  # noqa: E402
from drills import stack  # noqa: E402
from drills.observe import get_vip, servers_seen_by, wait_until  # noqa: E402
from harness.engine import Stopped  # noqa: E402
from lab.lab import Lab  # noqa: E402
from lab.output import LabError  # noqa: E402

OUT = ROOT / "docs" / "bench"
SETTLE_S = 90  # how long a converged cluster may take to show it (health checks, VRRP preemption)


@dataclass
class Change:
    """What a sweep has changed so far: a copy of files/ and cluster values, applied on top of a profile."""

    profile: str
    files: Path
    values: dict[str, object] = field(default_factory=dict)
    made: int = 0

    def alter(self, config: dict) -> None:
        stack.apply_values(config, self.values)

    def append(self, relative: str) -> None:
        self.made += 1
        with open(self.files / relative, "a") as handle:
            handle.write(f"# sweep change {self.made}\n" if not relative.endswith(".j2") else f"{{# {self.made} #}}\n")

    def toggle(self, path: str, first: object, second: object) -> None:
        self.values[path] = second if self.values.get(path, first) == first else first


def _server_out_and_back(lab: Lab, change: Change) -> None:
    """The last server leaves the stack, or comes back: one toggle per stopping point."""
    hosts = stack.cluster(stack.lab_stack.config(lab, change.profile))["hosts"]
    leaving = lab.servers[-1].name
    if "hosts" in change.values:
        del change.values["hosts"]
    else:
        change.values["hosts"] = [h for h in hosts if h["name"] != leaving]


CLASSES: dict[str, Callable[[Lab, Change], None]] = {
    "page": lambda lab, c: c.append("templates/index.html.j2"),
    "nginx-image": lambda lab, c: c.append("nginx/Dockerfile"),
    "haproxy-image": lambda lab, c: c.append("haproxy/Dockerfile"),
    "haproxy-cfg": lambda lab, c: c.toggle("haproxy.timeouts.clientMs", 10000, 11000),
    "keepalived": lambda lab, c: c.toggle(*KEEPALIVED_TOGGLES["paper" if c.profile == "dev" else "tuned"]),
    "host-scripts": lambda lab, c: [c.append(f"scripts/{n}") for n in ("vrrp-host.sh", "haproxy-watch.sh")],
    "server-out-and-back": _server_out_and_back,
}


def ops_status(profile: str) -> int:
    """`python -m ops status` on the lab's stack: 0 healthy."""
    command = [sys.executable, "-m", "ops", "status", "--stack", profile]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120).returncode


def convergence(lab: Lab, change: Change) -> dict[str, bool]:
    """What a converged cluster shows, each check on its own (waiting, bounded, for what takes time)."""
    master, backup = lab.master.name, lab.backup.name
    servers = {h.name for h in lab.servers} - (set() if "hosts" not in change.values else {lab.servers[-1].name})

    def settled(what: str, predicate: Callable[[], object]) -> bool:
        try:
            wait_until(what, predicate, SETTLE_S, interval=1)
            return True
        except (TimeoutError, LabError, OSError):
            return False

    def balancer_sh(name: str, command: str) -> str:
        return lab.read(name, command, check=False)[1].strip()

    return {
        "serving": settled("the site", lambda: get_vip(lab).status == 200),
        "servers UP on both": settled(
            "every server UP",
            lambda: all(servers_seen_by(lab, b.name) == dict.fromkeys(servers, "UP") for b in lab.balancers),
        ),
        "keepalived active on both": all(
            balancer_sh(b.name, "systemctl is-active keepalived") == "active" for b in lab.balancers
        ),
        "VIP on the MASTER": settled(f"the VIP on {master}", lambda: lab.vip_holders() == [master]),
        "no handover flag": all(
            balancer_sh(b, f"cat {names.VRRP_HANDOVER_FILE} 2>/dev/null || echo 0") == "0" for b in (master, backup)
        ),
        "ops status healthy": settled("ops status", lambda: ops_status(change.profile) == 0),
        "preview empty": not stack.lab_stack.preview(lab, change.profile, change.alter, files=change.files).kinds(),
    }


def sweep(lab: Lab, name: str, change: Change, limit: int | None = None, log=print) -> list[dict]:
    """Stopping points 1, 2, ... of class `name` until a change completes within the limit."""
    rows = []
    stop_after = 1
    while limit is None or stop_after <= limit:
        CLASSES[name](lab, change)
        started = time.monotonic()
        try:
            applied = stack.lab_stack.up(
                lab, change.profile, change.alter, change.files, log=lambda line: None, stop_after=stop_after
            )
        except Stopped:
            stopped = True
            total = None
        else:
            stopped, total = False, len(applied.report.done)
        healed = stack.lab_stack.up(lab, change.profile, change.alter, change.files, log=lambda line: None)
        checks = convergence(lab, change)
        row = {
            "class": name,
            "stopped_after": stop_after if stopped else None,
            "steps_of_the_change": total,
            "steps_of_the_healing_up": len([d for d in healed.report.done if d.op != "same"]),
            "converged": all(checks.values()),
            "checks": checks,
            "seconds": round(time.monotonic() - started, 1),
        }
        rows.append(row)
        point = stop_after if stopped else "none (ran to the end)"
        log(f"{name}: stopped after {point} -> converged {row['converged']}")
        if not row["converged"]:
            log(f"  failed checks: {[k for k, ok in checks.items() if not ok]}")
        if not stopped:
            break
        stop_after += 1
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| change class | stopping points (after step N) | converged | failed checks |", "|---|---|---|---|"]
    for name in dict.fromkeys(r["class"] for r in rows):
        mine = [r for r in rows if r["class"] == name]
        points = [r["stopped_after"] for r in mine if r["stopped_after"] is not None]
        bad = [r for r in mine if not r["converged"]]
        span = f"1-{max(points)} (and the whole change)" if points else "the whole change"
        failed = "; ".join(f"N={r['stopped_after']}: {[k for k, ok in r['checks'].items() if not ok]}" for r in bad)
        lines.append(f"| {name} | {span} | {len(mine) - len(bad)} of {len(mine)} | {failed or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", default=",".join(CLASSES), help=f"comma-separated, of {', '.join(CLASSES)}")
    parser.add_argument("--profile", default="dev-tuned")
    parser.add_argument("--limit", type=int, default=None, help="at most this many stopping points per class")
    args = parser.parse_args(argv)
    lab = Lab.from_stack()
    change = Change(args.profile, OUT / "tmp-sweep")
    shutil.rmtree(change.files, ignore_errors=True)
    shutil.copytree(ROOT / "files", change.files)
    started = time.monotonic()
    stack.lab_stack.up(lab, change.profile, change.alter, change.files, log=lambda line: None)
    rows = []
    for name in args.classes.split(","):
        rows += sweep(lab, name, change, args.limit)
    command = "bench/sweep " + " ".join(argv if argv is not None else sys.argv[1:])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    (OUT / "sweep.md").write_text(
        f"# Stopping-point sweep\n\n`{command.strip()}` on the lab, {time.strftime('%Y-%m-%d')}, "
        f"{time.monotonic() - started:.0f} s in all.\n\n" + table(rows)
    )
    shutil.rmtree(change.files, ignore_errors=True)
    print(table(rows))
    return 0 if all(r["converged"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
