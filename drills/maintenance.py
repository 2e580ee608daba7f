"""Maintenance done to the lab as an operator does it on the Pis, by ops' own procedures (`ops.rolling`
through `ops.lab_fleet`): shared by the bench and the tests."""

from __future__ import annotations

from drills import stack
from lab.images import BASE_IMAGE, BASE_IMAGE_ALIAS
from lab.inventory import STACK
from lab.lab import Lab
from lab.stack import Alter
from ops.lab_fleet import lab_fleet
from ops.rolling import DONE, Rolling


def restart_engines_rolling(lab: Lab, profile: str = STACK, alter: Alter | None = None) -> None:
    """dockerd restarted on every host, one at a time, the MASTER last after handing the VIP over: what an
    engine upgrade does to a host (the engine packages are held, so it happens only like this, on purpose).
    `ops.rolling.Rolling.restart_engines` on the lab with the settings of `profile` (`alter`ed) as applied:
    a server is drained on both balancers first and put back once its container answers, the cluster
    healthy by `python -m ops status`'s verdict after each host; then the site serving through the VIP."""
    code = Rolling(lab_fleet(lab, profile, alter)).restart_engines()
    if code != DONE:
        raise RuntimeError(f"the rolling engine restart did not complete (exit {code}); see its log above")
    stack.wait_serving(lab)


def base_image_alias(lab: Lab) -> str:
    """The lab's one base image under a second name, so `baseImage` can change without a registry (every
    daemon the lab seeds has it, hosts added later too)."""
    for host in lab.hosts:
        lab.sh(host.name, f"docker tag {BASE_IMAGE} {BASE_IMAGE_ALIAS}")
    return BASE_IMAGE_ALIAS
