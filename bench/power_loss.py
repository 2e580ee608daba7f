"""A whole-cluster power loss, healed by the hosts alone: every host killed at once, then switched on in a
random order with random delays (drills/power.py), and no `up`. Per run, from the last host's start:

- `first_served_s`: the first page through the VIP (a request every 50 ms; 0 when the hosts switched on
  before the last one already serve it), and `first_served_since_power_s` the same from the first switch-on;
- `healthy_s`: every server UP on both balancers, the VIP on the MASTER alone, the site answering
  (polled every 0.5 s), and `python -m ops status` then exits 0.

`bench/power-loss [--stack dev-tuned] [--runs 5] [--seed N]` writes docs/bench/power-loss-<stack>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.runs import OUT, quiet  # noqa: E402
from drills import power, stack  # noqa: E402
from drills.load import Load  # noqa: E402
from drills.observe import wait_until  # noqa: E402
from lab.lab import Lab  # noqa: E402

OFF_S = 3.0  # how long the house stays dark
PROBE_RATE = 20  # requests/s through the VIP while the hosts boot
BOOT_TIMEOUT_S = 240.0  # bounded: five hosts booting on two shared cores, Docker and keepalived starting


def ops_status(stack_name: str) -> int:
    """`python -m ops status`'s exit code, as the Pi owner would run it."""
    command = [sys.executable, "-m", "ops", "status", "--stack", stack_name]
    return subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120).returncode


def one_run(lab: Lab, stack_name: str, seed: int) -> dict:
    stack.wait_serving(lab)
    power.cut_everything(lab)
    time.sleep(OFF_S)
    # A request every 50 ms through the VIP from before the first switch-on: the site may serve before
    # the last host is on (from the hosts that came back first).
    load = Load(str(lab.vip.ip), PROBE_RATE, BOOT_TIMEOUT_S, timeout=0.5, port=lab.frontend_port).start()
    back = power.power_back(lab, seed)
    stack.wait_serving(lab, timeout=BOOT_TIMEOUT_S)
    serving = time.monotonic() - back.last_start
    answered = [load.t0 + s.t + s.latency for s in load.finish(tail=0).samples if s.ok]
    first_served = min(t for t in answered if t >= back.first_start)
    wait_until("ops status exit 0", lambda: ops_status(stack_name) == 0, BOOT_TIMEOUT_S, interval=1)
    return {
        "seed": seed,
        "order": back.order,
        "delays_s": back.delays_s,
        "first_served_since_power_s": round(first_served - back.first_start, 2),
        "first_served_s": round(max(0.0, first_served - back.last_start), 2),
        "serving_as_intended_s": round(serving, 2),
        "healthy_s": round(time.monotonic() - back.last_start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/power-loss", description=__doc__)
    parser.add_argument("--stack", default="dev-tuned")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1, help="the first run's seed; run N uses seed + N - 1")
    args = parser.parse_args(argv)
    lab = Lab.from_stack()
    lab.up()
    stack.apply(lab, log=quiet, profile=args.stack)
    runs = []
    for number in range(args.runs):
        run = one_run(lab, args.stack, args.seed + number)
        runs.append(run)
        print("power-loss: " + json.dumps(run), flush=True)
    summary = {
        key: {"median": statistics.median(r[key] for r in runs), "max": max(r[key] for r in runs)}
        for key in ("first_served_since_power_s", "first_served_s", "serving_as_intended_s", "healthy_s")
    }
    command = f"bench/power-loss --stack {args.stack} --runs {args.runs} --seed {args.seed}"
    result = {"stack": args.stack, "command": command, "summary": summary, "runs": runs}
    (OUT / f"power-loss-{args.stack}.json").write_text(json.dumps(result, indent=1))
    print("power-loss: " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
