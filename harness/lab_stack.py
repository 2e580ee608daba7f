"""The `dev` stack as a user of the lab would set it: the stack file plus what the lab generated."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path

from components import render
from harness import program
from harness.apply import Applier, ApplyReport
from harness.observe import get, haproxy_servers, wait_until


def lab_layer(lab) -> dict:
    """Host keys the lab recorded, and the secrets it generated (scripts/deploy-dev sets the same)."""
    state = lab.state()
    return {
        "pihalb:hostKeys": {name: host["host_key"] for name, host in state["hosts"].items()},
        "pihalb:sshPrivateKey": Path(state["private_key_path"]).read_text(),
        "pihalb:vrrpPassword": state["vrrp_password"],
        "pihalb:statsPassword": state["stats_password"],
    }


def dev_config(lab, alter: Callable[[dict], None] | None = None, stack: str = "dev") -> dict:
    config = copy.deepcopy(program.stack_file_config(stack)) | lab_layer(lab)
    if alter:
        alter(config)
    return config


def declare(lab, alter: Callable[[dict], None] | None = None, stack: str = "dev") -> program.Program:
    """Run the program on a lab stack (`dev`, `dev-tuned`) under mocks: what `pulumi up` would do."""
    return program.run(stack, dev_config(lab, alter, stack), program.SECRET_CONFIG_KEYS)


def apply(
    lab, alter: Callable[[dict], None] | None = None, log=print, stack: str = "dev"
) -> tuple[program.Program, ApplyReport]:
    """Declare, then carry it out on the lab; the base image is seeded into each daemon once it exists."""
    declared = declare(lab, alter, stack)
    by_address = {host["address"]: name for name, host in lab.state()["hosts"].items()}
    applier = Applier(declared, on_docker_ready=lambda address: lab.seed_base_image(by_address[address]), log=log)
    return declared, applier.apply()


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


def wait_serving(lab, timeout: float = 60) -> None:
    """Every server UP on both balancers, the VIP on the intended MASTER alone, the site answering."""
    stats = lab.state()["stats_password"]
    servers = [h.name for h in lab.hosts if h.role == "server"]
    balancers = sorted((h for h in lab.hosts if h.role == "balancer"), key=lambda h: -(h.priority or 0))
    for balancer in balancers:
        wait_until(
            f"{len(servers)} servers UP on {balancer.name}",
            lambda b=balancer: haproxy_servers(str(b.address), 8404, stats) == dict.fromkeys(servers, "UP"),
            timeout,
        )
    wait_until(f"the VIP on {balancers[0].name} alone", lambda: lab.vip_holders() == [balancers[0].name], timeout)
    wait_until("the site through the VIP", lambda: get(str(lab.vip.ip)).status == 200, timeout)


def kill_haproxy_for_good(lab, host: str) -> None:
    """The paper's kill of HAProxy; Docker's restart policy is paused first, or it would undo it in ~0.3 s."""
    lab.sh(host, f"docker update --restart=no {render.HAPROXY_CONTAINER} >/dev/null && killall -9 haproxy")


def restore_haproxy(lab, host: str) -> None:
    lab.sh(
        host,
        f"docker update --restart=unless-stopped {render.HAPROXY_CONTAINER} >/dev/null "
        f"&& docker start {render.HAPROXY_CONTAINER}",
    )


def block_vrrp_multicast(lab) -> None:
    """The paper's firewall trouble: VRRP adverts to 224.0.0.18 dropped on both balancers."""
    for host in lab.hosts:
        if host.role == "balancer":
            lab.sh(host.name, "iptables -I INPUT 1 -d 224.0.0.18 -j DROP")


def unblock_vrrp_multicast(lab) -> None:
    for host in lab.hosts:
        if host.role == "balancer":
            lab.sh(host.name, "while iptables -D INPUT -d 224.0.0.18 -j DROP 2>/dev/null; do :; done")
