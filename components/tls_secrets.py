"""The TLS secrets of `haproxy.tls` checked before any host is touched: the certificate's key and the ACME
account key (RSA or ECDSA), a provided chain that must serve the configured names now, and the account's
JWK thumbprint (RFC 7638) that both balancers answer HTTP-01 challenges with."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from components.fields import (
    ACME_ACCOUNT_KEY_KEY,
    CONFIG_NAMESPACE,
    SET_SECRET,
    TLS_CERTIFICATE_KEY,
    TLS_PRIVATE_KEY_KEY,
    fail,
)
from components.tls import SECRETS_OF_SOURCE, TLS_SECRET_KEYS, Tls

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


def dns_names(cert: x509.Certificate) -> list[str]:
    """The DNS names of the certificate's subject alternative names (none without the extension)."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        return []


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
    cert_names = dns_names(leaf)
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
