"""Values each valid alone, refused together (or with the hosts), naming the keys; the ones that work
together accepted; secrets set as plain values refused; config keys read as Pulumi passes them."""

import pytest

from components import fields, settings
from components.settings import ConfigError
from harness import program
from tests.config_edits import (
    KEYS,
    assert_refused_before_any_resource,
    both,
    hosts_of,
    set_host_field,
    set_key,
    set_priorities,
    set_secret,
)

from .conftest import STATS_PASSWORD

pytestmark = pytest.mark.unit


# ---- values each valid alone, refused together (or with the hosts), naming the keys ---------


def _lan(vip, prefix):
    """The VIP, and the five hosts at .11 .12 .13 .21 .22 of `prefix` (a.b.c)."""

    def alter(config):
        set_key("vrrp.vip", vip)(config)
        for host, last in zip(hosts_of(config), (11, 12, 13, 21, 22), strict=True):
            host["address"] = f"{prefix}.{last}"

    return alter


TOGETHER_REFUSED = {
    # 1. Ports: one listener per port on each host, sshd included.
    "frontend port on the SSH port": (
        set_key("haproxy.frontendPort", 22),
        "pihalb:cluster.haproxy.frontendPort: lb1's HAProxy frontend port 22 is also its SSH port "
        "(pihalb:cluster.ssh.port)",
    ),
    "stats port on the SSH port": (set_key("haproxy.statsPort", 22), "pihalb:cluster.haproxy.statsPort"),
    "nginx port on the SSH port": (set_key("nginx.serverPort", 22), "pihalb:cluster.nginx.serverPort: server1's"),
    "nginx port on one server's own SSH port": (
        both(set_host_field(2, "port", 8080), set_key("nginx.serverPort", 8080)),
        "server3's nginx port 8080 is also its SSH port (pihalb:cluster.hosts[2].port)",
    ),
    "stats port on the BACKUP's own SSH port": (
        set_host_field(4, "port", 8404),
        "pihalb:cluster.haproxy.statsPort: lb2's HAProxy stats port 8404 is also its SSH port "
        "(pihalb:cluster.hosts[4].port)",
    ),
    "stats port on the frontend port": (set_key("haproxy.statsPort", 80), "pihalb:cluster.haproxy.statsPort"),
    # 3. The handover lowers the MASTER to 1 (0 would be FAULT): a BACKUP at 1 would tie it.
    "BACKUP at 1 with weight 0": (set_priorities(2, 1, 0), "pihalb:cluster.hosts[4].priority: during a handover"),
    "BACKUP at 1 with weight 0 and events": (
        both(set_priorities(254, 1, 0), set_key("vrrp.track.kind", "events")),
        "give the BACKUP a priority of at least 2",
    ),
    # 4. Nothing set is silently unused.
    "version with an upstream source": (
        set_key(
            "haproxy.source",
            {"kind": "upstream", "url": "https://x.org/haproxy-2.6.12.tar.gz", "sha256": "0" * 64, "version": "2.6.12"},
        ),
        "pihalb:cluster.haproxy.source.version: version is only read with kind: debian",
    ),
    "pihalb:haproxy next to pihalb:cluster": (
        set_secret("haproxy", {"frontendPort": 8080}),
        "pihalb:haproxy: unknown key, which the program would ignore. Fix: it belongs inside pihalb:cluster",
    ),
    "misspelt secret key": (set_secret("statsPasword", STATS_PASSWORD), "pihalb:statsPasword: unknown key"),
    "host keys spelt in lowercase": (set_secret("hostkeys", {}), "pihalb:hostkeys: unknown key"),
    # 5. What the build and the site can use.
    "upstream .tar.xz": (
        set_key(
            "haproxy.source", {"kind": "upstream", "url": "https://x.org/haproxy-2.6.12.tar.xz", "sha256": "0" * 64}
        ),
        "pihalb:cluster.haproxy.source.url: '/haproxy-2.6.12.tar.xz' does not end in .tar.gz or .tgz",
    ),
    "upstream port 70000": (
        set_key("haproxy.source", {"kind": "upstream", "url": "https://x.org:70000/h.tar.gz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url: port 70000 is outside 1..65535",
    ),
    "upstream port 0": (
        set_key("haproxy.source", {"kind": "upstream", "url": "https://x.org:0/h.tar.gz", "sha256": "0" * 64}),
        "pihalb:cluster.haproxy.source.url: port 0",
    ),
    "health check of a page no server has": (
        set_key("haproxy.healthCheck.path", "/health"),
        "pihalb:cluster.haproxy.healthCheck.path: the servers answer '/health' with 404",
    ),
    "health check expecting what no server answers": (
        set_key("haproxy.healthCheck.expectStatus", 204),
        "pihalb:cluster.haproxy.healthCheck.expectStatus: the servers answer '/' with 200",
    ),
    # 6. Secrets that must load as written.
    "VRRP password with a keepalived parameter": (set_secret("vrrpPassword", "${_PWD}"), "pihalb:vrrpPassword"),
    "ECDSA key on a curve OpenSSH does not load": (
        set_secret("sshPrivateKey", KEYS["secp256k1-private"]),
        "pihalb:sshPrivateKey: OpenSSH does not load ECDSA keys on secp256k1",
    ),
    "private key after a comment line": (
        set_secret("sshPrivateKey", "my key:\n" + KEYS["ed25519-private"]),
        "pihalb:sshPrivateKey: there is more than the key",
    ),
    # 2. Networks: no on-link route wider than a LAN, no address outside unicast.
    "VIP prefix /0": (set_key("vrrp.vip", "172.30.42.240/0"), "pihalb:cluster.vrrp.vip: prefix /0 is wider"),
    "VIP prefix wider than 172.16/12": (set_key("vrrp.vip", "172.30.42.240/11"), "(/12 at most)"),
    "VIP prefix wider than a /16 in 192.168/16": (_lan("192.168.7.240/15", "192.168.7"), "(/16 at most)"),
    "VIP prefix /8 outside 10/8": (_lan("100.64.7.240/8", "100.64.7"), "pihalb:cluster.vrrp.vip"),
    "host in 0.0.0.0/8": (set_host_field(0, "address", "0.30.42.11"), "pihalb:cluster.hosts[0].address"),
    "host at 255.255.255.255": (set_host_field(0, "address", "255.255.255.255"), "pihalb:cluster.hosts[0].address"),
    "VIP in 240.0.0.0/4": (_lan("240.1.2.240/24", "240.1.2"), "pihalb:cluster.vrrp.vip: 240.1.2.240 is not"),
    "VIP on loopback": (_lan("127.1.2.240/24", "127.1.2"), "pihalb:cluster.vrrp.vip: 127.1.2.240 is not"),
}


@pytest.mark.parametrize("case", sorted(TOGETHER_REFUSED))
def test_values_that_do_not_work_together_are_refused_before_any_resource(run_stack, case):
    assert_refused_before_any_resource(run_stack, *TOGETHER_REFUSED[case])


TOGETHER_ACCEPTED = {
    "SSH moved off 22, frontend on 22": both(set_key("ssh.port", 2222), set_key("haproxy.frontendPort", 22)),
    "the same port on different hosts": both(set_host_field(0, "port", 8080), set_key("haproxy.frontendPort", 8080)),
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
