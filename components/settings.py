"""Typed, validated stack configuration.

Everything the program needs is read here, once, before any resource is registered: a bad value
stops `pulumi preview` with an error that names the config key and says how to fix it, and no host
is touched. Models are strict (`extra="forbid"`, strict types, full-string matches) so a typo in a key
is an error, not a silent default, and a value is either refused or reaches its daemon unchanged.

Each rule lives on the model it concerns: a field's form in its type (the `Annotated` aliases of
`fields.py`, each saying what its consumer accepts), a rule between fields in that model's validator.
SSH keys are parsed in `keys.py`, secrets checked in `secrets.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Literal

import pulumi
import pulumi.runtime.config as runtime_config
from pydantic import Field, StrictBool, ValidationError, model_validator

from components.cluster_rules import KEEPALIVED_MAX_PRIORITY, check_cluster
from components.debian import DEBIAN_BASE_IMAGE
from components.fields import (
    CLUSTER_KEY,
    CONFIG_NAMESPACE,
    HOST_KEYS_KEY,
    AdvertInterval,
    ConfigError,
    DebianVersion,
    HostName,
    HttpsUrl,
    ImageRef,
    Interface,
    Ipv4,
    Ipv4Interface,
    LoginUser,
    Port,
    Problem,
    RetryOn,
    Sha256Hex,
    StrictModel,
    TimerMs,
    UrlPath,
    fail,
    format_validation_error,
    int_range,
    widest_lan_prefix,
)
from components.keys import parse_host_keys
from components.secrets import SECRET_KEYS, check_held_as_secrets, check_secret
from components.tls import TLS_SECRET_KEYS, Tls
from components.tls_secrets import check_tls_secrets

BALANCE_ALGORITHMS = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random")
PLATFORM_ARCH = {"linux/arm64": "aarch64", "linux/amd64": "x86_64", "linux/arm/v7": "armv7l"}
# What every server answers (files/nginx/default.conf and the one page nginx-page.sh writes, index.html):
# 200 at these paths, whatever the query, and 404 anywhere else.
SERVED_PAGES = ("/", "/index.html")
SERVED_STATUS = 200


# ---- models ---------------------------------------------------------------------------------------------


class Host(StrictModel):
    """One Pi of the inventory."""

    name: HostName
    address: Ipv4
    role: Literal["server", "balancer"]
    user: LoginUser | None = None
    port: Port | None = None
    priority: int_range(1, KEEPALIVED_MAX_PRIORITY, "keepalived caps priorities at 254") | None = None

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


class SshDefaults(StrictModel):
    """Login used for every host that does not set its own."""

    user: LoginUser = "pi"
    port: Port = 22
    connect_timeout: int_range(1, 300, "seconds") = Field(default=10, alias="connectTimeout")


class TrackScript(StrictModel):
    """How keepalived decides HAProxy is alive.

    `script`: the paper's `chk_haproxy` (`killall -0 haproxy` every `interval` seconds).
    `events`: a watcher of Docker's container events writes a track file the moment the HAProxy
    container dies or turns healthy; keepalived reads it through inotify, so no polling delay.
    `weight`: added to the priority while HAProxy lives (the paper's +2; the BACKUP then waits out three
    missed adverts). `0`: a dead HAProxy puts the balancer in FAULT, a priority-0 advert: skew time only.
    """

    kind: Literal["script", "events"] = "script"
    interval: int_range(1, 3600, "seconds between checks") = 2
    weight: int_range(-253, 253, "keepalived's weight range") = 2
    fall: int_range(1, 100, "failed checks before down") = 1
    rise: int_range(1, 100, "good checks before up") = 1
    timeout: int_range(1, 60, "seconds") = 1

    @model_validator(mode="after")
    def _weight_direction(self) -> TrackScript:
        if self.kind == "events" and self.weight < 0:
            raise Problem(
                f"weight {self.weight} with kind events: the track file holds 1 while HAProxy runs, so only a "
                "positive weight lowers the priority of a dead HAProxy",
                "use a positive weight (e.g. 2), or 0 for FAULT when HAProxy dies",
                "weight",
            )
        return self


class Vrrp(StrictModel):
    """The keepalived instance shared by the two balancers."""

    vip: Ipv4Interface
    interface: Interface = "eth0"
    router_id: int_range(1, 255, "VRRP router ids; pick a free one, the paper uses 51") = Field(
        default=51, alias="routerId"
    )
    advert_interval: AdvertInterval = Field(default=1.0, alias="advertInterval")
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
        widest = widest_lan_prefix(self.vip.ip)
        if net.prefixlen < widest:
            raise Problem(
                f"prefix /{net.prefixlen} is wider than a LAN holding {self.vip.ip} can be (/{widest} at most): "
                f"keepalived would give the balancers an on-link route for all of {net}, so they would look for "
                "addresses beyond the LAN on it instead of sending them to the router",
                f"give the VIP the LAN's own prefix, e.g. /24 (from /{widest} to /30)",
                "vip",
            )
        if self.vip.ip in (net.network_address, net.broadcast_address):
            raise Problem(
                f"{self.vip.ip} is the network or broadcast address of {net}",
                "pick a free host address in the LAN",
                "vip",
            )
        return self


class HealthCheck(StrictModel):
    """HAProxy's active check of each server (`option httpchk`), of a page the program deploys there."""

    path: UrlPath = "/"
    expect_status: int_range(100, 599, "an HTTP status") = Field(default=200, alias="expectStatus")
    # At most 5 minutes: a rolling step waits up to three intervals for a server to be UP again
    # (timing.ready_timeout_s), and a step runs for at most 30 minutes (remote.STEP_TIMEOUT_S).
    inter_ms: int_range(100, 300_000, "milliseconds between checks, at most 5 minutes") = Field(
        default=2000, alias="interMs"
    )
    fall: int_range(1, 100, "failed checks before down") = 3
    rise: int_range(1, 100, "good checks before up") = 2

    @model_validator(mode="after")
    def _served(self) -> HealthCheck:
        page = self.path.split("?", 1)[0]
        if page not in SERVED_PAGES:
            raise Problem(
                f"the servers answer {page!r} with 404: they serve one page, at {' and '.join(SERVED_PAGES)}, so "
                "every server would be DOWN and the site would answer 503",
                f"check {' or '.join(SERVED_PAGES)} (a ?query is fine)",
                "path",
            )
        if self.expect_status != SERVED_STATUS:
            raise Problem(
                f"the servers answer {self.path!r} with {SERVED_STATUS}, so every server would be DOWN and the site "
                "would answer 503",
                f"expect {SERVED_STATUS}",
                "expectStatus",
            )
        return self


class Timeouts(StrictModel):
    """HAProxy `timeout` values in milliseconds (the paper's 5000/10000/10000)."""

    connect_ms: TimerMs = Field(default=5000, alias="connectMs")
    client_ms: TimerMs = Field(default=10000, alias="clientMs")
    server_ms: TimerMs = Field(default=10000, alias="serverMs")


class HaproxySource(StrictModel):
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
        if self.kind == "upstream" and self.version:
            raise Problem(
                "version is only read with kind: debian (`apt-get source haproxy=<version>`); an upstream build "
                "compiles whatever the url holds, so it would only change the image's tag",
                "remove version: the url names the release",
                "version",
            )
        return self


class Haproxy(StrictModel):
    """The load balancer: paper defaults, plus the knobs of the tuned profile."""

    balance: Literal[BALANCE_ALGORITHMS] = "roundrobin"
    frontend_port: Port = Field(default=80, alias="frontendPort")
    stats_port: Port = Field(default=8404, alias="statsPort")
    health_check: HealthCheck = Field(default=HealthCheck(), alias="healthCheck")
    timeouts: Timeouts = Timeouts()
    retries: int_range(0, 10, "connection retries") = 0
    redispatch: StrictBool = False
    retry_on: RetryOn = Field(default="", alias="retryOn")
    stop_grace_ms: int_range(0, 5000, "milliseconds") = Field(default=0, alias="stopGraceMs")
    source: HaproxySource = HaproxySource()
    tls: Tls | None = None
    """HTTPS at the VIP (components/tls.py); absent, plain HTTP only."""


class Nginx(StrictModel):
    """The application servers."""

    server_port: Port = Field(default=80, alias="serverPort")


class HostPrep(StrictModel):
    """The paper's `install` role."""

    upgrade_packages: StrictBool = Field(default=True, alias="upgradePackages")
    apt_max_age_minutes: int_range(0, 525_600, "minutes, at most a year") = Field(default=60, alias="aptMaxAgeMinutes")


class Cluster(StrictModel):
    """The whole `pihalb:cluster` object of a stack."""

    platform: Literal[tuple(PLATFORM_ARCH)] = "linux/arm64"
    base_image: ImageRef = Field(default=DEBIAN_BASE_IMAGE, alias="baseImage")
    ssh: SshDefaults = SshDefaults()
    hosts: list[Host]
    vrrp: Vrrp
    haproxy: Haproxy = Haproxy()
    nginx: Nginx = Nginx()
    host_prep: HostPrep = Field(default=HostPrep(), alias="hostPrep")

    @model_validator(mode="after")
    def _check(self) -> Cluster:
        check_cluster(self)
        return self


class Settings(StrictModel):
    """Everything the program reads from the stack."""

    cluster: Cluster
    host_keys: dict[str, str]
    acme_thumbprint: str = ""
    """With an acme certificate: the account key's thumbprint, public (every HTTP-01 answer carries it)."""

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


# ---- reading the stack ---------------------------------------------------------------------------------


def parse_cluster(raw: object) -> Cluster:
    """Parse the `pihalb:cluster` object, raising ConfigError with every problem found."""
    try:
        return Cluster.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(CLUSTER_KEY, err)) from None


def check_namespace(keys: Collection[str]) -> None:
    """Every key set under the namespace is one the program reads: a misplaced or misspelt key is
    refused, not ignored (`pihalb:haproxy`, say, belongs inside `pihalb:cluster`)."""
    known = (CLUSTER_KEY, HOST_KEYS_KEY, *SECRET_KEYS, *TLS_SECRET_KEYS)
    in_cluster = {field.alias or name for name, field in Cluster.model_fields.items()}
    problems = []
    for key in sorted(set(keys) - set(known)):
        if key in in_cluster:
            fix = (
                f"it belongs inside {CONFIG_NAMESPACE}:{CLUSTER_KEY}: move it there in Pulumi.<stack>.yaml, "
                f"then `pulumi config rm {CONFIG_NAMESPACE}:{key}`"
            )
        else:
            fix = f"remove it (`pulumi config rm {CONFIG_NAMESPACE}:{key}`) or correct it to one of {list(known)}"
        problems.append(f"{CONFIG_NAMESPACE}:{key}: unknown key, which the program would ignore. Fix: {fix}")
    if problems:
        raise ConfigError("\n".join(problems))


def running_stack_keys() -> dict[str, bool]:
    """The keys set under the namespace in the stack Pulumi runs, each with whether it holds it as a secret.

    The SDK has no public list of the keys: the language host gives them all to `set_all_config` (the
    runtime's CONFIG, as the test harness's mocks do) and to the PULUMI_CONFIG variable.
    """
    prefix = f"{CONFIG_NAMESPACE}:"
    names = {*pulumi.runtime.get_config_env(), *runtime_config.CONFIG.get()}
    return {
        name.removeprefix(prefix): pulumi.runtime.is_config_secret(name) for name in names if name.startswith(prefix)
    }


def load(config_get_object, config_get_secret_raw, stack_keys: Mapping[str, bool]) -> Settings:
    """Read and validate the whole stack config.

    `config_get_object(key)` returns a parsed object or None; `config_get_secret_raw(key)` returns the
    plain secret string or None. Both come from `pulumi.Config` in the program and from dicts in tests.
    `stack_keys` names every key set under the namespace, each with whether the stack holds it as a
    secret (`running_stack_keys` in the program). Secrets are validated here but only ever handed to
    resources wrapped as Pulumi secrets.
    """
    check_namespace(stack_keys)
    check_held_as_secrets(stack_keys)
    check_held_as_secrets(stack_keys, TLS_SECRET_KEYS)
    raw_cluster = config_get_object(CLUSTER_KEY)
    if raw_cluster is None:
        fail(CLUSTER_KEY, "required object is missing", "copy the pihalb:cluster block of Pulumi.dev.yaml and edit it")
    cluster = parse_cluster(raw_cluster)
    host_keys = parse_host_keys({h.name: str(h.address) for h in cluster.hosts}, config_get_object(HOST_KEYS_KEY))
    for key in SECRET_KEYS:
        check_secret(key, config_get_secret_raw(key))
    material = check_tls_secrets(cluster.haproxy.tls, config_get_secret_raw)
    thumbprint = material.thumbprint if material else ""
    return Settings(cluster=cluster, host_keys=host_keys, acme_thumbprint=thumbprint)
