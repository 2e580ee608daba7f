"""The bench's outputs: a PNG timeline per run and the results table."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.runs import OUT, Run


def plot(run: Run, path: Path, balancers: list[str], title: str) -> None:
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
    ax.set_title(f"{run.profile}: {title} (run {run.run})")
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


def write_table(summaries: list[dict], titles: dict[str, str]) -> None:
    rows = [
        "| scenario | profile | runs | failed / total (median, min–max) | time to recovery s (median, min–max) |"
        " notes |",
        "|---|---|---|---|---|---|",
    ]
    keys = sorted({(s["scenario"], s["profile"]) for s in summaries}, key=lambda k: (list(titles).index(k[0]), k[1]))
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
            f"| {titles[scenario]} | {profile} | {len(group)} | "
            f"{statistics.median(failed):g} / {total:g} ({min(failed)}–{max(failed)}) | {ttr_text} | {note} |"
        )
    (OUT / "results.md").write_text("\n".join(rows) + "\n")
