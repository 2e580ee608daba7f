"""SSH keys in the stack config: the pinned host keys and the deployment's private key."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import AfterValidator, StrictStr, TypeAdapter

from components.fields import SET_SECRET, SSH_PRIVATE_KEY_KEY, Problem

HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def _host_key(value: str) -> str:
    match = re.fullmatch(r"([a-z0-9-]+) ([A-Za-z0-9+/]+={0,2})", value)
    fix = "run `ssh-keyscan -t ed25519 <address>` and pin '<type> <base64>' from its output"
    if not match:
        raise Problem("not '<type> <base64>' of an SSH public host key", fix)
    kind, text = match.groups()
    try:
        blob = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise Problem("its base64 does not decode (truncated or mis-padded)", fix) from None
    if base64.b64encode(blob).decode() != text:
        raise Problem("its base64 is not canonical (truncated or mis-padded)", fix)
    if kind == "ssh-rsa":
        raise Problem(
            "RSA host keys are refused: pulumi-command pins a key's own algorithm, which for RSA is SHA-1 "
            "'ssh-rsa', refused by OpenSSH 8.8 and later by default",
            "pin the host's ed25519 (or ECDSA) key: `ssh-keyscan -t ed25519 <address>`",
        )
    if kind not in HOST_KEY_TYPES:
        raise Problem(f"key type {kind!r} is not accepted", f"pin a key of type {list(HOST_KEY_TYPES)}")
    try:
        key = serialization.load_ssh_public_key(value.encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Problem(
            f"the key is not a valid {kind} key (its type word and its blob disagree, or it is cut)", fix
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise Problem(f"key type {kind!r} is not accepted", f"pin a key of type {list(HOST_KEY_TYPES)}")
    return value


HostKey = Annotated[StrictStr, AfterValidator(_host_key)]
HOST_KEYS = TypeAdapter(dict[str, HostKey])


def _private_key(value: str) -> str:
    data = value.encode()
    fix = f"run `{SET_SECRET[SSH_PRIVATE_KEY_KEY]}`"
    if "PRIVATE KEY-----" not in value:
        raise Problem("not a PEM/OpenSSH private key", fix)
    try:
        if "-----BEGIN OPENSSH PRIVATE KEY-----" in value:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise Problem(
            "the private key is encrypted, and the program passes no passphrase",
            "use an unencrypted key for the deployment (`ssh-keygen -p -N '' -f <copy>`)",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise Problem("not a PEM/OpenSSH private key (it does not load)", fix) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise Problem("the private key type is not accepted", "use an ed25519, ECDSA or RSA key")
    return value


PrivateKey = Annotated[StrictStr, AfterValidator(_private_key)]
