"""The `dev` stack as a user of the lab would set it: the stack file plus what the lab generated."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

from harness import program
from harness.apply import Applier, ApplyReport

SECRET_KEYS = ["pihalb:sshPrivateKey", "pihalb:vrrpPassword", "pihalb:statsPassword"]


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
    return program.run(stack, dev_config(lab, alter, stack), SECRET_KEYS)


def apply(
    lab, alter: Callable[[dict], None] | None = None, log=print, stack: str = "dev"
) -> tuple[program.Program, ApplyReport]:
    """Declare, then carry it out on the lab; the base image is seeded into each daemon once it exists."""
    declared = declare(lab, alter, stack)
    by_address = {host["address"]: name for name, host in lab.state()["hosts"].items()}
    applier = Applier(declared, on_docker_ready=lambda address: lab.seed_base_image(by_address[address]), log=log)
    return declared, applier.apply()
