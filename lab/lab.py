"""The lab: the stack's five Raspberry Pis simulated as systemd containers on this machine's Docker engine.

Each host is a real SSH + sudo + systemd machine (no Docker preinstalled), at the address the stack file gives
it, so the program's real host scripts run on it unchanged. Everything is derived from Pulumi.dev.yaml and
generated once into lab/.state/, so `up` is repeatable and the test harness can import this module.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import docker
import paramiko
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.models.images import Image
from docker.types import IPAMConfig, IPAMPool
from docker.utils.socket import frames_iter

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST_CONTEXT = Path(__file__).resolve().parent / "host"
STACK_FILE = "Pulumi.dev.yaml"
CLUSTER_KEY = "pihalb:cluster"

BASE_IMAGE = "debian:bookworm-slim"
HOST_IMAGE = "pihalb-lab/pi:latest"
NETWORK = "pihalb-lab"
NAME_PREFIX = "pihalb-lab-"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SOURCES_LIST = f"deb {DEBIAN_MIRROR} bookworm main\n"

LABEL_LAB = "pihalb-lab"
LABEL_CONTEXT = "pihalb-lab.context-sha256"
LABEL_IMPORTED_BASE = "pihalb-lab.imported-base"
LABEL_SPEC = "pihalb-lab.spec-sha256"

PI_UID = 1000  # fixed by lab/host/Dockerfile
ENGINE_START_TIMEOUT_S = 60
READY_TIMEOUT_S = 90
BUILD_TIMEOUT_S = 1800  # an HTTP read timeout for the engine client: builds and long `sh` commands stream slowly
STOP_TIMEOUT_S = 20
SSH_TIMEOUT_S = 5
VRRP_PASSWORD_LENGTH = 8  # keepalived's PASS authentication uses only the first 8 characters
STATS_PASSWORD_LENGTH = 20
SECRET_ALPHABET = string.ascii_letters + string.digits

# `--privileged` fails on this machine kind (no CAP_SYS_RESOURCE in the bounding set); this explicit set is
# enough for systemd and for a Docker daemon inside the host (see shared lab notes).
HOST_CAPABILITIES = [
    "SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "MKNOD", "AUDIT_CONTROL", "SYS_NICE", "IPC_LOCK",
    "NET_BROADCAST", "SYSLOG", "DAC_READ_SEARCH", "LINUX_IMMUTABLE", "SYS_BOOT", "SYS_RAWIO",
]  # fmt: skip
# Docker mounts /proc/sys read-only in an unprivileged container, so `sysctl -w` fails inside a host; the
# forwarding VRRP needs is set at creation instead, so a script that reads 1 first has nothing to write.
HOST_SYSCTLS = {"net.ipv4.ip_forward": "1"}


class LabError(RuntimeError):
    """A lab step failed; the message says what and what to look at."""


@dataclass(frozen=True)
class Host:
    """One Pi of the inventory."""

    name: str
    address: IPv4Address
    role: str
    priority: int | None = None

    @property
    def container_name(self) -> str:
        return f"{NAME_PREFIX}{self.name}"

    @property
    def volume_name(self) -> str:
        return f"{NAME_PREFIX}{self.name}-docker"


_started = time.monotonic()


def say(message: str) -> None:
    """Progress line with the time since the lab was loaded, so slow steps show on CI logs."""
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", flush=True)


class Lab:
    """The five simulated Pis: create, inspect and tear down; also the test harness's handle on them."""

    def __init__(self, root: Path, hosts: list[Host], ssh_user: str, vip: IPv4Interface):
        self.root = root
        self.hosts = hosts
        self.ssh_user = ssh_user
        self.vip = vip
        self.state_dir = root / "lab" / ".state"
        self._client: docker.DockerClient | None = None

    @classmethod
    def from_stack(cls, root: Path = REPO_ROOT) -> Lab:
        """Read the inventory from the dev stack: the lab network is the VIP's subnet."""
        stack_path = root / STACK_FILE
        try:
            cluster = yaml.safe_load(stack_path.read_text())["config"][CLUSTER_KEY]
            vip = IPv4Interface(cluster["vrrp"]["vip"])
            hosts = [Host(h["name"], IPv4Address(h["address"]), h["role"], h.get("priority")) for h in cluster["hosts"]]
            ssh_user = cluster["ssh"]["user"]
        except (OSError, KeyError, TypeError, ValueError) as error:
            raise LabError(f"cannot read the lab inventory from {stack_path}: {error!r}") from error
        lab = cls(root, hosts, ssh_user, vip)
        lab._check_inventory()
        return lab

    def _check_inventory(self) -> None:
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise LabError(f"duplicate host names in {STACK_FILE}: {names}")
        reserved = {self.gateway, self.vip.ip, self.subnet.network_address, self.subnet.broadcast_address}
        for host in self.hosts:
            if host.address not in self.subnet or host.address in reserved:
                raise LabError(f"{host.name}: {host.address} is not a free host address in {self.subnet}")

    # --- derived names and paths -------------------------------------------------------------------------

    @property
    def subnet(self) -> IPv4Network:
        return self.vip.network

    @property
    def gateway(self) -> IPv4Address:
        return self.subnet.network_address + 1

    @property
    def private_key_path(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "lab.json"

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"no host {name!r} in {STACK_FILE} (hosts: {', '.join(h.name for h in self.hosts)})")

    def _host_key_path(self, host: Host) -> Path:
        return self.state_dir / "hosts" / host.name / "ssh_host_ed25519_key"

    # --- Docker engine -----------------------------------------------------------------------------------

    @property
    def docker(self) -> docker.DockerClient:
        """The engine client; starts `dockerd` first when none answers (CI machines start without one)."""
        if self._client is None:
            self._client = _connect_engine()
        return self._client

    def container(self, name: str) -> Container:
        """The outer container of host `name`."""
        host = self.host(name)
        try:
            return self.docker.containers.get(host.container_name)
        except NotFound as error:
            raise LabError(f"{name}: container {host.container_name} does not exist; run `python -m lab up`") from error

    # --- commands ----------------------------------------------------------------------------------------

    def up(self) -> None:
        """Make the lab exist and answer: reuse whatever is already right, create or fix the rest."""
        started = time.monotonic()
        self._ensure_state()
        base = self._ensure_base_image()
        image = self._ensure_host_image(base)
        self._ensure_network()
        started_hosts = [host for host in self.hosts if self._ensure_container(host, image)]
        self._wait_ready(self.hosts)
        self._remove_unused_host_images(image)
        reused = len(self.hosts) - len(started_hosts)
        say(f"lab up in {time.monotonic() - started:.1f}s ({len(started_hosts)} started, {reused} already running)")

    def down(self, all_images: bool = False) -> None:
        """Remove the hosts, their Docker volumes, the network and lab/.state/ (and with all_images the images)."""
        lab_filter = {"label": LABEL_LAB}
        for container in self.docker.containers.list(all=True, filters=lab_filter):
            say(f"removing container {container.name}")
            container.remove(force=True)
        for volume in self.docker.volumes.list(filters=lab_filter):
            say(f"removing volume {volume.name}")
            volume.remove(force=True)
        for network in self.docker.networks.list(names=[NETWORK]):
            say(f"removing network {network.name}")
            network.remove()
        if self.state_dir.exists():
            say(f"removing {self.state_dir.relative_to(self.root)}/")
            shutil.rmtree(self.state_dir)
        if all_images:
            self._remove_image(HOST_IMAGE)
            self._remove_image(BASE_IMAGE, only_if_label=LABEL_IMPORTED_BASE)
        say("lab down")

    def status(self) -> list[dict]:
        """Per host: container state, address, systemd state, docker/keepalived activity, VIP ownership."""
        report = []
        for host in self.hosts:
            row = {"name": host.name, "address": str(host.address), "container": "missing", "systemd": "-",
                   "docker": "-", "keepalived": "-", "vip": False}  # fmt: skip
            try:
                container = self.docker.containers.get(host.container_name)
            except NotFound:
                report.append(row)
                continue
            row["container"] = container.status
            if container.status == "running":
                _, output = self.sh(
                    host.name,
                    "systemctl is-system-running; systemctl is-active docker; systemctl is-active keepalived;"
                    " ip -4 -o addr show dev eth0",
                    check=False,
                    timeout=15,
                )
                lines = output.splitlines() + ["?"] * 3
                row.update(systemd=lines[0], docker=lines[1], keepalived=lines[2], vip=self._carries_vip(output))
            report.append(row)
        return report

    def state(self) -> dict:
        """The lab.json contents: hosts with addresses and pinned host keys, key path, generated secrets."""
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError as error:
            raise LabError(f"{self.state_file} is missing; run `python -m lab up`") from error

    def sh(self, name: str, command: str, check: bool = True, timeout: int = 60) -> tuple[int, str]:
        """Run `command` as root inside host `name` through docker exec (inspection and fault injection only).

        Bounded by coreutils `timeout` inside the host (exit 124 when it fires). Returns (exit code, stdout+stderr).
        """
        wrapped = ["timeout", "--kill-after=5", str(timeout), "sh", "-c", command]
        result = self.container(name).exec_run(wrapped, user="root")
        output = result.output.decode(errors="replace")
        if check and result.exit_code != 0:
            why = f"timed out after {timeout}s" if result.exit_code == 124 else f"exited {result.exit_code}"
            raise LabError(f"{name}: `{command}` {why}:\n{output}")
        return result.exit_code, output

    def seed_base_image(self, name: str) -> None:
        """Give host `name`'s inner Docker daemon the local base image (no registry here), unless it has it."""
        image = self._base_image_or_fail()
        code, output = self.sh(name, f"docker image inspect --format '{{{{.Id}}}}' {BASE_IMAGE}", check=False)
        if code == 0 and output.strip() == image.id:
            say(f"{name}: inner daemon already has {BASE_IMAGE}")
            return
        if self.sh(name, "docker info >/dev/null 2>&1", check=False, timeout=30)[0] != 0:
            raise LabError(f"{name}: no running Docker inside yet (the program's host preparation installs it)")
        say(f"{name}: loading {BASE_IMAGE} into the inner daemon")
        output = self._exec_with_stdin(name, ["docker", "load"], image.save(named=True))
        code, inner_id = self.sh(name, f"docker image inspect --format '{{{{.Id}}}}' {BASE_IMAGE}", check=False)
        if code != 0 or inner_id.strip() != image.id:
            raise LabError(f"{name}: `docker load` did not give the inner daemon {image.id}:\n{output}")

    def vip_holders(self) -> list[str]:
        """Names of the running hosts whose eth0 carries the VIP (more than one means split brain)."""
        holders = []
        for host in self.hosts:
            try:
                code, output = self.sh(host.name, "ip -4 -o addr show dev eth0", check=False, timeout=10)
            except (LabError, APIError):
                continue  # a stopped or missing host holds nothing
            if code == 0 and self._carries_vip(output):
                holders.append(host.name)
        return holders

    def stop_host(self, name: str) -> None:
        """Shut host `name` down cleanly (systemd gets SIGRTMIN+3), like pulling a Pi's power after halt."""
        say(f"{name}: stopping")
        self.container(name).stop(timeout=STOP_TIMEOUT_S)

    def start_host(self, name: str) -> None:
        """Boot host `name` again and wait until systemd and SSH answer."""
        say(f"{name}: starting")
        self.container(name).start()
        self._wait_ready([self.host(name)])

    # --- state: keys and secrets, generated once -------------------------------------------------------

    def _ensure_state(self) -> dict:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        previous = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        if not self.private_key_path.exists():
            say("generating the lab SSH key pair")
            _write_key_pair(self.private_key_path, comment="pihalb-lab")
        hosts = {}
        for host in self.hosts:
            key_path = self._host_key_path(host)
            if not key_path.exists():
                key_path.parent.mkdir(parents=True, exist_ok=True)
                _write_key_pair(key_path, comment=f"root@{host.name}")
            public_key = _public_key_path(key_path).read_text().split()
            hosts[host.name] = {
                "address": str(host.address),
                "container": host.container_name,
                "host_key": f"{public_key[0]} {public_key[1]}",
            }
        state = {
            "hosts": hosts,
            "private_key_path": str(self.private_key_path),
            "ssh_user": self.ssh_user,
            "vip": str(self.vip),
            "vrrp_password": previous.get("vrrp_password") or _random_secret(VRRP_PASSWORD_LENGTH),
            "stats_password": previous.get("stats_password") or _random_secret(STATS_PASSWORD_LENGTH),
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")
        self.state_file.chmod(0o600)
        return state

    # --- images ------------------------------------------------------------------------------------------

    def _ensure_base_image(self) -> Image:
        """The base the host image and the program's images build FROM: local, else pulled, else debootstrapped."""
        try:
            image = self.docker.images.get(BASE_IMAGE)
            say(f"base image {BASE_IMAGE}: present")
            return image
        except ImageNotFound:
            pass
        repository, tag = BASE_IMAGE.split(":")
        try:
            say(f"base image {BASE_IMAGE}: pulling")
            return self.docker.images.pull(repository, tag=tag)
        except DockerException as error:
            say(f"base image {BASE_IMAGE}: pull failed ({_first_line(error)}); building it with debootstrap")
        return self._import_debootstrapped_base(repository, tag)

    def _import_debootstrapped_base(self, repository: str, tag: str) -> Image:
        _ensure_command("debootstrap", package="debootstrap")
        with tempfile.TemporaryDirectory(prefix="pihalb-lab-rootfs-", dir="/var/tmp") as work:
            rootfs = Path(work) / "rootfs"
            _run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR], timeout=900)
            (rootfs / "etc/apt/sources.list").write_text(SOURCES_LIST)
            for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / cache).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            say(f"base image {BASE_IMAGE}: importing the debootstrapped root file system")
            tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            try:
                result = self.docker.api.import_image_from_stream(
                    tar.stdout,
                    repository=repository,
                    tag=tag,
                    changes=[
                        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        'CMD ["bash"]',
                        f"LABEL {LABEL_IMPORTED_BASE}=true",
                    ],
                )
            finally:
                tar.stdout.close()
                tar_status = tar.wait(timeout=60)
        if tar_status != 0 or '"error' in str(result):
            raise LabError(f"importing the debootstrapped base failed (tar exit {tar_status}): {result}")
        return self.docker.images.get(BASE_IMAGE)

    def _ensure_host_image(self, base: Image) -> Image:
        """Build the host image only when its build context or its base changed (recorded in a label)."""
        fingerprint = _fingerprint(_context_bytes(HOST_CONTEXT), base.id.encode())
        try:
            image = self.docker.images.get(HOST_IMAGE)
            if image.labels.get(LABEL_CONTEXT) == fingerprint:
                say(f"host image {HOST_IMAGE}: up to date")
                return image
        except ImageNotFound:
            pass
        say(f"host image {HOST_IMAGE}: building")
        build_log: list[str] = []
        chunks = self.docker.api.build(
            path=str(HOST_CONTEXT),
            tag=HOST_IMAGE,
            labels={LABEL_CONTEXT: fingerprint, LABEL_LAB: "host-image"},
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in chunks:
            if "error" in chunk:
                raise LabError(f"building {HOST_IMAGE} failed: {chunk['error']}\n" + "".join(build_log[-30:]))
            line = chunk.get("stream", "")
            build_log.append(line)
            if line.startswith("Step "):
                say(f"  {line.strip()[:110]}")
        return self.docker.images.get(HOST_IMAGE)

    def _remove_unused_host_images(self, current: Image) -> None:
        """Drop host images left behind by a rebuild once no container uses them."""
        for image in self.docker.images.list(filters={"label": f"{LABEL_LAB}=host-image"}):
            if image.id != current.id:
                try:
                    self.docker.images.remove(image.id)
                    say(f"removed the previous host image {image.short_id}")
                except APIError:
                    pass  # still in use by a container outside the inventory: `down` removes both

    def _remove_image(self, name: str, only_if_label: str | None = None) -> None:
        try:
            image = self.docker.images.get(name)
        except ImageNotFound:
            return
        if only_if_label and only_if_label not in image.labels:
            say(f"keeping {name}: the lab did not create it")
            return
        say(f"removing image {name}")
        self.docker.images.remove(image.id, force=True)

    def _base_image_or_fail(self) -> Image:
        try:
            return self.docker.images.get(BASE_IMAGE)
        except ImageNotFound as error:
            raise LabError(f"{BASE_IMAGE} is not on this engine; run `python -m lab up`") from error

    # --- network and containers --------------------------------------------------------------------------

    def _ensure_network(self) -> None:
        existing = self.docker.networks.list(names=[NETWORK])
        if existing:
            configs = existing[0].attrs.get("IPAM", {}).get("Config") or [{}]
            if configs[0].get("Subnet") != str(self.subnet):
                raise LabError(
                    f"network {NETWORK} has subnet {configs[0].get('Subnet')}, the stack wants {self.subnet}; "
                    "run `python -m lab down` first"
                )
            say(f"network {NETWORK} {self.subnet}: present")
            return
        say(f"network {NETWORK}: creating {self.subnet} (gateway {self.gateway})")
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(self.subnet), gateway=str(self.gateway))])
        try:
            self.docker.networks.create(NETWORK, driver="bridge", ipam=ipam, labels={LABEL_LAB: "network"})
        except APIError as error:
            raise LabError(f"cannot create network {NETWORK} on {self.subnet}: {error.explanation}") from error

    def _host_options(self, host: Host, image: Image) -> dict:
        """The container's whole definition; its hash decides whether an existing container is still right."""
        return {
            "image": image.id,
            "name": host.container_name,
            "hostname": host.name,
            "cap_add": HOST_CAPABILITIES,
            "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            "cgroupns": "host",
            "device_cgroup_rules": ["a *:* rwm"],
            "volumes": {
                "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
                host.volume_name: {"bind": "/var/lib/docker", "mode": "rw"},
            },
            "tmpfs": {"/run": "", "/run/lock": ""},
            "sysctls": HOST_SYSCTLS,
            "network": NETWORK,
            "address": str(host.address),
        }

    def _ensure_container(self, host: Host, image: Image) -> bool:
        """Create (with keys in place) and start host's container as needed; True when it was started."""
        options = self._host_options(host, image)
        spec = _fingerprint(json.dumps(options, sort_keys=True).encode())
        try:
            container = self.docker.containers.get(host.container_name)
        except NotFound:
            container = None
        if container is not None and container.labels.get(LABEL_SPEC) != spec:
            say(f"{host.name}: image or settings changed, recreating {host.container_name}")
            container.remove(force=True)
            self._remove_volume(host.volume_name)
            container = None
        if container is None:
            say(f"{host.name}: creating {host.container_name} at {host.address}")
            container = self._create_container(host, options, spec)
            container.put_archive("/", self._host_files(host))
        if container.status == "running":
            return False
        say(f"{host.name}: starting")
        container.start()
        return True

    def _create_container(self, host: Host, options: dict, spec: str) -> Container:
        create = {k: v for k, v in options.items() if k != "address"}
        endpoint = self.docker.api.create_endpoint_config(ipv4_address=options["address"])
        self.docker.volumes.create(host.volume_name, labels={LABEL_LAB: "docker-volume"})
        return self.docker.containers.create(
            **create,
            networking_config={NETWORK: endpoint},
            labels={LABEL_LAB: host.name, LABEL_SPEC: spec},
            detach=True,
        )

    def _remove_volume(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.docker.volumes.get(name).remove(force=True)

    def _host_files(self, host: Host) -> bytes:
        """A tar of the pinned host key pair and pi's authorized_keys, owned and moded as sshd demands."""
        key_path = self._host_key_path(host)
        lab_public_key = _public_key_path(self.private_key_path).read_bytes()
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            _add_file(tar, "etc/ssh/ssh_host_ed25519_key", key_path.read_bytes(), 0o600, 0)
            _add_file(tar, "etc/ssh/ssh_host_ed25519_key.pub", _public_key_path(key_path).read_bytes(), 0o644, 0)
            ssh_dir = tarfile.TarInfo("home/pi/.ssh")
            ssh_dir.type, ssh_dir.mode, ssh_dir.uid, ssh_dir.gid = tarfile.DIRTYPE, 0o700, PI_UID, PI_UID
            ssh_dir.mtime = int(time.time())
            tar.addfile(ssh_dir)
            _add_file(tar, "home/pi/.ssh/authorized_keys", lab_public_key, 0o600, PI_UID)
        return buffer.getvalue()

    # --- readiness -------------------------------------------------------------------------------------

    def _wait_ready(self, hosts: list[Host], timeout: int = READY_TIMEOUT_S) -> None:
        """Wait, bounded, until each host's systemd has booted and `pi` logs in over SSH with the pinned key."""
        deadline = time.monotonic() + timeout
        state = self.state()
        pending = {host.name: host for host in hosts}
        last_problem: dict[str, str] = {}
        while pending:
            for name, host in list(pending.items()):
                problem = self._readiness_problem(host, state["hosts"][name]["host_key"])
                if problem is None:
                    del pending[name]
                else:
                    last_problem[name] = problem
            if not pending:
                break
            if time.monotonic() > deadline:
                details = "\n".join(f"  {name}: {last_problem[name]}" for name in pending)
                raise LabError(
                    f"hosts not ready after {timeout}s:\n{details}\n"
                    f"look inside with: docker exec {NAME_PREFIX}<name> journalctl -b --no-pager"
                )
            time.sleep(1)

    def _readiness_problem(self, host: Host, pinned_host_key: str) -> str | None:
        """None when the host is ready, else what is still missing (for the timeout message)."""
        try:
            _, output = self.sh(host.name, "systemctl is-system-running", check=False, timeout=10)
        except APIError as error:
            return f"docker exec failed: {_first_line(error)}"
        systemd_state = (output.strip().splitlines() or ["?"])[-1]
        if systemd_state not in ("running", "degraded"):
            return f"systemd is {systemd_state!r}"
        ssh_problem = self._ssh_problem(host, pinned_host_key)
        if ssh_problem:
            return ssh_problem
        failed = ""
        if systemd_state == "degraded":
            _, units = self.sh(host.name, "systemctl --failed --no-legend --plain | cut -d' ' -f1", check=False)
            failed = f" (failed units: {' '.join(units.split())})"
        say(f"{host.name}: ready at {host.address}, systemd {systemd_state}{failed}, ssh as {self.ssh_user} ok")
        return None

    def _ssh_problem(self, host: Host, pinned_host_key: str) -> str | None:
        """Log in as the SSH user with the lab key, trusting only the pinned host key, and check sudo -n."""
        key_type, key_data = pinned_host_key.split()[:2]
        client = paramiko.SSHClient()
        client.get_host_keys().add(str(host.address), key_type, paramiko.Ed25519Key(data=base64.b64decode(key_data)))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                str(host.address),
                username=self.ssh_user,
                key_filename=str(self.private_key_path),
                look_for_keys=False,
                allow_agent=False,
                timeout=SSH_TIMEOUT_S,
                banner_timeout=SSH_TIMEOUT_S,
                auth_timeout=SSH_TIMEOUT_S,
            )
            _, stdout, _ = client.exec_command("sudo -n true && echo sudo-ok", timeout=SSH_TIMEOUT_S)
            if stdout.read().decode().strip() != "sudo-ok":
                return f"ssh works but `sudo -n` does not for {self.ssh_user}"
            return None
        except (OSError, paramiko.SSHException) as error:
            return f"ssh {self.ssh_user}@{host.address}: {type(error).__name__}: {_first_line(error)}"
        finally:
            client.close()

    def _carries_vip(self, ip_addr_output: str) -> bool:
        return f"inet {self.vip.ip}/" in ip_addr_output

    def _exec_with_stdin(self, name: str, command: list[str], chunks) -> str:
        """Run `command` in host `name` with `chunks` streamed to its stdin (what `docker exec -i` does)."""
        api = self.docker.api
        exec_id = api.exec_create(self.container(name).id, command, stdin=True, stdout=True, stderr=True)["Id"]
        stream = api.exec_start(exec_id, socket=True)
        raw_socket = getattr(stream, "_sock", stream)
        try:
            for chunk in chunks:
                raw_socket.sendall(chunk)
            raw_socket.shutdown(socket.SHUT_WR)
            output = b"".join(data for _, data in frames_iter(stream, tty=False)).decode(errors="replace")
        finally:
            stream.close()
        exit_code = api.exec_inspect(exec_id)["ExitCode"]
        if exit_code != 0:
            raise LabError(f"{name}: `{' '.join(command)}` exited {exit_code}:\n{output}")
        return output


# --- helpers -----------------------------------------------------------------------------------------------


def _connect_engine() -> docker.DockerClient:
    """A client of a running engine; start `dockerd` (installing docker.io when absent) if none answers."""
    try:
        client = docker.from_env(timeout=BUILD_TIMEOUT_S)
        client.ping()
        return client
    except DockerException:
        if os.environ.get("DOCKER_HOST"):
            raise LabError(f"the Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer") from None
    _ensure_command("dockerd", package="docker.io")
    log_path = Path(tempfile.gettempdir()) / "pihalb-lab-dockerd.log"
    say(f"no Docker engine answers: starting dockerd (log: {log_path})")
    with open(log_path, "ab") as log:
        subprocess.Popen(
            ["dockerd"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            client = docker.from_env(timeout=BUILD_TIMEOUT_S)
            client.ping()
            say("dockerd answers")
            return client
        except DockerException:
            continue
    tail = log_path.read_text(errors="replace").splitlines()[-20:]
    raise LabError(f"dockerd did not answer within {ENGINE_START_TIMEOUT_S}s; log tail:\n" + "\n".join(tail))


def _ensure_command(command: str, package: str) -> None:
    """apt-get install `package` when `command` is missing (a fresh CI machine has neither)."""
    if shutil.which(command):
        return
    say(f"{command} missing: apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update"], timeout=300, env=env)
    _run(["apt-get", "install", "-y", "--no-install-recommends", package], timeout=600, env=env)


def _run(command: list[str], timeout: int, env: dict | None = None) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as error:
        raise LabError(f"`{' '.join(command)}` did not finish within {timeout}s") from error
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).splitlines()[-30:]
        raise LabError(f"`{' '.join(command)}` exited {result.returncode}:\n" + "\n".join(tail))


def _write_key_pair(private_path: Path, comment: str) -> None:
    """An OpenSSH ed25519 key pair (private 0600, public with `comment`), made without ssh-keygen."""
    key = Ed25519PrivateKey.generate()
    private_bytes = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as private_file:
        private_file.write(private_bytes)
    public_line = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    _public_key_path(private_path).write_text(f"{public_line} {comment}\n")


def _public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def _add_file(tar: tarfile.TarFile, name: str, content: bytes, mode: int, owner: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(content), mode, owner, owner, int(time.time())
    tar.addfile(info, io.BytesIO(content))


def _random_secret(length: int) -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))


def _context_bytes(directory: Path) -> bytes:
    """Every file of a build context, with its relative path, in a stable order."""
    parts = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        parts.append(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return b"\0\0".join(parts)


def _fingerprint(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
