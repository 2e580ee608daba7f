"""HTTPS to the lab's site as a client sees it: the profile's `haproxy.tls` names (the first for SNI and the
certificate check), its port, and trust in the lab's Pebble's root of the moment only. Shared by the lab
tests and the benchmarks."""

from __future__ import annotations

import itertools
import socket
import ssl
from dataclasses import dataclass, replace

from cryptography import x509

from components.tls_host import KEEPER
from drills.load import Load
from harness.program import stack_file_config
from lab import acme
from lab.lab import Lab
from ops.probe import Https, Reply, get


@dataclass(frozen=True)
class Site:
    """The HTTPS site: its names, its port, and a client's trust (Pebble's root of the moment only)."""

    names: list[str]
    port: int
    context: ssl.SSLContext

    @property
    def https(self) -> Https:
        return Https(self.names[0], self.context)

    def load(self, lab: Lab, rate: int, seconds: float, timeout: float = 1.0) -> Load:
        """`rate` HTTPS requests/s through the VIP, each a new connection and a full handshake."""
        return Load.through_vip(lab, rate, seconds, timeout=timeout, https=self.https, port=self.port)

    def load_beside_http(self, lab: Lab, rate: int, seconds: float, timeout: float = 1.0) -> Load:
        """`rate` requests/s through the VIP, every other one over HTTPS (a new handshake each), the others plain
        HTTP on the frontend port: what a change with TLS on must lose neither of. A failed HTTPS request's
        detail starts with "HTTPS"."""
        vip, http_port, turn = str(lab.vip.ip), lab.frontend_port, itertools.count()

        def fetch() -> Reply:
            if next(turn) % 2:
                return get(vip, http_port, timeout=timeout)
            reply = get(vip, self.port, timeout=timeout, https=self.https)
            return reply if reply.ok else replace(reply, error=f"HTTPS {reply.error or reply.status}")

        return Load.through_vip(lab, rate, seconds, timeout=timeout, fetch=fetch)

    def served(self, address: str) -> x509.Certificate:
        """The leaf `address` serves under the first name, verified (chain, names, dates) or raising."""
        with (
            socket.create_connection((address, self.port), timeout=5) as raw,
            self.context.wrap_socket(raw, server_hostname=self.names[0]) as tls,
        ):
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


KEEPER_TIMEOUT_S = 300  # one run of the keeper: an ACME order validated by Pebble, on two busy cores


def keeper(lab: Lab, balancer: str, *args: str) -> str:
    """`pihalb-tls ARGS` as root on `balancer`, as its timer runs it (`renew`); its log. Raises if it fails."""
    code, out = lab.sh(balancer, " ".join([KEEPER, *args]), check=False, timeout=KEEPER_TIMEOUT_S)
    if code != 0:
        raise RuntimeError(f"{balancer}: pihalb-tls {' '.join(args)} exited {code}:\n{out}")
    return out


def certificates_on_both(lab: Lab) -> None:
    """What the two timers do within minutes of a deployment, at once: the VIP holder orders the first
    certificate (or keeps its own, not due), then the other balancer adopts it from its peer."""
    keeper(lab, lab.master.name, "renew")
    keeper(lab, lab.backup.name, "renew")


def pebble(lab: Lab) -> acme.Pebble:
    return acme.lab_pebble(lab)


def site(lab: Lab, profile: str) -> Site | None:
    """The profile's HTTPS site on the lab; None when the profile has no `haproxy.tls`."""
    tls = stack_file_config(profile)["pihalb:cluster"]["haproxy"].get("tls")
    if not tls:
        return None
    context = ssl.create_default_context(cadata=pebble(lab).issuing_roots())
    return Site(list(tls["names"]), tls.get("port", 443), context)
