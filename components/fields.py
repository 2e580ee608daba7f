"""The stack config's vocabulary: its key names, its reusable field types, and its error messages.

Each field type is an `Annotated` alias that says what its consumer (HAProxy, keepalived, Docker, sudo,
ssh) accepts, so a value is either refused here or reaches its daemon unchanged. A validator raises
`Problem` (what is wrong and how to fix it); `format_validation_error` turns pydantic's errors into
`ConfigError` lines that name the config key.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Annotated, Any

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from components.debian import DEBIAN_BASE_IMAGE

CONFIG_NAMESPACE = "pihalb"

# Keys of the stack config, as a user types them after `pulumi config set`.
CLUSTER_KEY = "cluster"
HOST_KEYS_KEY = "hostKeys"
SSH_PRIVATE_KEY_KEY = "sshPrivateKey"
VRRP_PASSWORD_KEY = "vrrpPassword"
STATS_PASSWORD_KEY = "statsPassword"
# Only with `haproxy.tls` (components/tls.py says which certificate source reads which).
TLS_CERTIFICATE_KEY = "tlsCertificate"
TLS_PRIVATE_KEY_KEY = "tlsPrivateKey"
ACME_ACCOUNT_KEY_KEY = "acmeAccountKey"

# The command that sets each secret as one (README, "Your own Pis"); errors about a secret quote it.
SET_SECRET = {
    SSH_PRIVATE_KEY_KEY: f"pulumi config set --secret {CONFIG_NAMESPACE}:{SSH_PRIVATE_KEY_KEY} < ~/.ssh/id_ed25519",
    VRRP_PASSWORD_KEY: f'pulumi config set --secret {CONFIG_NAMESPACE}:{VRRP_PASSWORD_KEY} "$(openssl rand -base64 6)"',
    STATS_PASSWORD_KEY: (
        f'pulumi config set --secret {CONFIG_NAMESPACE}:{STATS_PASSWORD_KEY} "$(openssl rand -base64 18)"'
    ),
    TLS_CERTIFICATE_KEY: f"pulumi config set --secret {CONFIG_NAMESPACE}:{TLS_CERTIFICATE_KEY} < fullchain.pem",
    TLS_PRIVATE_KEY_KEY: f"pulumi config set --secret {CONFIG_NAMESPACE}:{TLS_PRIVATE_KEY_KEY} < privkey.pem",
    ACME_ACCOUNT_KEY_KEY: (
        f"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 | "
        f"pulumi config set --secret {CONFIG_NAMESPACE}:{ACME_ACCOUNT_KEY_KEY}"
    ),
}

HOST_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
# HAProxy 2.6 manual, `retry-on`: every keyword it accepts ("none" only on its own).
RETRY_ON_KEYWORDS = (
    "none",
    "conn-failure",
    "empty-response",
    "junk-response",
    "response-timeout",
    "0rtt-rejected",
    "all-retryable-errors",
    *("401", "403", "404", "408", "425", "500", "501", "502", "503", "504"),
)
# HAProxy: "timer overflow ... maximum value is 2147483647 ms".
HAPROXY_MAX_TIMER_MS = 2_147_483_647
# Ranges that never hold a LAN host's address (nor a VIP), each with the reason. Private (10/8, 172.16/12,
# 192.168/16), link-local (169.254/16), shared (100.64/10) and public unicast addresses stay accepted.
NOT_UNICAST = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "'this network' (RFC 1122), only ever a source while a host has no address yet"),
        ("127.0.0.0/8", "loopback, which never leaves a host"),
        ("224.0.0.0/4", "multicast, which names a group, never one host"),
        ("240.0.0.0/4", "reserved (RFC 1112) and the broadcast address 255.255.255.255, never routed as unicast"),
    )
)
# keepalived adds the VIP with its prefix, so the balancers get an on-link route for the whole subnet:
# traffic to any address in it is sent by ARP on the LAN instead of to the router. So the subnet may be
# at most a whole private block where a LAN can be that large (10/8, 172.16/12), and a /16 elsewhere
# (192.168/16, link-local 169.254/16, and more than any public LAN a Pi sits on).
WIDE_LAN_BLOCKS = tuple(ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12"))
WIDEST_LAN_PREFIX = 16


class ConfigError(pulumi.RunError, ValueError):
    """A stack config value that cannot work; the message names the key and the fix.

    A `pulumi.RunError`, so the Pulumi CLI prints the message alone, without a Python traceback.
    """


class Problem(ValueError):
    """Raised by a validator: what is wrong and how to fix it, optionally for a key below the model's."""

    def __init__(self, problem: str, fix: str, key: str = "") -> None:
        super().__init__(f"{problem}. Fix: {fix}")
        self.problem, self.fix, self.key = problem, fix, key


class StrictModel(BaseModel):
    """Unknown keys are errors, values are never coerced, a parsed model cannot change."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# ---- field types: each says what its consumer accepts --------------------------------------------------


def matching(pattern: str, what: str, fix: str, *, max_len: int | None = None) -> Callable[[str], str]:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if (max_len is not None and len(value) > max_len) or not regex.fullmatch(value):
            raise Problem(f"{value!r} is not {what}", fix)
        return value

    return check


def int_range(low: int, high: int, why: str) -> Any:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise Problem(f"{value} is outside {low}..{high} ({why})", f"use a whole number from {low} to {high}")
        return value

    return Annotated[StrictInt, AfterValidator(check)]


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9.]{7,15}", value):
        raise Problem(f"{value!r} is not an IPv4 address", "write it as four decimal numbers, e.g. 192.168.1.10")
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        raise Problem(
            f"{value!r} is not an IPv4 address", "write it as four numbers 0..255, e.g. 192.168.1.10"
        ) from None
    for net, why in NOT_UNICAST:
        if address in net:
            raise Problem(
                f"{value} is not a unicast host address: it is in {net}, {why}",
                "use an address of the hosts' LAN (e.g. private 192.168.1.10, or link-local 169.254.1.10)",
            )
    return address


def widest_lan_prefix(address: ipaddress.IPv4Address) -> int:
    """The shortest prefix a LAN holding `address` can have (see WIDE_LAN_BLOCKS)."""
    return next((block.prefixlen for block in WIDE_LAN_BLOCKS if address in block), WIDEST_LAN_PREFIX)


def _ipv4_interface(value: Any) -> ipaddress.IPv4Interface:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9.]{7,15}/(?:[0-9]|[12][0-9]|3[0-2])", value):
        raise Problem(f"{value!r} is not an address with a prefix", "write it as address/prefix, e.g. 10.42.0.240/24")
    address, _, prefix = value.partition("/")
    return ipaddress.IPv4Interface((_ipv4(address), int(prefix)))


LoginUser = Annotated[
    StrictStr,
    AfterValidator(
        matching(
            r"[a-z_][a-z0-9_-]{0,31}",
            "a login user name (it becomes the sudoers drop-in's user and the user of ssh://user@host)",
            "use lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32 characters",
        )
    ),
]
HostName = Annotated[
    StrictStr,
    AfterValidator(
        matching(
            HOST_NAME.pattern,
            "a short lowercase name",
            "use letters, digits and '-', starting with a letter, at most 31 characters",
        )
    ),
]
Port = int_range(1, 65535, "a TCP port")
Ipv4 = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4)]
Ipv4Interface = Annotated[ipaddress.IPv4Interface, BeforeValidator(_ipv4_interface)]


def _interface(value: str) -> str:
    matching(
        r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}",
        "a network interface name",
        "use the balancers' LAN interface, e.g. eth0: letters, digits, '_', '.' and '-', "
        "not starting with '.' or '-', at most 15 characters",
    )(value)
    if value == "lo":
        raise Problem("keepalived cannot run VRRP on the loopback interface", "use the balancers' LAN interface")
    return value


def _path(value: str) -> str:
    pchar = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
    return matching(
        rf"/(?:{pchar}|/)*(?:\?(?:{pchar}|[/?])*)?",
        "a URL path",
        "start with '/' and use letters, digits, -._~!$&'()*+,;=:@/ and %XX escapes, optionally a ?query "
        "(no spaces, no '\"', no '#')",
        max_len=1024,
    )(value)


def _retry_on(value: str) -> str:
    if value == "":
        return value
    words = value.split(" ")
    unknown = [w for w in words if w not in RETRY_ON_KEYWORDS]
    if unknown:
        raise Problem(
            f"{unknown} are not HAProxy retry-on keywords",
            f"use words from {list(RETRY_ON_KEYWORDS)} separated by single spaces, or leave it empty",
        )
    if "none" in words and len(words) > 1:
        raise Problem("'none' cannot be combined with other retry-on keywords", "use 'none' alone")
    return value


def _advert_interval(value: float) -> float:
    if not math.isfinite(value) or not 0.01 <= value <= 255:
        raise Problem(
            f"{value} s is outside 0.01..255 s (keepalived's advert_int range)", "use 1 (seconds), or e.g. 0.2 with v3"
        )
    return value


TimerMs = int_range(1, HAPROXY_MAX_TIMER_MS, "HAProxy timers are at most 2147483647 ms")
ImageRef = Annotated[
    StrictStr,
    AfterValidator(
        matching(
            r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
            r"(?::[0-9]{1,5})?)/)?"
            r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
            r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?",
            "an image reference",
            f"e.g. {DEBIAN_BASE_IMAGE} or registry.example:5000/{DEBIAN_BASE_IMAGE} (Docker's reference syntax)",
            max_len=255,
        )
    ),
]
DebianVersion = Annotated[
    StrictStr,
    AfterValidator(
        matching(
            r"|(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*",
            "a Debian package version",
            "e.g. 2.6.12-1+deb12u4 (digits first; letters, digits and .+~-), or empty for the newest",
            max_len=128,
        )
    ),
]
TARBALL_URL = re.compile(
    r"https://[A-Za-z0-9.-]+(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9\-._~/%+=&,;:@]*)(?:\?[A-Za-z0-9\-._~/%+=&?,;:@]*)?"
)
TARBALL_SUFFIXES = (".tar.gz", ".tgz")


def _tarball_url(value: str) -> str:
    """The build fetches it with curl and unpacks it with `tar -xzf`: a gzipped tarball on a real port."""
    example = "e.g. https://www.haproxy.org/download/2.6/src/haproxy-2.6.12.tar.gz"
    match = TARBALL_URL.fullmatch(value)
    if value and (len(value) > 2048 or not match):
        raise Problem(f"{value!r} is not an https URL", f"{example} (no spaces or quotes, at most 2048 characters)")
    if match and match["port"] and not 1 <= int(match["port"]) <= 65535:
        raise Problem(f"port {match['port']} is outside 1..65535", f"use the server's port, or none: {example}")
    if match and not match["path"].endswith(TARBALL_SUFFIXES):
        raise Problem(
            f"{match['path']!r} does not end in .tar.gz or .tgz, and the build unpacks it with `tar -xzf`",
            f"use the release's .tar.gz, {example}",
        )
    return value


Sha256Hex = Annotated[
    StrictStr,
    AfterValidator(matching(r"|[0-9a-f]{64}", "a SHA-256", "write the 64 lowercase hex digits of `sha256sum`")),
]


Interface = Annotated[StrictStr, AfterValidator(_interface)]
UrlPath = Annotated[StrictStr, AfterValidator(_path)]
HttpsUrl = Annotated[StrictStr, AfterValidator(_tarball_url)]
RetryOn = Annotated[StrictStr, AfterValidator(_retry_on)]
AdvertInterval = Annotated[StrictFloat, AfterValidator(_advert_interval)]


# ---- errors ---------------------------------------------------------------------------------------------

_TYPE_FIXES = {
    "int_type": "write a whole number without quotes (true/false are not numbers)",
    "float_type": "write a number without quotes (true/false are not numbers)",
    "bool_type": "write true or false without quotes",
    "string_type": "write a string",
    "list_type": "write a list",
    "dict_type": "write an object",
    "model_type": "write an object",
    "model_attributes_type": "write an object",
    "literal_error": "use one of the values named",
    "missing": "set it (see README.md)",
}


def fail(key: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{CONFIG_NAMESPACE}:{key}: {problem}. Fix: {fix}")


def format_validation_error(key: str, err: ValidationError, *, secret: bool = False) -> str:
    lines = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        error = e.get("ctx", {}).get("error")
        if e["type"] == "extra_forbidden":
            lines.append(
                f"{CONFIG_NAMESPACE}:{key}{loc}: unknown key. Fix: remove it or correct its spelling "
                "(see the config table in README.md)"
            )
        elif e["type"] == "missing":
            lines.append(f"{CONFIG_NAMESPACE}:{key}{loc}: required key is missing. Fix: set it (see README.md)")
        elif isinstance(error, Problem):
            sub = f".{error.key}" if error.key else ""
            lines.append(f"{CONFIG_NAMESPACE}:{key}{loc}{sub}: {error}")
        else:
            got = "" if secret else f" (got {e.get('input')!r})"
            fix = _TYPE_FIXES.get(e["type"], "correct the value")
            lines.append(f"{CONFIG_NAMESPACE}:{key}{loc}: {e['msg']}{got}. Fix: {fix}")
    return "\n".join(lines)
