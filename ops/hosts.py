"""Facts about each host, and the few actions ops takes on them, all over the program's pinned-key SSH.

One login per host gathers every fact at once (a bash script on stdin, sections marked `@@name`), so a
status of five Pis is five logins, made in parallel. `Fleet` is what the verbs need from the hosts;
`ScriptedFleet` is the real one, over a `Runner` (SSH on real Pis, `docker exec` in the lab); the unit
tests give a fake.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from components import names
from components.settings import Host, Settings
from harness.ssh import Login, SshError
from ops.certs import Certificate, leaf_command, read_leaf
from ops.config import StackConfig

BOOT_MARK = "/run/pihalb-ops-boot-mark"  # tmpfs: gone after a reboot, which is how ops sees one happened
SECTION = re.compile(r"^@@(\S+)$", re.M)
TRANSITION = re.compile(r"^(\S+) .*Entering (MASTER|BACKUP|FAULT) STATE", re.M)
T = TypeVar("T")


class HostUnreachable(RuntimeError):
    """A login or a remote command failed; the message names the host."""


@dataclass
class Container:
    name: str
    state: str  # running, exited, restarting, ...
    status: str  # docker ps's "Up 3 minutes (healthy)"

    @property
    def healthy(self) -> bool:
        """Running, and its Docker health check (when it has one) passed."""
        return self.state == "running" and ("(" not in self.status or "(healthy)" in self.status)


@dataclass
class Transition:
    at: str
    state: str


@dataclass
class HostFacts:
    """What one login saw on a host (balancer-only fields stay empty on a server)."""

    name: str
    role: str
    address: str
    reachable: bool = False
    error: str = ""
    docker: str = "-"
    keepalived: str = "-"
    keepalived_restarts: int | None = None
    containers: dict[str, Container] = field(default_factory=dict)
    holds_vip: bool = False
    vrrp_state: str = ""  # the notify hook's last state, else the journal's last transition
    vrrp_since: str = ""
    transitions: list[Transition] = field(default_factory=list)
    servers: dict[str, str] = field(default_factory=dict)  # HAProxy's view: server -> status
    handover: str = ""
    certificate: Certificate | None = None  # the leaf HAProxy loads, with TLS on

    def container(self, name: str) -> Container | None:
        return self.containers.get(name)

    def to_json(self) -> dict[str, Any]:
        """Without the certificate: `status.document` adds it with TLS on only, so TLS off stays as it was."""
        return {key: value for key, value in asdict(self).items() if key != "certificate"}


def facts_script(host: Host, tls: bool) -> str:
    """The one script a host runs for `status`; each section tolerates a missing tool or service. With
    `tls` (the stack's TLS on), a balancer also prints the leaf of HAProxy's PEM (root's and HAProxy's
    group's only, so through sudo)."""
    lines = [
        "echo @@docker; systemctl is-active docker 2>/dev/null || true",
        "echo @@containers; sudo -n docker ps -a --filter name=pihalb- "
        "--format '{{.Names}}\t{{.State}}\t{{.Status}}' 2>/dev/null || true",
        "echo @@addr; ip -4 -o addr show 2>/dev/null || true",
    ]
    if host.role == "balancer":
        runtime = runtime_command("show stat")
        lines += [
            "echo @@keepalived; systemctl is-active keepalived 2>/dev/null || true",
            "echo @@restarts; systemctl show -p NRestarts --value keepalived 2>/dev/null || true",
            f"echo @@state; cat {names.VRRP_STATE_FILE} 2>/dev/null || true",
            "echo @@journal; sudo -n journalctl -u keepalived -o short-iso --no-pager -n 1000 2>/dev/null"
            " | grep -E 'Entering (MASTER|BACKUP|FAULT) STATE' | tail -n 5 || true",
            f"echo @@handover; sudo -n cat {names.VRRP_HANDOVER_FILE} 2>/dev/null || true",  # root-only (keepalived)
            f"echo @@stat; {runtime} 2>/dev/null || true",
        ]
        if tls:
            lines.append(f"echo @@certificate; sudo -n {leaf_command()} 2>/dev/null || true")
    return "\n".join(lines) + "\n"


def runtime_command(command: str) -> str:
    """HAProxy's runtime API inside the balancer's container (files/scripts/haproxy-runtime.sh's way)."""
    inner = 'exec 3<>/dev/tcp/127.0.0.1/"$1" && printf "%s\\n" "$2" >&3 && timeout 5 cat <&3'
    return (
        f"sudo -n docker exec {names.HAPROXY_CONTAINER} bash -c {shlex.quote(inner)} "
        f"_ {names.HAPROXY_RUNTIME_PORT} {shlex.quote(command)}"
    )


def sections(text: str) -> dict[str, str]:
    parts = SECTION.split(text)
    return {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}


def parse_show_stat(text: str, backend: str = names.HAPROXY_BACKEND) -> dict[str, str]:
    """Server name -> status (UP, DOWN, MAINT, "UP 1/2", ...) of `backend` in `show stat` CSV."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#"):
        return {}
    columns = lines[0].lstrip("# ").split(",")
    try:
        px, sv, status = columns.index("pxname"), columns.index("svname"), columns.index("status")
    except ValueError:
        return {}
    view = {}
    for line in lines[1:]:
        cells = line.split(",")
        if len(cells) > status and cells[px] == backend and cells[sv] not in ("BACKEND", "FRONTEND"):
            view[cells[sv]] = cells[status]
    return view


def in_flight(text: str, server: str, backend: str = names.HAPROXY_BACKEND) -> int:
    """Requests in flight to `server` (column scur) in `show stat` CSV; 0 when HAProxy did not answer."""
    if not text.strip():
        return 0
    lines = text.splitlines()
    columns = lines[0].lstrip("# ").split(",")
    if "scur" not in columns:
        return 0
    scur = columns.index("scur")
    return sum(
        int(cells[scur] or 0) for cells in (line.split(",") for line in lines[1:]) if cells[:2] == [backend, server]
    )


def parse_facts(host: Host, vip: str, text: str) -> HostFacts:
    """A host's facts from the output of `facts_script`."""
    found = sections(text)
    facts = HostFacts(host.name, host.role, str(host.address), reachable=True)
    facts.docker = found.get("docker", "").strip() or "unknown"
    for line in found.get("containers", "").splitlines():
        name, _, rest = line.partition("\t")
        state, _, status = rest.partition("\t")
        if name:
            facts.containers[name] = Container(name, state, status)
    facts.holds_vip = f"inet {vip}/" in found.get("addr", "")
    if host.role != "balancer":
        return facts
    facts.keepalived = found.get("keepalived", "").strip() or "unknown"
    restarts = found.get("restarts", "").strip()
    facts.keepalived_restarts = int(restarts) if restarts.isdigit() else None
    facts.transitions = [Transition(at, state) for at, state in TRANSITION.findall(found.get("journal", ""))]
    state_words = found.get("state", "").split()
    if state_words:
        facts.vrrp_state, facts.vrrp_since = state_words[0], " ".join(state_words[1:2])
    elif facts.transitions:
        facts.vrrp_state, facts.vrrp_since = facts.transitions[-1].state, facts.transitions[-1].at
    facts.handover = found.get("handover", "").strip()
    facts.servers = parse_show_stat(found.get("stat", ""))
    facts.certificate = read_leaf(found.get("certificate", ""))
    return facts


class Fleet(Protocol):
    """What the verbs need from the stack's hosts (real: `ScriptedFleet`; unit tests: a fake)."""

    settings: Settings

    def facts(self) -> dict[str, HostFacts]: ...
    def vip_holders(self) -> list[str]: ...
    def runtime(self, balancer: str, command: str) -> str: ...
    def kill_haproxy(self, balancer: str) -> None: ...
    def restore_haproxy(self, balancer: str) -> None: ...
    def set_handover(self, balancer: str, value: int) -> None: ...
    def stop_keepalived(self, balancer: str) -> None: ...
    def start_keepalived(self, balancer: str) -> None: ...
    def restart_docker(self, name: str) -> None: ...
    def mark_boot(self, name: str) -> None: ...
    def rebooted(self, name: str) -> bool: ...
    def reboot(self, name: str) -> None: ...
    def poweroff(self, name: str) -> None: ...
    def reachable(self, name: str) -> bool: ...


class Runner(Protocol):
    """The one way ops reaches a host: a bash script on stdin, as the login user with `sudo -n` where it
    needs root; its stdout. Unreachable, or (with `check`) exiting non-zero: HostUnreachable naming the host.

    Real Pis: `SshRunner` (the program's pinned-key SSH). The lab: `ops.lab_fleet.ConsoleRunner` (`docker
    exec` as root, the lab's console cable), so the lab tests and the bench run these very scripts."""

    def run(self, name: str, script: str, timeout: float, check: bool = True) -> str: ...


def host_named(settings: Settings, name: str) -> Host:
    return next(h for h in settings.cluster.hosts if h.name == name)


def in_parallel(hosts: Iterable[str], work: Callable[[str], T]) -> dict[str, T]:
    hosts = list(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        return dict(zip(hosts, pool.map(work, hosts), strict=True))


class SshRunner:
    """Scripts on the stack's hosts over `harness.ssh.Login` (the pinned host key only, the stack's login key)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.settings = config.settings

    def login(self, name: str) -> Login:
        host = host_named(self.settings, name)
        return Login(
            host=str(host.address),
            port=self.settings.port(host),
            user=self.settings.user(host),
            private_key=self.config.private_key,
            host_key=self.settings.host_keys[name],
        )

    def run(self, name: str, script: str, timeout: float, check: bool = True) -> str:
        connect_timeout = float(self.settings.cluster.ssh.connect_timeout)
        try:
            code, out, err = self.login(name).run(
                "bash -s", stdin=script, timeout=timeout, connect_timeout=connect_timeout
            )
        except SshError as error:
            raise HostUnreachable(f"{name}: {error}") from error
        if check and code != 0:
            raise HostUnreachable(f"{name}: exit {code}: {err.strip() or out.strip()}")
        return out


class ScriptedFleet:
    """The stack's hosts, each action one bash script sent through a `Runner` (SSH, or the lab's console)."""

    def __init__(self, settings: Settings, runner: Runner, timeout: float = 60) -> None:
        self.settings = settings
        self.runner = runner
        self.timeout = timeout

    def run(self, name: str, script: str, timeout: float | None = None, check: bool = True) -> str:
        """Run `script` with bash on host `name`; its stdout. Unreachable or (with check) failing: raises."""
        return self.runner.run(name, script, timeout or self.timeout, check)

    def facts(self) -> dict[str, HostFacts]:
        vip = str(self.settings.cluster.vrrp.vip.ip)
        tls = self.settings.cluster.haproxy.tls is not None

        def one(name: str) -> HostFacts:
            host = host_named(self.settings, name)
            try:
                return parse_facts(host, vip, self.run(name, facts_script(host, tls), check=False))
            except HostUnreachable as error:
                return HostFacts(host.name, host.role, str(host.address), error=str(error))

        return in_parallel((h.name for h in self.settings.cluster.hosts), one)

    def vip_holders(self) -> list[str]:
        vip = str(self.settings.cluster.vrrp.vip.ip)

        def holds(name: str) -> bool:
            try:
                return f"inet {vip}/" in self.run(name, "ip -4 -o addr show", timeout=10)
            except HostUnreachable:
                return False

        held = in_parallel((b.name for b in self.settings.balancers), holds)
        return [name for name, yes in held.items() if yes]

    def runtime(self, balancer: str, command: str) -> str:
        return self.run(balancer, runtime_command(command), timeout=15)

    def kill_haproxy(self, balancer: str) -> None:
        """The paper's kill (`killall -9 haproxy`), Docker's restart policy paused first, or it would undo
        the kill within a second and the VIP would not move."""
        c = names.HAPROXY_CONTAINER
        self.run(balancer, f"sudo -n docker update --restart=no {c} >/dev/null && sudo -n killall -9 haproxy")

    def restore_haproxy(self, balancer: str) -> None:
        c = names.HAPROXY_CONTAINER
        self.run(
            balancer,
            f"sudo -n docker update --restart={names.RESTART_POLICY} {c} >/dev/null"
            f" && sudo -n docker start {c} >/dev/null",
        )

    def set_handover(self, balancer: str, value: int) -> None:
        # In place (tee, not a rename): keepalived watches the file (files/scripts/balancer-leave.sh).
        self.run(balancer, f"echo {int(value)} | sudo -n tee {names.VRRP_HANDOVER_FILE} >/dev/null")

    def stop_keepalived(self, balancer: str) -> None:
        self.run(balancer, "sudo -n systemctl stop keepalived")

    def start_keepalived(self, balancer: str) -> None:
        self.run(balancer, "sudo -n systemctl start keepalived")

    def restart_docker(self, name: str) -> None:
        """dockerd restarted, as an engine upgrade does; the containers come back by their restart policy."""
        self.run(name, "sudo -n systemctl restart docker", timeout=120)

    def mark_boot(self, name: str) -> None:
        self.run(name, f"sudo -n touch {BOOT_MARK}")

    def rebooted(self, name: str) -> bool:
        """Back over SSH, and /run no longer has the mark: this is a new boot."""
        try:
            return self.run(name, f"test -e {BOOT_MARK} && echo marked || echo fresh", timeout=10).strip() == "fresh"
        except HostUnreachable:
            return False

    def reboot(self, name: str) -> None:
        self._later(name, "reboot")

    def poweroff(self, name: str) -> None:
        self._later(name, "poweroff")

    def _later(self, name: str, verb: str) -> None:
        """In 2 s, by systemd itself, so this login returns before sshd goes away."""
        self.run(name, f"sudo -n systemd-run --quiet --on-active=2 /bin/systemctl {verb}")

    def reachable(self, name: str) -> bool:
        try:
            self.run(name, "true", timeout=10)
            return True
        except HostUnreachable:
            return False
