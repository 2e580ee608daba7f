"""A stack's config as the program sees it: Pulumi.<stack>.yaml, then what the user set by hand.

Host keys and secrets come from `pulumi config --json --show-secrets` when the Pulumi CLI is on PATH,
else from the lab's state (its generated keys and secrets). The result goes through
`components.settings.load`, the program's own validation, so ops refuses exactly what `pulumi up` refuses.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.fields import SSH_PRIVATE_KEY_KEY, STATS_PASSWORD_KEY
from components.settings import CONFIG_NAMESPACE, SECRET_KEYS, Settings, check_secret, load
from harness.program import SECRET_CONFIG_KEYS, stack_file_config

Layer = dict[str, Any]
"""Namespaced config keys (`pihalb:hostKeys`) to values, as `pulumi config` holds them."""


class Secret(str):
    """A config value the stack holds as a secret (`pulumi config set --secret`), not as a plain one."""


class OpsConfigError(RuntimeError):
    """The stack's config cannot be read; the message says where it came from and what to do."""


@dataclass(frozen=True)
class StackConfig:
    """A validated stack and the secrets ops needs (the login key; the stats password for /metrics)."""

    stack: str
    settings: Settings
    secrets: dict[str, str]
    source: str
    """Where host keys and secrets came from: "pulumi" or "lab"."""

    @property
    def private_key(self) -> str:
        return self.secrets[SSH_PRIVATE_KEY_KEY]

    @property
    def stats_password(self) -> str:
        return self.secrets[STATS_PASSWORD_KEY]


def pulumi_layer(stack: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Layer:
    """`pulumi config --json --show-secrets --stack <stack>`: {key: {"value": ..., "objectValue"?: ...}}."""
    done = run(
        ["pulumi", "config", "--json", "--show-secrets", "--stack", stack],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise OpsConfigError(f"`pulumi config --json --stack {stack}` failed: {done.stderr.strip()}")
    return parse_pulumi_json(done.stdout)


def parse_pulumi_json(text: str) -> Layer:
    """Structured values come as `objectValue` (newer CLIs) or as JSON text in `value`."""
    layer: Layer = {}
    for key, entry in json.loads(text).items():
        if not isinstance(entry, dict):
            continue
        if "objectValue" in entry:
            layer[key] = entry["objectValue"]
        elif "value" in entry:
            layer[key] = Secret(entry["value"]) if entry.get("secret") else entry["value"]
    return layer


def held_as_secrets(values: Layer) -> Layer:
    """The values with the program's secrets held as secrets, as `pulumi config --json` marks them."""
    return {key: Secret(value) if key in SECRET_CONFIG_KEYS else value for key, value in values.items()}


def lab_layer(stack: str) -> Layer:
    """The lab's host keys and generated secrets (no Pulumi CLI: the lab engine deployed this stack).

    Only for a stack whose hosts are the lab's (dev, dev-tuned): the lab's keys are no use elsewhere.
    """
    from lab import acme
    from lab.lab import Lab
    from lab.output import LabError
    from lab.stack import lab_layer as layer_of

    try:
        lab = Lab.from_stack()
        lab_hosts = {h.name: str(h.address) for h in lab.hosts}
        stack_hosts = stack_file_config(stack).get(f"{CONFIG_NAMESPACE}:cluster", {}).get("hosts", [])
        if {h.get("name"): h.get("address") for h in stack_hosts} != lab_hosts:
            raise OpsConfigError(
                f"no Pulumi CLI on PATH, and Pulumi.{stack}.yaml's hosts are not the lab's: install the "
                "Pulumi CLI (host keys and secrets come from `pulumi config --show-secrets`)"
            )
        # The lab's secrets, as `lab config-set` and the lab engine give them to Pulumi: as secrets.
        tls = acme.lab_tls_secrets(stack_file_config(stack), acme.lab_pebble(lab))
        return held_as_secrets(layer_of(lab) | tls)
    except LabError as error:
        raise OpsConfigError(f"no Pulumi CLI on PATH, and the lab has no state: {error}") from error


def user_layer(stack: str, which: Callable[[str], str | None] = shutil.which) -> tuple[Layer, str]:
    """The one choice of where host keys and secrets come from: the Pulumi CLI if present, else the lab."""
    if which("pulumi"):
        return pulumi_layer(stack), "pulumi"
    return lab_layer(stack), "lab"


def settings_from(values: Layer) -> tuple[Settings, dict[str, str]]:
    """Validate namespaced config values as the program does (`pulumi.Config(...).get_object` / `.get`)."""

    def raw(key: str) -> Any:
        return values.get(f"{CONFIG_NAMESPACE}:{key}")

    def get_object(key: str) -> Any:
        value = raw(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value  # validation names the key
        return value

    def get(key: str) -> str | None:
        value = raw(key)
        return value if value is None or isinstance(value, str) else json.dumps(value)

    prefix = f"{CONFIG_NAMESPACE}:"
    stack_keys = {
        key.removeprefix(prefix): isinstance(v, Secret) for key, v in values.items() if key.startswith(prefix)
    }
    settings = load(get_object, get, stack_keys)
    return settings, {key: check_secret(key, get(key)) for key in SECRET_KEYS}


def load_stack(stack: str, layer: Callable[[str], tuple[Layer, str]] = user_layer) -> StackConfig:
    """The stack file, the user's layer on top, validated."""
    try:
        values: Layer = dict(stack_file_config(stack))
    except FileNotFoundError as error:
        raise OpsConfigError(f"no Pulumi.{stack}.yaml in the repository") from error
    extra, source = layer(stack)
    values |= extra
    settings, secrets = settings_from(values)
    return StackConfig(stack, settings, secrets, source)
