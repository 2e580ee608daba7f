"""Failover, measured: steady load through the VIP while a fault is injected, per profile and scenario.

`bench/failover [--profiles paper,tuned] [--scenarios ...] [--runs N]` deploys each profile's stack to
the lab with the lab engine, then for every scenario and run: a bounded load generator (RATE
requests/s for WINDOW seconds, short timeouts, every request logged) and a probe of the VIP holder and
keepalived states, the fault injected at FAULT_AT s (and undone where the scenario says), then JSON and
a PNG timeline per run, and `docs/bench/results.md` with medians, min–max and run counts. Per profile
it also times `--takeover-runs` takeovers stage by stage (bench/takeover: docs/bench/takeover.md).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import takeover  # noqa: E402
from bench.changes import CHANGE_SCENARIOS, CHANGE_WINDOW_S, CHANGES, TAIL_S  # noqa: E402
from bench.report import plot, write_table  # noqa: E402
from bench.runs import FAULT_AT_S, HTTPS_SUFFIX, OUT, RATE, TIMEOUT_S, Run, Scenario, quiet, run_stack  # noqa: E402
from drills import faults, https, stack  # noqa: E402
from drills.load import Load, Recording  # noqa: E402
from drills.observe import get_vip  # noqa: E402
from lab.lab import Lab  # noqa: E402


def _on_master(fault: Callable[[Lab, str], None]) -> Callable[[Lab, Run], None]:
    """A fault of `drills.faults` aimed at the intended VRRP MASTER."""
    return lambda lab, run: fault(lab, lab.master.name)


def _on_a_server(fault: Callable[[Lab, str], None]) -> Callable[[Lab, Run], None]:
    """A fault of `drills.faults` aimed at the second server (any would do; the first is the wrk target)."""
    return lambda lab, run: fault(lab, lab.servers[1].name)


def _rollout(lab: Lab, run: Run) -> None:
    """Apply a changed haproxy.cfg template with the harness, as `pulumi up` would, under load."""
    name, alter = run_stack(run.base_profile)
    files = stack.files_with_response_header(OUT / "tmp-files", "X-Rollout", f"run-{run.run}")
    applied = stack.apply(lab, alter, log=quiet, profile=name, files=files)
    run.notes.append("changed: " + ", ".join(f"{n} ({k})" for n, k in applied.plan.kinds().items()))


def _restore_config(lab: Lab, run: Run) -> None:
    name, alter = run_stack(run.base_profile)
    stack.apply(lab, alter, log=quiet, profile=name)


def _interrupted_apply(lab: Lab, run: Run) -> None:
    """Apply a changed config in a child process, kill it right after its first balancer took the change,
    then apply the same change again (it must converge) and once more (it must find nothing to do)."""
    name, alter = run_stack(run.base_profile)
    files = stack.files_with_response_header(OUT / "tmp-files", "X-Interrupted", f"run-{run.run}")
    code = (
        "import sys; sys.path.insert(0, '.'); from pathlib import Path;"
        "from drills import stack; from lab.lab import Lab;"
        "stack.apply(Lab.from_stack(), profile=sys.argv[2], files=Path(sys.argv[1]))"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(files), name],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    killed_after = "the end (it finished first)"
    for line in child.stdout:
        if "-haproxy-config" in line and "done" in line:
            child.kill()
            killed_after = line.split()[0]
            break
    child.wait(timeout=120)
    run.notes.append(f"apply killed after {killed_after}")
    report = stack.apply(lab, alter, log=quiet, profile=name, files=files).report
    again = stack.apply(lab, alter, log=quiet, profile=name, files=files).report
    run.notes.append("re-apply changed: " + (", ".join(s.name for s in report.done if s.host_changed) or "nothing"))
    run.notes.append("third apply changed: " + (", ".join(s.name for s in again.done if s.host_changed) or "nothing"))
    served = get_vip(lab).headers.get("x-interrupted")
    run.notes.append(f"served with the change: {served == f'run-{run.run}'}")


def _block_and_check(lab: Lab, run: Run) -> None:
    """Block VRRP multicast on both balancers, then ask the operator's status check what it sees."""
    faults.block_vrrp_multicast(lab)
    time.sleep(5)
    status = subprocess.run([sys.executable, "-m", "lab", "status"], cwd=ROOT, capture_output=True, text=True)
    verdict = next(line for line in status.stdout.splitlines() if line.startswith("VIP "))
    run.notes.append(f"`python -m lab status` during the block: exit {status.returncode}, {verdict}")


# The MASTER's power cut (SIGKILL, no restart policy) and its power back (booted, waited for).
POWER_CUT_AND_BACK = (
    _on_master(lambda lab, name: lab.cut_power(name)),
    _on_master(lambda lab, name: lab.start_host(name)),
)

SCENARIOS = {
    s.name: s
    for s in [
        Scenario("haproxy-kill", "HAProxy process killed on the MASTER", 15, _on_master(faults.kill_haproxy)),
        Scenario(
            "haproxy-kill-no-restart",
            "HAProxy process killed on the MASTER, Docker's restart policy paused (the paper's case)",
            18,
            _on_master(faults.kill_haproxy_for_good),
            _on_master(faults.restore_haproxy),
        ),
        Scenario(
            "haproxy-stop",
            "HAProxy container stopped on the MASTER",
            18,
            _on_master(faults.stop_haproxy),
            _on_master(faults.start_haproxy),
        ),
        Scenario(
            "keepalived-stop",
            "keepalived stopped on the MASTER",
            18,
            _on_master(faults.stop_keepalived),
            _on_master(faults.start_keepalived),
        ),
        Scenario(
            "host-stop",
            "MASTER host stopped, then started",
            35,
            _on_master(lambda lab, name: lab.stop_host(name)),
            _on_master(lambda lab, name: lab.start_host(name)),
        ),
        Scenario("host-crash", "MASTER host killed (power cut), then started", 35, *POWER_CUT_AND_BACK),
        Scenario(
            "host-crash-browser",
            "MASTER host killed (power cut), a client that waits 3 s per request as a browser does",
            35,
            *POWER_CUT_AND_BACK,
            profiles=("tuned",),
            timeout_s=3.0,
        ),
        Scenario(
            "server-kill",
            "one server container killed",
            15,
            _on_a_server(faults.kill_nginx),
            _on_a_server(faults.start_nginx),
        ),
        Scenario(
            "multicast-blocked",
            "multicast blocked between the balancers",
            18,
            _block_and_check,
            lambda lab, run: faults.unblock_vrrp_multicast(lab),
            profiles=("paper", "unicast"),
        ),
        Scenario(
            "config-rollout", "haproxy.cfg change applied under load", 25, _rollout, _restore_config, restore_after_s=10
        ),
        Scenario(
            "apply-interrupted", "apply killed midway, then applied again", 35, _interrupted_apply, restore_after_s=0
        ),
        *CHANGE_SCENARIOS,
    ]
}


def healthy(lab: Lab) -> None:
    """Before each run: everything a previous fault stopped started again, then serving as intended."""
    faults.undo_all(lab)
    stack.wait_serving(lab)


def one_run(lab: Lab, profile: str, scenario: Scenario, number: int, site: https.Site | None = None) -> Run:
    """One run of `scenario` under the load; over HTTPS to `site` (a full handshake per request) if given."""
    healthy(lab)
    window = CHANGE_WINDOW_S if scenario.change else scenario.window_s
    if site:
        load = site.load(lab, RATE, window, timeout=scenario.timeout_s).start()
    else:
        load = Load.through_vip(lab, RATE, window, timeout=scenario.timeout_s).start()
    run = Run(profile, scenario.name, number, FAULT_AT_S, load.recording)
    time.sleep(max(0.0, FAULT_AT_S - load.elapsed()))
    if scenario.change:
        try:
            scenario.fault(lab, run)
        finally:
            load.finish(tail=TAIL_S)
        return run
    scenario.fault(lab, run)
    if scenario.restore:
        time.sleep(max(0.0, FAULT_AT_S + scenario.restore_after_s - load.elapsed()))
        run.restore_at_s = round(load.elapsed(), 3)
        scenario.restore(lab, run)
    load.join()
    if scenario.timeout_s > TIMEOUT_S:
        run.notes.append(stalls(load.recording))
    return run


def stalls(recording: Recording) -> str:
    """What a request sent into a takeover costs a patient client: its SYN went to a MAC nobody answers
    from, and the kernel sends it again after its initial retransmission timeout (1 s on Linux)."""
    slow = sorted(s.latency for s in recording.samples if s.ok and s.latency >= 0.5)
    if not slow:
        return "no request took 0.5 s or more"
    return f"{len(slow)} requests took 0.5 s or more (all answered: {slow[0]:.3f}–{slow[-1]:.3f} s)"


def throughput(lab: Lab) -> dict:
    """wrk through the VIP vs straight to one server, same connections and threads."""

    def wrk(url: str) -> float:
        out = subprocess.run(["wrk", "-t2", "-c32", "-d10s", url], capture_output=True, text=True, timeout=60).stdout
        return float(next(line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec:")))

    healthy(lab)
    direct = wrk(f"http://{lab.servers[0].address}:{lab.server_port}/")
    via_vip = wrk(f"http://{lab.vip.ip}:{lab.frontend_port}/")
    return {
        "direct_rps": direct,
        "vip_rps": via_vip,
        "ratio": round(via_vip / direct, 3),
        "command": "wrk -t2 -c32 -d10s URL",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/failover", description=__doc__)
    parser.add_argument("--profiles", default="paper,tuned")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument(
        "--https",
        action="store_true",
        help="the load over HTTPS (profiles with haproxy.tls only); rows and files as <profile>-https",
    )
    parser.add_argument(
        "--takeover-runs", type=int, default=10, help="per profile: takeovers timed stage by stage (bench/takeover)"
    )
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    lab = Lab.from_stack()
    lab.up()
    summaries_path = OUT / "summaries.json"
    summaries = json.loads(summaries_path.read_text()) if summaries_path.exists() else []
    wanted = args.profiles.split(",") + ["unicast"]
    for profile in wanted:
        scenarios = [SCENARIOS[n] for n in args.scenarios.split(",") if profile in SCENARIOS[n].profiles]
        if not scenarios:
            continue
        name, alter = run_stack(profile)
        print(f"bench: deploying {profile} ({name})", flush=True)
        CHANGES.reset()
        stack.apply(lab, alter, log=quiet, profile=name, files=CHANGES.files)
        site = None
        if args.https:
            site = https.site(lab, name)
            if site is None:
                print(f"bench: {profile} has no haproxy.tls: skipped", flush=True)
                continue
            https.certificates_on_both(lab)  # where the timers get within minutes of a deployment
            profile += HTTPS_SUFFIX
        elif args.takeover_runs and alter is None:  # the stack as shipped: its takeover, stage by stage
            takeover.measure(lab, name, args.takeover_runs)
        for scenario in scenarios:
            summaries = [s for s in summaries if not (s["profile"] == profile and s["scenario"] == scenario.name)]
            for number in range(1, args.runs + 1):
                run = one_run(lab, profile, scenario, number, site)
                summary = run.summary()
                summaries.append(summary)
                stem = OUT / f"{profile}-{scenario.name}-{number}"
                stem.with_suffix(".json").write_text(json.dumps({"summary": summary, **asdict(run)}, indent=1))
                plot(run, stem.with_suffix(".png"), [h.name for h in lab.balancers], scenario.title)
                print(
                    f"bench: {profile:<7} {scenario.name:<18} run {number}: {summary['failed']}/"
                    f"{summary['requests']} failed, recovery {summary['time_to_recovery_s']}",
                    flush=True,
                )
                summaries_path.write_text(json.dumps(summaries, indent=1))
                write_table(summaries, {n: sc.title for n, sc in SCENARIOS.items()})
    if not args.no_throughput:
        stack.apply(lab, log=quiet, profile="dev")
        (OUT / "throughput.json").write_text(json.dumps(throughput(lab), indent=1))
    shutil.rmtree(OUT / "tmp-files", ignore_errors=True)
    shutil.rmtree(CHANGES.files, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
