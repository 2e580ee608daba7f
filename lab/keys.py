"""The lab's state, generated once into lab/.state/: the login key pair, each host's pinned host key,
and the two passwords; `lab.json` records them for the stack layer (scripts/deploy-dev, drills).

A key or a password already there is kept, so `up` after `up` changes nothing a deployment depends on.
"""

from __future__ import annotations

import json
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from common.files import write_private
from components.settings import Host
from lab.inventory import Inventory, container_name
from lab.output import LabError, say

VRRP_PASSWORD_LENGTH = 8  # keepalived's PASS authentication uses only the first 8 characters
STATS_PASSWORD_LENGTH = 20
SECRET_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class HostRecord:
    """What the lab recorded of one host: where it is, its container, its pinned host key ("type base64")."""

    address: str
    container: str
    host_key: str


@dataclass(frozen=True)
class State:
    """The contents of lab.json."""

    hosts: dict[str, HostRecord]
    private_key_path: Path
    vip: str
    vrrp_password: str
    stats_password: str

    @property
    def private_key(self) -> str:
        return self.private_key_path.read_text()

    def to_json(self) -> str:
        data = {
            "hosts": {name: vars(record) for name, record in self.hosts.items()},
            "private_key_path": str(self.private_key_path),
            "vip": self.vip,
            "vrrp_password": self.vrrp_password,
            "stats_password": self.stats_password,
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> State:
        data = json.loads(text)
        return cls(
            hosts={name: HostRecord(**record) for name, record in data["hosts"].items()},
            private_key_path=Path(data["private_key_path"]),
            vip=data["vip"],
            vrrp_password=data["vrrp_password"],
            stats_password=data["stats_password"],
        )


class Keys:
    """lab/.state/ of one repository checkout."""

    def __init__(self, directory: Path, inventory: Inventory):
        self.directory = directory
        self.inventory = inventory

    @property
    def state_file(self) -> Path:
        return self.directory / "lab.json"

    @property
    def private_key_path(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def public_key_path(self) -> Path:
        return public_key_path(self.private_key_path)

    def host_key_path(self, host: Host) -> Path:
        return self.directory / "hosts" / host.name / "ssh_host_ed25519_key"

    def load(self) -> State:
        try:
            return State.from_json(self.state_file.read_text())
        except FileNotFoundError as error:
            raise LabError(f"{self.state_file} is missing; run `python -m lab up`") from error
        except (ValueError, KeyError, TypeError) as error:
            problem = f"{self.state_file} is not what the lab writes ({error!r})"
            raise LabError(f"{problem}; run `python -m lab down` and `python -m lab up`") from error

    def ensure(self) -> State:
        """Generate whatever key or secret is missing, keep the rest, and record it all in lab.json."""
        self.directory.mkdir(parents=True, exist_ok=True)
        previous = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        if not self.private_key_path.exists():
            say("generating the lab SSH key pair")
            write_key_pair(self.private_key_path, comment="pihalb-lab")
        hosts = {}
        for host in self.inventory.hosts:
            key_path = self.host_key_path(host)
            if not key_path.exists():
                key_path.parent.mkdir(parents=True, exist_ok=True)
                write_key_pair(key_path, comment=f"root@{host.name}")
            key_type, key_data = public_key_path(key_path).read_text().split()[:2]
            hosts[host.name] = HostRecord(str(host.address), container_name(host), f"{key_type} {key_data}")
        state = State(
            hosts=hosts,
            private_key_path=self.private_key_path,
            vip=str(self.inventory.vip),
            vrrp_password=previous.get("vrrp_password") or random_secret(VRRP_PASSWORD_LENGTH),
            stats_password=previous.get("stats_password") or random_secret(STATS_PASSWORD_LENGTH),
        )
        write_private(self.state_file, state.to_json())
        return state


def write_key_pair(private_path: Path, comment: str) -> None:
    """An OpenSSH ed25519 key pair (private 0600, public with `comment`), made without ssh-keygen."""
    key = Ed25519PrivateKey.generate()
    write_private(private_path, key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    public_line = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    public_key_path(private_path).write_text(f"{public_line} {comment}\n")


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def random_secret(length: int) -> str:
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))
