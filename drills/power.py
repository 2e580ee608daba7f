"""A house's power lost and back: every host killed at once, then booted in a random order with random
delays, as Pis on one power strip come back when the fuse is reset. Nothing is applied afterwards: what
brings the site back is only what the hosts start at boot (Docker's restart policy, keepalived, the
watcher), which is the point."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from drills.observe import get_vip, wait_until
from lab.lab import Lab

MAX_DELAY_S = 5.0  # between two hosts' boots: a Pi's power supply, a fuse reset, a switch booting


@dataclass(frozen=True)
class PowerReturn:
    """How the power came back: reproducible from `seed`."""

    seed: int
    order: tuple[str, ...]
    delays_s: tuple[float, ...]
    first_start: float  # time.monotonic() when the first host was switched on (the power came back)
    last_start: float  # time.monotonic() when the last host was switched on


def cut_everything(lab: Lab) -> None:
    """Every host killed at the same moment (SIGKILL to all five at once): no shutdown runs anywhere."""
    names = [host.name for host in lab.hosts]
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lab.cut_power, names))


def power_back(lab: Lab, seed: int, max_delay_s: float = MAX_DELAY_S) -> PowerReturn:
    """The hosts switched on one by one in an order and with delays drawn from `seed`; nobody waits for
    them to boot."""
    rng = random.Random(seed)
    order = [host.name for host in lab.hosts]
    rng.shuffle(order)
    delays = [round(rng.uniform(0, max_delay_s), 2) for _ in order]
    starts = []
    for name, delay in zip(order, delays, strict=True):
        time.sleep(delay)
        lab.power_on(name)
        starts.append(time.monotonic())
    return PowerReturn(seed, tuple(order), tuple(delays), starts[0], starts[-1])


def first_served_after(lab: Lab, since: float, timeout: float) -> float:
    """Seconds from `since` (monotonic) to the first page through the VIP; polled every 50 ms, bounded."""
    wait_until("a page through the VIP", lambda: get_vip(lab, timeout=0.5).status == 200, timeout, interval=0.05)
    return time.monotonic() - since
