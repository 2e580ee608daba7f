"""Issue 19: the balancers' ACME client (files/acme/acme-obtain.sh, Debian's dehydrated) against a real
RFC 8555 server, Debian's Pebble, on 127.0.0.1.

Pebble runs here with PEBBLE_VA_ALWAYS_VALID=1: this test proves the client's side (account by its key,
an order for a CSR of the shared certificate key, the chain written), not the validation, which needs the
VIP and is the lab's to prove (the balancers' HAProxy answering HTTP-01 statelessly).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from components import render, tls, tls_secrets

from .artifact_tools import free_port, run, tool
from .test_tls import NOW, ec_key, issue, pem_cert, pem_key, rsa_key

pytestmark = pytest.mark.artifact

NAMES = ["www.example.org", "example.org"]
SCRIPT = render.FILES / "acme" / "acme-obtain.sh"  # installed on the balancers, run by the renewal timer
VALIDITY_S = 600


@pytest.fixture
def pebble(tmp_path):
    """Pebble on 127.0.0.1 with a listener certificate of our own CA: (directory URL, CA bundle path)."""
    ca_key, key = ec_key(), ec_key()
    ca = issue(ca_key, [], ca=True)
    listener = issue(key, ["localhost"], issuer_key=ca_key, issuer_name="test CA")
    (tmp_path / "ca.pem").write_text(pem_cert(ca))
    (tmp_path / "listener.pem").write_text(pem_cert(listener))
    (tmp_path / "listener.key").write_text(pem_key(key))
    port = free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(tmp_path / "listener.pem"),
            "privateKey": str(tmp_path / "listener.key"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": VALIDITY_S,
        }
    }
    (tmp_path / "pebble.json").write_text(json.dumps(config))
    env = os.environ | {
        "PEBBLE_VA_ALWAYS_VALID": "1",  # this test only: see the module's docstring
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",
    }
    log = (tmp_path / "pebble.log").open("w")
    proc = subprocess.Popen(
        ["nice", "-n", "19", tool("pebble"), "-config", str(tmp_path / "pebble.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"https://localhost:{port}/dir"
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, context=context, timeout=2) as answer:
                    assert "newOrder" in json.load(answer)
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "pebble.log").read_text()
                time.sleep(0.1)
        yield url, tmp_path / "ca.pem"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def csr_for(key, names) -> bytes:
    """What the renewal sends: no subject, the names as SANs, signed by the shared certificate key."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def obtain(url: str, ca: Path, work: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"], "ACME_DIRECTORY_URL": url, "ACME_CA_BUNDLE": str(ca), "ACME_EMAIL": ""}
    return subprocess.run(
        ["nice", "-n", "19", "bash", str(SCRIPT), str(work)], capture_output=True, text=True, env=env, timeout=120
    )


def test_acme_obtain_passes_shellcheck():
    run([tool("bash"), "-n", str(SCRIPT)])
    run([tool("shellcheck"), "--shell=bash", "--severity=style", str(SCRIPT)])


def test_the_client_gets_a_chain_for_the_shared_key_from_a_real_acme_server(pebble, tmp_path):
    tool("dehydrated")
    url, ca = pebble
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    account, key = rsa_key(), ec_key()
    (work / "account.pem").write_text(pem_key(account))
    (work / "account.pem").chmod(0o600)
    (work / "csr.pem").write_bytes(csr_for(key, NAMES))

    for attempt in ("new account", "the same account again (the other balancer, or the next renewal)"):
        done = obtain(url, ca, work)
        assert done.returncode == 0, f"{attempt}:\n{done.stdout}\n{done.stderr}"
        chain = (work / "chain.pem").read_text()
        # The chain passes the very checks a provided certificate passes: the key, the names, the order.
        material = tls_secrets.check_tls_secrets(
            tls.Tls.model_validate({"names": NAMES, "certificate": {"kind": "provided"}}),
            {"tlsCertificate": chain, "tlsPrivateKey": pem_key(key)}.get,
        )
        certs = x509.load_pem_x509_certificates(material.certificate.encode())
        assert len(certs) == 2 and "Pebble Intermediate" in certs[0].issuer.rfc4514_string()
        lifetime = certs[0].not_valid_after_utc - certs[0].not_valid_before_utc
        assert abs(lifetime.total_seconds() - VALIDITY_S) < 5 and certs[0].not_valid_after_utc > NOW
    # Nothing private left readable by others.
    for path in work.rglob("*"):
        assert path.stat().st_mode & 0o077 == 0 or path.name == "csr.pem", path
