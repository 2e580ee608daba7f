"""What a bench run is: its scenario, its recording, what it noted; and the constants every part shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drills import stack
from drills.load import Recording
from lab.lab import Lab

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "bench"
RATE = 100  # requests per second
TIMEOUT_S = 1.0  # per request: a client that waits longer counts it as failed
FAULT_AT_S = 3.0
PROFILES = {"paper": ("dev", None), "tuned": ("dev-tuned", None)}
UNICAST = ("dev-tuned", stack.unicast)
HTTPS_SUFFIX = "-https"  # a profile's rows under HTTPS load (bench/failover --https): the same stack


def quiet(line: str) -> None:
    """The harness's step log, not wanted among the bench's lines."""


def deployed(profile: str) -> Lab:
    """The lab up, `profile` applied, the site answering through the VIP: where a measurement starts."""
    lab = Lab.from_stack()
    lab.up()
    stack.apply(lab, log=quiet, profile=profile)
    stack.wait_serving(lab)
    return lab


def cpu_seconds(lab: Lab, host: str, pids: str) -> tuple[float, float]:
    """User and system CPU seconds so far of `pids` (pids, or a shell expression giving them) on `host`, from
    /proc in clock ticks. System time includes the kernel's work on the packets a process sends (veth,
    bridge, NAT run in the sender's context)."""
    ticks_of = f"for p in {pids}; do cut -d' ' -f14,15 /proc/$p/stat; done; getconf CLK_TCK"
    *rows, hertz = lab.read(host, ticks_of)[1].strip().splitlines()
    ticks = [(int(user), int(system)) for user, system in (row.split() for row in rows)]
    return sum(u for u, _ in ticks) / int(hertz), sum(s for _, s in ticks) / int(hertz)


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

    @property
    def base_profile(self) -> str:
        """The bench profile whose stack the run used ("tuned" for the "tuned-https" rows of `--https`)."""
        return self.profile.removesuffix(HTTPS_SUFFIX)

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
    timeout_s: float = TIMEOUT_S  # per request; a longer one shows what a patient client (a browser) sees


def run_stack(profile: str):
    """(stack file, alter) of a bench profile."""
    return UNICAST if profile == "unicast" else PROFILES[profile]
