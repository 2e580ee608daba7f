"""Views of what the program declared, for the unit tests: resource types, the script a command runs and
the files it carries, the stack file's hosts, and the plan from one run to the next."""

from __future__ import annotations

import base64
import re
import shlex

from components.remote import RUN_SCRIPT_FROM_STDIN, RUN_SCRIPT_WITH_RUN_ID
from harness.plan import make_plan
from harness.program import Program

from .converge import converged

COMMAND = "command:remote:Command"
PROVIDER = "pulumi:providers:docker"
IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"


def script_of(resource, step: str = "create") -> str:
    """The bash script a remote command runs: on its stdin for create, on the command line for delete."""
    if step == "create":
        assert resource.inputs["create"] in (RUN_SCRIPT_FROM_STDIN, RUN_SCRIPT_WITH_RUN_ID)
        return resource.inputs["stdin"]
    words = shlex.split(resource.inputs[step])
    assert words[:3] == ["exec", "bash", "-c"]
    return words[3]


def planned(before: Program, after: Program) -> dict[str, str]:
    """What the lab engine's planner (Pulumi's rules) would do going from `before`, applied by the lab
    engine to modelled hosts, to `after`."""
    checkpoint, _ = converged(before)
    return make_plan(after, checkpoint).kinds()


def embedded_file(resource) -> str:
    """The config file a script carries as CONFIG_B64."""
    match = re.search(r"^CONFIG_B64=(\S+)$", script_of(resource), re.M)
    return base64.b64decode(shlex.split(match.group(1))[0]).decode()


def embedded_page(resource) -> str:
    match = re.search(r"^PAGE_B64=(\S+)$", script_of(resource), re.M)
    return base64.b64decode(shlex.split(match.group(1))[0]).decode()


def hosts(program: Program, role: str | None = None) -> list[dict]:
    cluster = program_config(program)
    return [h for h in cluster["hosts"] if role in (None, h["role"])]


def program_config(program: Program) -> dict:
    from harness.program import stack_file_config

    return stack_file_config(program.stack)["pihalb:cluster"]
