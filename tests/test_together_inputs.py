"""Accepted values must work in the real consumers: what the build and the site can use (an upstream
url the build fetches and unpacks, a health check nginx passes), and secrets that load (an SSH key
OpenSSH loads, a VRRP password keepalived reads verbatim).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from components import render
from tests.daemons import accepted, backend_stat, haproxy_of, haproxy_on_loopback, wait_until

from .artifact_tools import embedded_file, free_port, keepalived_dump, script_of, tool

pytestmark = pytest.mark.artifact

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
    program = accepted(run_stack, lambda config: haproxy_of(config).update(source=source), "cluster.haproxy.source.url")
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
        haproxy_of(config)["healthCheck"].update(path=path, expectStatus=status, interMs=200)

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
