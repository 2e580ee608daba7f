"""Flapping under stress: steady load through the VIP for a while with both balancers loaded by stress-ng,
and no fault. keepalived must not change state anywhere, the VIP must keep one holder, nothing may fail.
Then what the advert interval costs a balancer: keepalived's CPU time and the VRRP packets per second.

`bench/soak [--stack dev-tuned] [--seconds 600] [--stress "STRESS-NG ARGS"]` writes
docs/bench/soak-<stack>.json. The stress runs on each balancer as a transient systemd unit, bounded by its
own `--timeout` (and stopped at the end), like a Pi's owner running it over SSH.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.runs import OUT, cpu_seconds, quiet  # noqa: E402
from bench.takeover import bridge, journal_times  # noqa: E402
from drills import faults, stack  # noqa: E402
from drills.load import Load  # noqa: E402
from lab.lab import Lab  # noqa: E402

# A Pi writing to its SD card while busy: two CPU hogs at 80 %, a writer of 64 MB files and a mixed I/O
# worker (write, read, fsync) per balancer; every worker stops at the timeout by itself.
STRESS = "--cpu 2 --cpu-load 80 --hdd 1 --hdd-bytes 64M --iomix 1 --iomix-bytes 64M"
STRESS_UNIT = "pihalb-bench-stress"
COST_WINDOW_S = 30.0


def start_stress(lab: Lab, arguments: str, seconds: float) -> str:
    command = f"stress-ng {arguments} --timeout {round(seconds)}s --temp-path /var/tmp"
    for balancer in lab.balancers:
        lab.sh(balancer.name, f"systemd-run --unit {STRESS_UNIT} --collect --quiet {command}")
    return command


def stop_stress(lab: Lab) -> None:
    for balancer in lab.balancers:
        lab.sh(balancer.name, f"systemctl stop {STRESS_UNIT} 2>/dev/null || true", check=False)


def keepalived_cpu_s(lab: Lab, name: str) -> float:
    """User + system CPU seconds of every keepalived process on `name` so far (bench.runs.cpu_seconds)."""
    return sum(cpu_seconds(lab, name, "$(pgrep keepalived)"))


def vrrp_packets(lab: Lab, seconds: float) -> int:
    """VRRP packets seen on the lab bridge in `seconds` (adverts from both balancers)."""
    command = ["timeout", str(seconds), "tcpdump", "-i", bridge(lab), "-n", "-q", "-l", "ip proto 112"]
    lines = subprocess.run(command, capture_output=True, text=True).stdout.splitlines()
    return len(lines)


def cost(lab: Lab, seconds: float = COST_WINDOW_S) -> dict:
    """What the advert interval costs, measured over `seconds` of quiet: CPU per balancer, packets."""
    before = {b.name: keepalived_cpu_s(lab, b.name) for b in lab.balancers}
    packets = vrrp_packets(lab, seconds)
    after = {b.name: keepalived_cpu_s(lab, b.name) for b in lab.balancers}
    return {
        "window_s": seconds,
        "keepalived_cpu_percent": {n: round(100 * (after[n] - before[n]) / seconds, 2) for n in before},
        "vrrp_packets_per_s": round(packets / seconds, 1),
    }


def soak(lab: Lab, stack_name: str, seconds: float, stress: str) -> dict:
    faults.undo_all(lab)
    stack.wait_serving(lab)
    started = time.time()
    command = start_stress(lab, stress, seconds) if stress else None
    try:
        recording = Load.through_vip(lab, 100, seconds, timeout=1.0).start().join()
    finally:
        stop_stress(lab)
    transitions = {
        b.name: len(journal_times(lab, b.name, started, r"Entering \w+ STATE", "-u", "keepalived"))
        for b in lab.balancers
    }
    return {
        "stack": stack_name,
        "seconds": seconds,
        "stress_on_each_balancer": command,
        "rate_per_s": 100,
        "requests": len(recording.samples),
        "failed": len(recording.failed),
        "keepalived_transitions": transitions,
        "vip_holders_seen": sorted({holder for _, holder in recording.vip}),
        "vip_samples": len(recording.vip),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak", description=__doc__)
    parser.add_argument("--stack", default="dev-tuned")
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--stress", default=STRESS, help="stress-ng's arguments on each balancer ('' for none)")
    args = parser.parse_args(argv)
    lab = Lab.from_stack()
    lab.up()
    stack.apply(lab, log=quiet, profile=args.stack)
    result = soak(lab, args.stack, args.seconds, args.stress)
    result["cost"] = cost(lab)
    stress = shlex.quote(args.stress)
    result["command"] = f"bench/soak --stack {args.stack} --seconds {args.seconds:g} --stress {stress}"
    (OUT / f"soak-{args.stack}.json").write_text(json.dumps(result, indent=1))
    print("soak: " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
