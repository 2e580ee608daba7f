"""Issue 21: values that are each valid must work together, and with the hosts, in the real daemons.

Each class of the issue has its refusals in test_settings.py; here, what is accepted is run through the
real consumer (haproxy, keepalived, nginx, OpenSSH's ssh-keygen, curl) and must behave as written.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from components import names, render
from components.settings import ConfigError, widest_lan_prefix

from .test_artifacts import embedded_file, free_port, keepalived_dump, script_of, tool

pytestmark = pytest.mark.artifact


def _haproxy(config: dict) -> dict:
    return config["pihalb:cluster"]["haproxy"]


@contextlib.contextmanager
def haproxy_on_loopback(cfg: str, tmp_path: Path, server_port: int) -> Iterator[tuple[int, int]]:
    """The rendered haproxy.cfg run by the real haproxy on loopback: its frontend and runtime API on free
    ports, every server at 127.0.0.1:`server_port`. Yields (frontend port, runtime port)."""
    frontend, runtime = free_port(), free_port()
    cfg = (
        cfg.replace(f"bind *:{names.HAPROXY_FRONTEND_CONTAINER_PORT}", f"bind 127.0.0.1:{frontend}")
        .replace(f"bind *:{names.HAPROXY_STATS_CONTAINER_PORT}", f"bind 127.0.0.1:{free_port()}")
        .replace(f"127.0.0.1:{names.HAPROXY_RUNTIME_PORT}", f"127.0.0.1:{runtime}")
    )
    cfg = re.sub(r"^(    server \S+) \S+:\d+", rf"\1 127.0.0.1:{server_port}", cfg, flags=re.M)
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    proc = subprocess.Popen([tool("haproxy"), "-db", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", runtime), timeout=1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.05)
        yield frontend, runtime
    finally:
        proc.kill()
        proc.wait(5)


def runtime_api(port: int, command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def backend_stat(port: int, field: str, server: str = "BACKEND") -> str:
    """A column of `show stat` for the `servers` backend (or one of its servers)."""
    header, *rows = runtime_api(port, "show stat").splitlines()
    columns = header.removeprefix("# ").split(",")
    for row in rows:
        values = row.split(",")
        if values[:2] == [names.HAPROXY_BACKEND, server]:
            return values[columns.index(field)]
    raise AssertionError(f"no {server} in show stat")


def accepted(run_stack, alter, *keys: str):
    """The program's run, or None when the settings refused the values, naming one of `keys` and the fix."""
    try:
        return run_stack("dev", alter)
    except ConfigError as err:
        assert any(f"pihalb:{key}" in str(err) for key in keys), str(err)
        assert "Fix:" in str(err)
        return None


class Netns:
    """A throwaway network namespace (unshare, a process holding it), for keepalived on veth pairs."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen([tool("unshare"), "-n", "sleep", "600"])
        self.keepalived: list[subprocess.Popen] = []
        # Until unshare has switched, the holder is still in this machine's namespace: nothing may run there.
        wait_until(self._unshared, 10, "unshare to enter a new network namespace")

    def _unshared(self) -> bool:
        with contextlib.suppress(FileNotFoundError):
            return os.readlink(f"/proc/{self.holder.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        return False

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [tool("nsenter"), "-t", str(self.holder.pid), "-n", *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    def start_keepalived(self, conf: str, tmp_path: Path) -> None:
        """keepalived on `conf`, with the files it tracks moved into `tmp_path`; the track script succeeds
        (HAProxy runs) and the notify hook is left out (neither exists on this machine)."""
        n = len(self.keepalived)
        conf = (
            conf.replace(names.VRRP_HANDOVER_FILE, str(tmp_path / "handover"))
            .replace(names.HAPROXY_TRACK_FILE, str(tmp_path / "haproxy-alive"))
            .replace('script "/usr/bin/killall -0 haproxy"', 'script "/bin/true"')
        )
        conf = re.sub(r"^ *notify .*\n", "", conf, flags=re.M)
        (tmp_path / "haproxy-alive").write_text("1\n")
        path = tmp_path / f"keepalived{n}.conf"
        path.write_text(conf)
        args = ["-n", "-l", "-D", "-f", str(path), "--vrrp", "-p", str(tmp_path / f"k{n}.pid")]
        args += ["-r", str(tmp_path / f"v{n}.pid")]
        nsenter = [tool("nsenter"), "-t", str(self.holder.pid), "-n", tool("keepalived"), *args]
        self.keepalived.append(subprocess.Popen(nsenter, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def holds(self, vip: str) -> bool:
        return f" {vip}/" in self.run("ip", "-4", "-o", "addr", "show")

    def close(self) -> None:
        for proc in [*self.keepalived, self.holder]:
            proc.terminate()
        for proc in [*self.keepalived, self.holder]:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def balancer_namespaces(*addresses: str, interface: str = "eth0") -> Iterator[list[Netns]]:
    """One namespace per balancer address, joined by a veth pair named `interface` on both ends (a single
    balancer gets the pair's other end in its own namespace)."""
    spaces = [Netns() for _ in addresses]
    try:
        first = spaces[0]
        peer = ["name", interface, "netns", str(spaces[1].holder.pid)] if len(spaces) > 1 else ["name", "peer0"]
        first.run("ip", "link", "add", interface, "type", "veth", "peer", *peer)
        if len(spaces) == 1:
            first.run("ip", "link", "set", "peer0", "up")
        for space, address in zip(spaces, addresses, strict=True):
            space.run("ip", "addr", "add", address, "dev", interface)
            space.run("ip", "link", "set", interface, "up")
        yield spaces
    finally:
        for space in spaces:
            space.close()


def wait_until(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        time.sleep(0.1)


def get_status(port: int, timeout: float = 10) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


# ---- class 3: values whose meaning depends on another value -------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retries_reach_haproxy_as_written(run_stack, tmp_path, retries):
    """`retries: 0` rendered no line, so HAProxy used its default of 3. A request to a server that refuses
    connections is retried exactly `retries` times (HAProxy's own counter, `wretr`)."""
    program = run_stack("dev", lambda config: _haproxy(config).update(retries=retries))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    assert f"    retries {retries}\n" in cfg
    closed = free_port()  # nothing listens there: every connection attempt is refused
    with haproxy_on_loopback(cfg, tmp_path, closed) as (frontend, runtime):
        assert get_status(frontend) == 503
        assert backend_stat(runtime, "wretr") == str(retries)


@pytest.mark.parametrize(
    "kind, weight, master, backup",
    [
        ("script", 2, 101, 100),
        ("script", -2, 4, 3),
        ("script", 0, 3, 2),
        ("script", 0, 2, 1),
        ("events", 3, 102, 100),
        ("events", 0, 254, 253),
        ("events", 0, 2, 1),
    ],
)
def test_the_handover_moves_the_vip_for_every_accepted_priority_layout(
    run_stack, tmp_path, kind, weight, master, backup
):
    """Two real keepalived, one per namespace, the MASTER on the higher address so that a tie would keep
    the VIP there; the handover file written on the MASTER, as the leave step does: the BACKUP takes the
    VIP within the leave step's own wait. A layout where the lowered MASTER ties the BACKUP is refused."""

    def alter(config):
        cluster = config["pihalb:cluster"]
        lb1, lb2 = cluster["hosts"][3:]
        lb1.update(priority=master, address="172.30.42.22")
        lb2.update(priority=backup, address="172.30.42.21")
        cluster["vrrp"].update(version=3, advertInterval=0.1, track={"kind": kind, "weight": weight})

    program = accepted(run_stack, alter, "cluster.hosts[4].priority")
    if program is None:
        return
    vip = "172.30.42.240"
    leave_script = script_of(program.named("lb1-haproxy-leave"))
    (tmp_path / "lb1").mkdir()
    (tmp_path / "lb2").mkdir()
    with balancer_namespaces("172.30.42.22/24", "172.30.42.21/24") as (lb1, lb2):
        lb1.start_keepalived(embedded_file(program.named("vrrp-lb1-keepalived")), tmp_path / "lb1")
        lb2.start_keepalived(embedded_file(program.named("vrrp-lb2-keepalived")), tmp_path / "lb2")
        wait_until(lambda: lb1.holds(vip) and not lb2.holds(vip), 20, "the VIP on the MASTER alone")
        (tmp_path / "lb1" / "handover").write_text("1\n")
        leave_wait = int(re.search(r"^HANDOVER_TIMEOUT_S=(\d+)$", leave_script, re.M).group(1))
        wait_until(lambda: lb2.holds(vip) and not lb1.holds(vip), leave_wait, "the handover")


def _shims(directory: Path) -> dict[str, str]:
    """`sudo` and `docker` for the rolling scripts on this machine: `docker exec` runs its command here,
    where HAProxy's runtime API is, and `docker inspect` says the container runs."""
    directory.mkdir()
    (directory / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    (directory / "docker").write_text('#!/bin/sh\ncase $1 in inspect) echo true ;; exec) shift 2; exec "$@" ;; esac\n')
    for shim in ("sudo", "docker"):
        (directory / shim).chmod(0o755)
    return {"PATH": f"{directory}:/usr/bin:/bin"}


@pytest.mark.parametrize("inter_ms", [500, 2000, 4000])
def test_the_rolling_steps_bring_a_server_back_within_their_wait(run_stack, tmp_path, inter_ms):
    """The drain and ready steps, as rendered, against the real HAProxy: once drained (MAINT), a server is
    UP again at HAProxy's next check, up to one interval after READY, well within the ready step's wait."""
    program = run_stack("dev", lambda config: _haproxy(config)["healthCheck"].update(interMs=inter_ms))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    drain = script_of(program.named("server1-nginx-drain-on-lb1"))
    ready = script_of(program.named("server1-nginx-ready-on-lb1"))
    wait_s = int(re.search(r"^READY_TIMEOUT_S=(\d+)$", ready, re.M).group(1))
    assert wait_s >= 3 * inter_ms / 1000
    (tmp_path / "site").mkdir()
    port = free_port()
    site = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path / "site")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = _shims(tmp_path / "bin")
    try:
        with haproxy_on_loopback(cfg, tmp_path, port) as (_, runtime):
            wait_until(lambda: backend_stat(runtime, "status", "server1") == "UP", 10, "server1 UP")
            for script in (drain, ready):
                script = re.sub(r"^RUNTIME_PORT=\d+$", f"RUNTIME_PORT={runtime}", script, flags=re.M)
                started = time.monotonic()
                done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
                assert done.returncode == 0, done.stdout + done.stderr
            took = time.monotonic() - started
            assert backend_stat(runtime, "status", "server1") == "UP"
    finally:
        site.kill()
        site.wait(5)
    assert took <= inter_ms / 1000 + 1.5 <= wait_s


def test_the_slowest_check_interval_fits_in_one_step(run_stack):
    """The ready step's wait at the largest interval accepted stays below the step timeout."""
    from components.remote import STEP_TIMEOUT_S

    program = run_stack("dev", lambda config: _haproxy(config)["healthCheck"].update(interMs=300_000))
    ready = script_of(program.named("server1-nginx-ready-on-lb1"))
    assert 3 * 300 <= int(re.search(r"^READY_TIMEOUT_S=(\d+)$", ready, re.M).group(1)) < STEP_TIMEOUT_S


# ---- class 2: networks that cannot work ----------------------------------------------------------------


def _lan(vip: str, hosts: str):
    """The VIP, and the five hosts at .11 .12 .13 (servers) .21 .22 (balancers) of `hosts` (a.b.c)."""

    def alter(config):
        cluster = config["pihalb:cluster"]
        cluster["vrrp"]["vip"] = vip
        for host, last in zip(cluster["hosts"], (11, 12, 13, 21, 22), strict=True):
            host["address"] = f"{hosts}.{last}"

    return alter


@pytest.mark.parametrize(
    "vip, hosts",
    [
        ("172.30.42.240/24", "172.30.42"),
        ("10.42.0.240/8", "10.42.0"),
        ("192.168.7.240/16", "192.168.7"),
        ("169.254.7.240/16", "169.254.7"),
        ("172.30.42.240/0", "172.30.42"),
        ("172.30.42.240/11", "172.30.42"),
        ("192.168.7.240/8", "192.168.7"),
        ("100.64.7.240/12", "100.64.7"),
        ("0.42.0.240/24", "0.42.0"),
    ],
)
def test_keepalived_routes_only_the_lan(run_stack, tmp_path, vip, hosts):
    """keepalived gives the MASTER an on-link route for the VIP's whole subnet: accepted, that subnet is a
    LAN the hosts can be on (private blocks as a whole at most, else a /16); anything wider is refused."""
    program = accepted(run_stack, _lan(vip, hosts), "cluster.vrrp.vip", "cluster.hosts")
    if program is None:
        return
    address = f"{hosts}.21/{vip.split('/')[1]}"
    with balancer_namespaces(address) as (lb1,):
        lb1.start_keepalived(embedded_file(program.named("vrrp-lb1-keepalived")), tmp_path)
        wait_until(lambda: lb1.holds(vip.split("/")[0]), 20, "the MASTER to hold the VIP")
        routes = lb1.run("ip", "-4", "route", "show", "dev", "eth0").split()
    on_link = [ipaddress.IPv4Network(word) for word in routes if "/" in word]
    assert on_link == [ipaddress.IPv4Interface(vip).network]
    assert on_link[0].prefixlen >= widest_lan_prefix(ipaddress.IPv4Address(f"{hosts}.21"))


# ---- class 5: inputs the build or the site cannot use --------------------------------------------------

DOCKERFILE_UNPACK = "mkdir haproxy && tar -xzf haproxy.tar.gz -C haproxy --strip-components=1"


@pytest.mark.parametrize(
    "url",
    [
        "https://www.haproxy.org/download/2.6/src/haproxy-2.6.12.tar.gz",
        "https://mirror.example:8443/haproxy/haproxy-2.6.12.tgz?token=a1",
        "https://mirror.example:65535/haproxy-2.6.12.tar.gz",
        "https://www.haproxy.org/download/2.6/src/haproxy-2.6.12.tar.xz",
        "https://mirror.example/get?file=haproxy-2.6.12.tar.gz",
        "https://mirror.example:70000/haproxy-2.6.12.tar.gz",
        "https://mirror.example:0/haproxy-2.6.12.tar.gz",
    ],
)
def test_an_accepted_upstream_url_is_one_the_build_can_fetch_and_unpack(run_stack, tmp_path, url):
    """What the Dockerfile does with the url, on loopback: curl reads it as written (sent to a closed local
    port, it fails to connect, not to parse), and the build's own `tar -xzf` unpacks what it names."""
    source = {"kind": "upstream", "url": url, "sha256": "0" * 64}
    program = accepted(run_stack, lambda config: _haproxy(config).update(source=source), "cluster.haproxy.source.url")
    if program is None:
        return
    assert program.named("lb1-haproxy-image").inputs["build"]["args"]["HAPROXY_URL"] == url
    fetch = [tool("curl"), "-fsSL", "--max-time", "5", "--connect-to", f"::127.0.0.1:{free_port()}", url]
    assert subprocess.run([*fetch, "-o", "/dev/null"], capture_output=True, timeout=30).returncode == 7
    assert DOCKERFILE_UNPACK in (render.FILES / "haproxy" / "Dockerfile").read_text()
    name = url.split("?")[0].rsplit("/", 1)[1]
    (tmp_path / "haproxy-2.6.12").mkdir()
    (tmp_path / "haproxy-2.6.12" / "Makefile").write_text("all:\n")
    archive = "--xz" if name.endswith(".xz") else "--gzip"  # what the name says the server sends
    tar = [tool("tar"), "-c", archive, "-f", str(tmp_path / "haproxy.tar.gz"), "-C", str(tmp_path), "haproxy-2.6.12"]
    subprocess.run(tar, check=True)
    subprocess.run([tool("bash"), "-c", DOCKERFILE_UNPACK], cwd=tmp_path, check=True)
    assert (tmp_path / "haproxy" / "Makefile").is_file()


@contextlib.contextmanager
def nginx_serving(page: str, tmp_path: Path) -> Iterator[int]:
    """The real nginx with the shipped site (files/nginx/default.conf) and `page` as its index.html, on a
    free loopback port."""
    port = free_port()
    (tmp_path / "html").mkdir(parents=True)
    (tmp_path / "html" / "index.html").write_text(page)
    (tmp_path / "logs").mkdir()
    site = (
        (render.FILES / "nginx" / "default.conf")
        .read_text()
        .replace("listen 80 default_server", f"listen 127.0.0.1:{port} default_server")
        .replace("root /usr/share/nginx/html", f"root {tmp_path / 'html'}")
        .replace("/var/log/nginx/", f"{tmp_path / 'logs'}/")
    )
    assert f"127.0.0.1:{port}" in site and str(tmp_path / "html") in site
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"user root;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n    include {tmp_path}/site.conf;\n}}\n"
    )
    nginx = [tool("nginx"), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"]
    proc = subprocess.Popen(nginx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
            return False

        wait_until(listening, 10, "nginx to listen")
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.mark.parametrize(
    "path, status",
    [
        ("/", 200),
        ("/index.html", 200),
        ("/?probe=1&from=haproxy", 200),
        ("/index.html?it's=$ok", 200),
        ("/health", 200),
        ("/index.htm", 200),
        ("/index.html/", 200),
        ("/", 204),
        ("/missing", 404),
    ],
)
def test_an_accepted_health_check_passes_on_the_page_the_servers_serve(run_stack, tmp_path, path, status):
    """The rendered check, sent by the real haproxy to the real nginx serving the shipped site and the
    rendered page: accepted, every server is UP (L7OK); a check no server can pass is refused."""

    def alter(config):
        _haproxy(config)["healthCheck"].update(path=path, expectStatus=status, interMs=200)

    program = accepted(run_stack, alter, "cluster.haproxy.healthCheck.path", "cluster.haproxy.healthCheck.expectStatus")
    if program is None:
        return
    page = re.search(r"^PAGE_B64=(\S+)$", script_of(program.named("server1-nginx-page")), re.M).group(1)
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    with (
        nginx_serving(base64.b64decode(page).decode(), tmp_path / "nginx") as port,
        haproxy_on_loopback(cfg, tmp_path, port) as (_, runtime),
    ):
        checked = lambda: backend_stat(runtime, "check_status", "server1") not in ("", "INI", "* INI")  # noqa: E731
        wait_until(checked, 10, "the first health check")
        assert backend_stat(runtime, "check_status", "server1") == "L7OK"


# ---- class 6: secrets that are accepted must load ------------------------------------------------------


def _private(key, form=serialization.PrivateFormat.OpenSSH) -> str:
    return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption()).decode()


def _public_blob(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .split()[1]
        .decode()
    )


def _ssh_keys(tmp_path_factory) -> dict[str, tuple[str, str | None]]:
    """Private keys as a user might paste them, each with the public key blob it must load as."""
    ed, p256 = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    rsa2048 = rsa.generate_private_key(65537, 2048)
    pkcs8, trad = serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL
    openssh = _private(ed)
    rsa768 = tmp_path_factory.mktemp("rsa") / "rsa768"
    subprocess.run([tool("openssl"), "genrsa", "-out", str(rsa768), "768"], check=True, capture_output=True)
    keys = {
        "ed25519": (openssh, ed),
        "ed25519 with CRLF": (openssh.replace("\n", "\r\n"), ed),
        "ed25519 with a byte-order mark": ("\ufeff" + openssh, ed),
        "ed25519 after blank lines": ("\n\n" + openssh, ed),
        "ed25519 without its final newline, blank lines after": (openssh.rstrip("\n") + "  \n\n\n", ed),
        "ed25519 as PKCS#8": (_private(ed, pkcs8), ed),
        "ed25519 as PKCS#8 with CRLF and a BOM": ("\ufeff" + _private(ed, pkcs8).replace("\n", "\r\n"), ed),
        "ECDSA P-256, traditional PEM": (_private(p256, trad), p256),
        "ECDSA P-384, PKCS#8": (_private(p384, pkcs8), p384),
        "RSA 2048 with CRLF": (_private(rsa2048, trad).replace("\n", "\r\n"), rsa2048),
        "ed25519 after a comment line": ("my key:\n" + openssh, None),
        "ed25519, every line indented": ("".join(f"  {line}\n" for line in openssh.splitlines()), None),
        "RSA 768": (rsa768.read_text(), None),
    }
    for curve in (ec.SECP256K1(), ec.SECP224R1(), ec.BrainpoolP256R1()):
        keys[f"ECDSA {curve.name}"] = (_private(ec.generate_private_key(curve), trad), None)
    return {name: (text, key and _public_blob(key)) for name, (text, key) in keys.items()}


@pytest.fixture(scope="module")
def ssh_keys(tmp_path_factory):
    return _ssh_keys(tmp_path_factory)


SSH_KEY_CASES = [
    "ed25519",
    "ed25519 with CRLF",
    "ed25519 with a byte-order mark",
    "ed25519 after blank lines",
    "ed25519 without its final newline, blank lines after",
    "ed25519 as PKCS#8",
    "ed25519 as PKCS#8 with CRLF and a BOM",
    "ECDSA P-256, traditional PEM",
    "ECDSA P-384, PKCS#8",
    "RSA 2048 with CRLF",
    "ed25519 after a comment line",
    "ed25519, every line indented",
    "RSA 768",
    "ECDSA secp256k1",
    "ECDSA secp224r1",
    "ECDSA brainpoolP256r1",
]


def ssh_keygen_loads(path: Path) -> str | None:
    """The public key blob OpenSSH reads from a private key file, or None when it cannot load it."""
    path.chmod(0o600)
    done = subprocess.run([tool("ssh-keygen"), "-y", "-f", str(path)], capture_output=True, text=True, timeout=30)
    return done.stdout.split()[1] if done.returncode == 0 else None


@pytest.mark.parametrize("case", SSH_KEY_CASES)
def test_an_accepted_ssh_key_is_written_as_openssh_loads_it(run_stack, ssh_keys, tmp_path, case):
    """The key file the Docker provider's `ssh -i` reads, as the program writes it: OpenSSH 9.2 loads it
    as the same key, and pulumi-command gets the same text. A key OpenSSH would not load is refused."""
    text, public = ssh_keys[case]
    program = accepted(run_stack, lambda config: config.update({"pihalb:sshPrivateKey": text}), "sshPrivateKey")
    if program is None:
        raw = tmp_path / "as-pasted"
        raw.write_text(text, newline="")
        assert public is None, f"{case} loads, and was refused"
        if "ECDSA" in case or "RSA" in case:
            assert ssh_keygen_loads(raw) is None, f"OpenSSH loads {case}: no reason to refuse it"
        return
    written = Path(os.environ["PIHALB_SSH_DIR"]) / "pi-ha-lb-dev" / "id_pihalb"
    loaded = ssh_keygen_loads(written)
    assert loaded is not None, f"OpenSSH does not load the file written for {case}"
    assert loaded == public
    assert program.named("lb1-install").inputs["connection"]["privateKey"] == written.read_bytes().decode()


@pytest.mark.parametrize("password", ["vr5ecret", "a$b{c}#!", "$_BANG", "$HOME", "${_PWD}", "a${X}b", "${_HASH}"])
def test_an_accepted_vrrp_password_reaches_keepalived_verbatim(run_stack, tmp_path, password):
    """keepalived's own dump of what it read: an accepted password is the password, not what keepalived's
    `${NAME}` parameters make of it (`${_PWD}` would be its working directory, `${_HASH}` a '#')."""
    program = accepted(run_stack, lambda config: config.update({"pihalb:vrrpPassword": password}), "vrrpPassword")
    if program is None:
        return
    conf = embedded_file(program.named("vrrp-lb1-keepalived"))
    assert keepalived_dump(conf, "eth0", "172.30.42.21", tmp_path)["Password"] == password
