"""Failover, measured: steady load through the VIP while a fault is injected, per profile and scenario.

`bench/failover [--profiles paper,tuned] [--scenarios ...] [--runs N]` deploys each profile's stack to
the lab with the lab engine, then for every scenario and run: a bounded load generator (RATE
requests/s for WINDOW seconds, short timeouts, every request logged) and a probe of the VIP holder and
keepalived states, the fault injected at FAULT_AT s (and undone where the scenario says), then JSON and
a PNG timeline per run, and `docs/bench/results.md` with medians, min–max and run counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components import render  # noqa: E402
from components.settings import CONFIG_NAMESPACE, HOST_KEYS_KEY  # noqa: E402
from drills import faults, stack  # noqa: E402
from drills.load import Load, Recording  # noqa: E402
from drills.observe import get_vip, servers_seen_by, wait_until  # noqa: E402
from lab.images import BASE_IMAGE  # noqa: E402
from lab.lab import Lab  # noqa: E402

OUT = ROOT / "docs" / "bench"
RATE = 100  # requests per second
TIMEOUT_S = 1.0  # per request: a client that waits longer counts it as failed
FAULT_AT_S = 3.0
PROFILES = {"paper": ("dev", None), "tuned": ("dev-tuned", None)}
UNICAST = ("dev-tuned", stack.unicast)
HOST_KEYS_CONFIG = f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}"
HAPROXY_PINNED = "2.6.12-1+deb12u3"  # the one version this machine's mirror serves


def _quiet(line: str) -> None:
    """The harness's step log, not wanted among the bench's lines."""


@dataclass
class Run:
    """One scenario run: the load's recording, when the fault and the restore happened, what was noted."""

    profile: str
    scenario: str
    run: int
    fault_at_s: float
    recording: Recording
    restore_at_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def longest_dual_hold(self) -> float:
        """Longest time both balancers held the VIP: a split brain, or only a handover's overlap."""
        longest, since = 0.0, None
        for t, holder in self.recording.vip:
            if "+" in holder:
                since = t if since is None else since
                longest = max(longest, t - since)
            else:
                since = None
        return round(longest, 2)

    def summary(self) -> dict:
        holders = {h for _, h in self.recording.vip}
        return {
            "profile": self.profile,
            "scenario": self.scenario,
            "run": self.run,
            "requests": len(self.recording.samples),
            "failed": len(self.recording.failed),
            "time_to_recovery_s": self.recording.time_to_recovery(),
            "both_held_vip_s": self.longest_dual_hold(),
            "vip_holders_seen": sorted(holders),
            "notes": self.notes,
        }


@dataclass
class Scenario:
    name: str
    title: str
    window_s: float
    fault: Callable[[Lab, Run], None]
    restore: Callable[[Lab, Run], None] | None = None
    restore_after_s: float = 8.0
    profiles: tuple = ("paper", "tuned")
    change: bool = False  # an apply: the window lasts until it is done, then TAIL_S more


class Changes:
    """What the change scenarios have changed so far, per profile: a copy of files/ and cluster values.

    Every run makes one more change on top of the last (a new comment, a toggled value), applied to the
    lab with the lab engine as `pulumi up` would apply it.
    """

    def __init__(self) -> None:
        self.files = OUT / "tmp-changes"
        self.values: dict[str, object] = {}

    def reset(self) -> None:
        shutil.rmtree(self.files, ignore_errors=True)
        shutil.copytree(ROOT / "files", self.files)
        self.values = {}

    def append(self, relative: str, line: str) -> None:
        with open(self.files / relative, "a") as handle:
            handle.write(line + "\n")

    def toggle(self, path: str, first: object, second: object) -> None:
        self.values[path] = second if self.values.get(path, first) == first else first

    def apply(self, lab: Lab, run: Run) -> None:
        name, alter = run_stack(run.profile)

        def altered(config: dict) -> None:
            if alter:
                alter(config)
            if "hosts" in self.values:  # a removed Pi's pinned key goes too (keys of unknown hosts are refused)
                kept = {h["name"] for h in self.values["hosts"]}  # type: ignore[union-attr]
                keys = config[HOST_KEYS_CONFIG]
                config[HOST_KEYS_CONFIG] = {name: key for name, key in keys.items() if name in kept}
            for path, value in self.values.items():
                node = stack.cluster(config)
                *parents, last = path.split(".")
                for key in parents:
                    node = node[key]
                if value is None:
                    node.pop(last, None)
                else:
                    node[last] = value

        applied = stack.apply(lab, altered, log=_quiet, stack=name, files=self.files)
        kinds = {n: k for n, k in applied.plan.kinds().items() if not n.endswith("-ping")}
        counts: dict[str, int] = {}
        for kind in kinds.values():
            counts[kind] = counts.get(kind, 0) + 1
        run.notes.append("plan: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


CHANGES = Changes()
CHANGE_WINDOW_S = 1800.0  # an upper bound: the window ends TAIL_S after the apply
TAIL_S = 5.0


def _change(make: Callable[[Lab, Run], None]) -> Callable[[Lab, Run], None]:
    def run_change(lab: Lab, run: Run) -> None:
        make(lab, run)
        CHANGES.apply(lab, run)

    return run_change


def _engine_restart_rolling(lab: Lab, run: Run) -> None:
    """dockerd restarted on every host, one at a time, the MASTER last after handing the VIP over: what an
    engine upgrade does to a host (the engine packages are held, so it happens only like this, on purpose)."""
    for host in [*lab.servers, lab.backup]:
        lab.sh(host.name, "systemctl restart docker", timeout=120)
        stack.wait_serving(lab)
    master = lab.master.name
    lab.sh(master, f"echo 1 > {render.VRRP_HANDOVER_FILE}")
    wait_until("the VIP to move for the engine restart", lambda: lab.vip_holders() == [lab.backup.name], 30)
    time.sleep(1)
    lab.sh(master, "systemctl restart docker", timeout=120)
    wait_until("HAProxy back on the MASTER", lambda: servers_seen_by(lab, master), 60)
    lab.sh(master, f"echo 0 > {render.VRRP_HANDOVER_FILE}")
    stack.wait_serving(lab)
    run.notes.append("dockerd restarted on each host in turn; the MASTER handed the VIP over first")


def _server_removed_and_added(lab: Lab, run: Run) -> None:
    leaving = lab.servers[-1].name
    hosts = stack.cluster(stack.lab_stack.config(lab, run_stack(run.profile)[0]))["hosts"]
    CHANGES.values["hosts"] = [h for h in hosts if h["name"] != leaving]
    CHANGES.apply(lab, run)
    CHANGES.values.pop("hosts")
    CHANGES.apply(lab, run)


def _base_image_alias(lab: Lab) -> str:
    """The lab's one base image under a second name, so `baseImage` can change without a registry."""
    alias = f"localhost/{BASE_IMAGE}"
    for host in lab.hosts:
        lab.sh(host.name, f"docker tag {BASE_IMAGE} {alias}")
    return alias


def _on_master(fault: Callable[[Lab, str], None]) -> Callable[[Lab, Run], None]:
    """A fault of `drills.faults` aimed at the intended VRRP MASTER."""
    return lambda lab, run: fault(lab, lab.master.name)


def _on_a_server(fault: Callable[[Lab, str], None]) -> Callable[[Lab, Run], None]:
    """A fault of `drills.faults` aimed at the second server (any would do; the first is the wrk target)."""
    return lambda lab, run: fault(lab, lab.servers[1].name)


def _rollout(lab: Lab, run: Run) -> None:
    """Apply a changed haproxy.cfg template with the harness, as `pulumi up` would, under load."""
    name, alter = run_stack(run.profile)
    files = stack.files_with_response_header(OUT / "tmp-files", "X-Rollout", f"run-{run.run}")
    applied = stack.apply(lab, alter, log=_quiet, stack=name, files=files)
    run.notes.append("changed: " + ", ".join(f"{n} ({k})" for n, k in applied.plan.kinds().items()))


def _restore_config(lab: Lab, run: Run) -> None:
    name, alter = run_stack(run.profile)
    stack.apply(lab, alter, log=_quiet, stack=name)


def _interrupted_apply(lab: Lab, run: Run) -> None:
    """Apply a changed config in a child process, kill it right after its first balancer took the change,
    then apply the same change again (it must converge) and once more (it must find nothing to do)."""
    name, alter = run_stack(run.profile)
    files = stack.files_with_response_header(OUT / "tmp-files", "X-Interrupted", f"run-{run.run}")
    code = (
        "import sys; sys.path.insert(0, '.'); from pathlib import Path;"
        "from drills import stack; from lab.lab import Lab;"
        "stack.apply(Lab.from_stack(), stack=sys.argv[2], files=Path(sys.argv[1]))"
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
    report = stack.apply(lab, alter, log=_quiet, stack=name, files=files).report
    again = stack.apply(lab, alter, log=_quiet, stack=name, files=files).report
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
        Scenario(
            "host-crash",
            "MASTER host killed (power cut), then started",
            35,
            _on_master(lambda lab, name: lab.container(name).kill()),
            _on_master(lambda lab, name: lab.start_host(name)),
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
        *[
            Scenario(name, title, CHANGE_WINDOW_S, fault, change=True)
            for name, title, fault in [
                (
                    "change-page",
                    "change: the page",
                    _change(lambda lab, run: CHANGES.append("templates/index.html.j2", f"<!-- run {run.run} -->")),
                ),
                (
                    "change-nginx-image",
                    "change: the nginx image (Dockerfile)",
                    _change(lambda lab, run: CHANGES.append("nginx/Dockerfile", f"# run {run.run}")),
                ),
                (
                    "change-haproxy-source",
                    "change: HAProxy source version (pinned / newest)",
                    _change(lambda lab, run: CHANGES.toggle("haproxy.source.version", None, HAPROXY_PINNED)),
                ),
                (
                    "change-haproxy-cfg",
                    "change: a haproxy.cfg value",
                    _change(lambda lab, run: CHANGES.toggle("haproxy.timeouts.clientMs", 10000, 11000)),
                ),
                (
                    "change-keepalived",
                    "change: a keepalived.conf value",
                    _change(lambda lab, run: CHANGES.toggle("vrrp.track.weight", 3, 4)),
                ),
                (
                    "change-host-scripts",
                    "change: host scripts (firewall, watcher)",
                    _change(
                        lambda lab, run: [
                            CHANGES.append(f"scripts/{name}", f"# run {run.run}")
                            for name in ("vrrp-host.sh", "haproxy-watch.sh")
                        ]
                    ),
                ),
                (
                    "change-base-image",
                    "change: baseImage (every image rebuilt)",
                    _change(lambda lab, run: CHANGES.toggle("baseImage", None, _base_image_alias(lab))),
                ),
                (
                    "change-engine-restart",
                    "change: Docker engine restarted on every host in turn",
                    _engine_restart_rolling,
                ),
                ("change-server-remove-add", "change: a server removed, then added back", _server_removed_and_added),
            ]
        ],
    ]
}


def run_stack(profile: str):
    return UNICAST if profile == "unicast" else PROFILES[profile]


def healthy(lab: Lab) -> None:
    """Before each run: everything a previous fault stopped started again, then serving as intended."""
    faults.undo_all(lab)
    stack.wait_serving(lab)


def one_run(lab: Lab, profile: str, scenario: Scenario, number: int) -> Run:
    healthy(lab)
    window = CHANGE_WINDOW_S if scenario.change else scenario.window_s
    load = Load.through_vip(lab, RATE, window, timeout=TIMEOUT_S).start()
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
    return run


def plot(run: Run, path: Path, balancers: list[str]) -> None:
    """A timeline of one run: requests per bin, ok and failed, over a band of who held the VIP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, band) = plt.subplots(2, 1, figsize=(10, 4), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    width = 0.25
    window = run.recording.seconds
    bins = int(window / width) + 1
    ok = [0] * bins
    bad = [0] * bins
    for s in run.recording.samples:
        (ok if s.ok else bad)[min(int(s.t / width), bins - 1)] += 1
    xs = [i * width for i in range(bins)]
    ax.bar(xs, ok, width=width, align="edge", color="tab:green", label="ok")
    ax.bar(xs, bad, width=width, align="edge", bottom=ok, color="tab:red", label="failed")
    ax.axvline(run.fault_at_s, color="black", linestyle="--", label="fault")
    if run.restore_at_s is not None:
        ax.axvline(run.restore_at_s, color="gray", linestyle=":", label="restore")
    ax.set_ylabel(f"requests / {width}s")
    ax.set_title(f"{run.profile}: {SCENARIOS[run.scenario].title} (run {run.run})")
    ax.legend(loc="lower left", fontsize=8)
    master, backup = balancers
    colors = {master: "tab:blue", backup: "tab:orange", "none": "lightgray"}
    vip = run.recording.vip
    for (t, holder), nxt in zip(vip, [*vip[1:], (window, "")], strict=True):
        band.axvspan(t, nxt[0], color=colors.get(holder, "tab:red"))
    band.set_yticks([])
    band.set_ylabel("VIP")
    band.set_xlabel(f"seconds (band: {master} blue, {backup} orange, none gray, both/unknown red)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_table(summaries: list[dict]) -> None:
    rows = [
        "| scenario | profile | runs | failed / total (median, min–max) | time to recovery s (median, min–max) |"
        " notes |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(s["scenario"], s["profile"]) for s in summaries}, key=lambda k: (list(SCENARIOS).index(k[0]), k[1]))
    for scenario, profile in keys:
        group = [s for s in summaries if s["scenario"] == scenario and s["profile"] == profile]
        failed = [s["failed"] for s in group]
        total = statistics.median(s["requests"] for s in group)
        ttr = [s["time_to_recovery_s"] for s in group if s["time_to_recovery_s"] is not None]
        unrecovered = len(group) - len(ttr)
        note = "; ".join(sorted({n for s in group for n in s["notes"] if not n.startswith("changed")}))[:160]
        dual = max(s.get("both_held_vip_s", 0.0) for s in group)
        if dual >= 1.0:
            note = f"split brain: VIP on both balancers for up to {dual:.1f} s. " + note
        if unrecovered:
            note = f"{unrecovered} run(s) never recovered in the window. " + note
        ttr_text = f"{statistics.median(ttr):.2f} ({min(ttr):.2f}–{max(ttr):.2f})" if ttr else "–"
        rows.append(
            f"| {SCENARIOS[scenario].title} | {profile} | {len(group)} | "
            f"{statistics.median(failed):g} / {total:g} ({min(failed)}–{max(failed)}) | {ttr_text} | {note} |"
        )
    (OUT / "results.md").write_text("\n".join(rows) + "\n")


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
        stack.apply(lab, alter, log=_quiet, stack=name, files=CHANGES.files)
        for scenario in scenarios:
            summaries = [s for s in summaries if not (s["profile"] == profile and s["scenario"] == scenario.name)]
            for number in range(1, args.runs + 1):
                run = one_run(lab, profile, scenario, number)
                summary = run.summary()
                summaries.append(summary)
                stem = OUT / f"{profile}-{scenario.name}-{number}"
                stem.with_suffix(".json").write_text(json.dumps({"summary": summary, **asdict(run)}, indent=1))
                plot(run, stem.with_suffix(".png"), [h.name for h in lab.balancers])
                print(
                    f"bench: {profile:<7} {scenario.name:<18} run {number}: {summary['failed']}/"
                    f"{summary['requests']} failed, recovery {summary['time_to_recovery_s']}",
                    flush=True,
                )
                summaries_path.write_text(json.dumps(summaries, indent=1))
                write_table(summaries)
    if not args.no_throughput:
        stack.apply(lab, log=_quiet, stack="dev")
        (OUT / "throughput.json").write_text(json.dumps(throughput(lab), indent=1))
    shutil.rmtree(OUT / "tmp-files", ignore_errors=True)
    shutil.rmtree(CHANGES.files, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
