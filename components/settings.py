"""Typed, validated stack configuration.

Everything the program needs is read here, once, before any resource is registered: a bad value
stops `pulumi preview` with an error that names the config key and says how to fix it, and no host
is touched. Models are strict (`extra="forbid"`, strict types, full-string matches) so a typo in a key
is an error, not a silent default, and a value is either refused or reaches its daemon unchanged.

Each rule lives on the model it concerns: a field's form in its type (the `Annotated` aliases below,
each saying what its consumer accepts), a rule between fields in that model's validator.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pulumi
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

CONFIG_NAMESPACE = "pihalb"

# Keys of the stack config, as a user types them after `pulumi config set`.
CLUSTER_KEY = "cluster"
HOST_KEYS_KEY = "hostKeys"
SSH_PRIVATE_KEY_KEY = "sshPrivateKey"
VRRP_PASSWORD_KEY = "vrrpPassword"
STATS_PASSWORD_KEY = "statsPassword"

BALANCE_ALGORITHMS = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random")
PLATFORM_ARCH = {"linux/arm64": "aarch64", "linux/amd64": "x86_64", "linux/arm/v7": "armv7l"}
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
# keepalived: 255 belongs to the address owner; a tracked priority is clamped to 1..254.
KEEPALIVED_MAX_PRIORITY = 254
# HAProxy: "timer overflow ... maximum value is 2147483647 ms".
HAPROXY_MAX_TIMER_MS = 2_147_483_647
HOST_KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


class ConfigError(pulumi.RunError, ValueError):
    """A stack config value that cannot work; the message names the key and the fix.

    A `pulumi.RunError`, so the Pulumi CLI prints the message alone, without a Python traceback.
    """


class Problem(ValueError):
    """Raised by a validator: what is wrong and how to fix it, optionally for a key below the model's."""

    def __init__(self, problem: str, fix: str, key: str = "") -> None:
        super().__init__(f"{problem}. Fix: {fix}")
        self.problem, self.fix, self.key = problem, fix, key


# ---- field types: each says what its consumer accepts --------------------------------------------------


def _matching(pattern: str, what: str, fix: str, *, max_len: int | None = None) -> Callable[[str], str]:
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if (max_len is not None and len(value) > max_len) or not regex.fullmatch(value):
            raise Problem(f"{value!r} is not {what}", fix)
        return value

    return check


def _int_range(low: int, high: int, why: str) -> Any:
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
    if address.is_multicast or address.is_loopback or address.is_unspecified or address.is_reserved:
        raise Problem(f"{value} is not a unicast host address", "use the host's LAN address")
    return address


def _ipv4_interface(value: Any) -> ipaddress.IPv4Interface:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9.]{7,15}/(?:[0-9]|[12][0-9]|3[0-2])", value):
        raise Problem(f"{value!r} is not an address with a prefix", "write it as address/prefix, e.g. 10.42.0.240/24")
    address, _, prefix = value.partition("/")
    return ipaddress.IPv4Interface((_ipv4(address), int(prefix)))


LoginUser = Annotated[
    StrictStr,
    AfterValidator(
        _matching(
            r"[a-z_][a-z0-9_-]{0,31}",
            "a login user name (it becomes the sudoers drop-in's user and the user of ssh://user@host)",
            "use lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 32 characters",
        )
    ),
]
HostName = Annotated[
    StrictStr,
    AfterValidator(
        _matching(
            HOST_NAME.pattern,
            "a short lowercase name",
            "use letters, digits and '-', starting with a letter, at most 31 characters",
        )
    ),
]
Port = _int_range(1, 65535, "a TCP port")
Ipv4 = Annotated[ipaddress.IPv4Address, BeforeValidator(_ipv4)]
Ipv4Interface = Annotated[ipaddress.IPv4Interface, BeforeValidator(_ipv4_interface)]


def _interface(value: str) -> str:
    _matching(
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
    return _matching(
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


TimerMs = _int_range(1, HAPROXY_MAX_TIMER_MS, "HAProxy timers are at most 2147483647 ms")
ImageRef = Annotated[
    StrictStr,
    AfterValidator(
        _matching(
            r"(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
            r"(?::[0-9]{1,5})?)/)?"
            r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
            r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?",
            "an image reference",
            "e.g. debian:bookworm-slim or registry.example:5000/debian:bookworm-slim (Docker's reference syntax)",
            max_len=255,
        )
    ),
]
DebianVersion = Annotated[
    StrictStr,
    AfterValidator(
        _matching(
            r"|(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*",
            "a Debian package version",
            "e.g. 2.6.12-1+deb12u4 (digits first; letters, digits and .+~-), or empty for the newest",
            max_len=128,
        )
    ),
]
HttpsUrl = Annotated[
    StrictStr,
    AfterValidator(
        _matching(
            r"|https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[A-Za-z0-9\-._~/%+=&?,;:@]*",
            "an https URL",
            "e.g. https://www.haproxy.org/download/2.6/src/haproxy-2.6.12.tar.gz (no spaces or quotes)",
            max_len=2048,
        )
    ),
]
Sha256Hex = Annotated[
    StrictStr,
    AfterValidator(_matching(r"|[0-9a-f]{64}", "a SHA-256", "write the 64 lowercase hex digits of `sha256sum`")),
]


# ---- models ---------------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Host(_Strict):
    """One Pi of the inventory."""

    name: HostName
    address: Ipv4
    role: Literal["server", "balancer"]
    user: LoginUser | None = None
    port: Port | None = None
    priority: _int_range(1, KEEPALIVED_MAX_PRIORITY, "keepalived caps priorities at 254") | None = None

    @model_validator(mode="after")
    def _priority_by_role(self) -> Host:
        if self.role == "balancer" and self.priority is None:
            raise Problem(
                f"balancer {self.name} has no priority",
                "set priority (e.g. 101 for the MASTER, 100 for the BACKUP)",
                "priority",
            )
        if self.role == "server" and self.priority is not None:
            raise Problem(
                f"server {self.name} has a priority", "remove it: only balancers take part in VRRP", "priority"
            )
        return self


class SshDefaults(_Strict):
    """Login used for every host that does not set its own."""

    user: LoginUser = "pi"
    port: Port = 22
    connect_timeout: _int_range(1, 300, "seconds") = Field(default=10, alias="connectTimeout")


class TrackScript(_Strict):
    """How keepalived decides HAProxy is alive.

    `script`: the paper's `chk_haproxy` (`killall -0 haproxy` every `interval` seconds).
    `events`: a watcher of Docker's container events writes a track file the moment the HAProxy
    container dies or starts; keepalived reads it through inotify, so no polling delay.
    """

    kind: Literal["script", "events"] = "script"
    interval: _int_range(1, 3600, "seconds between checks") = 2
    weight: _int_range(-253, 253, "keepalived's weight range") = 2
    fall: _int_range(1, 100, "failed checks before down") = 1
    rise: _int_range(1, 100, "good checks before up") = 1
    timeout: _int_range(1, 60, "seconds") = 1

    @model_validator(mode="after")
    def _weight_direction(self) -> TrackScript:
        if self.kind == "events" and self.weight <= 0:
            raise Problem(
                f"weight {self.weight} with kind events: the track file holds 1 while HAProxy runs, so only a "
                "positive weight lowers the priority of a dead HAProxy",
                "use a positive weight, e.g. 2",
                "weight",
            )
        return self


class Vrrp(_Strict):
    """The keepalived instance shared by the two balancers."""

    vip: Ipv4Interface
    interface: Annotated[StrictStr, AfterValidator(_interface)] = "eth0"
    router_id: _int_range(1, 255, "VRRP router ids; pick a free one, the paper uses 51") = Field(
        default=51, alias="routerId"
    )
    advert_interval: Annotated[StrictFloat, AfterValidator(_advert_interval)] = Field(
        default=1.0, alias="advertInterval"
    )
    version: Literal[2, 3] = 2
    mode: Literal["multicast", "unicast"] = "multicast"
    preempt: StrictBool = True
    track: TrackScript = TrackScript()

    @model_validator(mode="after")
    def _check(self) -> Vrrp:
        advert = self.advert_interval
        if self.version == 2 and advert != int(advert):
            raise Problem(
                f"{advert} s: VRRP version 2 adverts are whole seconds (1..255)",
                "use a whole number, or set vrrp.version: 3 for sub-second adverts",
                "advertInterval",
            )
        if self.version == 3 and (advert > 40.95 or abs(advert * 100 - round(advert * 100)) > 1e-6):
            raise Problem(
                f"{advert} s: VRRP version 3 adverts are whole centiseconds up to 40.95 s",
                "use a multiple of 0.01 from 0.01 to 40.95, e.g. 0.2",
                "advertInterval",
            )
        net = self.vip.network
        if net.prefixlen >= 31:
            raise Problem(
                f"prefix /{net.prefixlen} leaves no room for hosts", "give the VIP the LAN's prefix, e.g. /24", "vip"
            )
        if self.vip.ip in (net.network_address, net.broadcast_address):
            raise Problem(
                f"{self.vip.ip} is the network or broadcast address of {net}",
                "pick a free host address in the LAN",
                "vip",
            )
        return self


class HealthCheck(_Strict):
    """HAProxy's active check of each server (`option httpchk`)."""

    path: Annotated[StrictStr, AfterValidator(_path)] = "/"
    expect_status: _int_range(100, 599, "an HTTP status") = Field(default=200, alias="expectStatus")
    inter_ms: _int_range(100, 3_600_000, "milliseconds between checks") = Field(default=2000, alias="interMs")
    fall: _int_range(1, 100, "failed checks before down") = 3
    rise: _int_range(1, 100, "good checks before up") = 2


class Timeouts(_Strict):
    """HAProxy `timeout` values in milliseconds (the paper's 5000/10000/10000)."""

    connect_ms: TimerMs = Field(default=5000, alias="connectMs")
    client_ms: TimerMs = Field(default=10000, alias="clientMs")
    server_ms: TimerMs = Field(default=10000, alias="serverMs")


class HaproxySource(_Strict):
    """Where the HAProxy source that the image compiles comes from, and how it is verified."""

    kind: Literal["debian", "upstream"] = "debian"
    version: DebianVersion = ""
    security_pocket: StrictBool = Field(default=True, alias="securityPocket")
    url: HttpsUrl = ""
    sha256: Sha256Hex = ""

    @model_validator(mode="after")
    def _check(self) -> HaproxySource:
        if self.kind == "upstream" and not (self.url and self.sha256):
            raise Problem(
                "an upstream source needs an https url and its sha256",
                "set source.url to the haproxy-X.Y.Z.tar.gz address and source.sha256 to its 64-hex SHA-256",
            )
        if self.kind == "debian" and (self.url or self.sha256):
            raise Problem("url and sha256 are only used with kind: upstream", "remove them, or set kind: upstream")
        return self


class Haproxy(_Strict):
    """The load balancer: paper defaults, plus the knobs of the tuned profile."""

    balance: Literal[BALANCE_ALGORITHMS] = "roundrobin"
    frontend_port: Port = Field(default=80, alias="frontendPort")
    stats_port: Port = Field(default=8404, alias="statsPort")
    health_check: HealthCheck = Field(default=HealthCheck(), alias="healthCheck")
    timeouts: Timeouts = Timeouts()
    retries: _int_range(0, 10, "connection retries") = 0
    redispatch: StrictBool = False
    retry_on: Annotated[StrictStr, AfterValidator(_retry_on)] = Field(default="", alias="retryOn")
    stop_grace_ms: _int_range(0, 5000, "milliseconds") = Field(default=0, alias="stopGraceMs")
    source: HaproxySource = HaproxySource()

    @model_validator(mode="after")
    def _check(self) -> Haproxy:
        if self.frontend_port == self.stats_port:
            raise Problem("the stats port equals the frontend port", "use another port, e.g. 8404", "statsPort")
        return self


class Nginx(_Strict):
    """The application servers."""

    server_port: Port = Field(default=80, alias="serverPort")


class HostPrep(_Strict):
    """The paper's `install` role."""

    upgrade_packages: StrictBool = Field(default=True, alias="upgradePackages")
    apt_max_age_minutes: _int_range(0, 525_600, "minutes, at most a year") = Field(default=60, alias="aptMaxAgeMinutes")


class Cluster(_Strict):
    """The whole `pihalb:cluster` object of a stack."""

    platform: Literal[tuple(PLATFORM_ARCH)] = "linux/arm64"
    base_image: ImageRef = Field(default="debian:bookworm-slim", alias="baseImage")
    ssh: SshDefaults = SshDefaults()
    hosts: list[Host]
    vrrp: Vrrp
    haproxy: Haproxy = Haproxy()
    nginx: Nginx = Nginx()
    host_prep: HostPrep = Field(default=HostPrep(), alias="hostPrep")

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        _check_inventory(self)
        _check_priorities(self)
        _check_addresses(self)
        return self


def _check_inventory(c: Cluster) -> None:
    names = [h.name for h in c.hosts]
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_names:
        raise Problem(f"duplicate host names {dup_names}", "give every host its own name", "hosts")
    addrs = [str(h.address) for h in c.hosts]
    dup_addrs = sorted({a for a in addrs if addrs.count(a) > 1})
    if dup_addrs:
        raise Problem(f"duplicate host addresses {dup_addrs}", "give every host its own address", "hosts")
    if not any(h.role == "server" for h in c.hosts):
        raise Problem("no host has role 'server'", "add at least one host with role: server", "hosts")
    balancers = [h for h in c.hosts if h.role == "balancer"]
    if len(balancers) != 2:
        raise Problem(
            f"{len(balancers)} hosts have role 'balancer'",
            "declare exactly two balancers (one VRRP MASTER, one BACKUP); more balancers would need "
            "more VRRP instances, which this program does not build",
            "hosts",
        )


def _check_priorities(c: Cluster) -> None:
    indexed = sorted(((h.priority, i) for i, h in enumerate(c.hosts) if h.role == "balancer"), reverse=True)
    (high, high_i), (low, low_i) = indexed
    if high == low:
        raise Problem(
            f"both balancers have priority {high}",
            "give the MASTER a higher priority than the BACKUP (e.g. 101 and 100)",
            f"hosts[{low_i}].priority",
        )
    weight = c.vrrp.track.weight
    if abs(weight) <= high - low:
        raise Problem(
            f"priority gap {high - low} is not smaller than |weight| {abs(weight)}, so a dead HAProxy "
            "on the MASTER would never move the VIP",
            f"make the gap smaller than the weight (priorities {high}/{high - 1}) or raise the weight "
            f"above {high - low}",
            "vrrp.track.weight",
        )
    for priority, i in indexed:
        if not 1 <= priority + weight <= KEEPALIVED_MAX_PRIORITY:
            raise Problem(
                f"priority {priority} with track weight {weight} gives {priority + weight}, but keepalived clamps a "
                f"tracked priority to 1..{KEEPALIVED_MAX_PRIORITY}, so both balancers could end up equal and a dead "
                "HAProxy would not move the VIP",
                f"keep priority + weight within 1..{KEEPALIVED_MAX_PRIORITY} (e.g. priorities 101/100, weight 2)",
                f"hosts[{i}].priority",
            )


def _check_addresses(c: Cluster) -> None:
    vip = c.vrrp.vip
    net = vip.network
    for i, h in enumerate(c.hosts):
        if h.address not in net:
            raise Problem(
                f"VIP subnet {net} does not contain host {h.name} ({h.address})",
                "put the VIP in the hosts' LAN and give it the LAN's prefix",
                "vrrp.vip",
            )
        if h.address in (net.network_address, net.broadcast_address):
            raise Problem(
                f"{h.address} is the network or broadcast address of the VIP's subnet {net}",
                "use the host's own address in the LAN",
                f"hosts[{i}].address",
            )
        if h.address == vip.ip:
            raise Problem(f"VIP {vip.ip} is host {h.name}'s address", "pick an address no host uses", "vrrp.vip")


# ---- SSH keys ---------------------------------------------------------------------------------------------


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
    fix = f"run `pulumi config set --secret {CONFIG_NAMESPACE}:{SSH_PRIVATE_KEY_KEY} < ~/.ssh/id_ed25519`"
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


def _vrrp_password(value: str) -> str:
    if not 1 <= len(value) <= 8 or not re.fullmatch(r"[\x21-\x7e]+", value) or re.search(r"[\"\\]", value):
        raise Problem(
            "VRRP PASS authentication uses 1 to 8 printable ASCII characters without spaces, '\"' or '\\' "
            "(keepalived truncates longer ones)",
            "set a password of 1 to 8 such characters",
        )
    return value


def _stats_password(value: str) -> str:
    if not 8 <= len(value) <= 128 or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise Problem(
            "the stats password needs 8 to 128 printable ASCII characters without spaces",
            "set a longer password of such characters",
        )
    return value


class Secrets(_Strict):
    """The secret config keys, each with its rule: the one table `check_secret` reads."""

    ssh_private_key: Annotated[StrictStr, AfterValidator(_private_key)] = Field(alias=SSH_PRIVATE_KEY_KEY)
    vrrp_password: Annotated[StrictStr, AfterValidator(_vrrp_password)] = Field(alias=VRRP_PASSWORD_KEY)
    stats_password: Annotated[StrictStr, AfterValidator(_stats_password)] = Field(alias=STATS_PASSWORD_KEY)


SECRET_KEYS = tuple(field.alias for field in Secrets.model_fields.values())
_SECRET_RULES = {f.alias: TypeAdapter(Annotated[f.annotation, *f.metadata]) for f in Secrets.model_fields.values()}


class Settings(_Strict):
    """Everything the program reads from the stack."""

    cluster: Cluster
    host_keys: dict[str, str]

    @property
    def servers(self) -> list[Host]:
        return [h for h in self.cluster.hosts if h.role == "server"]

    @property
    def balancers(self) -> list[Host]:
        """The two balancers, MASTER (higher priority) first."""
        return sorted((h for h in self.cluster.hosts if h.role == "balancer"), key=lambda h: -(h.priority or 0))

    def user(self, host: Host) -> str:
        return host.user or self.cluster.ssh.user

    def port(self, host: Host) -> int:
        return host.port or self.cluster.ssh.port


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


def _fail(key: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{CONFIG_NAMESPACE}:{key}: {problem}. Fix: {fix}")


def _format_validation_error(key: str, err: ValidationError, *, secret: bool = False) -> str:
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


# ---- reading the stack ---------------------------------------------------------------------------------


def parse_cluster(raw: object) -> Cluster:
    """Parse the `pihalb:cluster` object, raising ConfigError with every problem found."""
    try:
        return Cluster.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(CLUSTER_KEY, err)) from None


def parse_host_keys(cluster: Cluster, raw: object) -> dict[str, str]:
    """Every host needs a pinned SSH host key, so a swapped SD card or a spoofed address is refused."""
    keys = raw if isinstance(raw, dict) else {}
    for host in cluster.hosts:
        if not keys.get(host.name):
            _fail(
                f"{HOST_KEYS_KEY}.{host.name}",
                "missing or not an SSH public host key",
                f"run `ssh-keyscan -t ed25519 {host.address}` and `pulumi config set --path "
                f"'{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}.{host.name}' '<type> <base64>'`",
            )
    unknown = sorted(set(keys) - {h.name for h in cluster.hosts})
    if unknown:
        _fail(
            HOST_KEYS_KEY, f"keys for unknown hosts {unknown}", "remove them or add those hosts to pihalb:cluster.hosts"
        )
    try:
        return HOST_KEYS.validate_python({h.name: keys[h.name] for h in cluster.hosts})
    except ValidationError as err:
        raise ConfigError(_format_validation_error(HOST_KEYS_KEY, err)) from None


def check_secret(key: str, value: str | None) -> str:
    """Refuse a missing or unusable secret (called on the plain value inside the program).

    The rule is the one declared for `key` on `Secrets`; messages never repeat the secret's value.
    """
    if not value or not value.strip():
        _fail(key, "secret is not set", f"run `pulumi config set --secret {CONFIG_NAMESPACE}:{key} ...`")
    try:
        return _SECRET_RULES[key].validate_python(value)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(key, err, secret=True)) from None


def load(config_get_object, config_get_secret_raw) -> Settings:
    """Read and validate the whole stack config.

    `config_get_object(key)` returns a parsed object or None; `config_get_secret_raw(key)` returns the
    plain secret string or None. Both come from `pulumi.Config` in the program and from dicts in tests.
    Secrets are validated here but only ever handed to resources wrapped as Pulumi secrets.
    """
    raw_cluster = config_get_object(CLUSTER_KEY)
    if raw_cluster is None:
        _fail(CLUSTER_KEY, "required object is missing", "copy the pihalb:cluster block of Pulumi.dev.yaml and edit it")
    cluster = parse_cluster(raw_cluster)
    host_keys = parse_host_keys(cluster, config_get_object(HOST_KEYS_KEY))
    for key in SECRET_KEYS:
        check_secret(key, config_get_secret_raw(key))
    return Settings(cluster=cluster, host_keys=host_keys)
