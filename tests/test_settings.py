"""Bad input is refused before any resource is registered, with the key and the fix named."""

from __future__ import annotations

import pytest

from components.settings import ConfigError

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
