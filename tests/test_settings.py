"""Bad input is refused before any resource is registered, with the key and the fix named."""

from __future__ import annotations

import pulumi
import pytest
from pydantic import ValidationError

from components import fields, secrets, settings
from components.settings import ConfigError
from harness import program
from tests.config_edits import (
    KEYS,
    assert_refused_before_any_resource,
    balancers_of,
    cluster_of,
    hosts_of,
    set_host_field,
    set_host_key,
    set_key,
    set_priorities,
    set_secret,
    set_vrrp,
)

from .conftest import STATS_PASSWORD

pytestmark = pytest.mark.unit


def _drop_servers(config):
    cluster_of(config)["hosts"] = balancers_of(config)


def _three_balancers(config):
    hosts_of(config)[0].update(role="balancer", priority=99)


def _equal_priorities(config):
    for b in balancers_of(config):
        b["priority"] = 100


def _big_gap(config):
    balancers_of(config)[0]["priority"] = 110


def _duplicate_name(config):
    hosts_of(config)[1]["name"] = hosts_of(config)[0]["name"]


def _duplicate_address(config):
    hosts_of(config)[1]["address"] = hosts_of(config)[0]["address"]


def _vip_is_host(config):
    cluster_of(config)["vrrp"]["vip"] = f"{hosts_of(config)[0]['address']}/24"


def _vip_other_subnet(config):
    cluster_of(config)["vrrp"]["vip"] = "192.168.77.240/24"


def _unknown_key(config):
    cluster_of(config)["haproxy"]["balanse"] = "roundrobin"


def _no_ssh_key(config):
    del config["pihalb:sshPrivateKey"]


def _not_a_key(config):
    config["pihalb:sshPrivateKey"] = "hunter2"


def _missing_host_key(config):
    del config["pihalb:hostKeys"]["lb2"]


def _long_vrrp_password(config):
    config["pihalb:vrrpPassword"] = "much-too-long"


def _fast_advert_v2(config):
    cluster_of(config)["vrrp"].update(advertInterval=0.5, version=2)


CASES = {
    "malformed address": (set_host_field(0, "address", "10.42.0.999"), "pihalb:cluster.hosts[0].address"),
    "VIP outside the subnet": (_vip_other_subnet, "pihalb:cluster.vrrp.vip"),
    "VIP equal to a host": (_vip_is_host, "pihalb:cluster.vrrp.vip"),
    "duplicate host names": (_duplicate_name, "duplicate host names"),
    "duplicate addresses": (_duplicate_address, "duplicate host addresses"),
    "router id 0": (set_key("vrrp.routerId", 0), "pihalb:cluster.vrrp.routerId"),
    "router id 256": (set_key("vrrp.routerId", 256), "pihalb:cluster.vrrp.routerId"),
    "no server": (_drop_servers, "no host has role 'server'"),
    "three balancers": (_three_balancers, "3 hosts have role 'balancer'"),
    "equal priorities": (_equal_priorities, "both balancers have priority 100"),
    "priority gap >= weight": (_big_gap, "pihalb:cluster.vrrp.track.weight"),
    "unknown balance algorithm": (set_key("haproxy.balance", "fastest"), "pihalb:cluster.haproxy.balance"),
    "port 0": (set_key("haproxy.frontendPort", 0), "pihalb:cluster.haproxy.frontendPort"),
    "port 65536": (set_key("haproxy.statsPort", 65536), "pihalb:cluster.haproxy.statsPort"),
    "missing ssh key": (_no_ssh_key, "pihalb:sshPrivateKey: secret is not set"),
    "ssh key not a key": (_not_a_key, "pihalb:sshPrivateKey: not a PEM/OpenSSH private key"),
    "missing host key": (_missing_host_key, "pihalb:hostKeys.lb2"),
    "vrrp password too long": (_long_vrrp_password, "pihalb:vrrpPassword"),
    "sub-second advert with VRRPv2": (_fast_advert_v2, "pihalb:cluster.vrrp.advertInterval"),
    "unknown key": (_unknown_key, "pihalb:cluster.haproxy.balanse: unknown key"),
    "unknown platform": (set_key("platform", "linux/riscv"), "pihalb:cluster.platform"),
    "upstream source without checksum": (
        set_key("haproxy.source", {"kind": "upstream", "url": "https://www.haproxy.org/x.tar.gz"}),
        "pihalb:cluster.haproxy.source",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_any_resource(run_stack, case):
    alter, expected = CASES[case]
    registered = []
    with pytest.raises(Exception) as caught:
        run_stack("dev", alter, declared=registered)
    message = str(caught.value)
    assert expected in message
    assert "Fix:" in message
    assert registered == []
    assert isinstance(_root_cause(caught.value), ConfigError)


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ or error.__context__:
        if isinstance(error, ConfigError):
            return error
        error = error.__cause__ or error.__context__
    return error


def test_every_problem_of_a_model_is_reported_at_once(run_stack):
    def two_problems(config):
        set_key("vrrp.routerId", "x")(config)
        set_key("haproxy.frontendPort", "eighty")(config)

    with pytest.raises(Exception) as caught:
        run_stack("dev", two_problems)
    assert "pihalb:cluster.vrrp.routerId" in str(caught.value)
    assert "pihalb:cluster.haproxy.frontendPort" in str(caught.value)


# ---- every accepted value reaches its daemon as written; every other one is refused ----------


def _user_host(config):
    hosts_of(config)[0]["user"] = "pi\nALL ALL=(ALL) NOPASSWD: ALL"


def _ed25519_word_ecdsa_blob(config):
    config["pihalb:hostKeys"]["lb2"] = "ssh-ed25519 " + KEYS["ecdsa"].split()[1]


REFUSED = {
    # Trailing newlines: full-string matches only.
    "newline after host name": (set_host_field(0, "name", "server1\n"), "pihalb:cluster.hosts[0].name"),
    "newline after interface": (set_key("vrrp.interface", "eth0\n"), "pihalb:cluster.vrrp.interface"),
    "newline after base image": (set_key("baseImage", "debian:bookworm-slim\n"), "pihalb:cluster.baseImage"),
    "newline after retry-on": (set_key("haproxy.retryOn", "conn-failure\n"), "pihalb:cluster.haproxy.retryOn"),
    "newline after health path": (
        set_key("haproxy.healthCheck.path", "/\n"),
        "pihalb:cluster.haproxy.healthCheck.path",
    ),
    "newline after version": (set_key("haproxy.source.version", "2.6.12-1\n"), "pihalb:cluster.haproxy.source.version"),
    "newline after vip": (set_key("vrrp.vip", "172.30.42.240/24\n"), "pihalb:cluster.vrrp.vip"),
    "newline after host key": (set_host_key(KEYS["ed25519"] + "\n"), "pihalb:hostKeys.lb2"),
    # Login users.
    "user with a sudoers line": (_user_host, "pihalb:cluster.hosts[0].user"),
    "user with URL characters": (set_key("ssh.user", "pi@evil:22/x"), "pihalb:cluster.ssh.user"),
    "user with shell characters": (set_key("ssh.user", "pi;rm -rf /"), "pihalb:cluster.ssh.user"),
    "empty user": (set_key("ssh.user", ""), "pihalb:cluster.ssh.user"),
    "user starting with '-'": (set_key("ssh.user", "-oProxyCommand"), "pihalb:cluster.ssh.user"),
    "user with newline": (set_key("ssh.user", "pi\n"), "pihalb:cluster.ssh.user"),
    # Coercion.
    "bool as a port": (set_key("haproxy.frontendPort", True), "pihalb:cluster.haproxy.frontendPort"),
    "bool as retries": (set_key("haproxy.retries", True), "pihalb:cluster.haproxy.retries"),
    "bool as a priority": (set_host_field(3, "priority", True), "pihalb:cluster.hosts[3].priority"),
    "bool as advert interval": (set_key("vrrp.advertInterval", True), "pihalb:cluster.vrrp.advertInterval"),
    "string as a port": (set_key("ssh.port", "22"), "pihalb:cluster.ssh.port"),
    "string as a bool": (set_key("vrrp.preempt", "yes"), "pihalb:cluster.vrrp.preempt"),
    "int as a bool": (set_key("haproxy.redispatch", 1), "pihalb:cluster.haproxy.redispatch"),
    "float as a port": (set_key("nginx.serverPort", 80.5), "pihalb:cluster.nginx.serverPort"),
    "string as version": (set_key("vrrp.version", "3"), "pihalb:cluster.vrrp.version"),
    "int as an address": (set_host_field(0, "address", 2887657995), "pihalb:cluster.hosts[0].address"),
    # Addresses.
    "host at the network address": (set_host_field(0, "address", "172.30.42.0"), "pihalb:cluster.hosts[0].address"),
    "host at the broadcast address": (set_host_field(1, "address", "172.30.42.255"), "pihalb:cluster.hosts[1].address"),
    "VIP at the network address": (set_key("vrrp.vip", "172.30.42.0/24"), "pihalb:cluster.vrrp.vip"),
    "VIP at the broadcast address": (set_key("vrrp.vip", "172.30.42.255/24"), "pihalb:cluster.vrrp.vip"),
    "address with leading zeros": (set_host_field(0, "address", "172.30.042.11"), "pihalb:cluster.hosts[0].address"),
    "multicast host": (set_host_field(0, "address", "224.0.0.18"), "pihalb:cluster.hosts[0].address"),
    "VIP as a netmask": (set_key("vrrp.vip", "172.30.42.240/255.255.255.0"), "pihalb:cluster.vrrp.vip"),
    # Ranges the daemons enforce.
    "priority 255": (set_priorities(255, 254), "pihalb:cluster.hosts[3].priority"),
    "priorities capped at 254": (set_priorities(254, 253), "keepalived clamps a tracked priority to 1..254"),
    "negative weight floored at 1": (set_priorities(2, 1, -2), "keepalived clamps a tracked priority to 1..254"),
    "timer over 2^31-1 ms": (set_key("haproxy.timeouts.clientMs", 2_147_483_648), "pihalb:cluster.haproxy.timeouts"),
    "advert below 0.01 s": (set_vrrp(version=3, advertInterval=0.005), "pihalb:cluster.vrrp.advertInterval"),
    "advert not in centiseconds": (set_vrrp(version=3, advertInterval=0.015), "pihalb:cluster.vrrp.advertInterval"),
    "advert over 40.95 s with v3": (set_vrrp(version=3, advertInterval=41), "pihalb:cluster.vrrp.advertInterval"),
    "advert over 255 s": (set_vrrp(advertInterval=256), "pihalb:cluster.vrrp.advertInterval"),
    "unknown retry-on word": (set_key("haproxy.retryOn", "conn-failure 400"), "'400'"),
    "retry-on none with others": (set_key("haproxy.retryOn", "none conn-failure"), "pihalb:cluster.haproxy.retryOn"),
    "retry-on double space": (set_key("haproxy.retryOn", "conn-failure  503"), "pihalb:cluster.haproxy.retryOn"),
    "interface lo": (set_key("vrrp.interface", "lo"), "pihalb:cluster.vrrp.interface"),
    "negative weight with events": (
        set_key("vrrp.track", {"kind": "events", "weight": -2}),
        "pihalb:cluster.vrrp.track.weight",
    ),
    # Quoting: what no daemon can quote is refused, naming the characters allowed.
    "double quote in health path": (set_key("haproxy.healthCheck.path", '/a"b'), "no '\"'"),
    "hash in health path": (set_key("haproxy.healthCheck.path", "/a#b"), "pihalb:cluster.haproxy.healthCheck.path"),
    "space in health path": (set_key("haproxy.healthCheck.path", "/a b"), "pihalb:cluster.haproxy.healthCheck.path"),
    "bad escape in health path": (set_key("haproxy.healthCheck.path", "/a%zz"), "pihalb:cluster.haproxy.healthCheck"),
    "quote in vrrp password": (set_secret("vrrpPassword", 'ab"c'), "pihalb:vrrpPassword"),
    "backslash in vrrp password": (set_secret("vrrpPassword", "ab\\c"), "pihalb:vrrpPassword"),
    "space in stats password": (set_secret("statsPassword", "stats pass word"), "pihalb:statsPassword"),
    "non-ASCII stats password": (set_secret("statsPassword", "stats-pässwörd"), "pihalb:statsPassword"),
    # SSH keys, parsed for real.
    "truncated host key": (set_host_key(KEYS["ed25519"][:-8]), "pihalb:hostKeys.lb2"),
    "mis-padded host key": (set_host_key(KEYS["ed25519"] + "=="), "pihalb:hostKeys.lb2"),
    "host key type and blob disagree": (_ed25519_word_ecdsa_blob, "pihalb:hostKeys.lb2"),
    "RSA host key": (set_host_key(KEYS["rsa"]), "OpenSSH 8.8"),
    "DSA host key": (set_host_key(KEYS["dsa"]), "pihalb:hostKeys.lb2"),
    "armoured garbage private key": (
        set_secret("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
        "pihalb:sshPrivateKey",
    ),
    "encrypted private key": (set_secret("sshPrivateKey", KEYS["encrypted-private"]), "encrypted"),
    "upstream url with a space": (
        set_key("haproxy.source", {"kind": "upstream", "url": "https://x.org/a b.tar.gz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_value_is_refused_before_any_resource(run_stack, case):
    assert_refused_before_any_resource(run_stack, *REFUSED[case])


ACCEPTED = {
    "ECDSA host key": set_host_key(KEYS["ecdsa"]),
    "PKCS#8 ed25519 private key": set_secret("sshPrivateKey", KEYS["ed25519-private-pkcs8"]),
    "private key with CRLF line ends": set_secret("sshPrivateKey", KEYS["ed25519-private"].replace("\n", "\r\n")),
    "PEM ECDSA private key": set_secret("sshPrivateKey", KEYS["ecdsa-private-pem"]),
    "RSA private key": set_secret("sshPrivateKey", KEYS["rsa-private"]),
    "priorities 252/251 with weight 2": set_priorities(252, 251),
    "negative weight": set_priorities(101, 100, -2),
    "weight 0 (FAULT) with the paper's script": set_priorities(101, 100, 0),
    "weight 0 (FAULT) with events, any priority gap": set_key("vrrp.track", {"kind": "events", "weight": 0}),
    "largest timer": set_key("haproxy.timeouts.serverMs", 2_147_483_647),
    "advert 0.01 s with v3": set_vrrp(version=3, advertInterval=0.01),
    "advert 40.95 s with v3": set_vrrp(version=3, advertInterval=40.95),
    "every retry-on keyword": set_key("haproxy.retryOn", " ".join(k for k in fields.RETRY_ON_KEYWORDS if k != "none")),
    "user with '_' and '-'": set_key("ssh.user", "_deploy-user1"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_good_value_is_accepted(run_stack, case):
    assert run_stack("dev", ACCEPTED[case]).resources


def test_config_errors_are_pulumi_run_errors_so_the_cli_prints_no_traceback(run_stack):
    """pulumi.RunError: "a clean exit rather than the usual verbose unhandled error logic"."""
    with pytest.raises(pulumi.RunError) as caught:
        run_stack("dev", set_key("haproxy.frontendPort", True))
    assert str(caught.value).startswith("pihalb:cluster.haproxy.frontendPort: ")
    assert "Fix:" in str(caught.value)


def test_secret_errors_never_repeat_the_secret(run_stack):
    with pytest.raises(ConfigError) as caught:
        run_stack("dev", set_secret("statsPassword", "short#1"))
    assert "short#1" not in str(caught.value) and "pihalb:statsPassword" in str(caught.value)


@pytest.mark.parametrize("key", ["sshPrivateKey", "vrrpPassword", "statsPassword"])
def test_secret_rules_come_from_one_table(key, ssh_private_key):
    """Each secret the program reads is checked by the rule `Secrets` declares for it, and by no other: the
    same values are accepted and refused by the table's model and by `check_secret`, and the program marks
    the key secret and says how to set it."""
    good = {"sshPrivateKey": ssh_private_key, "vrrpPassword": "vr5ecret", "statsPassword": STATS_PASSWORD}
    samples = [good[key], "x", "12345678", "a${b}", "has space", "é" * 9, "-----BEGIN OPENSSH PRIVATE KEY-----"]
    for value in samples:
        try:
            secrets.Secrets.model_validate(good | {key: value})
            by_table = True
        except ValidationError:
            by_table = False
        try:
            settings.check_secret(key, value)
            by_check = True
        except ConfigError:
            by_check = False
        assert by_table == by_check, (key, value)
    assert f"{settings.CONFIG_NAMESPACE}:{key}" in program.SECRET_CONFIG_KEYS
    assert fields.SET_SECRET[key].startswith(f"pulumi config set --secret {settings.CONFIG_NAMESPACE}:{key} ")
