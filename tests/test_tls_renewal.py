"""Issue 19: the balancers' certificate keeper (files/acme/pihalb-tls.sh, run by the renewal timer) against
the real haproxy 2.6 on loopback, and a real Pebble on 127.0.0.1 that validates HTTP-01 against that
HAProxy's stateless answers (names resolved by Debian's pebble-challtestsrv).

On a balancer the script runs as root and reaches HAProxy's runtime API through `docker exec`; here it
runs as this user (PEM_OWNER) and reaches a loopback HAProxy directly (RUNTIME_ADDRESS).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509

from components import render, tls_secrets

from .artifact_tools import free_port, run, tool
from .test_tls import DAY, NOW, ec_key, issue, pem_cert, pem_key, rsa_key

pytestmark = pytest.mark.artifact

NAMES = ["www.example.org", "example.org"]
SCRIPT = render.FILES / "acme" / "pihalb-tls.sh"
OBTAIN = render.FILES / "acme" / "acme-obtain.sh"


def test_the_keeper_passes_shellcheck():
    run([tool("bash"), "-n", str(SCRIPT)])
    run([tool("shellcheck"), "--shell=bash", "--severity=style", str(SCRIPT)])


class Balancer:
    """One balancer's TLS side on loopback: its key, its env file, a HAProxy serving its PEM."""

    def __init__(self, directory: Path, key, trust: Path, **env: str):
        self.dir = directory
        self.dir.mkdir(mode=0o700)
        (self.dir / "site.key").write_text(pem_key(key))
        (self.dir / "site.key").chmod(0o600)
        self.pem = self.dir / "haproxy" / "tls" / "site.pem"
        self.https, self.plain, self.runtime = free_port(), free_port(), free_port()
        self.env = {
            "KIND": "acme",
            "NAMES": " ".join(NAMES),
            "KEY": str(self.dir / "site.key"),
            "ACCOUNT_KEY": str(self.dir / "account.pem"),
            "CERT_FILE": str(self.pem),
            "HAPROXY_CERT": str(self.pem),
            "HAPROXY_GID": str(os.getgid()),
            "PEM_OWNER": str(os.getuid()),
            "CONTAINER": "unused",
            "RUNTIME_PORT": "0",
            "RUNTIME_ADDRESS": f"127.0.0.1:{self.runtime}",
            "TLS_DIR": str(self.dir),
            "FIRST_VALIDITY_DAYS": "2",
            "TRUST_STORE": str(trust),
            "ACME_DIRECTORY_URL": "",
            "ACME_EMAIL": "",
            "ACME_CA_BUNDLE": "",
            "ROOTS_URL": "",
            "OBTAIN": str(OBTAIN),
            "VIP": "127.0.0.1",
            "INTERFACE": "lo",
            "PEER": "127.0.0.1",
            "TLS_PORT": "0",
        } | env
        self.proc: subprocess.Popen | None = None

    def keeper(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        (self.dir / "tls.env").write_text("".join(f"{k}={_q(v)}\n" for k, v in sorted(self.env.items())))
        done = subprocess.run(
            ["nice", "-n", "19", "bash", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=180,
            env={"PATH": os.environ["PATH"], "PIHALB_TLS_ENV": str(self.dir / "tls.env")},
        )
        assert not check or done.returncode == 0, done.stderr
        return done

    def start(self, extra_crt: Path | None = None, acme_thumbprint: str = "") -> None:
        """HAProxy with an ssl bind on self.pem (and, with `extra_crt`, a second ssl bind of another file)."""
        lines = [
            "global",
            f"    stats socket ipv4@127.0.0.1:{self.runtime} level admin",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 5s",
            "    timeout server 5s",
            "frontend site",
            f"    bind 127.0.0.1:{self.plain}",
            f"    bind 127.0.0.1:{self.https} ssl crt {self.pem} alpn h2,http/1.1",
        ]
        if extra_crt:
            lines.append(f"    bind 127.0.0.1:{free_port()} ssl crt {extra_crt}")
        if acme_thumbprint:  # the line haproxy.cfg.j2 renders (components/tls.py), as the balancers answer
            lines.append(
                "    http-request return status 200 content-type text/plain lf-string "
                f'"%[path,field(-1,/)].{acme_thumbprint}" '
                "if { path_reg ^/\\.well-known/acme-challenge/[A-Za-z0-9_-]+$ }"
            )
        lines.append("    http-request return status 200 content-type text/plain string ok")
        (self.dir / "haproxy.cfg").write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [tool("haproxy"), "-db", "-f", str(self.dir / "haproxy.cfg")], stderr=subprocess.PIPE
        )
        for _ in range(100):
            if _served(self.https) is not None:
                return
            assert self.proc.poll() is None, self.proc.stderr.read().decode()
            time.sleep(0.05)
        raise AssertionError("haproxy did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait(5)

    def served(self) -> x509.Certificate:
        return _served(self.https)


def _q(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def _served(port: int) -> x509.Certificate | None:
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as sock,
            context.wrap_socket(sock, server_hostname=NAMES[0]) as tls_sock,
        ):
            return x509.load_der_x509_certificate(tls_sock.getpeercert(binary_form=True))
    except OSError:
        return None


@pytest.fixture
def ca(tmp_path):
    """A CA the balancers trust (their TRUST_STORE): (key, certificate, file)."""
    key = ec_key()
    cert = issue(key, [], ca=True)
    path = tmp_path / "trust.pem"
    path.write_text(pem_cert(cert))
    return key, cert, path


@pytest.fixture
def balancers(tmp_path, ca):
    """Two balancers sharing one key, each with a HAProxy on loopback once started."""
    key = ec_key()
    made = []

    def make(name: str, **env: str) -> Balancer:
        made.append(Balancer(tmp_path / name, key, ca[2], **env))
        return made[-1]

    make.key = key
    yield make
    for balancer in made:
        balancer.stop()


def signed_chain(ca, key, names=NAMES, not_after=NOW + 90 * DAY, not_before=NOW - DAY) -> str:
    ca_key, ca_cert, _ = ca
    leaf = issue(key, names, issuer_key=ca_key, issuer_name="test CA", not_before=not_before, not_after=not_after)
    return pem_cert(leaf) + pem_cert(ca_cert)


def test_first_start_certificate_is_self_signed_for_the_shared_key_and_kept(balancers):
    lb = balancers("lb1")
    assert "changed" in lb.keeper("first").stdout
    assert lb.pem.stat().st_mode & 0o777 == 0o640
    text = lb.pem.read_text()
    assert text.count("BEGIN CERTIFICATE") == 1 and "PRIVATE KEY" in text and "\n\n" not in text
    cert = x509.load_pem_x509_certificate(text.encode())
    assert cert.issuer == cert.subject
    assert cert.public_key().public_numbers() == balancers.key.public_key().public_numbers()
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NAMES
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=2)
    lb.start()  # HAProxy starts its ssl bind with it
    assert lb.served().serial_number == cert.serial_number
    assert "changed" not in lb.keeper("first").stdout
    assert lb.pem.read_text() == text


def test_install_puts_a_chain_live_without_a_reload_and_refuses_what_it_must_not_serve(balancers, ca, tmp_path):
    lb = balancers("lb1")
    lb.keeper("first")
    lb.start()
    pid = lb.proc.pid
    good = tmp_path / "good.pem"
    good.write_text(signed_chain(ca, balancers.key))
    lb.keeper("install", str(good), "trusted")
    served = lb.served()
    assert served.serial_number == x509.load_pem_x509_certificate(good.read_bytes()).serial_number
    assert lb.proc.pid == pid and lb.proc.poll() is None  # the same process: no reload, no restart
    assert lb.pem.read_text().startswith(good.read_text().split("-----END CERTIFICATE-----")[0])
    # Each of these is refused, and HAProxy keeps serving the good one.
    other_ca = (ec_key(), issue(ec_key(), [], ca=True), None)
    refused = {
        "another key": signed_chain(ca, ec_key()),
        "a name missing": signed_chain(ca, balancers.key, names=NAMES[:1]),
        "expired": signed_chain(ca, balancers.key, not_after=NOW - DAY, not_before=NOW - 2 * DAY),
        "an untrusted issuer": signed_chain(other_ca, balancers.key),
        "a key inside": signed_chain(ca, balancers.key) + pem_key(balancers.key),
    }
    for why, text in refused.items():
        bad = tmp_path / "bad.pem"
        bad.write_text(text)
        done = lb.keeper("install", str(bad), "trusted", check=False)
        assert done.returncode != 0, why
        assert lb.served().serial_number == served.serial_number, why
    assert "PRIVATE KEY" not in lb.keeper("install", str(good), "trusted").stderr


def test_a_transaction_left_open_on_another_file_is_aborted_not_committed_into(balancers, ca, tmp_path):
    """HAProxy 2.6.12 applies a `set ssl cert` to another file's open transaction: the keeper aborts any
    open transaction first, and checks that each reply names its own file."""
    lb = balancers("lb1")
    lb.keeper("first")
    other_key = ec_key()
    other = tmp_path / "other.pem"
    other.write_text(pem_cert(issue(other_key, ["other.example.org"])) + pem_key(other_key))
    lb.start(extra_crt=other)
    stray = subprocess.run(
        ["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{lb.runtime} && cat >&3 && cat <&3"],
        input=f"set ssl cert {other} <<\n{other.read_text()}\n",
        capture_output=True,
        text=True,
    )
    assert f"Transaction created for certificate {other}!" in stray.stdout
    good = tmp_path / "good.pem"
    good.write_text(signed_chain(ca, balancers.key))
    done = lb.keeper("install", str(good), "trusted")
    assert f"aborting an open transaction on {other}" in done.stderr
    assert lb.served().serial_number == x509.load_pem_x509_certificate(good.read_bytes()).serial_number


def test_sync_commits_the_file_when_haproxy_serves_another_certificate(balancers, ca, tmp_path):
    lb = balancers("lb1")
    lb.keeper("first")
    lb.start()
    before = lb.served().serial_number
    lb.env["RUNTIME_ADDRESS"] = "127.0.0.1:1"  # a commit that cannot happen: the file alone is written
    good = tmp_path / "good.pem"
    good.write_text(signed_chain(ca, balancers.key))
    lb.keeper("install", str(good), "trusted")
    assert lb.served().serial_number == before
    lb.env["RUNTIME_ADDRESS"] = f"127.0.0.1:{lb.runtime}"
    assert "committing the file's" in lb.keeper("sync").stderr
    assert lb.served().serial_number != before
    assert "committing" not in lb.keeper("sync").stderr


def test_the_peer_adopts_a_newer_trusted_chain_and_nothing_else(balancers, ca, tmp_path):
    master = balancers("lb1")
    backup = balancers("lb2", VIP="127.0.0.77")  # does not hold the VIP: orders only when a sixth is left
    for lb in (master, backup):
        lb.keeper("first")
        lb.start()
    backup.env |= {"PEER": "127.0.0.1", "TLS_PORT": str(master.https)}
    current = tmp_path / "current.pem"
    current.write_text(signed_chain(ca, balancers.key, not_after=NOW + 60 * DAY))
    backup.keeper("install", str(current), "trusted")
    # The peer serves something it must not adopt: a self-signed certificate for the shared key.
    assert "not due" in backup.keeper("renew").stderr
    assert backup.served().serial_number == x509.load_pem_x509_certificate(current.read_bytes()).serial_number
    # The peer renewed: a later notAfter, trusted, for the key and names.
    newer = tmp_path / "newer.pem"
    newer.write_text(signed_chain(ca, balancers.key, not_after=NOW + 89 * DAY))
    master.keeper("install", str(newer), "trusted")
    done = backup.keeper("renew")
    assert "adopting it" in done.stderr and "not due" in done.stderr
    assert backup.served().serial_number == master.served().serial_number


# ---- against a real ACME server -------------------------------------------------------------------------


@pytest.fixture
def pebble(tmp_path):
    """Pebble on 127.0.0.1 validating HTTP-01 on `http_port` for names that pebble-challtestsrv resolves
    to 127.0.0.1: a function (http_port) -> (directory URL, roots URL, listener CA file)."""
    procs = []

    def start(http_port: int, validity_s: int = 600):
        ca_key, key = ec_key(), ec_key()
        ca_cert = issue(ca_key, [], ca=True)
        listener = issue(key, ["localhost"], issuer_key=ca_key, issuer_name="test CA")
        (tmp_path / "pebble-ca.pem").write_text(pem_cert(ca_cert))
        (tmp_path / "listener.pem").write_text(pem_cert(listener))
        (tmp_path / "listener.key").write_text(pem_key(key))
        port, management, dns = free_port(), free_port(), free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{port}",
                "managementListenAddress": f"127.0.0.1:{management}",
                "certificate": str(tmp_path / "listener.pem"),
                "privateKey": str(tmp_path / "listener.key"),
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": validity_s,
            }
        }
        (tmp_path / "pebble.json").write_text(json.dumps(config))
        log = (tmp_path / "dns.log").open("w")
        procs.append(
            subprocess.Popen(
                [tool("pebble-challtestsrv"), "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                 "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                 "-management", f"127.0.0.1:{free_port()}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        env = os.environ | {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        plog = (tmp_path / "pebble.log").open("w")
        procs.append(
            subprocess.Popen(
                ["nice", "-n", "19", tool("pebble"), "-config", str(tmp_path / "pebble.json"),
                 "-dnsserver", f"127.0.0.1:{dns}"],
                stdout=plog, stderr=subprocess.STDOUT, env=env,
            )
        )  # fmt: skip
        url = f"https://localhost:{port}/dir"
        context = ssl.create_default_context(cafile=str(tmp_path / "pebble-ca.pem"))
        for _ in range(100):
            try:
                with urllib.request.urlopen(url, context=context, timeout=2):
                    break
            except OSError:
                assert procs[-1].poll() is None, (tmp_path / "pebble.log").read_text()
                time.sleep(0.1)
        return url, f"https://localhost:{management}/roots/0", tmp_path / "pebble-ca.pem"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def test_the_vip_holder_obtains_a_certificate_validated_through_its_own_haproxy(balancers, pebble, tmp_path):
    """The whole renewal: the first-start certificate is due at once; the keeper orders with the shared
    account, Pebble validates HTTP-01 against HAProxy's stateless answer, and the chain goes live. Then
    not due; then the other balancer adopts it from this one."""
    tool("dehydrated")
    account = rsa_key()
    thumbprint = tls_secrets.jwk_thumbprint(account.public_key())
    master = balancers("lb1")
    (master.dir / "account.pem").write_text(pem_key(account))
    master.keeper("first")
    master.start(acme_thumbprint=thumbprint)
    url, roots, listener_ca = pebble(master.plain)
    acme = {"ACME_DIRECTORY_URL": url, "ACME_CA_BUNDLE": str(listener_ca), "ROOTS_URL": roots}
    master.env |= acme | {"TRUST_STORE": str(listener_ca)}  # no system root signs Pebble's chains
    done = master.keeper("renew")
    assert "renewing (the VIP holder" in done.stderr, done.stderr
    served = master.served()
    assert "Pebble Intermediate" in served.issuer.rfc4514_string()
    assert served.public_key().public_numbers() == balancers.key.public_key().public_numbers()
    assert "not due (the VIP holder)" in master.keeper("renew").stderr
    backup = balancers("lb2", VIP="127.0.0.77", PEER="127.0.0.1", TLS_PORT=str(master.https))
    (backup.dir / "account.pem").write_text(pem_key(account))
    backup.env |= acme | {"TRUST_STORE": str(listener_ca)}
    backup.keeper("first")
    backup.start(acme_thumbprint=thumbprint)
    done = backup.keeper("renew")
    assert "adopting it" in done.stderr and "not due (not the VIP holder)" in done.stderr, done.stderr
    assert backup.served().serial_number == served.serial_number
    # The keys: root's alone (here this user's); HAProxy's PEM: its group may read it.
    for key_file in (master.dir / "site.key", master.dir / "acme" / "account.pem"):
        assert key_file.stat().st_mode & 0o777 == 0o600, key_file
    assert master.pem.stat().st_mode & 0o777 == 0o640
    assert "PRIVATE KEY" not in done.stdout + done.stderr
