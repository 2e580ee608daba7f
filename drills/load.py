"""A bounded load on the site (`ops.probe.Probe`, the drill's own) that also watches the VIP holder and
keepalived, shared by the lab tests and the benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drills.observe import keepalived_state
from lab.lab import Lab
from ops.probe import Https, Probe, Reply, Sample, get, time_to_recovery

STEADY_S = 2.0  # recovered = the first success after which nothing failed for this long


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
        return time_to_recovery(self.samples, STEADY_S)


class Load:
    """`rate` requests/s to `host` for `seconds`, each on a new connection, each logged; stops by itself.

    Started in the background with `start()`; `join()` waits for the window to end. With `lab`, it also
    samples the VIP holder every ~0.2 s and the balancers' keepalived states every ~1 s.
    """

    def __init__(
        self,
        host: str,
        rate: int,
        seconds: float,
        timeout: float = 1.0,
        lab: Lab | None = None,
        port: int = 80,
        https: Https | None = None,
        fetch: Callable[[], Reply] | None = None,
    ):
        self.host, self.port, self.rate, self.timeout, self.lab = host, port, rate, timeout, lab
        self.recording = Recording(seconds)
        self.requests = Probe(
            fetch or (lambda: get(host, port, timeout=timeout, https=https)),
            rate,
            seconds,
            timeout,
            samples=self.recording.samples,
        )
        self._watcher: threading.Thread | None = None

    @classmethod
    def through_vip(
        cls,
        lab: Lab,
        rate: int,
        seconds: float,
        timeout: float = 1.0,
        https: Https | None = None,
        port: int = 0,
        fetch: Callable[[], Reply] | None = None,
    ) -> Load:
        """Load on the site through the lab's VIP (HTTPS with `https`, on `port`; or `fetch`'s requests),
        probing the VIP holder and keepalived meanwhile."""
        port = port or lab.frontend_port
        return cls(str(lab.vip.ip), rate, seconds, timeout=timeout, lab=lab, port=port, https=https, fetch=fetch)

    @property
    def t0(self) -> float:
        return self.requests.t0

    def start(self) -> Load:
        self.requests.start(delay=0.2)
        if self.lab is not None:
            self._watcher = threading.Thread(target=self._probe, args=(self.lab,), daemon=True)
            self._watcher.start()
        return self

    def elapsed(self) -> float:
        """Seconds since the window began (negative just before the first request)."""
        return self.requests.elapsed()

    def finish(self, tail: float = 3.0) -> Recording:
        """End the window `tail` seconds from now (if it would end later), then wait for it: a window as
        long as the change it watches, plus a tail in which a late failure would still show."""
        self.recording.seconds = min(self.recording.seconds, max(0.0, self.elapsed()) + tail)
        self.requests.max_seconds = self.recording.seconds
        return self.join()

    def join(self) -> Recording:
        self.requests.join(timeout=self.recording.seconds + 30)
        if self._watcher is not None:
            self._watcher.join(timeout=self.recording.seconds + 30)
        return self.recording

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
