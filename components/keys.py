"""SSH keys in the stack config: the pinned host keys and the deployment's private key."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import AfterValidator, StrictStr, TypeAdapter, ValidationError

from components.fields import (
    CONFIG_NAMESPACE,
    HOST_KEYS_KEY,
    SET_SECRET,
    SSH_PRIVATE_KEY_KEY,
    ConfigError,
    Problem,
    fail,
    format_validation_error,
)

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


# What OpenSSH loads, for the Docker provider's `ssh -i` reads the key file the program writes: ECDSA on
# these curves only, RSA from 1024 bits (sshkey.c, SSH_RSA_MINIMUM_MODULUS_SIZE).
OPENSSH_CURVES = ("secp256r1", "secp384r1", "secp521r1")
OPENSSH_MIN_RSA_BITS = 1024
# One PEM or OpenSSH armour and nothing else: OpenSSH reads an OpenSSH key only from its first byte.
ARMOUR = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\n(?:[A-Za-z0-9+/=]+\n)+-----END \1-----\n")


def _private_key(value: str) -> str:
    """The key as the program writes it for OpenSSH and hands it to pulumi-command.

    Pasting artefacts that OpenSSH cannot read but that carry nothing are removed: a byte-order mark, CRLF
    line ends, blank lines around the key, a missing final newline. A PKCS#8 ed25519 key, which OpenSSH
    9.2 does not load, is written in the OpenSSH format. Anything else OpenSSH would not load is refused.
    """
    text = value.removeprefix("\ufeff").replace("\r\n", "\n").strip() + "\n"
    data = text.encode()
    fix = f"run `{SET_SECRET[SSH_PRIVATE_KEY_KEY]}`"
    if "PRIVATE KEY-----" not in text:
        raise Problem("not a PEM/OpenSSH private key", fix)
    try:
        if "-----BEGIN OPENSSH PRIVATE KEY-----" in text:
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
    if not ARMOUR.fullmatch(text):
        raise Problem(
            "there is more than the key: text around its BEGIN/END lines or inside them (only a byte-order "
            "mark, CRLF line ends and blank lines around it are removed)",
            fix,
        )
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in OPENSSH_CURVES:
        raise Problem(
            f"OpenSSH does not load ECDSA keys on {key.curve.name}, only on nistp256, nistp384 and nistp521",
            "use an ed25519 key (`ssh-keygen -t ed25519`)",
        )
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < OPENSSH_MIN_RSA_BITS:
        raise Problem(
            f"OpenSSH does not load RSA keys under {OPENSSH_MIN_RSA_BITS} bits (this one has {key.key_size})",
            "use an ed25519 key (`ssh-keygen -t ed25519`)",
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return text if text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") else _openssh_ed25519(key)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise Problem("the private key type is not accepted", "use an ed25519, ECDSA or RSA key")
    return text


def _openssh_ed25519(key: ed25519.Ed25519PrivateKey) -> str:
    """The OpenSSH format of an ed25519 key (PROTOCOL.key), unencrypted, the same text on every run: the
    library's own writer draws its check number at random, which would change the key's text, and so
    every remote step, on every `pulumi up`. Any check number will do, as long as both copies match."""

    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data

    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    public_blob = string(b"ssh-ed25519") + string(public)
    check = b"pihl"
    private = check + check + public_blob + string(seed + public) + string(b"")
    private += bytes(range(1, 1 + -len(private) % 8))  # padded to the cipher block size, 8 for "none"
    blob = b"openssh-key-v1\0" + string(b"none") + string(b"none") + string(b"") + (1).to_bytes(4, "big")
    blob += string(public_blob) + string(private)
    body = base64.b64encode(blob).decode()
    lines = "".join(f"{body[i : i + 70]}\n" for i in range(0, len(body), 70))
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{lines}-----END OPENSSH PRIVATE KEY-----\n"


PrivateKey = Annotated[StrictStr, AfterValidator(_private_key)]


def parse_host_keys(addresses: dict[str, str], raw: object) -> dict[str, str]:
    """Every host (name -> address, in the cluster's order) needs a pinned SSH host key, so a swapped SD
    card or a spoofed address is refused."""
    keys = raw if isinstance(raw, dict) else {}
    for name, address in addresses.items():
        if not keys.get(name):
            fail(
                f"{HOST_KEYS_KEY}.{name}",
                "missing or not an SSH public host key",
                f"run `ssh-keyscan -t ed25519 {address}` and `pulumi config set --path "
                f"'{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}.{name}' '<type> <base64>'`",
            )
    unknown = sorted(set(keys) - set(addresses))
    if unknown:
        fail(
            HOST_KEYS_KEY, f"keys for unknown hosts {unknown}", "remove them or add those hosts to pihalb:cluster.hosts"
        )
    try:
        return HOST_KEYS.validate_python({name: keys[name] for name in addresses})
    except ValidationError as err:
        raise ConfigError(format_validation_error(HOST_KEYS_KEY, err)) from None
