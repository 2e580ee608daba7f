"""The lab's profiles (`dev`, `dev-tuned`: stack files whose config is applied to the lab's one stack),
as a user of the lab would set them, declared and applied.

A stack's config is its file plus what the lab generated (host keys, the SSH key, the two passwords);
`apply` plans and carries out the program on the lab with the lab engine, as `pulumi up` would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from components import render
from components.settings import CONFIG_NAMESPACE, HOST_KEYS_KEY
from drills.observe import get_vip, servers_seen_by, wait_until
from harness.engine import Done
from lab import stack as lab_stack
from lab.inventory import CLUSTER_CONFIG_KEY, STACK
from lab.lab import Lab

Alter = lab_stack.Alter
lab_layer = lab_stack.lab_layer
HOST_KEYS_CONFIG = f"{CONFIG_NAMESPACE}:{HOST_KEYS_KEY}"


def cluster(config: dict) -> dict:
    """The raw cluster object of a stack's config, for an `Alter` to change."""
    return config[CLUSTER_CONFIG_KEY]


def apply_values(config: dict, values: dict[str, object]) -> None:
    """Cluster values by dotted path (None removes the key); a `hosts` list also drops the host keys of the
    hosts it leaves out, as a user removing a Pi removes its pinned key (keys of unknown hosts are refused)."""
    if "hosts" in values:
        kept = {h["name"] for h in values["hosts"]}  # type: ignore[union-attr]
        keys = config[HOST_KEYS_CONFIG]
        config[HOST_KEYS_CONFIG] = {name: key for name, key in keys.items() if name in kept}
    for path, value in values.items():
        node = cluster(config)
        *parents, last = path.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value


def unicast(config: dict) -> None:
    """VRRP adverts sent to the peer's address instead of the multicast group."""
    cluster(config)["vrrp"].update(mode="unicast")


def apply(
    lab: Lab, alter: Alter | None = None, log=print, profile: str = STACK, files: Path | None = None, replace=()
) -> lab_stack.Applied:
    """Plan and apply a profile (the config of Pulumi.<profile>.yaml, `alter`ed) to the lab's one stack;
    `files`: a files root to render from instead; `replace`: resource names to replace whatever their diff
    says (`pulumi up --replace`)."""
    return lab_stack.up(lab, profile, alter, files, log, replace)


def span(step: Done, t0: float) -> tuple[float, float]:
    """When a step ran, in seconds from `t0` (a load window's monotonic start)."""
    return step.started - t0, step.started + step.seconds - t0


def files_with_response_header(directory: Path, header: str, value: str) -> Path:
    """A copy of `files/` whose haproxy.cfg template adds a response header: a visible config change."""
    shutil.rmtree(directory, ignore_errors=True)
    shutil.copytree(render.FILES, directory)
    template = directory / "templates" / "haproxy.cfg.j2"
    marker = "    default_backend {{ backend }}\n"
    text = template.read_text()
    if marker not in text:  # the template changed: a copy without the header would test nothing
        raise ValueError(f"{template}: no line {marker.strip()!r} to put the response header before")
    template.write_text(text.replace(marker, f"    http-response set-header {header} {value}\n{marker}"))
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
