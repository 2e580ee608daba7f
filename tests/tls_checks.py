"""HTTPS at the VIP in the lab tests: the site's names and port as the shipped dev-tuned stack has them, the
certificate keeper run on a balancer as its timer runs it, and what a client that trusts only Pebble's
current root is served."""

from __future__ import annotations

import socket
import ssl
import subprocess
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from components.tls_host import KEEPER
from drills.load import Load
from harness.program import stack_file_config
from lab import acme
from lab.lab import Lab
from ops.probe import Https
from tests.lab_checks import RATE

TLS_PROFILE = "dev-tuned"
KEEPER_TIMEOUT_S = 300  # one run of the keeper: an ACME order validated by Pebble, on two busy cores


@dataclass(frozen=True)
class Site:
    """The HTTPS site: its names, its port, and a client's trust (Pebble's root of the moment only)."""

    names: list[str]
    port: int
    context: ssl.SSLContext

    @property
    def https(self) -> Https:
        return Https(self.names[0], self.context)

    def load(self, lab: Lab, seconds: float, rate: int = RATE) -> Load:
        """`rate` HTTPS requests/s through the VIP, each a new connection and a full handshake."""
        return Load.through_vip(lab, rate, seconds, timeout=1.0, https=self.https, port=self.port)

    def served(self, address: str) -> x509.Certificate:
        """The leaf `address` serves under the first name, verified (chain, names, dates) or raising."""
        with (
            socket.create_connection((address, self.port), timeout=5) as raw,
            self.context.wrap_socket(raw, server_hostname=self.names[0]) as tls,
        ):
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def tls_settings() -> dict:
    return stack_file_config(TLS_PROFILE)["pihalb:cluster"]["haproxy"]["tls"]


def pebble(lab: Lab) -> acme.Pebble:
    return acme.lab_pebble(lab.state_dir / "acme", str(lab.gateway), str(lab.vip.ip), lab.frontend_port)


def site(lab: Lab) -> Site:
    settings = tls_settings()
    context = ssl.create_default_context(cadata=pebble(lab).issuing_roots())
    return Site(list(settings["names"]), settings.get("port", 443), context)


def keeper(lab: Lab, balancer: str, *args: str) -> str:
    """`pihalb-tls ARGS` as root on `balancer`, as its timer runs it (`renew`); its log. Fails if it fails."""
    code, out = lab.sh(balancer, " ".join([KEEPER, *args]), check=False, timeout=KEEPER_TIMEOUT_S)
    assert code == 0, f"{balancer}: pihalb-tls {' '.join(args)} exited {code}:\n{out}"
    return out


def keeper_in_background(lab: Lab, balancer: str, *args: str) -> subprocess.Popen:
    """The same, started and left running (a renewal that a fault will interrupt); `wait()` for its end."""
    return subprocess.Popen(
        ["docker", "exec", lab.container(balancer).name, KEEPER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def obtain_on_both(lab: Lab) -> None:
    """What the two timers do within minutes of a deployment, at once: the VIP holder orders the first
    certificate, then the other balancer adopts it from its peer."""
    master, backup = lab.master.name, lab.backup.name
    keeper(lab, master, "renew")
    keeper(lab, backup, "renew")


def issuer(cert: x509.Certificate) -> str:
    return str(cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
