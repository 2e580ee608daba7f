"""Edits of a stack's config for the settings tests (each returns or is an `alter`), the keys they set,
and the check that a config is refused before any resource."""

from __future__ import annotations

import warnings

import pytest

from components.settings import ConfigError


def cluster_of(config):
    return config["pihalb:cluster"]


def hosts_of(config):
    return cluster_of(config)["hosts"]


def balancers_of(config):
    return [h for h in hosts_of(config) if h["role"] == "balancer"]


def set_key(path, value):
    def alter(config):
        node = cluster_of(config)
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return alter


def set_host_field(index, field, value):
    def alter(config):
        hosts_of(config)[index][field] = value

    return alter


def generated_keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

    def public(key):
        return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)

    def private(key, fmt=serialization.PrivateFormat.OpenSSH, enc=None):
        return key.private_bytes(serialization.Encoding.PEM, fmt, enc or serialization.NoEncryption()).decode()

    ed = ed25519.Ed25519PrivateKey.generate()
    ecd = ec.generate_private_key(ec.SECP256R1())
    rs = rsa.generate_private_key(65537, 2048)
    ds = dsa.generate_private_key(1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography deprecates DSA: exactly why the settings refuse it
        dsa_public = public(ds).decode()
    return {
        "ed25519": public(ed).decode(),
        "ecdsa": public(ecd).decode(),
        "rsa": public(rs).decode(),
        "dsa": dsa_public,
        "ed25519-private": private(ed),
        "ed25519-private-pkcs8": private(ed, serialization.PrivateFormat.PKCS8),
        "secp256k1-private": private(ec.generate_private_key(ec.SECP256K1()), serialization.PrivateFormat.PKCS8),
        "ecdsa-private-pem": private(ecd, serialization.PrivateFormat.TraditionalOpenSSL),
        "rsa-private": private(rs),
        "encrypted-private": private(ed, enc=serialization.BestAvailableEncryption(b"passphrase")),
    }


KEYS = generated_keys()


def set_host_key(value):
    def alter(config):
        config["pihalb:hostKeys"]["lb2"] = value

    return alter


def set_secret(key, value):
    def alter(config):
        config[f"pihalb:{key}"] = value

    return alter


def set_priorities(high, low, weight=2):
    def alter(config):
        first, second = balancers_of(config)
        first["priority"], second["priority"] = high, low
        cluster_of(config)["vrrp"]["track"]["weight"] = weight

    return alter


def set_vrrp(**values):
    def alter(config):
        cluster_of(config)["vrrp"].update(values)

    return alter


def assert_refused_before_any_resource(run_stack, alter, expected: str) -> None:
    """Refused with a message naming the key and the fix, and nothing declared."""
    registered = []
    with pytest.raises(ConfigError) as caught:
        run_stack("dev", alter, declared=registered)
    message = str(caught.value)
    assert expected in message, message
    assert "Fix:" in message and registered == []


def both(*alters):
    def alter(config):
        for each in alters:
            each(config)

    return alter
