"""Bad input is refused before any resource is registered, with the key and the fix named."""

from __future__ import annotations

import warnings

import pulumi
import pytest
from pydantic import ValidationError

from components import fields, secrets, settings
from components.settings import ConfigError
from harness import program

from .conftest import STATS_PASSWORD

pytestmark = pytest.mark.unit


def _cluster(config):
    return config["pihalb:cluster"]


def _hosts(config):
    return _cluster(config)["hosts"]


def _balancers(config):
    return [h for h in _hosts(config) if h["role"] == "balancer"]


def _set(path, value):
    def alter(config):
        node = _cluster(config)
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return alter


def _host_field(index, field, value):
    def alter(config):
        _hosts(config)[index][field] = value

    return alter


def _drop_servers(config):
    _cluster(config)["hosts"] = _balancers(config)


def _three_balancers(config):
    _hosts(config)[0].update(role="balancer", priority=99)


def _equal_priorities(config):
    for b in _balancers(config):
        b["priority"] = 100


def _big_gap(config):
    _balancers(config)[0]["priority"] = 110


def _duplicate_name(config):
    _hosts(config)[1]["name"] = _hosts(config)[0]["name"]


def _duplicate_address(config):
    _hosts(config)[1]["address"] = _hosts(config)[0]["address"]


def _vip_is_host(config):
    _cluster(config)["vrrp"]["vip"] = f"{_hosts(config)[0]['address']}/24"


def _vip_other_subnet(config):
    _cluster(config)["vrrp"]["vip"] = "192.168.77.240/24"


def _unknown_key(config):
    _cluster(config)["haproxy"]["balanse"] = "roundrobin"


def _no_ssh_key(config):
    del config["pihalb:sshPrivateKey"]


def _not_a_key(config):
    config["pihalb:sshPrivateKey"] = "hunter2"


def _missing_host_key(config):
    del config["pihalb:hostKeys"]["lb2"]


def _long_vrrp_password(config):
    config["pihalb:vrrpPassword"] = "much-too-long"


def _fast_advert_v2(config):
    _cluster(config)["vrrp"].update(advertInterval=0.5, version=2)


CASES = {
    "malformed address": (_host_field(0, "address", "10.42.0.999"), "pihalb:cluster.hosts[0].address"),
    "VIP outside the subnet": (_vip_other_subnet, "pihalb:cluster.vrrp.vip"),
    "VIP equal to a host": (_vip_is_host, "pihalb:cluster.vrrp.vip"),
    "duplicate host names": (_duplicate_name, "duplicate host names"),
    "duplicate addresses": (_duplicate_address, "duplicate host addresses"),
    "router id 0": (_set("vrrp.routerId", 0), "pihalb:cluster.vrrp.routerId"),
    "router id 256": (_set("vrrp.routerId", 256), "pihalb:cluster.vrrp.routerId"),
    "no server": (_drop_servers, "no host has role 'server'"),
    "three balancers": (_three_balancers, "3 hosts have role 'balancer'"),
    "equal priorities": (_equal_priorities, "both balancers have priority 100"),
    "priority gap >= weight": (_big_gap, "pihalb:cluster.vrrp.track.weight"),
    "unknown balance algorithm": (_set("haproxy.balance", "fastest"), "pihalb:cluster.haproxy.balance"),
    "port 0": (_set("haproxy.frontendPort", 0), "pihalb:cluster.haproxy.frontendPort"),
    "port 65536": (_set("haproxy.statsPort", 65536), "pihalb:cluster.haproxy.statsPort"),
    "missing ssh key": (_no_ssh_key, "pihalb:sshPrivateKey: secret is not set"),
    "ssh key not a key": (_not_a_key, "pihalb:sshPrivateKey: not a PEM/OpenSSH private key"),
    "missing host key": (_missing_host_key, "pihalb:hostKeys.lb2"),
    "vrrp password too long": (_long_vrrp_password, "pihalb:vrrpPassword"),
    "sub-second advert with VRRPv2": (_fast_advert_v2, "pihalb:cluster.vrrp.advertInterval"),
    "unknown key": (_unknown_key, "pihalb:cluster.haproxy.balanse: unknown key"),
    "unknown platform": (_set("platform", "linux/riscv"), "pihalb:cluster.platform"),
    "upstream source without checksum": (
        _set("haproxy.source", {"kind": "upstream", "url": "https://www.haproxy.org/x.tar.gz"}),
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
        _set("vrrp.routerId", "x")(config)
        _set("haproxy.frontendPort", "eighty")(config)

    with pytest.raises(Exception) as caught:
        run_stack("dev", two_problems)
    assert "pihalb:cluster.vrrp.routerId" in str(caught.value)
    assert "pihalb:cluster.haproxy.frontendPort" in str(caught.value)


# ---- every accepted value reaches its daemon as written; every other one is refused ----------


def _keys():
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


KEYS = _keys()


def _host_key(value):
    def alter(config):
        config["pihalb:hostKeys"]["lb2"] = value

    return alter


def _secret(key, value):
    def alter(config):
        config[f"pihalb:{key}"] = value

    return alter


def _user_host(config):
    _hosts(config)[0]["user"] = "pi\nALL ALL=(ALL) NOPASSWD: ALL"


def _ed25519_word_ecdsa_blob(config):
    config["pihalb:hostKeys"]["lb2"] = "ssh-ed25519 " + KEYS["ecdsa"].split()[1]


def _priorities(high, low, weight=2):
    def alter(config):
        first, second = _balancers(config)
        first["priority"], second["priority"] = high, low
        _cluster(config)["vrrp"]["track"]["weight"] = weight

    return alter


def _vrrp(**values):
    def alter(config):
        _cluster(config)["vrrp"].update(values)

    return alter


REFUSED = {
    # Trailing newlines: full-string matches only.
    "newline after host name": (_host_field(0, "name", "server1\n"), "pihalb:cluster.hosts[0].name"),
    "newline after interface": (_set("vrrp.interface", "eth0\n"), "pihalb:cluster.vrrp.interface"),
    "newline after base image": (_set("baseImage", "debian:bookworm-slim\n"), "pihalb:cluster.baseImage"),
    "newline after retry-on": (_set("haproxy.retryOn", "conn-failure\n"), "pihalb:cluster.haproxy.retryOn"),
    "newline after health path": (_set("haproxy.healthCheck.path", "/\n"), "pihalb:cluster.haproxy.healthCheck.path"),
    "newline after version": (_set("haproxy.source.version", "2.6.12-1\n"), "pihalb:cluster.haproxy.source.version"),
    "newline after vip": (_set("vrrp.vip", "172.30.42.240/24\n"), "pihalb:cluster.vrrp.vip"),
    "newline after host key": (_host_key(KEYS["ed25519"] + "\n"), "pihalb:hostKeys.lb2"),
    # Login users.
    "user with a sudoers line": (_user_host, "pihalb:cluster.hosts[0].user"),
    "user with URL characters": (_set("ssh.user", "pi@evil:22/x"), "pihalb:cluster.ssh.user"),
    "user with shell characters": (_set("ssh.user", "pi;rm -rf /"), "pihalb:cluster.ssh.user"),
    "empty user": (_set("ssh.user", ""), "pihalb:cluster.ssh.user"),
    "user starting with '-'": (_set("ssh.user", "-oProxyCommand"), "pihalb:cluster.ssh.user"),
    "user with newline": (_set("ssh.user", "pi\n"), "pihalb:cluster.ssh.user"),
    # Coercion.
    "bool as a port": (_set("haproxy.frontendPort", True), "pihalb:cluster.haproxy.frontendPort"),
    "bool as retries": (_set("haproxy.retries", True), "pihalb:cluster.haproxy.retries"),
    "bool as a priority": (_host_field(3, "priority", True), "pihalb:cluster.hosts[3].priority"),
    "bool as advert interval": (_set("vrrp.advertInterval", True), "pihalb:cluster.vrrp.advertInterval"),
    "string as a port": (_set("ssh.port", "22"), "pihalb:cluster.ssh.port"),
    "string as a bool": (_set("vrrp.preempt", "yes"), "pihalb:cluster.vrrp.preempt"),
    "int as a bool": (_set("haproxy.redispatch", 1), "pihalb:cluster.haproxy.redispatch"),
    "float as a port": (_set("nginx.serverPort", 80.5), "pihalb:cluster.nginx.serverPort"),
    "string as version": (_set("vrrp.version", "3"), "pihalb:cluster.vrrp.version"),
    "int as an address": (_host_field(0, "address", 2887657995), "pihalb:cluster.hosts[0].address"),
    # Addresses.
    "host at the network address": (_host_field(0, "address", "172.30.42.0"), "pihalb:cluster.hosts[0].address"),
    "host at the broadcast address": (_host_field(1, "address", "172.30.42.255"), "pihalb:cluster.hosts[1].address"),
    "VIP at the network address": (_set("vrrp.vip", "172.30.42.0/24"), "pihalb:cluster.vrrp.vip"),
    "VIP at the broadcast address": (_set("vrrp.vip", "172.30.42.255/24"), "pihalb:cluster.vrrp.vip"),
    "address with leading zeros": (_host_field(0, "address", "172.30.042.11"), "pihalb:cluster.hosts[0].address"),
    "multicast host": (_host_field(0, "address", "224.0.0.18"), "pihalb:cluster.hosts[0].address"),
    "VIP as a netmask": (_set("vrrp.vip", "172.30.42.240/255.255.255.0"), "pihalb:cluster.vrrp.vip"),
    # Ranges the daemons enforce.
    "priority 255": (_priorities(255, 254), "pihalb:cluster.hosts[3].priority"),
    "priorities capped at 254": (_priorities(254, 253), "keepalived clamps a tracked priority to 1..254"),
    "negative weight floored at 1": (_priorities(2, 1, -2), "keepalived clamps a tracked priority to 1..254"),
    "timer over 2^31-1 ms": (_set("haproxy.timeouts.clientMs", 2_147_483_648), "pihalb:cluster.haproxy.timeouts"),
    "advert below 0.01 s": (_vrrp(version=3, advertInterval=0.005), "pihalb:cluster.vrrp.advertInterval"),
    "advert not in centiseconds": (_vrrp(version=3, advertInterval=0.015), "pihalb:cluster.vrrp.advertInterval"),
    "advert over 40.95 s with v3": (_vrrp(version=3, advertInterval=41), "pihalb:cluster.vrrp.advertInterval"),
    "advert over 255 s": (_vrrp(advertInterval=256), "pihalb:cluster.vrrp.advertInterval"),
    "unknown retry-on word": (_set("haproxy.retryOn", "conn-failure 400"), "'400'"),
    "retry-on none with others": (_set("haproxy.retryOn", "none conn-failure"), "pihalb:cluster.haproxy.retryOn"),
    "retry-on double space": (_set("haproxy.retryOn", "conn-failure  503"), "pihalb:cluster.haproxy.retryOn"),
    "interface lo": (_set("vrrp.interface", "lo"), "pihalb:cluster.vrrp.interface"),
    "negative weight with events": (
        _set("vrrp.track", {"kind": "events", "weight": -2}),
        "pihalb:cluster.vrrp.track.weight",
    ),
    # Quoting: what no daemon can quote is refused, naming the characters allowed.
    "double quote in health path": (_set("haproxy.healthCheck.path", '/a"b'), "no '\"'"),
    "hash in health path": (_set("haproxy.healthCheck.path", "/a#b"), "pihalb:cluster.haproxy.healthCheck.path"),
    "space in health path": (_set("haproxy.healthCheck.path", "/a b"), "pihalb:cluster.haproxy.healthCheck.path"),
    "bad escape in health path": (_set("haproxy.healthCheck.path", "/a%zz"), "pihalb:cluster.haproxy.healthCheck"),
    "quote in vrrp password": (_secret("vrrpPassword", 'ab"c'), "pihalb:vrrpPassword"),
    "backslash in vrrp password": (_secret("vrrpPassword", "ab\\c"), "pihalb:vrrpPassword"),
    "space in stats password": (_secret("statsPassword", "stats pass word"), "pihalb:statsPassword"),
    "non-ASCII stats password": (_secret("statsPassword", "stats-pässwörd"), "pihalb:statsPassword"),
    # SSH keys, parsed for real.
    "truncated host key": (_host_key(KEYS["ed25519"][:-8]), "pihalb:hostKeys.lb2"),
    "mis-padded host key": (_host_key(KEYS["ed25519"] + "=="), "pihalb:hostKeys.lb2"),
    "host key type and blob disagree": (_ed25519_word_ecdsa_blob, "pihalb:hostKeys.lb2"),
    "RSA host key": (_host_key(KEYS["rsa"]), "OpenSSH 8.8"),
    "DSA host key": (_host_key(KEYS["dsa"]), "pihalb:hostKeys.lb2"),
    "armoured garbage private key": (
        _secret("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"),
        "pihalb:sshPrivateKey",
    ),
    "encrypted private key": (_secret("sshPrivateKey", KEYS["encrypted-private"]), "encrypted"),
    "upstream url with a space": (
        _set("haproxy.source", {"kind": "upstream", "url": "https://x.org/a b.tar.gz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_bad_value_is_refused_before_any_resource(run_stack, case):
    assert_refused_before_any_resource(run_stack, *REFUSED[case])


def assert_refused_before_any_resource(run_stack, alter, expected: str) -> None:
    """Refused with a message naming the key and the fix, and nothing declared."""
    registered = []
    with pytest.raises(ConfigError) as caught:
        run_stack("dev", alter, declared=registered)
    message = str(caught.value)
    assert expected in message, message
    assert "Fix:" in message and registered == []


ACCEPTED = {
    "ECDSA host key": _host_key(KEYS["ecdsa"]),
    "PKCS#8 ed25519 private key": _secret("sshPrivateKey", KEYS["ed25519-private-pkcs8"]),
    "private key with CRLF line ends": _secret("sshPrivateKey", KEYS["ed25519-private"].replace("\n", "\r\n")),
    "PEM ECDSA private key": _secret("sshPrivateKey", KEYS["ecdsa-private-pem"]),
    "RSA private key": _secret("sshPrivateKey", KEYS["rsa-private"]),
    "priorities 252/251 with weight 2": _priorities(252, 251),
    "negative weight": _priorities(101, 100, -2),
    "weight 0 (FAULT) with the paper's script": _priorities(101, 100, 0),
    "weight 0 (FAULT) with events, any priority gap": _set("vrrp.track", {"kind": "events", "weight": 0}),
    "largest timer": _set("haproxy.timeouts.serverMs", 2_147_483_647),
    "advert 0.01 s with v3": _vrrp(version=3, advertInterval=0.01),
    "advert 40.95 s with v3": _vrrp(version=3, advertInterval=40.95),
    "every retry-on keyword": _set("haproxy.retryOn", " ".join(k for k in fields.RETRY_ON_KEYWORDS if k != "none")),
    "user with '_' and '-'": _set("ssh.user", "_deploy-user1"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_good_value_is_accepted(run_stack, case):
    assert run_stack("dev", ACCEPTED[case]).resources


def test_config_errors_are_pulumi_run_errors_so_the_cli_prints_no_traceback(run_stack):
    """pulumi.RunError: "a clean exit rather than the usual verbose unhandled error logic"."""
    with pytest.raises(pulumi.RunError) as caught:
        run_stack("dev", _set("haproxy.frontendPort", True))
    assert str(caught.value).startswith("pihalb:cluster.haproxy.frontendPort: ")
    assert "Fix:" in str(caught.value)


def test_secret_errors_never_repeat_the_secret(run_stack):
    with pytest.raises(ConfigError) as caught:
        run_stack("dev", _secret("statsPassword", "short#1"))
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


# ---- values each valid alone, refused together (or with the hosts), naming the keys ---------


def _both(*alters):
    def alter(config):
        for each in alters:
            each(config)

    return alter


def _lan(vip, prefix):
    """The VIP, and the five hosts at .11 .12 .13 .21 .22 of `prefix` (a.b.c)."""

    def alter(config):
        _set("vrrp.vip", vip)(config)
        for host, last in zip(_hosts(config), (11, 12, 13, 21, 22), strict=True):
            host["address"] = f"{prefix}.{last}"

    return alter


TOGETHER_REFUSED = {
    # 1. Ports: one listener per port on each host, sshd included.
    "frontend port on the SSH port": (
        _set("haproxy.frontendPort", 22),
        "pihalb:cluster.haproxy.frontendPort: lb1's HAProxy frontend port 22 is also its SSH port "
        "(pihalb:cluster.ssh.port)",
    ),
    "stats port on the SSH port": (_set("haproxy.statsPort", 22), "pihalb:cluster.haproxy.statsPort"),
    "nginx port on the SSH port": (_set("nginx.serverPort", 22), "pihalb:cluster.nginx.serverPort: server1's"),
    "nginx port on one server's own SSH port": (
        _both(_host_field(2, "port", 8080), _set("nginx.serverPort", 8080)),
        "server3's nginx port 8080 is also its SSH port (pihalb:cluster.hosts[2].port)",
    ),
    "stats port on the BACKUP's own SSH port": (
        _host_field(4, "port", 8404),
        "pihalb:cluster.haproxy.statsPort: lb2's HAProxy stats port 8404 is also its SSH port "
        "(pihalb:cluster.hosts[4].port)",
    ),
    "stats port on the frontend port": (_set("haproxy.statsPort", 80), "pihalb:cluster.haproxy.statsPort"),
    # 3. The handover lowers the MASTER to 1 (0 would be FAULT): a BACKUP at 1 would tie it.
    "BACKUP at 1 with weight 0": (_priorities(2, 1, 0), "pihalb:cluster.hosts[4].priority: during a handover"),
    "BACKUP at 1 with weight 0 and events": (
        _both(_priorities(254, 1, 0), _set("vrrp.track.kind", "events")),
        "give the BACKUP a priority of at least 2",
    ),
    # 4. Nothing set is silently unused.
    "version with an upstream source": (
        _set(
            "haproxy.source",
            {"kind": "upstream", "url": "https://x.org/haproxy-2.6.12.tar.gz", "sha256": "0" * 64, "version": "2.6.12"},
        ),
        "pihalb:cluster.haproxy.source.version: version is only read with kind: debian",
    ),
    "pihalb:haproxy next to pihalb:cluster": (
        _secret("haproxy", {"frontendPort": 8080}),
        "pihalb:haproxy: unknown key, which the program would ignore. Fix: it belongs inside pihalb:cluster",
    ),
    "misspelt secret key": (_secret("statsPasword", STATS_PASSWORD), "pihalb:statsPasword: unknown key"),
    "host keys spelt in lowercase": (_secret("hostkeys", {}), "pihalb:hostkeys: unknown key"),
    # 5. What the build and the site can use.
    "upstream .tar.xz": (
        _set("haproxy.source", {"kind": "upstream", "url": "https://x.org/haproxy-2.6.12.tar.xz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url: '/haproxy-2.6.12.tar.xz' does not end in .tar.gz or .tgz",
    ),
    "upstream port 70000": (
        _set("haproxy.source", {"kind": "upstream", "url": "https://x.org:70000/h.tar.gz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url: port 70000 is outside 1..65535",
    ),
    "upstream port 0": (
        _set("haproxy.source", {"kind": "upstream", "url": "https://x.org:0/h.tar.gz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url: port 0",
    ),
    "health check of a page no server has": (
        _set("haproxy.healthCheck.path", "/health"),
        "pihalb:cluster.haproxy.healthCheck.path: the servers answer '/health' with 404",
    ),
    "health check expecting what no server answers": (
        _set("haproxy.healthCheck.expectStatus", 204),
        "pihalb:cluster.haproxy.healthCheck.expectStatus: the servers answer '/' with 200",
    ),
    # 6. Secrets that must load as written.
    "VRRP password with a keepalived parameter": (_secret("vrrpPassword", "${_PWD}"), "pihalb:vrrpPassword"),
    "ECDSA key on a curve OpenSSH does not load": (
        _secret("sshPrivateKey", KEYS["secp256k1-private"]),
        "pihalb:sshPrivateKey: OpenSSH does not load ECDSA keys on secp256k1",
    ),
    "private key after a comment line": (
        _secret("sshPrivateKey", "my key:\n" + KEYS["ed25519-private"]),
        "pihalb:sshPrivateKey: there is more than the key",
    ),
    # 2. Networks: no on-link route wider than a LAN, no address outside unicast.
    "VIP prefix /0": (_set("vrrp.vip", "172.30.42.240/0"), "pihalb:cluster.vrrp.vip: prefix /0 is wider"),
    "VIP prefix wider than 172.16/12": (_set("vrrp.vip", "172.30.42.240/11"), "(/12 at most)"),
    "VIP prefix wider than a /16 in 192.168/16": (_lan("192.168.7.240/15", "192.168.7"), "(/16 at most)"),
    "VIP prefix /8 outside 10/8": (_lan("100.64.7.240/8", "100.64.7"), "pihalb:cluster.vrrp.vip"),
    "host in 0.0.0.0/8": (_host_field(0, "address", "0.30.42.11"), "pihalb:cluster.hosts[0].address"),
    "host at 255.255.255.255": (_host_field(0, "address", "255.255.255.255"), "pihalb:cluster.hosts[0].address"),
    "VIP in 240.0.0.0/4": (_lan("240.1.2.240/24", "240.1.2"), "pihalb:cluster.vrrp.vip: 240.1.2.240 is not"),
    "VIP on loopback": (_lan("127.1.2.240/24", "127.1.2"), "pihalb:cluster.vrrp.vip: 127.1.2.240 is not"),
}


@pytest.mark.parametrize("case", sorted(TOGETHER_REFUSED))
def test_values_that_do_not_work_together_are_refused_before_any_resource(run_stack, case):
    assert_refused_before_any_resource(run_stack, *TOGETHER_REFUSED[case])


TOGETHER_ACCEPTED = {
    "SSH moved off 22, frontend on 22": _both(_set("ssh.port", 2222), _set("haproxy.frontendPort", 22)),
    "the same port on different hosts": _both(_host_field(0, "port", 8080), _set("haproxy.frontendPort", 8080)),
    "a flat 10/8 LAN": _lan("10.42.0.240/8", "10.42.0"),
    "a link-local LAN": _lan("169.254.7.240/16", "169.254.7"),
    "a shared-address LAN (100.64/10)": _lan("100.64.7.240/16", "100.64.7"),
}


@pytest.mark.parametrize("key", settings.SECRET_KEYS)
def test_a_secret_set_as_a_plain_value_is_refused_with_the_command_to_set_it(stack_config, key):
    """`pulumi config set` without --secret: the value would be in plain text in the stack file and state."""
    registered = []
    held_as_secrets = [name for name in program.SECRET_CONFIG_KEYS if name != f"pihalb:{key}"]
    with pytest.raises(ConfigError) as caught:
        program.run("dev", stack_config("dev"), secret_keys=held_as_secrets, declared=registered)
    assert str(caught.value).startswith(f"pihalb:{key}: set as a plain value")
    assert f"Fix: run `{fields.SET_SECRET[key]}`" in str(caught.value)
    assert fields.SET_SECRET[key].startswith(f"pulumi config set --secret pihalb:{key} ")
    assert registered == []


def test_the_running_stack_keys_are_read_as_the_language_host_passes_them(monkeypatch):
    """A real `pulumi up`: the Python language host puts every config key in PULUMI_CONFIG and the secret
    ones in PULUMI_CONFIG_SECRET_KEYS, then hands both to set_all_config (pulumi-language-python-exec)."""
    import json

    import pulumi.runtime

    config = {"pihalb:cluster": "{}", "pihalb:haproxy": "{}", "pihalb:vrrpPassword": "x", "docker:host": "y"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["pihalb:vrrpPassword"]))
    expected = {"cluster": False, "haproxy": False, "vrrpPassword": True}
    try:
        pulumi.runtime.set_all_config({}, pulumi.runtime.get_config_secret_keys_env())
        assert settings.running_stack_keys() == expected
        pulumi.runtime.set_all_config(pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env())
        assert settings.running_stack_keys() == expected
    finally:
        pulumi.runtime.set_all_config({}, [])


def test_the_lab_sets_its_secrets_as_secrets_for_the_real_cli(monkeypatch):
    """`lab config-set` (scripts/deploy-dev with a Pulumi CLI): every secret with --secret, the rest plain."""
    from lab import stack as lab_stack

    layer = {
        "pihalb:hostKeys": {"lb1": "ssh-ed25519 AAAA"},
        "pihalb:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "pihalb:vrrpPassword": "vr5ecret",
        "pihalb:statsPassword": STATS_PASSWORD,
    }
    commands = []
    monkeypatch.setattr(lab_stack, "lab_layer", lambda lab: layer)
    monkeypatch.setattr(lab_stack.subprocess, "run", lambda args, **kwargs: commands.append(args))
    lab_stack.pulumi_config_set(object())
    secret = {args[-1] for args in commands if "--secret" in args}
    # Every secret the layer holds (the TLS secrets are only set with haproxy.tls, which dev does not set).
    assert secret == set(program.SECRET_CONFIG_KEYS) & set(layer) == set(layer) - {"pihalb:hostKeys"}
    assert all("--secret" in args or "pihalb:hostKeys" in args[-2] for args in commands)


@pytest.mark.parametrize("case", sorted(TOGETHER_ACCEPTED))
def test_values_that_work_together_are_accepted(run_stack, case):
    assert run_stack("dev", TOGETHER_ACCEPTED[case]).resources
