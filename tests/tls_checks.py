"""HTTPS at the VIP in the lab tests, on top of drills/https.py: the shipped dev-tuned stack's site, and the
certificate keeper left running while a fault interrupts it."""

from __future__ import annotations

import subprocess

from cryptography import x509
from cryptography.x509.oid import NameOID

from components.tls_host import KEEPER
from drills.https import Site
from drills.https import site as https_site
from lab.lab import Lab

TLS_PROFILE = "dev-tuned"


def site(lab: Lab) -> Site:
    found = https_site(lab, TLS_PROFILE)
    assert found is not None, f"Pulumi.{TLS_PROFILE}.yaml has no haproxy.tls"
    return found


def keeper_in_background(lab: Lab, balancer: str, *args: str) -> subprocess.Popen:
    """The keeper (drills.https.keeper) started and left running: a renewal that a fault will interrupt."""
    return subprocess.Popen(
        ["docker", "exec", lab.container(balancer).name, KEEPER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def issuer(cert: x509.Certificate) -> str:
    return str(cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
