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

No Pulumi in here: `load` (settings.py) calls `check_tls_secrets` on the plain values, as it checks the
other secrets, and the renderer takes `haproxy_tls` for the template.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import AfterValidator, BeforeValidator, Field, StrictBool, StrictStr, model_validator

from components.fields import (
    ACME_ACCOUNT_KEY_KEY,
    CONFIG_NAMESPACE,
    SET_SECRET,
    TLS_CERTIFICATE_KEY,
    TLS_PRIVATE_KEY_KEY,
    Port,
    Problem,
    StrictModel,
    fail,
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


# ---- the secrets --------------------------------------------------------------------------------------

TLS_KEY_KINDS = "RSA of 2048 bits or more, or ECDSA on P-256 or P-384"


@dataclass(frozen=True)
class TlsMaterial:
    """The TLS secrets as the hosts get them: canonical PEM (no blank line: HAProxy's runtime API ends a
    payload there), and the account's thumbprint (public: the HTTP-01 answers carry it)."""

    private_key: str
    certificate: str = ""
    """provided: the chain, leaf first; acme: empty (the balancers obtain it)."""
    account_key: str = ""
    thumbprint: str = ""


def _private_key(key: str, value: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    data = value.strip().encode()
    if b"ENCRYPTED" in data:
        fail(key, "the private key is encrypted, and a balancer cannot type its passphrase", _key_fix(key))
    if data.count(b"-----BEGIN ") != 1:
        fail(key, "not exactly one PEM private key", _key_fix(key))
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:  # cryptography's answer to an encrypted key without a password
        fail(key, "the private key is encrypted, and a balancer cannot type its passphrase", _key_fix(key))
    except Exception:  # ValueError for malformed PEM or DER, UnsupportedAlgorithm for unknown key types
        fail(key, "not a PEM private key that can be read", _key_fix(key))
    if isinstance(loaded, rsa.RSAPrivateKey) and loaded.key_size >= 2048:
        return loaded
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and isinstance(loaded.curve, ec.SECP256R1 | ec.SECP384R1):
        return loaded
    fail(
        key,
        f"a {type(loaded).__name__.removeprefix('_')} key; certificates and ACME accounts here take {TLS_KEY_KINDS}",
        _key_fix(key),
    )
    raise AssertionError  # fail raised


def _key_fix(key: str) -> str:
    return f"run `{SET_SECRET[key]}`"


def _pem_key(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_der(public: object) -> bytes:
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk_thumbprint(public: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """RFC 7638's SHA-256 thumbprint of the account's public key, base64url without padding (RFC 8555 §8.1)."""

    def b64(number: int, length: int | None = None) -> str:
        raw = number.to_bytes(length or max(1, (number.bit_length() + 7) // 8), "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        jwk = {"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)}
    else:
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[public.curve.name]
        jwk = {"crv": crv, "kty": "EC", "x": b64(numbers.x, size), "y": b64(numbers.y, size)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def name_covered(name: str, cert_names: list[str]) -> bool:
    """RFC 6125: an exact name, or a wildcard standing for exactly one left-most label."""
    for cert_name in (n.lower().rstrip(".") for n in cert_names):
        if cert_name == name:
            return True
        if cert_name.startswith("*.") and "." in name and name.split(".", 1)[1] == cert_name[2:]:
            return True
    return False


def _chain(value: str, names: list[str], now: datetime.datetime) -> list[x509.Certificate]:
    key = TLS_CERTIFICATE_KEY
    text = value.strip()
    if "PRIVATE KEY" in text:
        fail(
            key,
            "holds a private key",
            f"keep only the certificates here and set the key as {TLS_PRIVATE_KEY_KEY}: "
            f"`{SET_SECRET[TLS_PRIVATE_KEY_KEY]}`",
        )
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", text, re.S)
    if not blocks or len(blocks) != text.count("-----BEGIN"):
        fail(key, "not a PEM certificate chain", f"set the chain, leaf first: `{SET_SECRET[key]}`")
    certs = []
    for i, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode()))
        except ValueError:
            fail(key, f"certificate {i + 1} of the chain is malformed PEM", f"set the chain again: `{SET_SECRET[key]}`")
    leaf = certs[0]
    if now < leaf.not_valid_before_utc:
        fail(
            key,
            f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            "wait until then, or set a certificate valid now (is this machine's clock right?)",
        )
    if now > leaf.not_valid_after_utc:
        fail(
            key,
            f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
            f"renew it and set the new chain: `{SET_SECRET[key]}`",
        )
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert_names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        cert_names = []
    missing = [n for n in names if not name_covered(n, cert_names)]
    if missing:
        fail(
            key,
            f"the certificate does not cover {missing} (its names: {cert_names or 'none'}); clients would "
            "refuse it for those names",
            f"set a certificate for every name of {CONFIG_NAMESPACE}:cluster.haproxy.tls.names, or remove those "
            "names there",
        )
    for i in range(len(certs) - 1):
        try:
            certs[i].verify_directly_issued_by(certs[i + 1])
        except (ValueError, TypeError, InvalidSignature):
            fail(
                key,
                f"certificate {i + 2} of the chain did not issue certificate {i + 1}",
                "order the chain leaf first, each certificate followed by its issuer",
            )
    return certs


def check_tls_secrets(
    tls: Tls | None, get_secret: Callable[[str], str | None], now: datetime.datetime | None = None
) -> TlsMaterial | None:
    """The TLS secrets a stack's `haproxy.tls` reads, checked (the others refused as unused), as the hosts
    get them; None with TLS off. Messages never repeat a secret."""
    wanted = SECRETS_OF_SOURCE[tls.certificate.kind] if tls else ()
    for key in TLS_SECRET_KEYS:
        if key not in wanted and get_secret(key):
            why = "TLS is off" if tls is None else f"the certificate kind is {tls.certificate.kind}"
            fail(key, f"set, but unused: {why}", f"`pulumi config rm {CONFIG_NAMESPACE}:{key}`")
    if tls is None:
        return None
    values = {}
    for key in wanted:
        value = get_secret(key)
        if not value or not value.strip():
            fail(
                key,
                f"secret is not set (haproxy.tls.certificate.kind is {tls.certificate.kind})",
                f"run `{SET_SECRET[key]}`",
            )
        values[key] = value
    private = _private_key(TLS_PRIVATE_KEY_KEY, values[TLS_PRIVATE_KEY_KEY])
    if tls.certificate.kind == "acme":
        account = _private_key(ACME_ACCOUNT_KEY_KEY, values[ACME_ACCOUNT_KEY_KEY])
        if not isinstance(account, rsa.RSAPrivateKey):
            fail(ACME_ACCOUNT_KEY_KEY, "an ECDSA key; the balancers' ACME client (Debian 12's dehydrated 0.7.0) signs "
                 "with RS256 only", _key_fix(ACME_ACCOUNT_KEY_KEY))  # fmt: skip
        if _public_der(account.public_key()) == _public_der(private.public_key()):
            fail(
                ACME_ACCOUNT_KEY_KEY,
                f"the same key as {TLS_PRIVATE_KEY_KEY}; ACME servers refuse a certificate for the account's own key",
                "generate a separate account key",
            )
        return TlsMaterial(
            _pem_key(private), account_key=_pem_key(account), thumbprint=jwk_thumbprint(account.public_key())
        )
    certs = _chain(values[TLS_CERTIFICATE_KEY], tls.names, now or datetime.datetime.now(datetime.UTC))
    if _public_der(certs[0].public_key()) != _public_der(private.public_key()):
        fail(
            TLS_PRIVATE_KEY_KEY,
            f"does not match the certificate of {CONFIG_NAMESPACE}:{TLS_CERTIFICATE_KEY}",
            "set the key the certificate was issued for (or the certificate issued for this key)",
        )
    chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    return TlsMaterial(_pem_key(private), certificate=chain)


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
