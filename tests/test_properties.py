"""Property-based tests: for every free-text and numeric field, generated values are run
through the program under mocks. A refused value names its key and the fix, with nothing declared; an
accepted value goes through the real consumer (haproxy -c, keepalived --config-test, visudo, bash -n),
and where the daemon can echo it (a stats login, keepalived's dump) it must come back unchanged.
Here haproxy.cfg and keepalived.conf; test_properties_hosts.py has hosts, ports, sudoers and scripts.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import render
from components.fields import RETRY_ON_KEYWORDS
from components.settings import BALANCE_ALGORITHMS
from tests.artifact_tools import embedded_file, keepalived_dump, stats_login
from tests.config_edits import set_key
from tests.properties_support import (
    FAST,
    NUMBER,
    SLOW,
    around,
    haproxy_cfg,
    keepalived_conf,
    outcome,
    scripts_parse,
    text_like,
)

pytestmark = pytest.mark.artifact


# ---- haproxy.cfg ------------------------------------------------------------------------------------------


@FAST
@given(path=text_like("/", "/index.html", "/?probe=1", "/?it's", "/index.html?%41", "/health"))
def test_health_check_path(run_or_refuse, path):
    program = outcome(run_or_refuse, set_key("haproxy.healthCheck.path", path), "cluster.haproxy.healthCheck.path")
    if program:
        assert f"option httpchk GET {render.haproxy_word(path)}\n" in haproxy_cfg(program)


@FAST
@given(retry_on=st.one_of(text_like(*RETRY_ON_KEYWORDS), st.lists(st.sampled_from(RETRY_ON_KEYWORDS)).map(" ".join)))
def test_retry_on(run_or_refuse, retry_on):
    def alter(config):
        config["pihalb:cluster"]["haproxy"].update(retries=3, retryOn=retry_on)

    program = outcome(run_or_refuse, alter, "cluster.haproxy.retryOn")
    if program and retry_on:
        assert f"    retry-on {retry_on}\n" in haproxy_cfg(program)


@FAST
@given(balance=text_like(*BALANCE_ALGORITHMS))
def test_balance(run_or_refuse, balance):
    program = outcome(run_or_refuse, set_key("haproxy.balance", balance), "cluster.haproxy.balance")
    if program:
        assert f"    balance {balance}\n" in haproxy_cfg(program)


# Each field: its valid range (drawn in every example) and where it is rendered, or None.
HAPROXY_NUMBERS = {
    "haproxy.timeouts.connectMs": (1, 2_147_483_647, "timeout connect {}\n"),
    "haproxy.timeouts.clientMs": (1, 2_147_483_647, "timeout client {}\n"),
    "haproxy.timeouts.serverMs": (1, 2_147_483_647, "timeout server {}\n"),
    "haproxy.healthCheck.interMs": (100, 300_000, "default-server inter {} "),
    "haproxy.healthCheck.expectStatus": (200, 200, "http-check expect status {}\n"),  # what the page answers
    "haproxy.healthCheck.fall": (1, 100, " fall {} "),
    "haproxy.healthCheck.rise": (1, 100, " rise {}\n"),
    "haproxy.retries": (0, 10, "    retries {}\n"),
    "haproxy.stopGraceMs": (0, 5000, None),
    "haproxy.frontendPort": (1, 65535, None),
    "haproxy.statsPort": (1, 65535, None),
    "nginx.serverPort": (1, 65535, ":{} check\n"),
}


@st.composite
def numbers_with_one_wild(draw, fields: dict):
    """Every field at a random valid value, and one of them anything a user might type."""
    values = {field: draw(st.integers(low, high)) for field, (low, high, _) in fields.items()}
    wild = draw(st.sampled_from(sorted(fields)))
    low, high, _ = fields[wild]
    values[wild] = draw(st.one_of(around(low, high), st.integers(low - 2, high + 2)))
    return wild, values


@settings(FAST, max_examples=50)
@given(drawn=numbers_with_one_wild(HAPROXY_NUMBERS))
def test_haproxy_numbers(run_or_refuse, drawn):
    wild, values = drawn

    def alter(config):
        for field, value in values.items():
            set_key(field, value)(config)

    # Two ports drawn alike, or one on SSH's 22, are refused naming one of them.
    ports = ("cluster.haproxy.frontendPort", "cluster.haproxy.statsPort", "cluster.nginx.serverPort")
    program = outcome(run_or_refuse, alter, f"cluster.{wild}", *ports)
    if program:
        assert all(type(v) is int for v in values.values())
        cfg = haproxy_cfg(program)
        for field, (_, _, rendered) in HAPROXY_NUMBERS.items():
            if rendered:
                assert rendered.format(values[field]) in cfg, field
        if values["haproxy.stopGraceMs"]:
            assert f"    grace {values['haproxy.stopGraceMs']}ms\n" in cfg


@SLOW
@given(password=text_like("stats-Pa55word", "abc#defgh", "p\"w'd$x\\y:z"))
def test_stats_password_reaches_haproxy_unchanged(run_or_refuse, tmp_path_factory, password):
    program = outcome(run_or_refuse, lambda c: c.update({"pihalb:statsPassword": password}), "statsPassword")
    if program:
        cfg = haproxy_cfg(program)
        statuses = stats_login(cfg, [password, password[:-1]], tmp_path_factory.mktemp("stats"))
        assert statuses == [200, 401]


# ---- keepalived.conf --------------------------------------------------------------------------------------


@SLOW
@given(password=text_like("vr5ecret", "a#b!", "}{'$"))
def test_vrrp_password_reaches_keepalived_unchanged(run_or_refuse, tmp_path_factory, password):
    program = outcome(run_or_refuse, lambda c: c.update({"pihalb:vrrpPassword": password}), "vrrpPassword")
    if program:
        tmp = tmp_path_factory.mktemp("vrrp")
        conf = keepalived_conf(program, tmp)
        assert keepalived_dump(conf, "eth0", "172.30.42.21", tmp)["Password"] == password


@SLOW
@given(interface=text_like("eth0", "wlan0", "br-lan", "enp1s0.10"))
def test_interface_reaches_keepalived_and_scripts_unchanged(run_or_refuse, tmp_path_factory, interface):
    program = outcome(run_or_refuse, set_key("vrrp.interface", interface), "cluster.vrrp.interface")
    if program:
        tmp = tmp_path_factory.mktemp("iface")
        # keepalived --config-test wants the interface to exist: the dump below runs it in a namespace
        # that has it, and fails on any config error keepalived reports.
        conf = embedded_file(program.named("vrrp-lb1-keepalived"))
        scripts_parse(program, tmp)
        assert keepalived_dump(conf, interface, "172.30.42.21", tmp)["Interface"] == interface


@SLOW
@given(
    version=st.one_of(st.sampled_from([2, 3]), st.sampled_from([2, 3]), NUMBER),
    advert=st.one_of(
        st.sampled_from([0.01, 0.2, 0.25, 1, 2, 40.95, 41, 255, 256]),
        st.integers(1, 255),
        st.integers(1, 4095).map(lambda cs: cs / 100),
        NUMBER,
    ),
)
def test_advert_interval_reaches_keepalived_unchanged(run_or_refuse, tmp_path_factory, version, advert):
    def alter(config):
        config["pihalb:cluster"]["vrrp"].update(version=version, advertInterval=advert)

    program = outcome(run_or_refuse, alter, "cluster.vrrp.advertInterval", "cluster.vrrp.version")
    if program:
        tmp = tmp_path_factory.mktemp("advert")
        dumped = keepalived_dump(keepalived_conf(program, tmp), "eth0", "172.30.42.21", tmp)["Advert interval"]
        number, unit = dumped.split()
        seconds = int(number) / 1000 if unit == "milli-sec" else int(number)
        assert math.isclose(seconds, advert) and isinstance(advert, int | float) and not isinstance(advert, bool)


KEEPALIVED_NUMBERS = {
    "vrrp.routerId": (1, 255, "virtual_router_id {}\n"),
    "vrrp.track.interval": (1, 3600, "interval {}\n"),
    "vrrp.track.weight": (2, 153, "weight {}\n"),
    "vrrp.track.fall": (1, 100, "fall {}\n"),
    "vrrp.track.rise": (1, 100, "rise {}\n"),
    "vrrp.track.timeout": (1, 60, "timeout {}\n"),
}


@settings(FAST, max_examples=50)
@given(drawn=numbers_with_one_wild(KEEPALIVED_NUMBERS))
def test_keepalived_numbers(run_or_refuse, tmp_path_factory, drawn):
    wild, values = drawn

    def alter(config):
        for field, value in values.items():
            set_key(field, value)(config)

    program = outcome(run_or_refuse, alter, f"cluster.{wild}", "cluster.vrrp.track.weight", "cluster.hosts")
    if program:
        assert all(type(v) is int for v in values.values())
        conf = keepalived_conf(program, tmp_path_factory.mktemp("num"))
        for field, (_, _, rendered) in KEEPALIVED_NUMBERS.items():
            assert rendered.format(values[field]) in conf, field


@st.composite
def near_valid_priorities(draw):
    """Mostly priority pairs whose gap is below the weight, at any height, so the clamping is exercised."""
    weight = draw(st.one_of(st.integers(-254, 254), st.sampled_from([-253, -2, 0, 2, 253])))
    high = draw(st.one_of(st.integers(0, 255), st.sampled_from([1, 2, 101, 252, 253, 254])))
    return high, high - draw(st.integers(0, abs(weight) + 1)), weight


@FAST
@given(values=near_valid_priorities())
def test_priorities_stay_distinct_after_keepalived_clamps_them(run_or_refuse, tmp_path_factory, values):
    high, low, weight = values

    def alter(config):
        first, second = [h for h in config["pihalb:cluster"]["hosts"] if h["role"] == "balancer"]
        first["priority"], second["priority"] = high, low
        config["pihalb:cluster"]["vrrp"]["track"]["weight"] = weight

    program = outcome(run_or_refuse, alter, "cluster.hosts[3].priority", "cluster.hosts[4].priority", "cluster.vrrp")
    if program:
        tmp = tmp_path_factory.mktemp("prio")
        keepalived_conf(program, tmp, "lb1")
        keepalived_conf(program, tmp, "lb2")

        def clamp(p):
            return min(max(p, 1), 254)

        top, bottom = sorted((high, low), reverse=True)
        healthy = (clamp(top + max(weight, 0)), clamp(bottom + max(weight, 0)))
        # Weight 0: a dead HAProxy puts its balancer in FAULT, which advertises priority 0.
        master_dead = (0 if weight == 0 else clamp(top + min(weight, 0)), clamp(bottom + max(weight, 0)))
        assert healthy[0] > healthy[1] and master_dead[0] < master_dead[1]
        # The handover, with the weight the MASTER's keepalived.conf really gives its handover file.
        conf = embedded_file(program.named("vrrp-lb1-keepalived"))
        handover = int(re.search(r"track_file pihalb_handover \{\n.*\n    weight -(\d+)\n", conf).group(1))
        assert clamp(top + max(weight, 0) - handover) < healthy[1]
