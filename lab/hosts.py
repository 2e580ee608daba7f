"""The hosts as containers: their network, their definition, their keys put in place, and readiness.

A host is ready when systemd has booted and the inventory's user logs in over SSH with the lab key,
trusting only the host key the lab pinned, and may `sudo -n`: what the program needs of a Pi.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import docker
import paramiko
from docker.errors import APIError, NotFound
from docker.models.containers import Container
from docker.models.images import Image
from docker.types import IPAMConfig, IPAMPool

from common.files import Entry, tar_archive
from components.render import sha256
from components.settings import Host
from harness.ssh import Login, SshError
from lab.docker_engine import DockerEngine
from lab.inventory import HOST_USER, LABEL_LAB, NAME_PREFIX, NETWORK, Inventory, container_name, volume_name
from lab.keys import Keys, public_key_path
from lab.output import LabError, first_line, say
from lab.shell import Shell

LABEL_SPEC = "pihalb-lab.spec-sha256"
PI_UID = 1000  # fixed by lab/host/Dockerfile
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20
SSH_TIMEOUT_S = 5

# `--privileged` fails on this machine kind (no CAP_SYS_RESOURCE in the bounding set); this explicit set is
# enough for systemd and for a Docker daemon inside the host (see shared lab notes).
HOST_CAPABILITIES = [
    "SYS_ADMIN", "NET_ADMIN", "NET_RAW", "SYS_PTRACE", "MKNOD", "AUDIT_CONTROL", "SYS_NICE", "IPC_LOCK",
    "NET_BROADCAST", "SYSLOG", "DAC_READ_SEARCH", "LINUX_IMMUTABLE", "SYS_BOOT", "SYS_RAWIO",
]  # fmt: skip
# Docker mounts /proc/sys read-only in an unprivileged container, so `sysctl -w` fails inside a host; the
# forwarding VRRP needs is set at creation instead, so a script that reads 1 first has nothing to write.
HOST_SYSCTLS = {"net.ipv4.ip_forward": "1"}
# This VM's kernel has RT group scheduling, where a cgroup without a real-time budget may not run SCHED_RR:
# each host gets 5 % of a CPU's time for it (keepalived's VRRP process uses well under 1 %), passed on to
# its keepalived unit by the host image (lab/host/rt-budget.sh). A Pi's Debian or Ubuntu kernel needs none.
RT_CGROUP = Path("/sys/fs/cgroup/cpu")
RT_BUDGET_US = 50_000  # of every 1,000,000 us period
RT_HOSTS = 16  # room in Docker's parent cgroup (16 x 5 % of the root's 95 %)


class Hosts:
    """The inventory's hosts on one engine."""

    def __init__(self, engine: DockerEngine, inventory: Inventory, keys: Keys, shell: Shell):
        self.engine = engine
        self.inventory = inventory
        self.keys = keys
        self.shell = shell

    @property
    def _docker(self) -> docker.DockerClient:
        return self.engine.client

    # --- network ------------------------------------------------------------------------------------------

    def ensure_network(self) -> None:
        subnet, gateway = self.inventory.subnet, self.inventory.gateway
        existing = self._docker.networks.list(names=[NETWORK])
        if existing:
            configs = existing[0].attrs.get("IPAM", {}).get("Config") or [{}]
            if configs[0].get("Subnet") != str(subnet):
                raise LabError(
                    f"network {NETWORK} has subnet {configs[0].get('Subnet')}, the stack wants {subnet}; "
                    "run `python -m lab down` first"
                )
            say(f"network {NETWORK} {subnet}: present")
            return
        say(f"network {NETWORK}: creating {subnet} (gateway {gateway})")
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(gateway))])
        try:
            self._docker.networks.create(NETWORK, driver="bridge", ipam=ipam, labels={LABEL_LAB: "network"})
        except APIError as error:
            raise LabError(f"cannot create network {NETWORK} on {subnet}: {error.explanation}") from error

    # --- containers ---------------------------------------------------------------------------------------

    def ensure(self, host: Host, image: Image) -> str:
        """Create (with keys in place) and start host's container as needed: "created", "started" or "running"."""
        options = _options(host, image)
        spec = sha256(json.dumps(options, sort_keys=True))
        name = container_name(host)
        try:
            container = self._docker.containers.get(name)
        except NotFound:
            container = None
        if container is not None and container.labels.get(LABEL_SPEC) != spec:
            say(f"{host.name}: image or settings changed, recreating {name}")
            container.remove(force=True)
            container = None
        created = container is None
        if created:
            say(f"{host.name}: creating {name} at {host.address}")
            self._remove_volume(volume_name(host.name))  # a new host gets a new disk, not an old one's Docker state
            container = self._create(host, options, spec)
            container.put_archive("/", self._key_files(host))
        if container.status == "running":
            return "running"
        say(f"{host.name}: starting")
        container.start()
        return "created" if created else "started"

    def stop(self, host: Host) -> None:
        """Shut the host down cleanly (systemd gets SIGRTMIN+3), like pulling a Pi's power after halt."""
        say(f"{host.name}: stopping")
        self.shell.container(host.name).stop(timeout=STOP_TIMEOUT_S)

    def start(self, host: Host) -> None:
        """Boot the host again and wait until systemd and SSH answer."""
        say(f"{host.name}: starting")
        self.shell.container(host.name).start()
        self.wait_ready([host])

    def departed(self, inventory: Inventory) -> dict[str, str]:
        """Hosts the lab made that the stack file no longer lists: name -> address."""
        names = {host.name for host in inventory.hosts}
        departed = {}
        for container in self._docker.containers.list(all=True, filters={"label": LABEL_LAB}):
            name = container.labels.get(LABEL_LAB, "")
            if container.name == f"{NAME_PREFIX}{name}" and name not in names:
                networks = container.attrs["NetworkSettings"]["Networks"]
                departed[name] = networks.get(NETWORK, {}).get("IPAMConfig", {}).get("IPv4Address", "")
        return departed

    def remove(self, name: str) -> None:
        """A host and its disk, gone."""
        say(f"{name}: left the stack file and the stack holds nothing on it: removing it and its disk")
        self._docker.containers.get(f"{NAME_PREFIX}{name}").remove(force=True)
        self._remove_volume(volume_name(name))

    def remove_all(self) -> None:
        """Every container, volume and network the lab labelled, whatever the inventory says now."""
        lab_filter = {"label": LABEL_LAB}
        for container in self._docker.containers.list(all=True, filters=lab_filter):
            say(f"removing container {container.name}")
            container.remove(force=True)
        for volume in self._docker.volumes.list(filters=lab_filter):
            say(f"removing volume {volume.name}")
            volume.remove(force=True)
        for network in self._docker.networks.list(names=[NETWORK]):
            say(f"removing network {network.name}")
            network.remove()

    def _create(self, host: Host, options: dict, spec: str) -> Container:
        create = {k: v for k, v in options.items() if k != "address"}
        endpoint = self._docker.api.create_endpoint_config(ipv4_address=options["address"])
        self._docker.volumes.create(volume_name(host.name), labels={LABEL_LAB: "docker-volume"})
        return self._docker.containers.create(
            **create,
            networking_config={NETWORK: endpoint},
            labels={LABEL_LAB: host.name, LABEL_SPEC: spec},
            detach=True,
        )

    def _remove_volume(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._docker.volumes.get(name).remove(force=True)

    def _key_files(self, host: Host) -> bytes:
        """A tar of the pinned host key pair and pi's authorized_keys, owned and moded as sshd demands."""
        host_key = self.keys.host_key_path(host)
        home = f"home/{HOST_USER}"
        return tar_archive(
            [
                Entry("etc/ssh/ssh_host_ed25519_key", host_key.read_bytes(), 0o600),
                Entry("etc/ssh/ssh_host_ed25519_key.pub", public_key_path(host_key).read_bytes(), 0o644),
                Entry(f"{home}/.ssh", None, 0o700, PI_UID),
                Entry(f"{home}/.ssh/authorized_keys", self.keys.public_key_path.read_bytes(), 0o600, PI_UID),
            ]
        )

    # --- readiness ----------------------------------------------------------------------------------------

    def wait_ready(self, hosts: list[Host], timeout: int = READY_TIMEOUT_S) -> None:
        """Wait, bounded, until each host's systemd has booted and its user logs in over SSH with the pinned key."""
        deadline = time.monotonic() + timeout
        state = self.keys.load()
        pending = {host.name: host for host in hosts}
        last_problem: dict[str, str] = {}
        while pending:
            for name, host in list(pending.items()):
                login = Login(
                    host=str(host.address),
                    port=self.inventory.settings.port(host),
                    user=self.inventory.settings.user(host),
                    private_key=state.private_key,
                    host_key=state.hosts[name].host_key,
                )
                problem = self._readiness_problem(host, login)
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

    def _readiness_problem(self, host: Host, login: Login) -> str | None:
        """None when the host is ready, else what is still missing (for the timeout message)."""
        try:
            _, output = self.shell.sh(host.name, "systemctl is-system-running", check=False, timeout=10)
        except APIError as error:
            return f"docker exec failed: {first_line(error)}"
        systemd_state = (output.strip().splitlines() or ["?"])[-1]
        if systemd_state not in ("running", "degraded"):
            return f"systemd is {systemd_state!r}"
        ssh_problem = _ssh_problem(login)
        if ssh_problem:
            return ssh_problem
        failed = ""
        if systemd_state == "degraded":
            _, units = self.shell.sh(host.name, "systemctl --failed --no-legend --plain | cut -d' ' -f1", check=False)
            failed = f" (failed units: {' '.join(units.split())})"
        say(f"{host.name}: ready at {host.address}, systemd {systemd_state}{failed}, ssh as {login.user} ok")
        return None


def _ssh_problem(login: Login) -> str | None:
    """Log in with the lab key, trusting only the pinned host key, and check `sudo -n`."""
    try:
        code, out, _ = login.run("sudo -n true && echo sudo-ok", timeout=SSH_TIMEOUT_S)
    except SshError as error:
        return first_line(error)  # names user, address and port
    except (OSError, paramiko.SSHException) as error:
        return f"ssh {login.user}@{login.host}: {type(error).__name__}: {first_line(error)}"
    if code != 0 or out.strip() != "sudo-ok":
        return f"ssh works but `sudo -n` does not for {login.user}"
    return None


def rt_group_scheduling() -> bool:
    return (RT_CGROUP / "cpu.rt_runtime_us").exists()


def ensure_rt_budget() -> None:
    """Docker's parent cgroup needs the budget its containers take (dockerd sets none unless told)."""
    if not rt_group_scheduling():
        return
    parent = RT_CGROUP / "docker" / "cpu.rt_runtime_us"
    needed = RT_HOSTS * RT_BUDGET_US
    try:
        parent.parent.mkdir(exist_ok=True)
        if int(parent.read_text()) < needed:
            parent.write_text(str(needed))
    except OSError as error:
        raise LabError(
            f"cannot give Docker's cgroup a real-time budget ({parent}: {error}); run the lab as root, or start "
            f"dockerd with --cpu-rt-runtime={needed}"
        ) from None


def _options(host: Host, image: Image) -> dict:
    """The container's whole definition; its hash decides whether an existing container is still right."""
    return {
        "image": image.id,
        "name": container_name(host),
        "hostname": host.name,
        "cap_add": HOST_CAPABILITIES,
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "cgroupns": "host",
        "device_cgroup_rules": ["a *:* rwm"],
        "volumes": {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            volume_name(host.name): {"bind": "/var/lib/docker", "mode": "rw"},
        },
        "tmpfs": {"/run": "", "/run/lock": ""},
        "sysctls": HOST_SYSCTLS,
        # A reboot exits the container with 129 and boots it again; poweroff exits 0 and a kill cancels the
        # policy, so those stay off (lab/host/Dockerfile): a Pi's power, not a watcher around the lab.
        "restart_policy": {"Name": "on-failure"},
        **({"cpu_rt_runtime": RT_BUDGET_US} if rt_group_scheduling() else {}),
        "network": NETWORK,
        "address": str(host.address),
    }
