"""Each provider's diff rules: which changed inputs update a resource in place, and which replace it.

The rules are read from the providers' own source (docs/pulumi-rules.md has the citations); the engine's
generic rules (replaceOnChanges, replacementTrigger, ignoreChanges, a changed provider) are applied on
top of them in `plan.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMMAND = "command:remote:Command"
DOCKER_PROVIDER = "pulumi:providers:docker"
IMAGE = "docker:index/image:Image"
CONTAINER = "docker:index/container:Container"

# pulumi-command 1.2.1, provider/pkg/provider/remote/command.go: `Triggers` carries the
# `provider:"replaceOnChanges"` tag, and the SDK adds `replace_on_changes=["triggers[*]"]`
# (sdk/python/pulumi_command/remote/command.py). Every other input is an update: Update runs `update`,
# or `create` when no `update` is set (commandController.go, Update).
COMMAND_REPLACE_KEYS = frozenset({"triggers"})

# terraform-provider-docker (bridged by pulumi-docker 5.x), resource_docker_container.go: every
# argument is ForceNew except these. `restart` and the resource limits are applied with one
# `docker update`; `mustRun` false -> true starts the container; the rest are only recorded and read
# by later calls (a running container keeps its old health check). pulumi-docker also sets
# deleteBeforeReplace on every Container (docs/pulumi-rules.md, 3).
CONTAINER_UPDATE_KEYS = frozenset(
    {
        "restart",
        "maxRetryCount",
        "cpuShares",
        "cpuSet",
        "memory",
        "memorySwap",
        "mustRun",
        "destroyGraceSeconds",
        "healthcheck",
        "wait",
        "waitTimeout",
        "start",
        "rm",
        "attach",
        "logs",
        "removeVolumes",
        "containerReadRefreshTimeoutMilliseconds",
    }
)
ALWAYS_DELETE_BEFORE_REPLACE = frozenset({"docker:index/container:Container"})

# pulumi-docker 5.x native Image (provider/provider.go, Diff): any changed input rebuilds the image as
# an update; nothing replaces it. Its Read and Delete do nothing.


@dataclass(frozen=True)
class Diff:
    """What a provider says about old → new inputs."""

    changed: tuple[str, ...] = ()  # top-level input names whose values differ
    replaces: tuple[str, ...] = ()  # those that force a replacement

    @property
    def kind(self) -> str:
        if self.replaces:
            return "replace"
        return "update" if self.changed else "same"


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key))


def provider_diff(type_: str, old: dict[str, Any], new: dict[str, Any]) -> Diff:
    """The provider's own Diff for one resource type."""
    changed = changed_keys(old, new)
    if type_ == COMMAND:
        replaces = [key for key in changed if key in COMMAND_REPLACE_KEYS]
    elif type_ == CONTAINER:
        replaces = [key for key in changed if key not in CONTAINER_UPDATE_KEYS]
    elif type_ in (IMAGE, DOCKER_PROVIDER) or type_.startswith("pihalb:"):
        replaces = []
    else:
        raise ValueError(f"the lab engine has no diff rules for resource type {type_}")
    return Diff(tuple(changed), tuple(replaces))


def matches_replace_on_changes(key: str, patterns: list[str]) -> bool:
    """`replaceOnChanges` paths ("triggers[*]", "build.args", "*") against a changed top-level input."""
    for pattern in patterns:
        head = pattern.split("[", 1)[0].split(".", 1)[0]
        if pattern == "*" or head == key:
            return True
    return False
