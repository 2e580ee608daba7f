"""The lab's inventory: the program's own validated settings of the dev stack, plus the lab's names.

The hosts, their roles and priorities, the VIP, the SSH login and the HAProxy ports come from
`components.settings` applied to `Pulumi.dev.yaml`: the lab builds exactly the machines the program
will be applied to, and a stack file the program refuses, the lab refuses with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from components.settings import CLUSTER_KEY, CONFIG_NAMESPACE, ConfigError, Host, Settings, parse_cluster
from harness.program import stack_file_config
from lab.output import LabError

STACK = "dev"
CLUSTER_CONFIG_KEY = f"{CONFIG_NAMESPACE}:{CLUSTER_KEY}"

NETWORK = "pihalb-lab"
NAME_PREFIX = "pihalb-lab-"
LABEL_LAB = "pihalb-lab"  # on everything the lab creates, so `down` finds it all
HOST_USER = "pi"  # the only login user of a lab host (lab/host/Dockerfile)
HOST_SSH_PORT = 22


def container_name(host: Host) -> str:
    return f"{NAME_PREFIX}{host.name}"


def volume_name(name: str) -> str:
    """Host `name`'s /var/lib/docker, kept on a volume so the inner daemon does not write to overlayfs."""
    return f"{NAME_PREFIX}{name}-docker"


@dataclass(frozen=True)
class Inventory:
    """The hosts of the stack as the lab builds them; the lab network is the VIP's subnet."""

    stack: str
    settings: Settings

    @classmethod
    def from_stack(cls, stack: str = STACK) -> Inventory:
        """Parse the stack file's cluster with the program's own models (host keys come later, from the lab)."""
        try:
            raw = stack_file_config(stack).get(CLUSTER_CONFIG_KEY)
            inventory = cls(stack, Settings(cluster=parse_cluster(raw), host_keys={}))
        except (OSError, ConfigError) as error:
            raise LabError(f"cannot read the lab inventory from Pulumi.{stack}.yaml:\n{error}") from error
        inventory.check()
        return inventory

    def check(self) -> None:
        """What the program allows but the lab's Docker network or host image cannot give."""
        reserved = {self.gateway, self.subnet.network_address, self.subnet.broadcast_address}
        for host in self.hosts:
            if host.address in reserved:
                raise LabError(f"{host.name}: {host.address} is not a free host address in {self.subnet}")
            if (self.settings.user(host), self.settings.port(host)) != (HOST_USER, HOST_SSH_PORT):
                raise LabError(
                    f"{host.name}: a lab host is reached as {HOST_USER} on port {HOST_SSH_PORT} "
                    f"(lab/host/Dockerfile); Pulumi.{self.stack}.yaml sets another login"
                )

    @property
    def hosts(self) -> list[Host]:
        return list(self.settings.cluster.hosts)

    @property
    def servers(self) -> list[Host]:
        """The servers in inventory order: server N's page says "Hello world from server N!"."""
        return self.settings.servers

    @property
    def balancers(self) -> list[Host]:
        """The two balancers, the intended VRRP MASTER first."""
        return self.settings.balancers

    @property
    def vip(self) -> IPv4Interface:
        return self.settings.cluster.vrrp.vip

    @property
    def subnet(self) -> IPv4Network:
        return self.vip.network

    @property
    def gateway(self) -> IPv4Address:
        """The Docker bridge's address: where the hosts see a client of the lab come from."""
        return self.subnet.network_address + 1

    @property
    def frontend_port(self) -> int:
        return self.settings.cluster.haproxy.frontend_port

    @property
    def server_port(self) -> int:
        """Where nginx answers on each server."""
        return self.settings.cluster.nginx.server_port

    @property
    def stats_port(self) -> int:
        return self.settings.cluster.haproxy.stats_port

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        names = ", ".join(h.name for h in self.hosts)
        raise LabError(f"no host {name!r} in Pulumi.{self.stack}.yaml (hosts: {names})")

    def unused_address(self) -> IPv4Address:
        """An address in the lab subnet that no host, the VIP nor the gateway has (nothing answers there)."""
        taken = {self.gateway, self.vip.ip, *(h.address for h in self.hosts)}
        return next(a for a in reversed(list(self.subnet.hosts())) if a not in taken)
