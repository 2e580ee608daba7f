"""Property-based tests: for every free-text and numeric field, generated values are run
through the program under mocks. A refused value names its key and the fix, with nothing declared; an
accepted value goes through the real consumer (haproxy -c, keepalived --config-test, visudo, bash -n),
and where the daemon can echo it (a stats login, keepalived's dump) it must come back unchanged.
"""

from __future__ import annotations

import math
import re
import subprocess
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components import render
from components.fields import RETRY_ON_KEYWORDS
from components.settings import BALANCE_ALGORITHMS, CONFIG_NAMESPACE, ConfigError, load
from harness import program as harness

from .conftest import canned_invoke
from .test_artifacts import embedded_file, keepalived_dump, run, script_of, stats_login, sudoers_line, tool

pytestmark = pytest.mark.artifact

FAST = settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SLOW = settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text that tends to break configs: quotes, comments, blocks, escapes, whitespace, newlines, non-ASCII.
SPECIAL_CHAR = st.sampled_from(list("\"'#!{}\\$;: \t\n\r%@/?&*=,.-_~\x00é\u2028"))
SPECIAL = st.one_of(SPECIAL_CHAR, st.sampled_from(["${X}", "${_HASH}", "\\x41", "$(id)"]))
TEXT = st.text(st.one_of(st.characters(codec="utf-8", exclude_categories=["Cs"]), SPECIAL_CHAR), max_size=24)


def text_like(*valid: str):
    """Arbitrary text, known-good values, and known-good values with something special around them."""
    good = st.sampled_from(valid)
    return st.one_of(TEXT, good, st.tuples(good, SPECIAL, good).map("".join), st.tuples(good, SPECIAL).map("".join))


NUMBER = st.one_of(
    st.integers(-5, 70000),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.sampled_from("0123456789.-"), max_size=4),
    st.none(),
)


def around(*edges: int):
    """Integers at and next to the daemons' limits, plus anything else a user might type."""
    return st.one_of(st.sampled_from([e + d for e in edges for d in (-1, 0, 1)]), NUMBER)


def cluster_path(path: str, value):
    def alter(config):
        node = config["pihalb:cluster"]
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return alter


@pytest.fixture
def run_stack(stack_config):
    """Validate first, as the program does before declaring anything (fast, so a suite of mostly refused
    values stays quick); run the whole program under mocks for each accepted value. That a refusal
    happens before any resource is declared is pinned per class in test_settings.py."""

    def run_or_refuse(stack: str, alter):
        config = stack_config(stack)
        alter(config)
        get = lambda key: config.get(f"{CONFIG_NAMESPACE}:{key}")  # noqa: E731
        prefix = f"{CONFIG_NAMESPACE}:"
        keys = {k.removeprefix(prefix): k in harness.SECRET_CONFIG_KEYS for k in config if k.startswith(prefix)}
        load(get, get, keys)
        return harness.run(stack, config, invoke=canned_invoke)

    return run_or_refuse


def outcome(run_stack, alter, *keys: str):
    """The program's run, or None when the value was refused as the issue requires."""
    try:
        return run_stack("dev", alter)
    except ConfigError as err:
        message = str(err)
        assert any(f"pihalb:{key}" in message for key in keys), message
        assert "Fix:" in message
        return None


def haproxy_cfg(program, name: str = "lb1") -> str:
    cfg = embedded_file(program.named(f"{name}-haproxy-config"))
    run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=cfg)
    return cfg


def keepalived_conf(program, tmp_path, name: str = "lb1") -> str:
    conf = embedded_file(program.named(f"vrrp-{name}-keepalived"))
    path = tmp_path / f"{name}.conf"
    path.write_text(conf)
    run([tool("keepalived"), "--config-test", "-f", str(path)])
    return conf


def scripts_parse(declared, tmp_path) -> None:
    for command in declared.of_type("command:remote:Command"):
        for step in ("create", "delete"):
            if step in command.inputs and command.inputs[step]:
                run([tool("bash"), "-n"], input=script_of(command, step))


# ---- haproxy.cfg ------------------------------------------------------------------------------------------


@FAST
@given(path=text_like("/", "/index.html", "/?probe=1", "/?it's", "/index.html?%41", "/health"))
def test_health_check_path(run_stack, path):
    program = outcome(run_stack, cluster_path("haproxy.healthCheck.path", path), "cluster.haproxy.healthCheck.path")
    if program:
        assert f"option httpchk GET {render.haproxy_word(path)}\n" in haproxy_cfg(program)


@FAST
@given(retry_on=st.one_of(text_like(*RETRY_ON_KEYWORDS), st.lists(st.sampled_from(RETRY_ON_KEYWORDS)).map(" ".join)))
def test_retry_on(run_stack, retry_on):
    def alter(config):
        config["pihalb:cluster"]["haproxy"].update(retries=3, retryOn=retry_on)

    program = outcome(run_stack, alter, "cluster.haproxy.retryOn")
    if program and retry_on:
        assert f"    retry-on {retry_on}\n" in haproxy_cfg(program)


@FAST
@given(balance=text_like(*BALANCE_ALGORITHMS))
def test_balance(run_stack, balance):
    program = outcome(run_stack, cluster_path("haproxy.balance", balance), "cluster.haproxy.balance")
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
def test_haproxy_numbers(run_stack, drawn):
    wild, values = drawn

    def alter(config):
        for field, value in values.items():
            cluster_path(field, value)(config)

    # Two ports drawn alike, or one on SSH's 22, are refused naming one of them.
    ports = ("cluster.haproxy.frontendPort", "cluster.haproxy.statsPort", "cluster.nginx.serverPort")
    program = outcome(run_stack, alter, f"cluster.{wild}", *ports)
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
def test_stats_password_reaches_haproxy_unchanged(run_stack, tmp_path_factory, password):
    program = outcome(run_stack, lambda c: c.update({"pihalb:statsPassword": password}), "statsPassword")
    if program:
        cfg = haproxy_cfg(program)
        statuses = stats_login(cfg, [password, password[:-1]], tmp_path_factory.mktemp("stats"))
        assert statuses == [200, 401]


# ---- keepalived.conf --------------------------------------------------------------------------------------


@SLOW
@given(password=text_like("vr5ecret", "a#b!", "}{'$"))
def test_vrrp_password_reaches_keepalived_unchanged(run_stack, tmp_path_factory, password):
    program = outcome(run_stack, lambda c: c.update({"pihalb:vrrpPassword": password}), "vrrpPassword")
    if program:
        tmp = tmp_path_factory.mktemp("vrrp")
        conf = keepalived_conf(program, tmp)
        assert keepalived_dump(conf, "eth0", "172.30.42.21", tmp)["Password"] == password


@SLOW
@given(interface=text_like("eth0", "wlan0", "br-lan", "enp1s0.10"))
def test_interface_reaches_keepalived_and_scripts_unchanged(run_stack, tmp_path_factory, interface):
    program = outcome(run_stack, cluster_path("vrrp.interface", interface), "cluster.vrrp.interface")
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
def test_advert_interval_reaches_keepalived_unchanged(run_stack, tmp_path_factory, version, advert):
    def alter(config):
        config["pihalb:cluster"]["vrrp"].update(version=version, advertInterval=advert)

    program = outcome(run_stack, alter, "cluster.vrrp.advertInterval", "cluster.vrrp.version")
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
def test_keepalived_numbers(run_stack, tmp_path_factory, drawn):
    wild, values = drawn

    def alter(config):
        for field, value in values.items():
            cluster_path(field, value)(config)

    program = outcome(run_stack, alter, f"cluster.{wild}", "cluster.vrrp.track.weight", "cluster.hosts")
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
def test_priorities_stay_distinct_after_keepalived_clamps_them(run_stack, tmp_path_factory, values):
    high, low, weight = values

    def alter(config):
        first, second = [h for h in config["pihalb:cluster"]["hosts"] if h["role"] == "balancer"]
        first["priority"], second["priority"] = high, low
        config["pihalb:cluster"]["vrrp"]["track"]["weight"] = weight

    program = outcome(run_stack, alter, "cluster.hosts[3].priority", "cluster.hosts[4].priority", "cluster.vrrp")
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


@FAST
@given(name=text_like("server1", "lb-9", "a"))
def test_host_name(run_stack, tmp_path_factory, name):
    def alter(config):
        config["pihalb:cluster"]["hosts"][0]["name"] = name
        keys = config["pihalb:hostKeys"]
        keys[name] = keys.pop("server1")

    program = outcome(run_stack, alter, "cluster.hosts")
    if program:
        assert f"    server {name} 172.30.42.11:80 check\n" in haproxy_cfg(program)
        keepalived_conf(program, tmp_path_factory.mktemp("name"))


@FAST
@given(address=text_like("172.30.42.11", "172.30.42.0", "172.30.42.255", "172.30.42.240"))
def test_host_address(run_stack, address):
    program = outcome(run_stack, lambda c: c["pihalb:cluster"]["hosts"][0].update(address=address), "cluster")
    if program:
        assert f" {address}:80 check\n" in haproxy_cfg(program)


# ---- ports on one host --------------------------------------------------------------------------------

PORT = st.one_of(st.sampled_from([22, 80, 2222, 8080, 8404]), st.integers(1, 65535))


@FAST
@given(ssh=PORT, lb1_ssh=st.none() | PORT, server1_ssh=st.none() | PORT, frontend=PORT, stats=PORT, nginx=PORT)
def test_every_port_a_host_listens_on_is_its_own(run_stack, ssh, lb1_ssh, server1_ssh, frontend, stats, nginx):
    """sshd's port (the login the program uses) and the ports Docker publishes, as declared: on each host
    all different, each as written."""

    def alter(config):
        cluster = config["pihalb:cluster"]
        cluster["ssh"]["port"] = ssh
        for index, port in ((0, server1_ssh), (3, lb1_ssh)):
            if port is not None:
                cluster["hosts"][index]["port"] = port
        cluster["haproxy"].update(frontendPort=frontend, statsPort=stats)
        cluster["nginx"] = {"serverPort": nginx}

    program = outcome(
        run_stack,
        alter,
        "cluster.haproxy.frontendPort",
        "cluster.haproxy.statsPort",
        "cluster.nginx.serverPort",
    )
    if program:
        for host, own, kind, published in (
            ("server1", server1_ssh, "nginx", [nginx]),
            ("server2", None, "nginx", [nginx]),
            ("lb1", lb1_ssh, "haproxy", [frontend, stats]),
            ("lb2", None, "haproxy", [frontend, stats]),
        ):
            login = program.named(f"{host}-install").inputs["connection"]["port"]
            ports = [p["external"] for p in program.named(f"{host}-{kind}-container").inputs["ports"]]
            assert [login, *ports] == [own or ssh, *published]
            assert len({login, *ports}) == 1 + len(ports), (host, login, ports)


# ---- sudoers, ssh:// and scripts ------------------------------------------------------------------------


@FAST
@given(user=text_like("pi", "ubuntu", "_svc", "deploy-1"))
def test_login_user_reaches_sudoers_and_the_docker_url_unchanged(run_stack, tmp_path_factory, user):
    program = outcome(run_stack, cluster_path("ssh.user", user), "cluster.ssh.user")
    if program:
        line = sudoers_line(program, "lb1")
        assert line == f"{user} ALL=(ALL:ALL) NOPASSWD:ALL\n"
        path = tmp_path_factory.mktemp("sudo") / "pihalb"
        path.write_text(line)
        run([tool("visudo"), "-c", "-f", str(path)])
        url = urllib.parse.urlsplit(program.named("lb1-docker").inputs["host"])
        assert (url.scheme, url.username, url.hostname, url.port) == ("ssh", user, "172.30.42.21", 22)
        run([tool("bash"), "-n"], input=script_of(program.named("lb1-install")))


@FAST
@given(minutes=around(0, 60, 525_600))
def test_apt_max_age(run_stack, minutes):
    program = outcome(run_stack, cluster_path("hostPrep.aptMaxAgeMinutes", minutes), "cluster.hostPrep")
    if program:
        assert f"APT_MAX_AGE_MINUTES={minutes}\n" in script_of(program.named("lb1-install"))
        done = subprocess.run([tool("bash"), "-n"], input=script_of(program.named("lb1-install")), text=True)
        assert done.returncode == 0


BUILD_TEXT = {
    "baseImage": ("BASE_IMAGE", text_like("debian:bookworm-slim", "registry.local:5000/debian:12", "debian")),
    "haproxy.source.version": ("HAPROXY_VERSION", text_like("2.6.12-1+deb12u4", "1:2.6~rc1", "")),
}


@pytest.mark.parametrize("field", sorted(BUILD_TEXT))
def test_image_build_args(run_stack, field):
    arg, strategy = BUILD_TEXT[field]

    @FAST
    @given(value=strategy)
    def check(value):
        program = outcome(run_stack, cluster_path(field, value), f"cluster.{field}")
        if program:
            assert program.named("lb1-haproxy-image").inputs["build"]["args"][arg] == value

    check()


@FAST
@given(url=text_like("https://www.haproxy.org/download/2.6/src/haproxy-2.6.12.tar.gz"), sha=text_like("a" * 64))
def test_upstream_source(run_stack, url, sha):
    program = outcome(
        run_stack, cluster_path("haproxy.source", {"kind": "upstream", "url": url, "sha256": sha}), "cluster.haproxy"
    )
    if program:
        args = program.named("lb1-haproxy-image").inputs["build"]["args"]
        assert (args["HAPROXY_URL"], args["HAPROXY_SHA256"]) == (url, sha)
        check = f'HAPROXY_URL={url!r}; curl -fsSL "$HAPROXY_URL" -o x; echo "{sha}  x"'
        run([tool("bash"), "-n", "-c", check])


@FAST
@given(vip=text_like("172.30.42.240/24", "172.30.42.0/24", "172.30.42.255/24", "172.30.42.240/31"))
def test_vip(run_stack, tmp_path_factory, vip):
    program = outcome(run_stack, cluster_path("vrrp.vip", vip), "cluster.vrrp.vip", "cluster.hosts")
    if program:
        conf = keepalived_conf(program, tmp_path_factory.mktemp("vip"))
        assert f"        {vip} dev eth0\n" in conf
