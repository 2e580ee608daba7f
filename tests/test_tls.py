"""Issue 19, the part without the lab: `haproxy.tls` validated like every other key, provided certificates
checked before any resource is declared, the ACME account's thumbprint."""

from __future__ import annotations

import base64
import datetime
import functools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from components import tls, tls_secrets
from components.settings import ConfigError

from .artifact_tools import embedded_file
from .test_settings import assert_refused_before_any_resource

pytestmark = pytest.mark.unit

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
NAMES = ["www.example.org", "example.org"]


# ---- certificates made on the fly --------------------------------------------------------------------


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def rsa_key(index: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(65537, 2048)


def pem_key(key, password: bytes | None = None) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def issue(
    key,
    names=NAMES,
    *,
    issuer_key=None,
    issuer_name: str = "",
    ca: bool = False,
    not_before: datetime.datetime = NOW - DAY,
    not_after: datetime.datetime = NOW + 90 * DAY,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "test CA")])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]) if issuer_name else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def chain():
    """A leaf for NAMES issued by a CA: (leaf key, leaf PEM + CA PEM)."""
    ca_key, key = ec_key(), ec_key()
    ca = issue(ca_key, [], ca=True)
    leaf = issue(key, issuer_key=ca_key, issuer_name="test CA")
    return key, pem_cert(leaf) + pem_cert(ca)


def provided(names=NAMES) -> tls.Tls:
    return tls.Tls.model_validate({"names": names, "certificate": {"kind": "provided"}})


def acme() -> tls.Tls:
    return tls.Tls.model_validate(
        {"names": NAMES, "certificate": {"kind": "acme", "directoryUrl": "https://acme.example/dir"}}
    )


def check(model, **secrets):
    keys = {"certificate": "tlsCertificate", "key": "tlsPrivateKey", "account": "acmeAccountKey"}
    values = {keys[k]: v for k, v in secrets.items()}
    return tls_secrets.check_tls_secrets(model, values.get, now=NOW)


def refused(model, expected_key: str, expected: str, **secrets) -> str:
    with pytest.raises(ConfigError) as caught:
        check(model, **secrets)
    message = str(caught.value)
    assert message.startswith(f"pihalb:{expected_key}: "), message
    assert expected in message and "Fix:" in message, message
    for value in secrets.values():  # no secret repeated, not even a line of it
        assert not any(len(line) > 20 and line in message for line in value.splitlines()), message
    return message


# ---- provided certificates -----------------------------------------------------------------------------


def test_a_good_chain_is_accepted_in_canonical_pem(chain):
    key, pem = chain
    material = check(provided(), certificate="\n\n" + pem.replace("\n", "\r\n") + "\n", key=pem_key(key))
    assert material.certificate == pem
    assert "\n\n" not in material.certificate + material.private_key  # HAProxy's runtime API ends a payload there
    assert material.private_key == pem_key(key)


def test_a_wildcard_certificate_covers_one_label(chain):
    key = ec_key()
    cert = pem_cert(issue(key, ["*.example.org"]))
    assert check(provided(["www.example.org", "api.example.org"]), certificate=cert, key=pem_key(key))
    refused(provided(["a.b.example.org"]), "tlsCertificate", "does not cover ['a.b.example.org']", certificate=cert,
            key=pem_key(key))  # fmt: skip
    refused(provided(["example.org"]), "tlsCertificate", "does not cover", certificate=cert, key=pem_key(key))


def test_a_key_that_does_not_match_the_certificate_is_refused(chain):
    _, pem = chain
    refused(provided(), "tlsPrivateKey", "does not match the certificate", certificate=pem, key=pem_key(ec_key()))


@pytest.mark.parametrize(
    "window, expected",
    [((NOW - 90 * DAY, NOW - DAY), "expired on"), ((NOW + DAY, NOW + 90 * DAY), "not valid before")],
    ids=["expired", "not yet valid"],
)
def test_a_certificate_not_valid_now_is_refused(window, expected):
    key = ec_key()
    cert = pem_cert(issue(key, not_before=window[0], not_after=window[1]))
    refused(provided(), "tlsCertificate", expected, certificate=cert, key=pem_key(key))


def test_a_certificate_without_the_configured_names_is_refused():
    key = ec_key()
    cert = pem_cert(issue(key, ["www.example.org"]))
    message = refused(
        provided(), "tlsCertificate", "does not cover ['example.org']", certificate=cert, key=pem_key(key)
    )
    assert "haproxy.tls.names" in message


def test_a_certificate_with_no_names_at_all_is_refused():
    key = ec_key()
    refused(provided(), "tlsCertificate", "its names: none", certificate=pem_cert(issue(key, [])), key=pem_key(key))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda pem: "not a certificate",
        lambda pem: pem.replace("MII", "XYZ", 1),
        lambda pem: pem[: len(pem) // 2],
        lambda pem: pem.replace("-----END CERTIFICATE-----", "", 1),
        lambda pem: "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ],
    ids=["text", "bad base64 DER", "cut in half", "no end line", "garbage"],
)
def test_malformed_certificate_pem_is_refused(chain, mangle):
    key, pem = chain
    with pytest.raises(ConfigError) as caught:
        check(provided(), certificate=mangle(pem), key=pem_key(key))
    assert str(caught.value).startswith("pihalb:tlsCertificate: "), caught.value
    assert "Fix:" in str(caught.value)


def test_a_chain_out_of_order_is_refused(chain):
    key, pem = chain
    leaf, ca = pem.split("-----END CERTIFICATE-----\n", 1)
    shuffled = pem_cert(issue(ec_key(), [], ca=True)) + pem  # an unrelated CA put in front
    refused(provided(), "tlsCertificate", "does not cover", certificate=shuffled, key=pem_key(key))
    other_ca = pem_cert(issue(ec_key(), [], ca=True))
    refused(provided(), "tlsCertificate", "did not issue certificate 1", certificate=pem.split(ca)[0] + other_ca,
            key=pem_key(key))  # fmt: skip
    assert leaf


def test_a_key_pasted_into_the_certificate_secret_is_refused(chain):
    key, pem = chain
    refused(provided(), "tlsCertificate", "holds a private key", certificate=pem + pem_key(key), key=pem_key(key))


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda key: pem_key(key, b"passphrase"), "encrypted"),
        (
            lambda key: key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.BestAvailableEncryption(b"passphrase"),
            ).decode(),
            "encrypted",
        ),
        (lambda key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM private key"),
        (lambda key: "hello", "not exactly one PEM private key"),
        (lambda key: pem_key(key) + pem_key(key), "not exactly one PEM private key"),
        (lambda key: pem_key(rsa.generate_private_key(65537, 1024)), "take RSA of 2048 bits"),
        (lambda key: pem_key(ed25519.Ed25519PrivateKey.generate()), "take RSA of 2048 bits"),
        (lambda key: pem_key(ec.generate_private_key(ec.SECP521R1())), "take RSA of 2048 bits"),
    ],
    ids=["encrypted PKCS#8", "encrypted traditional", "bad DER", "text", "two keys", "RSA 1024", "ed25519", "P-521"],
)
def test_an_unusable_private_key_is_refused(chain, make, expected):
    key, pem = chain
    refused(provided(), "tlsPrivateKey", expected, certificate=pem, key=make(key))


def test_an_rsa_certificate_is_accepted():
    key = rsa.generate_private_key(65537, 2048)
    assert check(provided(), certificate=pem_cert(issue(key)), key=pem_key(key))


# ---- which secrets each source reads ----------------------------------------------------------------


def test_each_source_reads_its_secrets_and_refuses_the_others(chain):
    key, pem = chain
    account = pem_key(rsa_key())
    refused(None, "tlsCertificate", "set, but unused: TLS is off", certificate=pem)
    refused(provided(), "acmeAccountKey", "unused: the certificate kind is provided", certificate=pem,
            key=pem_key(key), account=account)  # fmt: skip
    refused(acme(), "tlsCertificate", "unused: the certificate kind is acme", certificate=pem, key=pem_key(key),
            account=account)  # fmt: skip
    refused(provided(), "tlsCertificate", "secret is not set", key=pem_key(key))
    refused(acme(), "acmeAccountKey", "secret is not set", key=pem_key(key))
    refused(acme(), "tlsPrivateKey", "secret is not set", account=account)
    rsa_pem = pem_key(rsa_key())
    refused(acme(), "acmeAccountKey", "the same key as tlsPrivateKey", key=rsa_pem, account=rsa_pem)
    refused(acme(), "acmeAccountKey", "signs with RS256 only", key=pem_key(key), account=pem_key(ec_key()))
    assert check(None) is None


def test_acme_material_carries_the_account_thumbprint(chain):
    key, _ = chain
    account = rsa_key()
    material = check(acme(), key=pem_key(key), account=pem_key(account))
    assert material.account_key == pem_key(account) and material.certificate == ""
    assert material.thumbprint == tls_secrets.jwk_thumbprint(account.public_key())


def test_the_thumbprint_is_rfc_7638s():
    """RFC 7638 §3.1's example key and thumbprint."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCi"
        "FV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnY"
        "b9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0"
        "Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )

    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    public = rsa.RSAPublicNumbers(number("AQAB"), number(n)).public_key()
    assert tls_secrets.jwk_thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# ---- the model, through the whole program: refused before any resource --------------------------------


def _tls(**values):
    def alter(config):
        config["pihalb:cluster"]["haproxy"]["tls"] = {"names": NAMES, "certificate": {"kind": "provided"}} | values

    return alter


def _acme(**certificate):
    return _tls(certificate={"kind": "acme", "directoryUrl": "https://acme.example/dir"} | certificate)


REFUSED = {
    "tls port = stats port": (_tls(port=8404), "pihalb:cluster.haproxy.tls.port"),
    "tls port = frontend port": (_tls(port=80), "pihalb:cluster.haproxy.tls.port"),
    "tls port = ssh port": (_tls(port=22), "pihalb:cluster.haproxy.tls.port"),
    "tls port 0": (_tls(port=0), "pihalb:cluster.haproxy.tls.port"),
    "tls port as a string": (_tls(port="443"), "pihalb:cluster.haproxy.tls.port"),
    "wildcard name": (
        _tls(names=["*.example.org"]),
        "pihalb:cluster.haproxy.tls.names[0]: '*.example.org' is a wildcard",
    ),
    "capital letters": (_tls(names=["WWW.example.org"]), "write it in lowercase"),
    "single label": (_tls(names=["localhost"]), "pihalb:cluster.haproxy.tls.names[0]"),
    "trailing dot": (_tls(names=["example.org."]), "pihalb:cluster.haproxy.tls.names[0]"),
    "ip address": (_tls(names=["10.42.0.240"]), "is an IP address"),
    "no names": (_tls(names=[]), "pihalb:cluster.haproxy.tls.names: no names"),
    "duplicate names": (_tls(names=["example.org", "example.org"]), "duplicate names"),
    "hsts true": (_tls(hsts=True), "pihalb:cluster.haproxy.tls.hsts: true is neither false nor a max-age"),
    "hsts negative": (_tls(hsts=-1), "pihalb:cluster.haproxy.tls.hsts"),
    "hsts as a string": (_tls(hsts="31536000"), "pihalb:cluster.haproxy.tls.hsts"),
    "redirect as a string": (_tls(redirectHttp="yes"), "pihalb:cluster.haproxy.tls.redirectHttp"),
    "unknown tls key": (_tls(ciphers="ALL"), "pihalb:cluster.haproxy.tls.ciphers: unknown key"),
    "unknown certificate kind": (
        _tls(certificate={"kind": "selfsigned"}),
        "pihalb:cluster.haproxy.tls.certificate.kind",
    ),
    "acme without directory": (
        _tls(certificate={"kind": "acme"}),
        "pihalb:cluster.haproxy.tls.certificate.directoryUrl",
    ),
    "acme over http": (_acme(directoryUrl="http://acme.example/dir"), "certificate.directoryUrl"),
    "acme bad email": (_acme(email="root at example"), "pihalb:cluster.haproxy.tls.certificate.email"),
    "acme bad ca bundle": (_acme(caBundle="hello"), "pihalb:cluster.haproxy.tls.certificate.caBundle"),
    "provided with a directory": (
        _tls(certificate={"kind": "provided", "directoryUrl": "https://acme.example/dir"}),
        "pihalb:cluster.haproxy.tls.certificate.directoryUrl: directoryUrl: only read with kind: acme",
    ),
    "provided without its secrets": (_tls(), "pihalb:tlsCertificate: secret is not set"),
    "a tls secret with tls off": (
        lambda config: config.update({"pihalb:tlsPrivateKey": pem_key(ec_key())}),
        "pihalb:tlsPrivateKey: set, but unused: TLS is off",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_tls_config_is_refused_before_any_resource(run_stack, case):
    assert_refused_before_any_resource(run_stack, *REFUSED[case])


def test_a_tls_secret_set_as_a_plain_value_is_refused_with_the_command(stack_config):
    from components.settings import load

    config = stack_config("dev")
    held = {"cluster": False, "hostKeys": False, "tlsPrivateKey": False}
    with pytest.raises(ConfigError) as caught:
        load(config.get, config.get, held)
    assert "pihalb:tlsPrivateKey: set as a plain value" in str(caught.value)
    assert "pulumi config set --secret pihalb:tlsPrivateKey" in str(caught.value)


def test_a_provided_certificate_is_accepted_by_the_program(run_stack, chain):
    key, pem = chain

    def alter(config):
        _tls(port=8443, redirectHttp=True, hsts=31536000)(config)
        config.update({"pihalb:tlsCertificate": pem, "pihalb:tlsPrivateKey": pem_key(key)})

    assert run_stack("dev", alter).resources


def test_an_acme_certificate_is_accepted_by_the_program(run_stack):
    ca = pem_cert(issue(ec_key(), [], ca=True))

    def alter(config):
        _acme(email="admin@example.org", caBundle=ca)(config)
        config.update({"pihalb:tlsPrivateKey": pem_key(ec_key()), "pihalb:acmeAccountKey": pem_key(rsa_key())})

    program = run_stack("dev", alter)
    thumbprint = tls_secrets.jwk_thumbprint(rsa_key().public_key())
    for balancer in ("lb1", "lb2"):  # both answer every challenge
        assert f'.{thumbprint}" if {{ path_reg' in embedded_file(program.named(f"{balancer}-haproxy-config"))
