"""The lab's stacks (`dev`, `dev-tuned`) as a user of the lab would set them, declared and applied.

A stack's config is its file plus what the lab generated (host keys, the SSH key, the two passwords);
`apply` carries the program's declarations out on the lab, as `pulumi up` would.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from components import render
from components.settings import (
    CONFIG_NAMESPACE,
    HOST_KEYS_KEY,
    SSH_PRIVATE_KEY_KEY,
    STATS_PASSWORD_KEY,
    VRRP_PASSWORD_KEY,
)
from drills.observe import get_vip, servers_seen_by, wait_until
from harness import program
from harness.apply import Applier, ApplyReport, StepResult
from lab.inventory import CLUSTER_CONFIG_KEY
from lab.lab import Lab

Alter = Callable[[dict], None]
"""Changes a stack's config in place before the program runs (e.g. `unicast` below)."""


def lab_layer(lab: Lab) -> dict:
    """Host keys the lab recorded, and the secrets it generated (scripts/deploy-dev sets the same)."""
    state = lab.state()
    return {
        f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}": {name: host.host_key for name, host in state.hosts.items()},
        f"{CONFIG_NAMESPACE}:{SSH_PRIVATE_KEY_KEY}": state.private_key,
        f"{CONFIG_NAMESPACE}:{VRRP_PASSWORD_KEY}": state.vrrp_password,
        f"{CONFIG_NAMESPACE}:{STATS_PASSWORD_KEY}": state.stats_password,
    }


def cluster(config: dict) -> dict:
    """The raw cluster object of a stack's config, for an `Alter` to change."""
    return config[CLUSTER_CONFIG_KEY]


def unicast(config: dict) -> None:
    """VRRP adverts sent to the peer's address instead of the multicast group."""
    cluster(config)["vrrp"].update(mode="unicast")


def dev_config(lab: Lab, alter: Alter | None = None, stack: str = "dev") -> dict:
    config = copy.deepcopy(program.stack_file_config(stack)) | lab_layer(lab)
    if alter:
        alter(config)
    return config


def declare(lab: Lab, alter: Alter | None = None, stack: str = "dev") -> program.Program:
    """Run the program on a lab stack (`dev`, `dev-tuned`) under mocks: what `pulumi up` would do."""
    return program.run(stack, dev_config(lab, alter, stack), program.SECRET_CONFIG_KEYS)


def apply(
    lab: Lab, alter: Alter | None = None, log=print, stack: str = "dev", files: Path | None = None
) -> tuple[program.Program, ApplyReport]:
    """Declare, then carry it out on the lab; the base image is seeded into each daemon once it exists.

    `files`: a files root to render from instead of the repository's `files/` (see `files_with_response_header`).
    """
    by_address = {str(host.address): host.name for host in lab.hosts}
    with _files_root(files):
        declared = declare(lab, alter, stack)
        applier = Applier(declared, on_docker_ready=lambda address: lab.seed_base_image(by_address[address]), log=log)
        return declared, applier.apply()


@contextlib.contextmanager
def _files_root(files: Path | None) -> Iterator[None]:
    """The renderer reads templates from `files` for the duration (the one place that knows how)."""
    if files is None:
        yield
        return
    original = render.FILES_DIR
    render.FILES_DIR = files
    try:
        yield
    finally:
        render.FILES_DIR = original


@dataclass
class StepClock:
    """A `log` for `apply` that also notes when each step ended, on `clock` (e.g. a load window's `elapsed`).

    The applier logs one line per finished step, starting with the step's name.
    """

    clock: Callable[[], float]
    log: Callable[[str], None] = print
    ended: dict[str, float] = field(default_factory=dict)

    def __call__(self, line: str) -> None:
        now = self.clock()
        words = line.split()
        if words:
            self.ended[words[0]] = now
        self.log(line)

    def span(self, step: StepResult) -> tuple[float, float]:
        """When `step` started and ended on the clock."""
        end = self.ended[step.name]
        return end - step.seconds, end


def files_with_response_header(directory: Path, header: str, value: str) -> Path:
    """A copy of `files/` whose haproxy.cfg template adds a response header: a visible config change."""
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(render.files_dir(), directory)
    template = directory / "templates" / "haproxy.cfg.j2"
    marker = "    default_backend servers\n"
    template.write_text(
        template.read_text().replace(marker, f"    http-response set-header {header} {value}\n{marker}")
    )
    return directory


def wait_serving(lab: Lab, timeout: float = 60) -> None:
    """Every server UP on both balancers, the VIP on the intended MASTER alone, the site answering."""
    all_up = dict.fromkeys((h.name for h in lab.servers), "UP")
    for balancer in lab.balancers:
        wait_until(
            f"{len(all_up)} servers UP on {balancer.name}",
            lambda b=balancer.name: servers_seen_by(lab, b) == all_up,
            timeout,
        )
    master = lab.master.name
    wait_until(f"the VIP on {master} alone", lambda: lab.vip_holders() == [master], timeout)
    wait_until("the site through the VIP", lambda: get_vip(lab).status == 200, timeout)
