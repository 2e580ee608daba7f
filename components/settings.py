"""Typed, validated stack configuration.

Everything the program needs is read here, once, before any resource is registered: a bad value
stops `pulumi preview` with an error that names the config key and says how to fix it, and no host
is touched. Models are strict (`extra="forbid"`) so a typo in a key is an error, not a silent default.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CONFIG_NAMESPACE = "pihalb"

# Keys of the stack config, as a user types them after `pulumi config set`.
CLUSTER_KEY = "cluster"
HOST_KEYS_KEY = "hostKeys"
SSH_PRIVATE_KEY_KEY = "sshPrivateKey"
VRRP_PASSWORD_KEY = "vrrpPassword"
STATS_PASSWORD_KEY = "statsPassword"
SECRET_KEYS = (SSH_PRIVATE_KEY_KEY, VRRP_PASSWORD_KEY, STATS_PASSWORD_KEY)

BALANCE_ALGORITHMS = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random")
PLATFORM_ARCH = {"linux/arm64": "aarch64", "linux/amd64": "x86_64", "linux/arm/v7": "armv7l"}
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class ConfigError(ValueError):
    """A stack config value that cannot work; the message names the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Host(_Strict):
    """One Pi of the inventory."""

    name: str
    address: ipaddress.IPv4Address
    role: Literal["server", "balancer"]
    user: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    priority: int | None = Field(default=None, ge=1, le=254)


class SshDefaults(_Strict):
    """Login used for every host that does not set its own."""

    user: str = "pi"
    port: int = Field(default=22, ge=1, le=65535)
    connect_timeout: int = Field(default=10, ge=1, le=300, alias="connectTimeout")


class TrackScript(_Strict):
    """How keepalived decides HAProxy is alive.

    `script`: the paper's `chk_haproxy` (`killall -0 haproxy` every `interval` seconds).
    `events`: a watcher of Docker's container events writes a track file the moment the HAProxy
    container dies or starts; keepalived reads it through inotify, so no polling delay.
    """

    kind: Literal["script", "events"] = "script"
    interval: int = Field(default=2, ge=1, le=3600)
    weight: int = Field(default=2, ge=-253, le=253)
    fall: int = Field(default=1, ge=1, le=100)
    rise: int = Field(default=1, ge=1, le=100)
    timeout: int = Field(default=1, ge=1, le=60)


class Vrrp(_Strict):
    """The keepalived instance shared by the two balancers."""

    vip: ipaddress.IPv4Interface
    interface: str = "eth0"
    router_id: int = Field(default=51, alias="routerId")
    advert_interval: float = Field(default=1.0, alias="advertInterval", gt=0, le=255)
    version: Literal[2, 3] = 2
    mode: Literal["multicast", "unicast"] = "multicast"
    preempt: bool = True
    track: TrackScript = TrackScript()


class HealthCheck(_Strict):
    """HAProxy's active check of each server (`option httpchk`)."""

    path: str = "/"
    expect_status: int = Field(default=200, alias="expectStatus", ge=100, le=599)
    inter_ms: int = Field(default=2000, alias="interMs", ge=100, le=3_600_000)
    fall: int = Field(default=3, ge=1, le=100)
    rise: int = Field(default=2, ge=1, le=100)


class Timeouts(_Strict):
    """HAProxy `timeout` values in milliseconds (the paper's 5000/10000/10000)."""

    connect_ms: int = Field(default=5000, alias="connectMs", ge=1)
    client_ms: int = Field(default=10000, alias="clientMs", ge=1)
    server_ms: int = Field(default=10000, alias="serverMs", ge=1)


class HaproxySource(_Strict):
    """Where the HAProxy source that the image compiles comes from, and how it is verified."""

    kind: Literal["debian", "upstream"] = "debian"
    version: str = ""
    security_pocket: bool = Field(default=True, alias="securityPocket")
    url: str = ""
    sha256: str = ""


class Haproxy(_Strict):
    """The load balancer: paper defaults, plus the knobs of the tuned profile."""

    balance: str = "roundrobin"
    frontend_port: int = Field(default=80, alias="frontendPort", ge=1, le=65535)
    stats_port: int = Field(default=8404, alias="statsPort", ge=1, le=65535)
    health_check: HealthCheck = Field(default=HealthCheck(), alias="healthCheck")
    timeouts: Timeouts = Timeouts()
    retries: int = Field(default=0, ge=0, le=10)
    redispatch: bool = False
    retry_on: str = Field(default="", alias="retryOn")
    stop_grace_ms: int = Field(default=0, alias="stopGraceMs", ge=0, le=5000)
    source: HaproxySource = HaproxySource()


class Nginx(_Strict):
    """The application servers."""

    server_port: int = Field(default=80, alias="serverPort", ge=1, le=65535)


class HostPrep(_Strict):
    """The paper's `install` role."""

    upgrade_packages: bool = Field(default=True, alias="upgradePackages")
    apt_max_age_minutes: int = Field(default=60, alias="aptMaxAgeMinutes", ge=0)


class Cluster(_Strict):
    """The whole `pihalb:cluster` object of a stack."""

    platform: str = "linux/arm64"
    base_image: str = Field(default="debian:bookworm-slim", alias="baseImage")
    ssh: SshDefaults = SshDefaults()
    hosts: list[Host]
    vrrp: Vrrp
    haproxy: Haproxy = Haproxy()
    nginx: Nginx = Nginx()
    host_prep: HostPrep = Field(default=HostPrep(), alias="hostPrep")

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        _check_cluster(self)
        return self


def _fail(key: str, problem: str, fix: str) -> None:
    raise ConfigError(f"{CONFIG_NAMESPACE}:{key}: {problem}. Fix: {fix}")


def _check_cluster(c: Cluster) -> None:
    key = CLUSTER_KEY
    if c.platform not in PLATFORM_ARCH:
        _fail(f"{key}.platform", f"unknown platform {c.platform!r}", f"use one of {sorted(PLATFORM_ARCH)}")
    names = [h.name for h in c.hosts]
    for i, h in enumerate(c.hosts):
        if not HOST_NAME.match(h.name):
            _fail(
                f"{key}.hosts[{i}].name",
                f"{h.name!r} is not a short lowercase name",
                "use letters, digits and '-', starting with a letter, at most 31 characters",
            )
    dup_names = sorted({n for n in names if names.count(n) > 1})
    if dup_names:
        _fail(f"{key}.hosts", f"duplicate host names {dup_names}", "give every host its own name")
    addrs = [str(h.address) for h in c.hosts]
    dup_addrs = sorted({a for a in addrs if addrs.count(a) > 1})
    if dup_addrs:
        _fail(f"{key}.hosts", f"duplicate host addresses {dup_addrs}", "give every host its own address")
    servers = [h for h in c.hosts if h.role == "server"]
    balancers = [h for h in c.hosts if h.role == "balancer"]
    if not servers:
        _fail(f"{key}.hosts", "no host has role 'server'", "add at least one host with role: server")
    if len(balancers) != 2:
        _fail(
            f"{key}.hosts",
            f"{len(balancers)} hosts have role 'balancer'",
            "declare exactly two balancers (one VRRP MASTER, one BACKUP); more balancers would need "
            "more VRRP instances, which this program does not build",
        )
    for i, h in enumerate(c.hosts):
        if h.role == "balancer" and h.priority is None:
            _fail(
                f"{key}.hosts[{i}].priority",
                f"balancer {h.name} has no priority",
                "set priority (e.g. 101 for the MASTER, 100 for the BACKUP)",
            )
        if h.role == "server" and h.priority is not None:
            _fail(
                f"{key}.hosts[{i}].priority",
                f"server {h.name} has a priority",
                "remove it: only balancers take part in VRRP",
            )
    high, low = sorted((b.priority for b in balancers), reverse=True)
    if high == low:
        _fail(
            f"{key}.hosts[].priority",
            f"both balancers have priority {high}",
            "give the MASTER a higher priority than the BACKUP (e.g. 101 and 100)",
        )
    weight = c.vrrp.track.weight
    if abs(weight) <= high - low:
        _fail(
            f"{key}.vrrp.track.weight",
            f"priority gap {high - low} is not smaller than |weight| {abs(weight)}, so a dead HAProxy "
            "on the MASTER would never move the VIP",
            f"make the gap smaller than the weight (priorities {high}/{high - 1}) or raise the weight "
            f"above {high - low}",
        )
    vrrp = c.vrrp
    if not 1 <= vrrp.router_id <= 255:
        _fail(
            f"{key}.vrrp.routerId",
            f"{vrrp.router_id} is outside 1..255",
            "pick a free id in 1..255 (the paper uses 51)",
        )
    if vrrp.advert_interval < 1 and vrrp.version == 2:
        _fail(
            f"{key}.vrrp.advertInterval",
            f"{vrrp.advert_interval} s is below 1 s with VRRP version 2",
            "use a whole number of seconds, or set vrrp.version: 3 for sub-second adverts",
        )
    if vrrp.version == 2 and vrrp.advert_interval != int(vrrp.advert_interval):
        _fail(
            f"{key}.vrrp.advertInterval",
            "VRRP version 2 adverts are whole seconds",
            "use a whole number, or set vrrp.version: 3",
        )
    if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", vrrp.interface):
        _fail(
            f"{key}.vrrp.interface",
            f"{vrrp.interface!r} is not an interface name",
            "use the balancers' LAN interface, e.g. eth0",
        )
    net = vrrp.vip.network
    if vrrp.vip.network.prefixlen >= 31:
        _fail(
            f"{key}.vrrp.vip",
            f"prefix /{net.prefixlen} leaves no room for hosts",
            "give the VIP the LAN's prefix, e.g. /24",
        )
    if vrrp.vip.ip in (net.network_address, net.broadcast_address):
        _fail(
            f"{key}.vrrp.vip",
            f"{vrrp.vip.ip} is the network or broadcast address",
            "pick a free host address in the LAN",
        )
    for h in c.hosts:
        if h.address not in net:
            _fail(
                f"{key}.vrrp.vip",
                f"VIP subnet {net} does not contain host {h.name} ({h.address})",
                "put the VIP in the hosts' LAN and give it the LAN's prefix",
            )
        if h.address == vrrp.vip.ip:
            _fail(f"{key}.vrrp.vip", f"VIP {vrrp.vip.ip} is host {h.name}'s address", "pick an address no host uses")
    hp = c.haproxy
    if hp.balance not in BALANCE_ALGORITHMS:
        _fail(
            f"{key}.haproxy.balance",
            f"unknown balance algorithm {hp.balance!r}",
            f"use one of {list(BALANCE_ALGORITHMS)}",
        )
    if hp.frontend_port == hp.stats_port:
        _fail(f"{key}.haproxy.statsPort", "the stats port equals the frontend port", "use another port, e.g. 8404")
    if not hp.health_check.path.startswith("/") or any(ch.isspace() for ch in hp.health_check.path):
        _fail(f"{key}.haproxy.healthCheck.path", f"{hp.health_check.path!r} is not a URL path", "use a path such as /")
    if hp.retry_on and not re.match(r"^[a-z0-9 -]+$", hp.retry_on):
        _fail(
            f"{key}.haproxy.retryOn",
            f"{hp.retry_on!r} is not a list of retry-on keywords",
            "e.g. 'conn-failure empty-response response-timeout'",
        )
    src = hp.source
    if src.kind == "upstream" and (not src.url.startswith("https://") or not re.match(r"^[0-9a-f]{64}$", src.sha256)):
        _fail(
            f"{key}.haproxy.source",
            "an upstream source needs an https url and its sha256",
            "set source.url to the haproxy-X.Y.Z.tar.gz address and source.sha256 to its 64-hex SHA-256",
        )
    if src.version and not re.match(r"^[0-9A-Za-z.+:~-]+$", src.version):
        _fail(
            f"{key}.haproxy.source.version",
            f"{src.version!r} is not a package version",
            "e.g. 2.6.12-1+deb12u4, or empty for the newest",
        )
    if not re.match(r"^[a-z0-9./_-]+(:[A-Za-z0-9._-]+)?$", c.base_image):
        _fail(f"{key}.baseImage", f"{c.base_image!r} is not an image reference", "e.g. debian:bookworm-slim")


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


def _format_validation_error(key: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(
                f"{CONFIG_NAMESPACE}:{key}{loc}: unknown key. Fix: remove it or correct its spelling "
                "(see the config table in README.md)"
            )
        elif e["type"] == "missing":
            lines.append(f"{CONFIG_NAMESPACE}:{key}{loc}: required key is missing. Fix: set it (see README.md)")
        elif e["type"] == "value_error" and isinstance(e.get("ctx", {}).get("error"), ConfigError):
            lines.append(str(e["ctx"]["error"]))
        else:
            lines.append(f"{CONFIG_NAMESPACE}:{key}{loc}: {e['msg']} (got {e.get('input')!r}). Fix: correct the value")
    return "\n".join(lines)


def parse_cluster(raw: object) -> Cluster:
    """Parse the `pihalb:cluster` object, raising ConfigError with every problem found."""
    try:
        return Cluster.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(CLUSTER_KEY, err)) from None


def parse_host_keys(cluster: Cluster, raw: object) -> dict[str, str]:
    """Every host needs a pinned SSH host key, so a swapped SD card or a spoofed address is refused."""
    keys = raw if isinstance(raw, dict) else {}
    for name in [h.name for h in cluster.hosts]:
        key = keys.get(name, "")
        if not isinstance(key, str) or not re.match(
            r"^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+$", key.strip()
        ):
            host = next(h for h in cluster.hosts if h.name == name)
            _fail(
                f"{HOST_KEYS_KEY}.{name}",
                "missing or not an SSH public host key",
                f"run `ssh-keyscan -t ed25519 {host.address}` and `pulumi config set --path "
                f"'{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}.{name}' '<type> <base64>'`",
            )
    unknown = sorted(set(keys) - {h.name for h in cluster.hosts})
    if unknown:
        _fail(
            HOST_KEYS_KEY, f"keys for unknown hosts {unknown}", "remove them or add those hosts to pihalb:cluster.hosts"
        )
    return {name: keys[name].strip() for name in (h.name for h in cluster.hosts)}


def check_secret(key: str, value: str | None) -> str:
    """Refuse a missing or unusable secret (called on the plain value inside the program)."""
    if not value or not value.strip():
        _fail(key, "secret is not set", f"run `pulumi config set --secret {CONFIG_NAMESPACE}:{key} ...`")
    if key == SSH_PRIVATE_KEY_KEY and "PRIVATE KEY-----" not in value:
        _fail(
            key,
            "not a PEM/OpenSSH private key",
            f"run `pulumi config set --secret {CONFIG_NAMESPACE}:{key} < ~/.ssh/id_ed25519`",
        )
    if key == VRRP_PASSWORD_KEY and (len(value) > 8 or not re.match(r"^[\x21-\x7e]+$", value)):
        _fail(
            key,
            "VRRP PASS authentication uses at most 8 printable characters without spaces",
            "set a password of 1 to 8 characters",
        )
    if key == STATS_PASSWORD_KEY and (len(value) < 8 or re.search(r"[\s:\"'\\]", value)):
        _fail(
            key,
            "the stats password needs at least 8 characters and no spaces, quotes, ':' or '\\'",
            "set a longer password",
        )
    return value


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
