"""Property-based tests of the hosts' fields: names and addresses, every port a host listens on, the login
user in sudoers and ssh://, apt's max age, the image build args, the upstream source and the VIP; each
accepted value through its real consumer (see test_properties.py).
"""

from __future__ import annotations

import subprocess
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.artifact_tools import run, script_of, sudoers_line, tool
from tests.config_edits import set_key
from tests.properties_support import (
    FAST,
    around,
    haproxy_cfg,
    keepalived_conf,
    outcome,
    text_like,
)

pytestmark = pytest.mark.artifact


@FAST
@given(name=text_like("server1", "lb-9", "a"))
def test_host_name(run_or_refuse, tmp_path_factory, name):
    def alter(config):
        config["pihalb:cluster"]["hosts"][0]["name"] = name
        keys = config["pihalb:hostKeys"]
        keys[name] = keys.pop("server1")

    program = outcome(run_or_refuse, alter, "cluster.hosts")
    if program:
        assert f"    server {name} 172.30.42.11:80 check\n" in haproxy_cfg(program)
        keepalived_conf(program, tmp_path_factory.mktemp("name"))


@FAST
@given(address=text_like("172.30.42.11", "172.30.42.0", "172.30.42.255", "172.30.42.240"))
def test_host_address(run_or_refuse, address):
    program = outcome(run_or_refuse, lambda c: c["pihalb:cluster"]["hosts"][0].update(address=address), "cluster")
    if program:
        assert f" {address}:80 check\n" in haproxy_cfg(program)


# ---- ports on one host --------------------------------------------------------------------------------

PORT = st.one_of(st.sampled_from([22, 80, 2222, 8080, 8404]), st.integers(1, 65535))


@FAST
@given(ssh=PORT, lb1_ssh=st.none() | PORT, server1_ssh=st.none() | PORT, frontend=PORT, stats=PORT, nginx=PORT)
def test_every_port_a_host_listens_on_is_its_own(run_or_refuse, ssh, lb1_ssh, server1_ssh, frontend, stats, nginx):
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
        run_or_refuse,
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
def test_login_user_reaches_sudoers_and_the_docker_url_unchanged(run_or_refuse, tmp_path_factory, user):
    program = outcome(run_or_refuse, set_key("ssh.user", user), "cluster.ssh.user")
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
def test_apt_max_age(run_or_refuse, minutes):
    program = outcome(run_or_refuse, set_key("hostPrep.aptMaxAgeMinutes", minutes), "cluster.hostPrep")
    if program:
        assert f"APT_MAX_AGE_MINUTES={minutes}\n" in script_of(program.named("lb1-install"))
        done = subprocess.run([tool("bash"), "-n"], input=script_of(program.named("lb1-install")), text=True)
        assert done.returncode == 0


BUILD_TEXT = {
    "baseImage": ("BASE_IMAGE", text_like("debian:bookworm-slim", "registry.local:5000/debian:12", "debian")),
    "haproxy.source.version": ("HAPROXY_VERSION", text_like("2.6.12-1+deb12u4", "1:2.6~rc1", "")),
}


@pytest.mark.parametrize("field", sorted(BUILD_TEXT))
def test_image_build_args(run_or_refuse, field):
    arg, strategy = BUILD_TEXT[field]

    @FAST
    @given(value=strategy)
    def check(value):
        program = outcome(run_or_refuse, set_key(field, value), f"cluster.{field}")
        if program:
            assert program.named("lb1-haproxy-image").inputs["build"]["args"][arg] == value

    check()


@FAST
@given(url=text_like("https://www.haproxy.org/download/2.6/src/haproxy-2.6.12.tar.gz"), sha=text_like("a" * 64))
def test_upstream_source(run_or_refuse, url, sha):
    program = outcome(
        run_or_refuse, set_key("haproxy.source", {"kind": "upstream", "url": url, "sha256": sha}), "cluster.haproxy"
    )
    if program:
        args = program.named("lb1-haproxy-image").inputs["build"]["args"]
        assert (args["HAPROXY_URL"], args["HAPROXY_SHA256"]) == (url, sha)
        check = f'HAPROXY_URL={url!r}; curl -fsSL "$HAPROXY_URL" -o x; echo "{sha}  x"'
        run([tool("bash"), "-n", "-c", check])


@FAST
@given(vip=text_like("172.30.42.240/24", "172.30.42.0/24", "172.30.42.255/24", "172.30.42.240/31"))
def test_vip(run_or_refuse, tmp_path_factory, vip):
    program = outcome(run_or_refuse, set_key("vrrp.vip", vip), "cluster.vrrp.vip", "cluster.hosts")
    if program:
        conf = keepalived_conf(program, tmp_path_factory.mktemp("vip"))
        assert f"        {vip} dev eth0\n" in conf
