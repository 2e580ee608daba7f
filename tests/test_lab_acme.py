"""The lab's Pebble (lab/acme.py) without the lab: its command lines and config, and a start and
stop on 127.0.0.1 with the real pebble and pebble-challtestsrv; the lab's TLS keys."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from components import tls, tls_secrets
from lab import acme

from .artifact_tools import free_port, tool

pytestmark = pytest.mark.artifact


def test_the_commands_bind_pebble_on_the_gateway_and_answer_the_vip_on_loopback(tmp_path):
    pebble = acme.Pebble(tmp_path, "172.30.42.1", "172.30.42.100")
    assert pebble.directory_url == "https://172.30.42.1:14000/dir"
    assert pebble.roots_url == "https://172.30.42.1:15000/roots/0"
    config = pebble.config()["pebble"]
    assert config["listenAddress"] == "172.30.42.1:14000" and config["httpPort"] == 80
    assert config["certificateValidityPeriod"] == acme.VALIDITY_S and config["ocspResponderURL"] == ""
    assert pebble.pebble_command()[-2:] == ["-dnsserver", f"127.0.0.1:{acme.DNS_PORT}"]
    dns = pebble.dns_command()
    for flag, value in (("-defaultIPv4", "172.30.42.100"), ("-defaultIPv6", ""), ("-http01", ""),
                        ("-dns01", f"127.0.0.1:{acme.DNS_PORT}")):  # fmt: skip
        assert dns[dns.index(flag) + 1] == value
    # The URLs and the CA pass the stack's own checks.
    model = tls.Certificate.model_validate(
        {
            "kind": "acme",
            "directoryUrl": pebble.directory_url,
            "rootsUrl": pebble.roots_url,
            "caBundle": pebble.ca_bundle(),
        }  # fmt: skip
    )
    assert model.ca_bundle == pebble.ca_bundle()
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600


def test_pebble_starts_answers_and_stops_on_loopback(tmp_path):
    tool("pebble"), tool("pebble-challtestsrv")
    pebble = acme.Pebble(
        tmp_path, "127.0.0.1", "127.0.0.1", http_port=free_port(), tls_port=free_port(), acme_port=free_port(),
        management_port=free_port(), dns_port=free_port(), dns_management_port=free_port(),
    )  # fmt: skip
    try:
        pebble.start()
        assert pebble.running() and pebble.answers()
        pids = [int((tmp_path / f"{n}.pid").read_text()) for n in ("pebble", "dns")]
        pebble.start()  # kept
        assert [int((tmp_path / f"{n}.pid").read_text()) for n in ("pebble", "dns")] == pids
        roots = subprocess.run(["curl", "-fsS", "--cacert", str(pebble.ca_file), pebble.roots_url],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "BEGIN CERTIFICATE" in roots
        ca_before = pebble.ca_bundle()
    finally:
        pebble.stop()
    assert not pebble.running() and not pebble.answers()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert pebble.ca_bundle() == ca_before  # the lab CA (the stack's caBundle) is kept across starts


def test_the_lab_tls_keys_are_made_once_and_pass_the_stack_checks(tmp_path):
    keys = acme.ensure_tls_keys(tmp_path)
    assert acme.ensure_tls_keys(tmp_path) == keys
    account = serialization.load_pem_private_key(keys["acmeAccountKey"].encode(), None)
    key = serialization.load_pem_private_key(keys["tlsPrivateKey"].encode(), None)
    assert isinstance(account, rsa.RSAPrivateKey) and isinstance(key, ec.EllipticCurvePrivateKey)
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600
    model = tls.Tls.model_validate(
        {"names": ["www.example.org"], "certificate": {"kind": "acme", "directoryUrl": "https://a.example/dir"}}
    )
    material = tls_secrets.check_tls_secrets(model, keys.get)
    assert material.thumbprint == tls_secrets.jwk_thumbprint(account.public_key())
    json.dumps(keys)
