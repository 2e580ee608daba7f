"""A VIP takeover, stage by stage: HAProxy on the MASTER killed for good, each step timed from evidence.

`bench/takeover [--stack dev-tuned] [--runs 10]` applies the stack to the lab, then per run: a probe GET
through the VIP every PROBE_INTERVAL_S (new connection, 1 s timeout), HAProxy killed on the MASTER with
Docker's restart policy paused, and these instants, all on the one kernel clock the lab hosts share:

- `killed`: the bench issued the kill (docker exec on the MASTER);
- `haproxy died`: when the events watcher's exit waiter was woken by the kernel (a pidfd of HAProxy's
  master or last worker), which it logs (`exit seen at`, microseconds); with the paper's script
  tracking, Docker's `die` event, ~50 ms later;
- `track file`: the events watcher's journal line after it wrote 0 (`pihalb-haproxy-watch`);
- `keepalived left MASTER`: keepalived's journal, `Entering FAULT STATE` (weight 0) or `BACKUP`;
- `advert released`: on the lab bridge, the MASTER's first advert after the kill with another priority
  than its steady one (priority 0 with weight 0, the lowered priority otherwise);
- `BACKUP became MASTER`: the BACKUP's keepalived journal;
- `gratuitous ARP`: on the lab bridge, the BACKUP's first gratuitous ARP for the VIP (from its MAC);
- `first success`: the first probe sent after the death has its page (the time its answer arrived).

The capture is `tcpdump -i <lab bridge> -n -e -tt 'ip proto 112 or arp'`. Writes
docs/bench/takeover-<stack>.json (every run), docs/bench/takeover.md (medians per stage, for every stack
measured so far) and docs/bench/takeover-<stack>.png (the median stage increments).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.runs import OUT, quiet  # noqa: E402
from components import names  # noqa: E402
from drills import faults, stack  # noqa: E402
from drills.load import Load  # noqa: E402
from drills.observe import mac_address  # noqa: E402
from lab.inventory import NETWORK  # noqa: E402
from lab.lab import Lab  # noqa: E402

PROBE_INTERVAL_S = 0.02
WINDOW_S = 12.0  # the paper profile takes ~5 s to move the VIP
KILL_AT_S = 2.0
STAGES = (
    "haproxy died",
    "track file",
    "keepalived left MASTER",
    "advert released",
    "BACKUP became MASTER",
    "gratuitous ARP",
    "first success",
)
# tcpdump -e -tt: "1764350000.123456 02:42:ac:1e:2a:15 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54:
# 172.30.42.21 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 103, intvl 20cs, length 12"
ADVERT = re.compile(r"^(\d+\.\d+) .*?: (\S+) > 224\.0\.0\.18: VRRPv\d, Advertisement, vrid \d+, prio (\d+)")
# A gratuitous ARP: "... ethertype ARP (0x0806), length 42: Request who-has 172.30.42.240 (Broadcast) tell
# 172.30.42.240, length 28"
GRATUITOUS_ARP = re.compile(r"^(\d+\.\d+) (\S+) > .*Request who-has (\S+) (?:\(\S+\) )?tell (\S+),")


def adverts_in(lines: list[str]) -> list[tuple[float, str, int]]:
    """(time, sender, priority) of each VRRP advert in tcpdump's lines."""
    return [(float(m[1]), m[2], int(m[3])) for line in lines if (m := ADVERT.match(line))]


def gratuitous_arps(lines: list[str], vip: str, sender_mac: str) -> list[float]:
    """Times of the ARP requests announcing `vip` (who-has VIP tell VIP) sent from `sender_mac`."""
    return [
        float(m[1])
        for line in lines
        if (m := GRATUITOUS_ARP.match(line)) and m[2] == sender_mac and m[3] == m[4] == vip
    ]


def bridge(lab: Lab) -> str:
    """The Linux bridge behind the lab's Docker network (Docker names it br-<first 12 of the id>)."""
    network_id = subprocess.run(
        ["docker", "network", "inspect", "-f", "{{.Id}}", NETWORK], capture_output=True, text=True, check=True
    ).stdout.strip()
    return f"br-{network_id[:12]}"


def journal_matches(lab: Lab, host: str, since: float, pattern: str, *selectors: str) -> list[tuple[float, re.Match]]:
    """(wall time s, match) of the journal entries of `host` since `since` whose message matches `pattern`."""
    command = f"journalctl --no-pager -o json --since @{since:.6f} " + " ".join(selectors)
    output = lab.read(host, command, check=False)[1]
    found = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if match := re.search(pattern, str(entry.get("MESSAGE", ""))):
            found.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, match))
    return sorted(found, key=lambda found: found[0])


def journal_times(lab: Lab, host: str, since: float, pattern: str, *selectors: str) -> list[float]:
    """Wall times (s) of the journal entries of `host` since `since` whose message matches `pattern`."""
    return [t for t, _ in journal_matches(lab, host, since, pattern, *selectors)]


def exit_times(lab: Lab, host: str, since: float) -> list[float]:
    """When HAProxy stopped listening, by the kernel's word: the watcher's exit waiter logs when its pidfd
    woke it (RFC 3339, microseconds). None with the paper's script tracking."""
    found = journal_matches(lab, host, since, EXIT_SEEN_AT, "-u", names.HAPROXY_WATCH_UNIT)
    return sorted(exit_seen_at(m) for _, m in found)


EXIT_SEEN_AT = r"exit seen at (\S+?)\.(\d+)Z"


def exit_seen_at(match: re.Match) -> float:
    """Epoch seconds of the waiter's `exit seen at` (whole seconds and a fraction of up to nine digits)."""
    return datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp() + float("0." + match[2])


def die_time(lab: Lab, host: str, since: float, until: float) -> float | None:
    command = (
        f"docker events --since {since:.6f} --until {until:.6f} --filter container={names.HAPROXY_CONTAINER}"
        " --filter event=die --format '{{.TimeNano}}'"
    )
    found = [int(x) / 1e9 for x in lab.read(host, command, check=False)[1].split() if x.isdigit()]
    return min(found) if found else None


def first(times, after: float) -> float | None:
    later = [t for t in times if t >= after]
    return min(later) if later else None


def one_run(lab: Lab, capture: Path, number: int) -> dict:
    master, backup = lab.master, lab.backup
    faults.undo_all(lab)
    stack.wait_serving(lab)
    time.sleep(1)  # a few steady adverts on the capture before the fault
    capture_from = capture.stat().st_size
    load = Load(str(lab.vip.ip), round(1 / PROBE_INTERVAL_S), WINDOW_S, timeout=1.0, port=lab.frontend_port)
    load.start()
    wall_minus_monotonic = time.time() - time.monotonic()
    time.sleep(max(0.0, KILL_AT_S - load.elapsed()))
    killed = time.time()
    faults.kill_haproxy_for_good(lab, master.name)
    recording = load.join()
    ended = time.time()
    since = killed - 1
    # The death: when the events watcher's exit waiter saw it, else Docker's die event
    # (the paper's script tracking), which dockerd emits after tearing the container down.
    died = first(exit_times(lab, master.name, since), killed) or die_time(lab, master.name, since, ended)
    packets = capture.read_bytes()[capture_from:].decode(errors="replace").splitlines()
    adverts = adverts_in(packets)
    steady = [prio for t, src, prio in adverts if src == str(master.address) and t < killed]
    steady_prio = statistics.mode(steady) if steady else None
    released = [t for t, src, prio in adverts if src == str(master.address) and t >= killed and prio != steady_prio]
    arps = gratuitous_arps(packets, str(lab.vip.ip), mac_address(lab, backup.name))
    t0 = load.t0 + wall_minus_monotonic
    anchor = died or killed
    # A request sent into the takeover may still succeed (its SYN waits for the VIP's new owner): the
    # site is back when the first request sent after the death has its answer, not when it was sent.
    successes = [t0 + s.t + s.latency for s in recording.samples if s.ok and t0 + s.t >= anchor]
    at = {
        "killed": killed,
        "haproxy died": died,
        "track file": first(
            journal_times(lab, master.name, since, r"^track file 0", "-u", names.HAPROXY_WATCH_UNIT), killed
        ),
        "keepalived left MASTER": first(
            journal_times(lab, master.name, since, r"Entering (FAULT|BACKUP) STATE", "-u", "keepalived"), killed
        ),
        "advert released": first(released, killed),
        "BACKUP became MASTER": first(
            journal_times(lab, backup.name, since, r"Entering MASTER STATE", "-u", "keepalived"), killed
        ),
        "gratuitous ARP": first(arps, killed),
        "first success": first(successes, anchor),
    }
    failed = [s for s in recording.samples if not s.ok]
    return {
        "run": number,
        "at": at,
        "since_kill_s": {k: round(v - killed, 4) for k, v in at.items() if v is not None},
        "vip_unavailable_s": round(at["first success"] - anchor, 4) if at["first success"] else None,
        "requests": len(recording.samples),
        "failed": len(failed),
        "steady_priority": steady_prio,
    }


def summarize(runs: list[dict]) -> dict:
    medians = {}
    for stage in ("killed", *STAGES):
        values = [r["since_kill_s"][stage] for r in runs if stage in r["since_kill_s"]]
        medians[stage] = round(statistics.median(values), 4) if values else None
    unavailable = [r["vip_unavailable_s"] for r in runs if r["vip_unavailable_s"] is not None]
    return {
        "runs": len(runs),
        "median_since_kill_s": medians,
        "vip_unavailable_s": {
            "median": round(statistics.median(unavailable), 4),
            "min": min(unavailable),
            "max": max(unavailable),
        }
        if unavailable
        else None,
        "failed_median": statistics.median(r["failed"] for r in runs),
        "failed_max": max(r["failed"] for r in runs),
    }


def write_table(out: Path) -> None:
    head = "| stack | runs | VIP unavailable s, median (min–max) | failed probes, median (max) | "
    rows = [head + " | ".join(STAGES) + " |"]
    rows.append("|---" * (4 + len(STAGES)) + "|")
    for path in sorted(out.glob("takeover-*.json")):
        data = json.loads(path.read_text())
        s = data["summary"]
        u = s["vip_unavailable_s"]
        cells = []
        previous = 0.0
        for stage in STAGES:
            value = s["median_since_kill_s"][stage]
            if value is None:
                cells.append("–")
                continue
            cells.append(f"{value * 1000:.0f} ms ({(value - previous) * 1000:+.0f})")
            previous = value
        unavailable = f"{u['median']:.3f} ({u['min']:.3f}–{u['max']:.3f})" if u else "–"
        rows.append(
            f"| {data['stack']} | {s['runs']} | {unavailable} | {s['failed_median']:g} ({s['failed_max']}) | "
            + " | ".join(cells)
            + " |"
        )
    note = (
        "\nMedian time of each stage since the kill was issued, and (+) its increment over the stage before: "
        "the next millisecond to remove is the largest increment. VIP unavailable: from HAProxy's death "
        "(when the watcher's exit waiter saw it; Docker's die event without the watcher) to the answer of the "
        "first probe sent after it. "
        "Command: `bench/takeover --stack STACK --runs N`.\n"
    )
    (out / "takeover.md").write_text("\n".join(rows) + "\n" + note)


def plot(summary: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 2.8))
    medians = summary["median_since_kill_s"]
    died = medians["haproxy died"] or 0.0  # the kill's own latency (a docker exec) is not the takeover's
    previous = 0.0
    for i, stage in enumerate(STAGES[1:], start=1):
        value = medians[stage]
        if value is None:
            continue
        value -= died
        # a stage logged a hair before the one it follows (journal timestamps) gets no negative bar
        ax.barh([0], [max(0.0, value - previous) * 1000], left=[previous * 1000], color=f"C{i}", label=stage)
        previous = max(previous, value)
    ax.set_yticks([])
    ax.set_xlabel("ms since HAProxy died (seen by the watcher's exit waiter; median per stage)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def measure(lab: Lab, stack_name: str, runs: int) -> dict | None:
    """`runs` takeovers on the stack as deployed, with the bridge captured; writes their JSON, plot and table."""
    capture = OUT / "tmp-takeover.pcap.txt"
    done = []
    with open(capture, "w") as sink:
        tcpdump = subprocess.Popen(
            ["tcpdump", "-i", bridge(lab), "-n", "-e", "-tt", "-l", "ip proto 112 or arp"],
            stdout=sink,
            stderr=subprocess.DEVNULL,
        )
        try:
            for number in range(1, runs + 1):
                run = one_run(lab, capture, number)
                done.append(run)
                print(
                    f"takeover: {stack_name} run {number}: VIP unavailable {run['vip_unavailable_s']} s, "
                    f"{run['failed']}/{run['requests']} failed; " + json.dumps(run["since_kill_s"]),
                    flush=True,
                )
        finally:
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(10)
            faults.undo_all(lab)
            capture.unlink()
    if not done:
        return None
    summary = summarize(done)
    (OUT / f"takeover-{stack_name}.json").write_text(
        json.dumps({"stack": stack_name, "summary": summary, "runs": done}, indent=1)
    )
    plot(summary, OUT / f"takeover-{stack_name}.png", f"{stack_name}: takeover stages, median of {len(done)} runs")
    write_table(OUT)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/takeover", description=__doc__)
    parser.add_argument("--stack", default="dev-tuned")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    lab = Lab.from_stack()
    lab.up()
    print(f"takeover: applying {args.stack}", flush=True)
    stack.apply(lab, log=quiet, profile=args.stack)
    summary = measure(lab, args.stack, args.runs)
    if summary:
        print("takeover: " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
