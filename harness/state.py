"""The lab engine's checkpoint: one file per stack, in the shape of `pulumi stack export` (deployment v3).

It is rewritten (atomically, 0600) after every step, so an apply killed midway leaves a usable state:
resources applied so far, and the step that was running as a `pending_operations` entry, as Pulumi
records it. Secret values are kept the way `pulumi stack export --show-secrets` prints them (the
secret signature with a `plaintext` JSON string), so the file says which values are secret.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.files import write_private

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
STACK_TYPE = "pulumi:pulumi:Stack"
ENGINE_VERSION = "pihalb-lab-engine (Pulumi deployment v3 shape)"


@dataclass
class Resource:
    """One resource as the program declares it (`harness.program`) and as the checkpoint holds it once
    applied, with its id and outputs (the fields `pulumi stack export` shows)."""

    urn: str
    type: str
    custom: bool
    id: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    parent: str = ""
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    provider: str = ""  # "urn::id" of its explicit provider
    delete_before_replace: bool = False
    replace_on_changes: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    replacement_trigger: Any = None
    retain_on_delete: bool = False
    secret_paths: list[str] = field(default_factory=list)
    delete: bool = False  # an old copy kept until its replacement's delete step runs (Pulumi's "pending deletion")
    init_errors: list[str] = field(default_factory=list)  # a create that failed after making it (kept as is)
    created: str = ""
    modified: str = ""

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"urn": self.urn, "custom": self.custom}
        if self.id:
            data["id"] = self.id
        data["type"] = self.type
        data["inputs"] = _wrap_secrets(self.inputs, self.secret_paths)
        data["outputs"] = _wrap_secrets(self.outputs, self.secret_paths)
        if self.parent:
            data["parent"] = self.parent
        for key, value in (
            ("dependencies", self.dependencies),
            ("propertyDependencies", self.property_dependencies),
            ("provider", self.provider),
            ("deleteBeforeReplace", self.delete_before_replace),
            ("replaceOnChanges", self.replace_on_changes),
            ("ignoreChanges", self.ignore_changes),
            ("replacementTrigger", self.replacement_trigger),
            ("retainOnDelete", self.retain_on_delete),
            ("delete", self.delete),
            ("initErrors", self.init_errors),
            ("created", self.created),
            ("modified", self.modified),
        ):
            if value:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Resource:
        secret_paths: list[str] = []
        inputs = unwrap_secrets(data.get("inputs", {}), secret_paths)
        outputs = unwrap_secrets(data.get("outputs", {}), [])
        return cls(
            urn=data["urn"],
            type=data["type"],
            custom=data.get("custom", False),
            id=data.get("id", ""),
            inputs=inputs,
            outputs=outputs,
            parent=data.get("parent", ""),
            dependencies=list(data.get("dependencies", [])),
            property_dependencies=dict(data.get("propertyDependencies", {})),
            provider=data.get("provider", ""),
            delete_before_replace=data.get("deleteBeforeReplace", False),
            replace_on_changes=list(data.get("replaceOnChanges", [])),
            ignore_changes=list(data.get("ignoreChanges", [])),
            replacement_trigger=data.get("replacementTrigger"),
            retain_on_delete=data.get("retainOnDelete", False),
            secret_paths=sorted(set(secret_paths)),
            delete=data.get("delete", False),
            init_errors=list(data.get("initErrors", [])),
            created=data.get("created", ""),
            modified=data.get("modified", ""),
        )


def hosts_of(resource: Resource) -> set[str]:
    """The addresses a resource's operations reach: a remote command's connection, a provider's `ssh://` host."""
    connection = resource.inputs.get("connection")
    if isinstance(connection, dict) and isinstance(connection.get("host"), str):
        return {connection["host"]}
    url = resource.inputs.get("host")
    if resource.type.startswith("pulumi:providers:") and isinstance(url, str) and url.startswith("ssh://"):
        return {url.removeprefix("ssh://").split("@")[-1].rsplit(":", 1)[0]}
    return set()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Checkpoint:
    """The resources of one stack, in dependency order, and the operations in flight; saved on every change."""

    def __init__(self, path: Path, resources: list[Resource], pending: list[dict[str, Any]]) -> None:
        self.path = path
        self.resources = resources
        self.pending = pending
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        if not path.exists():
            return cls(path, [], [])
        deployment = json.loads(path.read_text())["deployment"]
        resources = [Resource.from_json(r) for r in deployment.get("resources", [])]
        return cls(path, resources, list(deployment.get("pending_operations", [])))

    def get(self, urn: str) -> Resource | None:
        """The live entry for `urn` (not an old copy pending deletion)."""
        return next((r for r in self.resources if r.urn == urn and not r.delete), None)

    def pending_deletions(self) -> list[Resource]:
        return [r for r in self.resources if r.delete]

    def mark_for_deletion(self, resource: Resource) -> None:
        with self._lock:
            resource.delete = True
            self._save()

    def interrupted(self) -> list[dict[str, Any]]:
        """Operations a killed apply left in flight (Pulumi warns about these on the next update)."""
        return list(self.pending)

    # -- changes, each saved at once ----------------------------------------------------------------------
    def begin(self, operation: str, resource: Resource) -> dict[str, Any]:
        """Record `operation` ("creating", "updating", "deleting") as in flight before it starts."""
        entry = {"resource": {"urn": resource.urn, "type": resource.type}, "type": operation}
        with self._lock:
            self.pending.append(entry)
            self._save()
        return entry

    def finish(self, entry: dict[str, Any], put: Resource | None = None, remove: Resource | None = None) -> None:
        """The operation is done: its result replaces (or removes) the resource's entry."""
        with self._lock:
            if entry in self.pending:
                self.pending.remove(entry)
            if remove is not None:
                self.resources = [r for r in self.resources if r is not remove]
            if put is not None:
                self._put(put)
            self._save()

    def put(self, resource: Resource) -> None:
        with self._lock:
            self._put(resource)
            self._save()

    def clear_pending(self) -> None:
        with self._lock:
            self.pending = []
            self._save()

    def _put(self, resource: Resource) -> None:
        """Replace the live entry with the same URN; a replacement goes right after its old copy; else append."""
        for index, existing in enumerate(self.resources):
            if existing.urn == resource.urn and not existing.delete:
                self.resources[index] = resource
                return
        for index, existing in enumerate(self.resources):
            if existing.urn == resource.urn:
                self.resources.insert(index + 1, resource)
                return
        self.resources.append(resource)

    def _save(self) -> None:
        document = {
            "version": 3,
            "deployment": {
                "manifest": {"time": now(), "version": ENGINE_VERSION},
                "secrets_providers": {"type": "plaintext-lab", "state": {}},
                "resources": [r.to_json() for r in self.resources],
                **({"pending_operations": self.pending} if self.pending else {}),
            },
        }
        write_private(self.path, json.dumps(document, indent=2))


def _wrap_secrets(value: Any, paths: list[str], here: str = "") -> Any:
    if here and here in paths:
        return {SECRET_SIG_KEY: SECRET_SIG, "plaintext": json.dumps(value)}
    if isinstance(value, dict):
        return {k: _wrap_secrets(v, paths, f"{here}.{k}" if here else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_wrap_secrets(v, paths, f"{here}[{i}]") for i, v in enumerate(value)]
    return value


def unwrap_secrets(value: Any, found: list[str], here: str = "") -> Any:
    """Plain values, and in `found` the paths that were secret: in the checkpoint's shape (the signature
    with a `plaintext` JSON string) or in the shape the program's mocks see (the signature with a `value`)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            found.append(here)
            inner = json.loads(value["plaintext"]) if "plaintext" in value else value["value"]
            return unwrap_secrets(inner, found, here)
        return {k: unwrap_secrets(v, found, f"{here}.{k}" if here else k) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v, found, f"{here}[{i}]") for i, v in enumerate(value)]
    return value
