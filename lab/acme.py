"""The lab's ACME server (issue 19): Debian's `pebble` on this machine, reachable from the lab hosts on the
bridge's gateway address, validating HTTP-01 through the VIP.

- Pebble's own https listener has a certificate of a lab CA made once into lab/.state/acme/ (Debian's
  package ships none): that CA is the stack's `haproxy.tls.certificate.caBundle` in the lab, so the
  balancers' ACME client trusts Pebble, and nothing else trusts it.
- The names resolve to the VIP for Pebble only: Pebble asks Debian's `pebble-challtestsrv` (shipped in the
  same package), which answers every A query with the VIP and no AAAA (Pebble asks AAAA first), on
  loopback, as an unprivileged process.
- Short-lived certificates (`certificateValidityPeriod`, VALIDITY_S), renewed by a test on demand; no
  authorization reuse, no random sleeps, no rejected nonces (tls-notes: what Pebble does otherwise).
- Pebble's issuing root is new at every start: the balancers fetch it from the management port
  (`rootsUrl`, https://<gateway>:15000/roots/0), trusted for the renewal only.
- Started by the lab when a profile turns acme on against it (lab/stack.py), stopped by `lab down`.

Processes are tracked by pid files under the state directory and stopped by those pids only.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from common.files import write_private
from lab.output import LabError

if TYPE_CHECKING:
    from lab.lab import Lab

ACME_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_PORT = 18053  # pebble-challtestsrv's DNS, on loopback: only Pebble asks it
DNS_MANAGEMENT_PORT = 18055
# 2 hours: longer than a whole run of the suite, so no renewal falls due by itself in it (the tests force
# theirs, `pihalb-tls renew --now`), and short enough that the keeper's timer (every 10 minutes) renews a
# lab left running (at 40 minutes left on the VIP holder); `ops status` degrades at 20 minutes left.
VALIDITY_S = 7200
PEBBLE_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_AUTHZREUSE": "0", "PEBBLE_WFE_NONCEREJECT": "0"}


@dataclass(frozen=True)
class Pebble:
    """Pebble and its DNS answer, for one lab: `address` the bridge's gateway (127.0.0.1 in the tests),
    `vip` the answer for every name, `http_port` where HTTP-01 is validated (the frontend port)."""

    directory: Path
    address: str
    vip: str
    http_port: int = 80
    tls_port: int = 443
    acme_port: int = ACME_PORT
    management_port: int = MANAGEMENT_PORT
    dns_port: int = DNS_PORT
    dns_management_port: int = DNS_MANAGEMENT_PORT
    validity_s: int = VALIDITY_S

    # ---- what the stack and the balancers get ---------------------------------------------------------

    @property
    def directory_url(self) -> str:
        return f"https://{self.address}:{self.acme_port}/dir"

    @property
    def roots_url(self) -> str:
        return f"https://{self.address}:{self.management_port}/roots/0"

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def ca_bundle(self) -> str:
        """The lab CA that signed Pebble's listener: the stack's caBundle (made if missing)."""
        self._ensure_listener_certificate()
        return self.ca_file.read_text()

    def issuing_roots(self) -> str:
        """The root Pebble issues under now (new at each start), fetched as the balancers do (`rootsUrl`)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(self.roots_url, context=context, timeout=10) as reply:
            return reply.read().decode()

    # ---- configuration --------------------------------------------------------------------------------

    def config(self) -> dict:
        return {
            "pebble": {
                "listenAddress": f"{self.address}:{self.acme_port}",
                "managementListenAddress": f"{self.address}:{self.management_port}",
                "certificate": str(self.directory / "listener.pem"),
                "privateKey": str(self.directory / "listener.key"),
                "httpPort": self.http_port,
                "tlsPort": self.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": self.validity_s,
            }
        }

    def pebble_command(self) -> list[str]:
        return [
            "pebble",
            "-config",
            str(self.directory / "pebble.json"),
            "-dnsserver",
            f"127.0.0.1:{self.dns_port}",
        ]

    def dns_command(self) -> list[str]:
        return [
            "pebble-challtestsrv",
            "-defaultIPv4",
            self.vip,
            "-defaultIPv6",
            "",
            "-dns01",
            f"127.0.0.1:{self.dns_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            f"127.0.0.1:{self.dns_management_port}",
        ]

    # ---- start and stop -------------------------------------------------------------------------------

    def start(self, timeout_s: float = 20) -> None:
        """Both running (kept if they already run), Pebble answering its directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ensure_listener_certificate()
        (self.directory / "pebble.json").write_text(json.dumps(self.config(), indent=2) + "\n")
        self._spawn("dns", self.dns_command(), {})
        self._spawn("pebble", self.pebble_command(), PEBBLE_ENV)
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            for name in ("dns", "pebble"):
                if self._pid(name) is None:
                    log = (self.directory / f"{name}.log").read_text()[-2000:]
                    raise RuntimeError(f"{name} exited:\n{log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Pebble does not answer at {self.directory_url}")
            time.sleep(0.1)

    def answers(self) -> bool:
        done = subprocess.run(
            ["curl", "-fsS", "--max-time", "2", "--cacert", str(self.ca_file), self.directory_url],
            capture_output=True,
            text=True,
        )
        return done.returncode == 0 and "newOrder" in done.stdout

    def stop(self, grace_s: float = 5.0) -> None:
        """Both stopped, by their recorded pids (nothing else is signalled): SIGTERM, then SIGKILL after
        `grace_s` (niced, on a busy machine, they can take that long), and gone (reaped) before it returns."""
        for name in ("pebble", "dns"):
            pid = self._pid(name)
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
                if not self._gone(name, grace_s):
                    os.kill(pid, signal.SIGKILL)
                    if not self._gone(name, grace_s):
                        raise LabError(f"lab ACME: {name} (pid {pid}) still runs after SIGKILL")
            (self.directory / f"{name}.pid").unlink(missing_ok=True)

    def _gone(self, name: str, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while self._pid(name) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def running(self) -> bool:
        return self._pid("pebble") is not None and self._pid("dns") is not None

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        if self._pid(name) is not None:
            return
        with (self.directory / f"{name}.log").open("a") as log:
            proc = subprocess.Popen(
                ["nice", "-n", "10", *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=os.environ | env,
                start_new_session=True,  # not killed with the lab command that started it
            )
        (self.directory / f"{name}.pid").write_text(f"{proc.pid}\n")

    def _pid(self, name: str) -> int | None:
        """The recorded pid of `name`, if that process still runs (and is not a zombie)."""
        try:
            pid = int((self.directory / f"{name}.pid").read_text())
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ValueError):
            return None
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            # Reaped here when this process started it. A Go program's first thread can be a zombie while
            # its other threads still exit: the process is not reapable, and not gone, until they have.
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None  # another process's child, dead: its parent reaps it
            return None if reaped else pid
        return pid

    def _ensure_listener_certificate(self) -> None:
        """A lab CA (kept: the stack's caBundle stays the same across starts) and Pebble's listener
        certificate for the address, signed by it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key_file = self.directory / "ca.key"
        if not ca_key_file.exists():
            ca_key = ec.generate_private_key(ec.SECP256R1())
            write_private(ca_key_file, _pem_key(ca_key))
            self.ca_file.write_text(_pem_cert(_certificate(ca_key, ca_key, "pi-ha-lb lab ACME CA", None, ca=True)))
        if (self.directory / "listener.pem").exists() and (
            self.directory / "listener.address"
        ).read_text() == self.address:
            return
        ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(key, ca_key, "pebble", self.address)
        write_private(self.directory / "listener.key", _pem_key(key))
        (self.directory / "listener.pem").write_text(_pem_cert(cert))
        (self.directory / "listener.address").write_text(self.address)


def _certificate(key, issuer_key, name: str, address: str | None, ca: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = subject if ca else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pi-ha-lb lab ACME CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650 if ca else 825))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if address:
        sans = [x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem_key(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# ---- the stack's TLS keys, as the lab generates its other secrets ---------------------------------------


def ensure_tls_keys(directory: Path) -> dict[str, str]:
    """The ACME account key (RSA 3072: dehydrated 0.7.0 signs RS256 only) and the certificate key (ECDSA
    P-256), made once into `directory` (0600) and kept: {config key: PEM}."""
    files = {"acmeAccountKey": directory / "acme-account.pem", "tlsPrivateKey": directory / "tls-key.pem"}
    makers = {
        "acmeAccountKey": lambda: rsa.generate_private_key(65537, 3072),
        "tlsPrivateKey": lambda: ec.generate_private_key(ec.SECP256R1()),
    }
    for key, path in files.items():
        if not path.exists():
            write_private(path, _pem_key(makers[key]()))
    return {key: path.read_text() for key, path in files.items()}


def tls_layer(values: dict, pebble: Pebble) -> None:
    """A profile whose `haproxy.tls` orders from the lab's Pebble (its directoryUrl on the gateway): Pebble
    running, its CA as the stack's caBundle, and the lab's TLS keys as secrets, as a user would set them.
    Any other profile is left as it is (TLS secrets for a stack without TLS are refused as unused)."""
    secrets = lab_tls_secrets(values, pebble)
    if not secrets:
        return
    pebble.start()
    values["pihalb:cluster"]["haproxy"]["tls"]["certificate"]["caBundle"] = pebble.ca_bundle()
    values.update(secrets)


def lab_tls_secrets(values: dict, pebble: Pebble) -> dict[str, str]:
    """The lab's TLS keys (kept beside Pebble's directory) as the secrets a user sets (`pihalb:<key>`), for a
    profile that orders from `pebble`; none otherwise. `python -m ops` reads them too (no Pulumi CLI in the
    lab)."""
    tls = values.get("pihalb:cluster", {}).get("haproxy", {}).get("tls")
    if not tls or tls.get("certificate", {}).get("directoryUrl") != pebble.directory_url:
        return {}
    return {f"pihalb:{key}": pem for key, pem in ensure_tls_keys(pebble.directory.parent / "tls").items()}


def lab_pebble(lab: Lab) -> Pebble:
    """The lab's one Pebble, in its state's `acme/pebble`, on the bridge's gateway, validating on the
    frontend port."""
    return Pebble(lab.state_dir / "acme" / "pebble", str(lab.gateway), str(lab.vip.ip), http_port=lab.frontend_port)
