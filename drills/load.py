"""A bounded load generator and a VIP probe, shared by the lab tests and the failover benchmark."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from drills.observe import get, keepalived_state
from lab.lab import Lab

STEADY_S = 2.0  # recovered = the first success after which nothing failed for this long


@dataclass
class Sample:
    t: float
    ok: bool
    server: int | None
    detail: str
    latency: float = 0.0  # seconds from connect to the whole reply read


@dataclass
class Recording:
    """Every request of one load window, and the VIP holders seen meanwhile (times from the start)."""

    seconds: float
    samples: list[Sample] = field(default_factory=list)
    vip: list[tuple[float, str]] = field(default_factory=list)
    states: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def failed(self) -> list[Sample]:
        return [s for s in self.samples if not s.ok]

    def vip_moves(self) -> list[float]:
        """When the sampled VIP holder changed (samples every ~0.2 s)."""
        return [t for (t, holders), (_, before) in zip(self.vip[1:], self.vip, strict=False) if holders != before]

    def cut_by_vip_moves(self, within_s: float = 1.0) -> list[Sample]:
        """Failed requests a VIP move explains: reset (not timed out, not a 5xx), near a holder change, at
        most one per move. A connection in flight when the VIP moves sends its next packet to the new
        holder, which has never seen it and resets it; only connection-state sync between the balancers
        (conntrackd) would carry it over."""
        moves = self.vip_moves()
        cut = []
        for sample in self.failed:
            near = [t for t in moves if abs(t - sample.t) <= within_s]
            if "ConnectionResetError" in sample.detail and near:
                moves.remove(near[0])
                cut.append(sample)
        return cut

    def failed_besides_vip_moves(self) -> list[Sample]:
        """The failed requests that `cut_by_vip_moves` does not explain."""
        cut = self.cut_by_vip_moves()
        return [s for s in self.failed if s not in cut]

    def time_to_recovery(self) -> float | None:
        """From the first failure to the first success that starts STEADY_S without failures; 0 if none failed."""
        failed = self.failed
        if not failed:
            return 0.0
        for sample in self.samples:
            if sample.ok and sample.t > failed[0].t and not any(sample.t < f.t <= sample.t + STEADY_S for f in failed):
                return round(sample.t - failed[0].t, 3)
        return None


class Load:
    """`rate` requests/s to `host` for `seconds`, each on a new connection, each logged; stops by itself.

    Started in the background with `start()`; `join()` waits for the window to end. With `lab`, it also
    samples the VIP holder every ~0.2 s and the balancers' keepalived states every ~1 s.
    """

    def __init__(
        self, host: str, rate: int, seconds: float, timeout: float = 1.0, lab: Lab | None = None, port: int = 80
    ):
        self.host, self.port, self.rate, self.timeout, self.lab = host, port, rate, timeout, lab
        self.recording = Recording(seconds)
        self.t0 = 0.0
        self._threads: list[threading.Thread] = []

    @classmethod
    def through_vip(cls, lab: Lab, rate: int, seconds: float, timeout: float = 1.0) -> Load:
        """Load on the site through the lab's VIP, probing the VIP holder and keepalived meanwhile."""
        return cls(str(lab.vip.ip), rate, seconds, timeout=timeout, lab=lab, port=lab.frontend_port)

    def start(self) -> Load:
        self.t0 = time.monotonic() + 0.2
        self._threads = [threading.Thread(target=self._drive, daemon=True)]
        if self.lab is not None:
            self._threads.append(threading.Thread(target=self._probe, args=(self.lab,), daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def elapsed(self) -> float:
        """Seconds since the window began (negative just before the first request)."""
        return time.monotonic() - self.t0

    def finish(self, tail: float = 3.0) -> Recording:
        """End the window `tail` seconds from now (if it would end later), then wait for it: a window as
        long as the change it watches, plus a tail in which a late failure would still show."""
        self.recording.seconds = min(self.recording.seconds, max(0.0, self.elapsed()) + tail)
        return self.join()

    def join(self) -> Recording:
        for thread in self._threads:
            thread.join(timeout=self.recording.seconds + 30)
        self.recording.samples.sort(key=lambda s: s.t)
        return self.recording

    def _one(self) -> None:
        sent = self.elapsed()  # when it really went out, not when it was due: a late request is no alibi
        reply = get(self.host, self.port, timeout=self.timeout)
        latency = self.elapsed() - sent
        ok = reply.status == 200 and reply.server is not None
        detail = reply.error or str(reply.status)
        self.recording.samples.append(Sample(round(sent, 3), ok, reply.server, detail, round(latency, 6)))

    def _drive(self) -> None:
        # Enough workers that requests hanging for the whole timeout never delay the ones due after them.
        with ThreadPoolExecutor(max_workers=int(self.rate * self.timeout * 2) + 8) as pool:
            i = 0
            while (at := i / self.rate) < self.recording.seconds:  # `finish` may shorten the window
                i += 1
                delay = self.t0 + at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._one)

    def _probe(self, lab: Lab) -> None:
        last_states = -1.0
        while (now := self.elapsed()) < self.recording.seconds:
            try:
                holders = "+".join(lab.vip_holders()) or "none"
            except Exception as error:  # a balancer host being stopped: record it, keep probing
                holders = f"unknown ({type(error).__name__})"
            self.recording.vip.append((round(now, 3), holders))
            if now - last_states >= 1.0:
                last_states = now
                for balancer in lab.balancers:
                    try:
                        state = keepalived_state(lab, balancer.name)
                    except Exception as error:
                        state = f"unreachable ({type(error).__name__})"
                    self.recording.states.append((round(now, 3), balancer.name, state))
            time.sleep(0.2)
