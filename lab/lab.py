"""The lab: the stack's five Raspberry Pis simulated as systemd containers on this machine's Docker engine.

Each host is a real SSH + sudo + systemd machine (no Docker preinstalled), at the address the stack file gives
it, so the program's real host scripts run on it unchanged. Everything is derived from the program's settings
of Pulumi.dev.yaml and generated once into lab/.state/, so `up` is repeatable and drills can hold a `Lab`.

This module only composes: inventory (what hosts), keys (state and secrets), images, hosts (network,
containers, readiness), shell (commands inside a host).
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import docker
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from components.cluster import vip_url
from components.settings import Host
from harness.backend import Backend
from harness.state import hosts_of
from lab import acme, build_cache
from lab.docker_engine import DockerEngine
from lab.hosts import Hosts, ensure_rt_budget
from lab.images import BASE_IMAGE, BASE_IMAGE_ALIAS, Images
from lab.inventory import STACK, Inventory, container_name
from lab.keys import Keys, State
from lab.output import LabError, say
from lab.shell import Shell

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVED_TIMEOUT_S = 60


@dataclass
class HostStatus:
    """One host as `python -m lab status` shows it."""

    name: str
    address: str
    container: str = "missing"
    systemd: str = "-"
    docker: str = "-"
    keepalived: str = "-"
    vip: bool = False


class Lab:
    """The simulated Pis: create, inspect and tear down; also the drills' and tests' handle on them."""

    def __init__(self, root: Path, inventory: Inventory):
        self.root = root
        self.inventory = inventory
        self.state_dir = root / "lab" / ".state"
        self.engine = DockerEngine()
        self.keys = Keys(self.state_dir, inventory)
        self.images = Images(self.engine)
        self.shell = Shell(self.engine, inventory)
        self._seeded: dict[str, str] = {}  # host -> the container whose daemon was seeded in this process
        self._hosts = Hosts(self.engine, inventory, self.keys, self.shell)

    @classmethod
    def from_stack(cls, root: Path = REPO_ROOT, stack: str = STACK) -> Lab:
        """The lab of a stack file (the dev stack unless told): the lab network is the VIP's subnet."""
        return cls(root, Inventory.from_stack(stack))

    # --- the topology, from the stack settings --------------------------------------------------------------

    @property
    def hosts(self) -> list[Host]:
        return self.inventory.hosts

    @property
    def servers(self) -> list[Host]:
        """In inventory order: `servers[i]`'s page says "Hello world from server {i + 1}!"."""
        return self.inventory.servers

    @property
    def balancers(self) -> list[Host]:
        """The two balancers, the intended VRRP MASTER first."""
        return self.inventory.balancers

    @property
    def master(self) -> Host:
        """The balancer that holds the VIP when all is well (the higher priority)."""
        return self.inventory.balancers[0]

    @property
    def backup(self) -> Host:
        return self.inventory.balancers[1]

    @property
    def vip(self) -> IPv4Interface:
        return self.inventory.vip

    @property
    def gateway(self) -> IPv4Address:
        return self.inventory.gateway

    @property
    def frontend_port(self) -> int:
        return self.inventory.frontend_port

    @property
    def server_port(self) -> int:
        return self.inventory.server_port

    @property
    def stats_port(self) -> int:
        return self.inventory.stats_port

    def host(self, name: str) -> Host:
        return self.inventory.host(name)

    def unused_address(self) -> IPv4Address:
        """An address of the lab subnet where nothing answers."""
        return self.inventory.unused_address()

    # --- state and engine -------------------------------------------------------------------------------

    @property
    def stacks_dir(self) -> Path:
        """Where the lab engine keeps each stack's state (its `pulumi login --local` directory)."""
        return self.state_dir / "engine"

    def state(self) -> State:
        """What `up` recorded: hosts with addresses and pinned host keys, key path, generated secrets."""
        return self.keys.load()

    @property
    def docker(self) -> docker.DockerClient:
        """The engine client; starts `dockerd` first when none answers (CI machines start without one)."""
        return self.engine.client

    def container(self, name: str) -> Container:
        """The outer container of host `name`."""
        return self.shell.container(name)

    # --- commands ---------------------------------------------------------------------------------------

    def up(self) -> None:
        """Make the lab exist and answer: reuse whatever is already right, create or fix the rest."""
        started = time.monotonic()
        self.keys.ensure()
        image = self.images.ensure_host(self.images.ensure_base())
        self._hosts.ensure_network()
        ensure_rt_budget()
        done = {host.name: self._hosts.ensure(host, image) for host in self.hosts}
        self._hosts.wait_ready(self.hosts)
        self._retire_departed_hosts()
        self.images.remove_unused_host_images(image)
        self._forget_stacks_of_old_hosts([name for name, what in done.items() if what == "created"])
        running = sum(what == "running" for what in done.values())
        say(f"lab up in {time.monotonic() - started:.1f}s ({len(done) - running} started, {running} already running)")

    def _retire_departed_hosts(self) -> None:
        """A host that left the stack file keeps running while the stack still has resources on it, so that
        a deploy deletes them over its old connection, as `pulumi up` does with a Pi that leaves the stack;
        once the stack holds nothing on it, it is removed with its disk (a Pi unplugged and wiped)."""
        applied = self._addresses_in_stacks()
        for name, address in self._hosts.departed(self.inventory).items():
            if address in applied:
                say(
                    f"{name} ({address}) left the stack file but the stack still has resources on it: kept running"
                    " until a deploy deletes them; the next `lab up` then removes it"
                )
            else:
                self._hosts.remove(name)

    def _addresses_in_stacks(self) -> set[str]:
        """The hosts the lab engine's stacks hold resources on (their connections and providers)."""
        stacks = Backend(self.stacks_dir)
        checkpoints = [stacks.checkpoint(d.name) for d in self.stacks_dir.glob("*") if d.is_dir()]
        return {address for c in checkpoints for resource in c.resources for address in hosts_of(resource)}

    def _forget_stacks_of_old_hosts(self, created: list[str]) -> None:
        """New hosts make the lab engine's stack state describe machines that are gone (this machine restarted,
        `docker rm`): as after reinstalling every Pi, the state is set aside so the next deploy starts afresh.
        Only some hosts new: their resources would be missing, so say what to do instead of guessing."""
        stacks = self.stacks_dir
        if not created or not stacks.exists() or not any(stacks.iterdir()):
            return
        applied = self._addresses_in_stacks()
        created = [name for name in created if str(self.host(name).address) in applied]  # not a host just added
        if not created:
            return
        if len(created) == len(self.hosts):
            aside = self.state_dir / f"engine.old-hosts-{time.strftime('%Y%m%d-%H%M%S')}"
            stacks.rename(aside)
            say(f"every host is new: the stacks' state of the old hosts moved to {aside.relative_to(self.root)}/")
        else:
            say(
                f"warning: {', '.join(created)} created anew, but lab/.state/engine/ says the stacks were applied to"
                " the old ones; run `python -m lab down` and deploy again"
            )

    def down(self, all_images: bool = False) -> None:
        """Remove the hosts, their Docker volumes, the network and lab/.state/ (and with all_images the images and
        the kept HAProxy build, lab/build_cache.py); the lab's Pebble, if it runs, is stopped first (lab/acme.py)."""
        acme.Pebble(self.state_dir / "acme" / "pebble", str(self.gateway), str(self.vip.ip)).stop()
        self._hosts.remove_all()
        if self.state_dir.exists():
            say(f"removing {self.state_dir.relative_to(self.root)}/")
            shutil.rmtree(self.state_dir)
        if all_images:
            self.images.remove_all()
            build_cache.forget()
        say("lab down")

    def status(self) -> list[HostStatus]:
        """Per host: container state, address, systemd state, docker/keepalived activity, VIP ownership."""
        report = []
        for host in self.hosts:
            row = HostStatus(host.name, str(host.address))
            report.append(row)
            try:
                container = self.docker.containers.get(container_name(host))
            except NotFound:
                continue
            row.container = container.status
            if container.status == "running":
                _, output = self.read(
                    host.name,
                    "systemctl is-system-running; systemctl is-active docker; systemctl is-active keepalived;"
                    " ip -4 -o addr show dev eth0",
                    check=False,
                    timeout=15,
                )
                lines = output.splitlines() + ["?"] * 3
                row.systemd, row.docker, row.keepalived = lines[:3]
                row.vip = self._carries_vip(output)
        return report

    def sh(self, name: str, command: str, check: bool = True, timeout: int = 60) -> tuple[int, str]:
        """Run `command` as root inside host `name` through docker exec (inspection and fault injection only).

        Bounded by coreutils `timeout` inside the host (exit 124 when it fires). Returns (exit code, stdout+stderr).
        """
        return self.shell.sh(name, command, check=check, timeout=timeout)

    def read(self, name: str, command: str, check: bool = True, timeout: int = 60) -> tuple[int, str]:
        """`sh` for a command that only reads: made again when docker exec lost its output (Shell.read)."""
        return self.shell.read(name, command, check=check, timeout=timeout)

    def seed_base_image(self, name: str) -> bool:
        """Give host `name`'s inner Docker daemon the local base image (no registry here), unless it has it,
        under its own name and its alias (lab.images.BASE_IMAGE_ALIAS): a host added later has both too.

        Once per host container and process (every apply configures every daemon; nothing of the lab's
        removes the base image, and a new host is a new container): False when it was done already."""
        container_id = self.container(name).id
        if self._seeded.get(name) == container_id:
            return False
        self._seed(name)
        self._seeded[name] = container_id
        return True

    def _seed(self, name: str) -> None:
        image = self.images.base_or_fail()
        inspect = f"docker image inspect --format '{{{{.Id}}}}' {BASE_IMAGE}"
        code, output = self.sh(name, inspect, check=False)
        if code == 0 and output.strip() == image.id:
            say(f"{name}: inner daemon already has {BASE_IMAGE}")
            self._ensure_alias(name)
            return
        if self.sh(name, "docker info >/dev/null 2>&1", check=False, timeout=30)[0] != 0:
            raise LabError(f"{name}: no running Docker inside yet (the program's host preparation installs it)")
        say(f"{name}: loading {BASE_IMAGE} into the inner daemon")
        output = self.shell.stream_in(name, ["docker", "load"], image.save(named=True))
        code, inner_id = self.sh(name, inspect, check=False)
        if code != 0 or inner_id.strip() != image.id:
            raise LabError(f"{name}: `docker load` did not give the inner daemon {image.id}:\n{output}")
        self._ensure_alias(name)

    def _ensure_alias(self, name: str) -> None:
        """The alias where it is missing; one a test moved to another image stays where it was put."""
        alias = f"docker image inspect {BASE_IMAGE_ALIAS} >/dev/null 2>&1 || docker tag {BASE_IMAGE} {BASE_IMAGE_ALIAS}"
        self.sh(name, alias)

    def vip_holders(self) -> list[str]:
        """Names of the running hosts whose eth0 carries the VIP (more than one means split brain).

        A host that is not running holds nothing; a running one whose addresses cannot be read (docker exec
        failing or slow on a busy machine) raises LabError: "could not look" is not "does not hold it"."""
        holders = []
        for host in self.hosts:
            try:
                if self.container(host.name).status != "running":
                    continue
            except (LabError, NotFound):
                continue  # a missing host holds nothing
            try:
                code, output = self.read(host.name, "ip -4 -o addr show dev eth0", check=False, timeout=10)
            except APIError as error:
                raise LabError(f"{host.name}: cannot read its addresses: {error}") from error
            if code != 0:
                raise LabError(f"{host.name}: cannot read its addresses (exit {code}): {output.strip()}")
            if self._carries_vip(output):
                holders.append(host.name)
        return holders

    def stop_host(self, name: str) -> None:
        """Shut host `name` down cleanly (systemd gets SIGRTMIN+3), like pulling a Pi's power after halt."""
        self._hosts.stop(self.host(name))

    def wait_ready(self, names: list[str]) -> None:
        """Wait, bounded, until these hosts' systemd has booted and SSH with sudo answers."""
        self._hosts.wait_ready([self.host(name) for name in names])

    def cut_power(self, name: str) -> None:
        """Host `name` loses power at once (SIGKILL): it stays off, whatever its restart policy, until started."""
        say(f"{name}: power cut")
        self.container(name).kill()

    def power_on(self, name: str) -> None:
        """Power comes back to host `name`: it boots, and nobody waits for it (`start_host` does)."""
        say(f"{name}: power on")
        self.container(name).start()

    def start_host(self, name: str) -> None:
        """Boot host `name` again and wait until systemd and SSH answer."""
        self._hosts.start(self.host(name))

    @property
    def vip_url(self) -> str:
        """The program's own `vipUrl` for this lab's settings."""
        return vip_url(self.vip.ip, self.frontend_port)

    def wait_served(self, timeout: float = SERVED_TIMEOUT_S) -> str:
        """Wait, bounded, until a page comes through the VIP (keepalived elects its MASTER after the apply:
        3 adverts of silence at the paper's 1 s); return what answered. LabError when nothing did."""
        deadline = time.monotonic() + timeout
        problem = ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.vip_url, timeout=2) as response:
                    page = response.read().decode(errors="replace")
                match = re.search(r"Hello world from server \d+", page)
                if response.status == 200 and match:
                    return match[0]
                problem = f"HTTP {response.status} without a server's page"
            except OSError as error:
                problem = str(getattr(error, "reason", error))
            time.sleep(0.2)
        raise LabError(
            f"{self.vip_url} did not serve a page within {timeout:.0f}s ({problem}); see `python -m lab status`"
        )

    def _carries_vip(self, ip_addr_output: str) -> bool:
        return f"inet {self.vip.ip}/" in ip_addr_output
