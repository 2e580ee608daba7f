"""The certificate a balancer serves with TLS on, as `ops status` shows it: names, issuer, days left.

Read from the PEM HAProxy loads (names.HAPROXY_PEM_FILE, chain then key): the facts script cuts the
leaf out on the host, so the private key after it never leaves the balancer.
"""

from __future__ import annotations

import datetime
import shlex
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from components import names
from components.tls_secrets import dns_names

# Fewer days left is degraded. The keeper renews at a third of the lifetime on the VIP holder and a sixth
# on the other balancer (30 and 15 days of a 90-day certificate), so 14 means both have failed for weeks,
# and leaves a provided certificate two weeks to be replaced. A short-lived certificate (Let's Encrypt's
# 6-day ones, the lab's Pebble) is degraded from a sixth of its lifetime left instead: by then both
# balancers' renewals have failed, and 14 days would flag it from the day it was issued.
CERT_MIN_DAYS_LEFT = 14
CERT_MIN_LIFETIME_LEFT = 1 / 6
_BEGIN, _END = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"


@dataclass
class Certificate:
    names: list[str]  # the SAN's DNS names
    issuer: str  # its CN, else its O
    not_after: str  # ISO 8601, UTC
    days_left: int  # whole days until not_after (negative: expired)
    seconds_left: float  # until not_after
    lifetime_s: float  # not_before to not_after
    sha256: str  # the leaf's fingerprint, hex: equal when both balancers serve one certificate


def leaf_command(path: str = names.HAPROXY_PEM_FILE) -> str:
    """Prints the file's first certificate and stops there, before the key."""
    return f"sed -n '/{_BEGIN}/,/{_END}/{{p;/{_END}/q}}' {shlex.quote(path)}"


def read_leaf(pem: str) -> Certificate | None:
    """The leaf's facts from `leaf_command`'s output; None when it holds no readable certificate."""
    if _BEGIN not in pem:
        return None
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    not_after = cert.not_valid_after_utc
    left = not_after - datetime.datetime.now(datetime.UTC)
    return Certificate(
        names=dns_names(cert),
        issuer=_issuer(cert.issuer),
        not_after=not_after.isoformat(),
        days_left=left.days,
        seconds_left=left.total_seconds(),
        lifetime_s=(not_after - cert.not_valid_before_utc).total_seconds(),
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def _issuer(name: x509.Name) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        found = name.get_attributes_for_oid(oid)
        if found:
            return str(found[0].value)
    return name.rfc4514_string()


def describe(cert: Certificate) -> str:
    """One line for the status table; the fingerprint's start tells two balancers' certificates apart."""
    return (
        f"{' '.join(cert.names) or '(no DNS names)'}, issuer {cert.issuer}, {cert.days_left} days left "
        f"(until {cert.not_after[:10]}), sha256 {cert.sha256[:16]}"
    )


def renewal_overdue(cert: Certificate) -> bool:
    """Less left than CERT_MIN_DAYS_LEFT days, or than CERT_MIN_LIFETIME_LEFT of its lifetime if shorter."""
    return cert.seconds_left < min(CERT_MIN_DAYS_LEFT * 86_400, cert.lifetime_s * CERT_MIN_LIFETIME_LEFT)
