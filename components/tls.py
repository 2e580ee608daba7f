"""HTTPS at the VIP: the `haproxy.tls` model, the checks of its secrets, and what haproxy.cfg needs.

Off unless `pihalb:cluster.haproxy.tls` is set, so a stack without it renders and declares exactly what
it did before. When on, HAProxy terminates TLS on `tls.port` with one certificate for `tls.names`, from
one of two sources (`tls.certificate.kind`):

- `provided`: the chain and its key as Pulumi secrets (`pihalb:tlsCertificate`, `pihalb:tlsPrivateKey`),
  refused here, before any resource is declared, when they cannot serve the names now;
- `acme`: RFC 8555 HTTP-01 from `directoryUrl`. Both balancers share the account key
  (`pihalb:acmeAccountKey`) and the certificate's key (`pihalb:tlsPrivateKey`), so both answer every
  challenge from the account's thumbprint (stateless, whichever holds the VIP) and either can serve a
  certificate the other obtained.

No Pulumi in here: `load` (settings.py) calls `tls_secrets.check_tls_secrets` on the plain values, as it checks the
other secrets, and the renderer takes `haproxy_tls` for the template.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictStr, model_validator

from components.fields import (
    ACME_ACCOUNT_KEY_KEY,
    CONFIG_NAMESPACE,
    TLS_CERTIFICATE_KEY,
    TLS_PRIVATE_KEY_KEY,
    Port,
    Problem,
    StrictModel,
    matching,
)

TLS_SECRET_KEYS = (TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY, ACME_ACCOUNT_KEY_KEY)
# Which secrets each certificate source reads; every other TLS secret set with it is refused (unused).
SECRETS_OF_SOURCE = {
    "provided": (TLS_CERTIFICATE_KEY, TLS_PRIVATE_KEY_KEY),
    "acme": (ACME_ACCOUNT_KEY_KEY, TLS_PRIVATE_KEY_KEY),
}

# HAProxy listens unprivileged inside its container; Docker publishes tls.port to this one.
HAPROXY_TLS_CONTAINER_PORT = 8443
# The certificate HAProxy serves: chain then key, one PEM (a `.pem`: HAProxy 2.6 cannot replace a `.crt`
# at run time, upstream issue #2265), in the config directory the container mounts read-only.
HAPROXY_CERT_DIR = "/usr/local/etc/haproxy/tls"
HAPROXY_CERT_FILE = f"{HAPROXY_CERT_DIR}/site.pem"
ACME_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"

# Mozilla's "intermediate" profile (TLS 1.2 and 1.3), as `haproxy -c` 2.6.12 accepts it.
MOZILLA_INTERMEDIATE = {
    "curves": "X25519:prime256v1:secp384r1",
    "ciphers": ":".join(
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ECDHE-RSA-AES128-GCM-SHA256",
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "ECDHE-RSA-AES256-GCM-SHA384",
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "ECDHE-RSA-CHACHA20-POLY1305",
        )
    ),
    "ciphersuites": "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    "options": "prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets",
}
HSTS_MAX_AGE_S = 63_072_000  # two years, what Mozilla's generator sets
MAX_NAMES = 100  # Let's Encrypt's limit of names per certificate


# ---- field types --------------------------------------------------------------------------------------

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"


def _dns_name(value: str) -> str:
    if value.startswith("*."):
        raise Problem(
            f"{value!r} is a wildcard: HTTP-01 cannot validate one, and the certificate check needs the names "
            "actually served",
            "list each name the site is served under (a provided wildcard certificate covers them)",
        )
    if value != value.lower():
        raise Problem(f"{value!r} has capitals", f"write it in lowercase: {value.lower()!r}")
    matching(
        rf"{_LABEL}(?:\.{_LABEL})+",
        "a DNS name of the site",
        "write a fully qualified name such as www.example.org: labels of letters, digits and '-', "
        "no trailing dot, at least two labels",
        max_len=253,
    )(value)
    if re.fullmatch(r"[0-9.]+", value):
        raise Problem(f"{value!r} is an IP address", "use the DNS name the site is served under")
    return value


def _names(value: list[str]) -> list[str]:
    if not value:
        raise Problem("no names", "list the DNS names the site is served under, e.g. [www.example.org]")
    if len(value) > MAX_NAMES:
        raise Problem(f"{len(value)} names", f"at most {MAX_NAMES} per certificate (Let's Encrypt's limit)")
    dups = sorted({n for n in value if value.count(n) > 1})
    if dups:
        raise Problem(f"duplicate names {dups}", "list each name once")
    return value


def _hsts(value: Any) -> int | bool:
    """`false` (off, the default) or the max-age in seconds."""
    if value is False:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= HSTS_MAX_AGE_S:
        raise Problem(
            f"{str(value).lower() if isinstance(value, bool) else repr(value)} is neither false nor a max-age",
            f"write false, or a whole number of seconds from 1 to {HSTS_MAX_AGE_S} (e.g. 31536000, a year)",
        )
    return value


def _acme_url(value: str) -> str:
    return matching(
        r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[A-Za-z0-9\-._~/%+=&,;:@]*",
        "an https URL of an ACME directory",
        "e.g. https://acme-v02.api.letsencrypt.org/directory (RFC 8555 servers speak https only)",
        max_len=2048,
    )(value)


def _email(value: str) -> str:
    return matching(
        r"|[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
        "an e-mail address",
        "e.g. admin@example.org, or leave it empty for no contact",
        max_len=254,
    )(value)


def _ca_bundle(value: str) -> str:
    if not value:
        return value
    try:
        certs = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise Problem(
            "not a PEM bundle of CA certificates", "paste the CA's certificate(s), -----BEGIN CERTIFICATE----- blocks"
        ) from None
    if "PRIVATE KEY" in value:
        raise Problem("the bundle holds a private key", "keep only the CA certificates")
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


DnsName = Annotated[StrictStr, AfterValidator(_dns_name)]
Names = Annotated[list[DnsName], AfterValidator(_names)]
Hsts = Annotated[int | bool, BeforeValidator(_hsts)]
AcmeUrl = Annotated[StrictStr, AfterValidator(_acme_url)]
Email = Annotated[StrictStr, AfterValidator(_email)]
CaBundle = Annotated[StrictStr, AfterValidator(_ca_bundle)]
OptionalUrl = Annotated[StrictStr, AfterValidator(lambda value: value and _acme_url(value))]


# ---- models --------------------------------------------------------------------------------------------


class Certificate(StrictModel):
    """Where the certificate comes from: `provided` (secrets) or `acme` (its directory, contact, CA)."""

    kind: Literal["provided", "acme"]
    directory_url: AcmeUrl = Field(default="", alias="directoryUrl")
    email: Email = ""
    ca_bundle: CaBundle = Field(default="", alias="caBundle")
    """The CA that signed the ACME server's own https certificate, when the system does not trust it
    (Pebble's, in the lab). Only the ACME client trusts it."""
    roots_url: OptionalUrl = Field(default="", alias="rootsUrl")
    """Where the ACME server publishes the roots it issues under, when the system does not trust them
    (Pebble's management `/roots/0`, new at each start): fetched with caBundle, trusted by the renewal
    only, to verify a chain before serving it or adopting the peer's."""

    @model_validator(mode="after")
    def _by_kind(self) -> Certificate:
        if self.kind == "acme" and not self.directory_url:
            raise Problem(
                "an acme certificate needs its ACME directory",
                "set directoryUrl, e.g. https://acme-v02.api.letsencrypt.org/directory "
                "(https://acme-staging-v02.api.letsencrypt.org/directory to try it out)",
                "directoryUrl",
            )
        if self.kind == "provided":
            unused = [alias for alias, value in self._acme_fields().items() if value]
            if unused:
                raise Problem(
                    f"{', '.join(unused)}: only read with kind: acme; a provided certificate comes from the secrets "
                    f"{CONFIG_NAMESPACE}:{TLS_CERTIFICATE_KEY} and {CONFIG_NAMESPACE}:{TLS_PRIVATE_KEY_KEY}",
                    "remove them, or set kind: acme",
                    unused[0],
                )
        return self

    def _acme_fields(self) -> dict[str, str]:
        return {
            "directoryUrl": self.directory_url,
            "email": self.email,
            "caBundle": self.ca_bundle,
            "rootsUrl": self.roots_url,
        }


class Tls(StrictModel):
    """HTTPS at the VIP (`haproxy.tls`): absent, the balancers serve plain HTTP only, as the paper's."""

    port: Port = 443
    redirect_http: StrictBool = Field(default=False, alias="redirectHttp")
    """Plain HTTP answers 301 to https (the ACME challenge path excepted); off, both serve the site."""
    hsts: Hsts = False
    """`false`, or the max-age of a Strict-Transport-Security header on https responses."""
    names: Names
    """The DNS names the site is served under: the certificate's names (each must be covered)."""
    certificate: Certificate


# ---- haproxy.cfg ---------------------------------------------------------------------------------------


def haproxy_tls(tls: Tls | None, thumbprint: str = "") -> dict[str, object] | None:
    """What haproxy.cfg.j2's TLS lines read; None with TLS off (the template then renders as before)."""
    if tls is None:
        return None
    acme = tls.certificate.kind == "acme"
    if acme and not re.fullmatch(r"[A-Za-z0-9_-]{43}", thumbprint):
        raise ValueError("an acme certificate needs the account key's thumbprint to answer HTTP-01 challenges")
    return {
        "container_port": HAPROXY_TLS_CONTAINER_PORT,
        "cert_file": HAPROXY_CERT_FILE,
        "profile": MOZILLA_INTERMEDIATE,
        "port": tls.port,
        "redirect_http": tls.redirect_http,
        "hsts": tls.hsts,
        "acme_prefix": ACME_CHALLENGE_PREFIX,
        "acme_thumbprint": thumbprint if acme else "",
    }
