"""The Docker provider, Image and Container, carried out the way pulumi-docker 5.x does (docs/pulumi-rules.md).

- Provider: a client of the daemon its `host` names; for `ssh://` the local `ssh` runs with the
  provider's `sshOpts`, as pulumi-docker's connection helper does (`ssh <opts> -- host docker system
  dial-stdio`). Providers are configured on every run, and have nothing to delete.
- Image: built on Create and on Update (its Diff never replaces); the program pins the classic
  builder (`builderVersion: BuilderV1`), the one docker-py drives, so both sides build alike. Its
  Delete removes nothing from the daemon.
- Container (bridged Terraform provider): Create makes it, uploads files, starts it and, with `wait`,
  waits for its health check; Update applies the restart policy in place; Delete stops it with
  `destroyGraceSeconds` as the stop timeout (no grace: killed), then removes it with its volumes.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker

from common.files import Entry, tar_archive
from harness.command_ops import InitError, StepError, require_known
from harness.state import Resource

_SSH_SHIM = """#!/bin/bash
# pi-ha-lb lab engine: the ssh the Docker SDK runs for ssh://, with the provider's declared sshOpts. Any
# other ssh run in this process (the program's connectivity check, an invoke) is passed on untouched.
set -eu
dest=""
prev=""
for arg in "$@"; do
    if [ "$prev" = "--" ]; then dest=$arg; break; fi
    prev=$arg
done
opts_file="$(dirname "$0")/opts/$dest"
if [[ " $* " != *" docker system dial-stdio "* ]] || [ ! -f "$opts_file" ]; then
    exec /usr/bin/ssh "$@"
fi
mapfile -t opts <"$opts_file"
exec /usr/bin/ssh "${opts[@]}" "$@"
"""


_SHIM_LOCK = threading.Lock()


def _shim_dir() -> Path:
    """docker-py runs `ssh` from PATH; this one adds each provider's sshOpts. Put on PATH once per process,
    under a lock: providers are configured in parallel, and two shims would leave one's options unfound."""
    with _SHIM_LOCK:
        return _make_shim_dir()


@functools.cache
def _make_shim_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="pihalb-ssh-shim-"))
    (directory / "opts").mkdir()
    shim = directory / "ssh"
    shim.write_text(_SSH_SHIM)
    shim.chmod(0o755)
    os.environ["PATH"] = f"{directory}{os.pathsep}{os.environ['PATH']}"
    return directory


class Providers:
    """Configured Docker clients by provider URN; `on_ready(address)` runs once per daemon configured."""

    def __init__(self, on_ready: Callable[[str], None] | None = None) -> None:
        self.on_ready = on_ready or (lambda address: None)
        self.clients: dict[str, docker.DockerClient] = {}
        self._lock = threading.Lock()

    def configure(self, provider: Resource) -> str:
        inputs = provider.inputs
        require_known(provider, inputs, {"host", "sshOpts"})
        url = inputs["host"]
        if not url.startswith("ssh://"):
            raise StepError(f"{provider.name}: only ssh:// Docker hosts are supported, got {url}")
        opts = inputs.get("sshOpts", "[]")
        opts = json.loads(opts) if isinstance(opts, str) else opts
        address = url.removeprefix("ssh://").split("@")[-1].rsplit(":", 1)[0]
        (_shim_dir() / "opts" / address).write_text("".join(f"{opt}\n" for opt in opts))
        client = docker.DockerClient(base_url=url, use_ssh_client=True, timeout=900)
        try:
            version = client.version()["Version"]
        except docker.errors.DockerException as error:
            raise StepError(f"{provider.name}: the Docker daemon at {url} does not answer: {error}") from error
        with self._lock:
            self.clients[provider.urn] = client
        self.on_ready(address)
        return version

    def client(self, resource: Resource, lookup: Callable[[str], Resource | None]) -> docker.DockerClient:
        """The client of the resource's provider; configured from the state when the program no longer has it."""
        urn = resource.provider_urn
        if not urn:
            raise StepError(f"{resource.name}: no explicit Docker provider (it would deploy to the wrong daemon)")
        if urn not in self.clients:
            provider = lookup(urn)
            if provider is None:
                raise StepError(f"{resource.name}: its provider {urn} is neither declared nor in the state")
            self.configure(provider)
        return self.clients[urn]


class ProviderOps:
    def __init__(self, providers: Providers) -> None:
        self.providers = providers

    def create(self, new: Resource) -> tuple[str, dict]:
        self.providers.configure(new)
        return new.urn.rsplit("::", 1)[-1] + "-id", dict(new.inputs)

    def update(self, old: Resource, new: Resource) -> dict:
        self.providers.configure(new)
        return dict(new.inputs)

    def same(self, new: Resource) -> None:
        self.providers.configure(new)

    def delete(self, old: Resource) -> None:
        """A provider owns nothing on the host."""


class ImageOps:
    def __init__(self, providers: Providers, lookup: Callable[[str], Resource | None], root: Path) -> None:
        self.providers, self.lookup, self.root = providers, lookup, root

    def create(self, new: Resource) -> tuple[str, dict]:
        outputs = self._build(new)
        return outputs["imageName"], outputs

    def update(self, old: Resource, new: Resource) -> dict:
        return self._build(new)

    def delete(self, old: Resource) -> None:
        """pulumi-docker's Image Delete leaves the image on the daemon (see docs/pulumi-rules.md)."""

    def _build(self, resource: Resource) -> dict:
        inputs = resource.inputs
        require_known(resource, inputs, {"imageName", "build", "skipPush", "buildOnPreview"})
        if not inputs.get("skipPush"):
            raise StepError(f"{resource.name}: pushing to a registry is not supported (set skip_push)")
        build = inputs["build"]
        require_known(resource, build, {"context", "dockerfile", "platform", "args", "builderVersion"}, "build ")
        if build.get("builderVersion") != "BuilderV1":
            raise StepError(
                f"{resource.name}: the lab builds with the classic builder; the program must pin "
                "build.builderVersion=BuilderV1 so `pulumi up` builds the same way"
            )
        client = self.providers.client(resource, self.lookup)
        context = self.root / build["context"]
        dockerfile = self.root / build.get("dockerfile", str(Path(build["context"]) / "Dockerfile"))
        tag = inputs["imageName"]
        try:
            image, _ = client.images.build(
                path=str(context),
                dockerfile=str(dockerfile.relative_to(context)),
                tag=tag,
                buildargs=build.get("args", {}),
                platform=build.get("platform"),
                pull=False,
                # What pulumi-docker sends: its classic build sets neither Remove nor ForceRemove, so the
                # daemon keeps each step's container (docs/pulumi-rules.md §2); the program cleans up.
                rm=False,
                forcerm=False,
            )
        except docker.errors.BuildError as error:
            tail = "".join(chunk.get("stream", "") for chunk in error.build_log)[-3000:]
            raise StepError(f"{resource.name}: image build failed: {error}\n{tail}") from error
        return {**inputs, "repoDigest": image.id}


CONTAINER_INPUTS = {
    "name",
    "image",
    "restart",
    "mustRun",
    "ports",
    "uploads",
    "volumes",
    "destroyGraceSeconds",
    "envs",
    "capabilities",
    "sysctls",
    "logDriver",
    "logOpts",
    "healthcheck",
    "wait",
    "waitTimeout",
    "labels",
}


class ContainerOps:
    def __init__(self, providers: Providers, lookup: Callable[[str], Resource | None]) -> None:
        self.providers, self.lookup = providers, lookup

    def create(self, new: Resource) -> tuple[str, dict]:
        inputs = new.inputs
        require_known(new, inputs, CONTAINER_INPUTS)
        for upload in inputs.get("uploads", []):
            require_known(new, upload, {"file", "content"}, "upload ")
        client = self.providers.client(new, self.lookup)
        try:
            client.images.get(inputs["image"])
        except docker.errors.ImageNotFound as error:
            raise StepError(
                f"{new.name}: image {inputs['image']} is not on the daemon; the provider would try to pull "
                "it from a registry and fail (run `up` again after restoring the image: see README)"
            ) from error
        try:
            container = client.containers.create(**_create_kwargs(new))
        except docker.errors.APIError as error:
            raise StepError(f"{new.name}: cannot create container {inputs['name']}: {error}") from error
        try:
            for upload in inputs.get("uploads", []):
                container.put_archive("/", _tar_one(upload["file"], upload["content"]))
            container.start()
            if inputs.get("wait"):  # the only wait the provider has: `mustRun` is not checked on create
                _wait_healthy(new, container, float(inputs.get("waitTimeout", 60)))
        except (StepError, docker.errors.APIError) as error:
            # The bridge returns the state with an init error: the container stays, recorded as made, and the
            # next `up` with the same inputs is an empty update that leaves it as it is (docs/pulumi-rules.md §3).
            raise InitError(str(error), container.id, {**inputs, "id": container.id}) from error
        return container.id, {**inputs, "id": container.id}

    def update(self, old: Resource, new: Resource) -> dict:
        client = self.providers.client(new, self.lookup)
        container = client.containers.get(old.id)
        if old.inputs.get("restart") != new.inputs.get("restart"):
            container.update(restart_policy={"Name": new.inputs.get("restart", "no")})
        if new.inputs.get("mustRun", True) and not old.inputs.get("mustRun", True):
            container.start()
        return {**new.inputs, "id": old.id}

    def delete(self, old: Resource) -> None:
        client = self.providers.client(old, self.lookup)
        try:
            container = client.containers.get(old.id)
        except docker.errors.NotFound:
            return  # already gone: Delete succeeds, as the provider's does
        # Stop timeout = destroyGraceSeconds, 0 when unset: the stop signal, then SIGKILL at once.
        container.stop(timeout=int(old.inputs.get("destroyGraceSeconds", 0)))
        container.remove(force=True, v=old.inputs.get("removeVolumes", True))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                client.containers.get(old.id)
            except docker.errors.NotFound:
                return
            time.sleep(0.2)
        raise StepError(f"{old.name}: container {old.inputs.get('name')} was not removed within 60s")


def _wait_healthy(resource: Resource, container, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        health = container.attrs.get("State", {}).get("Health", {}).get("Status")
        if health == "healthy":
            return
        if container.status == "exited":
            break
        time.sleep(1)
    logs = container.logs(tail=20).decode(errors="replace")
    raise StepError(
        f"{resource.name}: container {resource.inputs['name']} not healthy within {timeout:.0f}s "
        f"(status {container.status}):\n{logs}"
    )


def _create_kwargs(resource: Resource) -> dict:
    inputs = resource.inputs
    kwargs: dict = {"image": inputs["image"], "name": inputs["name"], "detach": True}
    if "labels" in inputs:
        kwargs["labels"] = {label["label"]: label["value"] for label in inputs["labels"]}
    if "restart" in inputs:
        kwargs["restart_policy"] = {"Name": inputs["restart"]}
    ports = {}
    for port in inputs.get("ports", []):
        require_known(resource, port, {"internal", "external", "protocol", "ip"}, "port ")
        key = f"{int(port['internal'])}/{port.get('protocol', 'tcp')}"
        ports[key] = (port["ip"], int(port["external"])) if "ip" in port else int(port["external"])
    if ports:
        kwargs["ports"] = ports
    volumes = {}
    for volume in inputs.get("volumes", []):
        require_known(resource, volume, {"hostPath", "containerPath", "readOnly"}, "volume ")
        volumes[volume["hostPath"]] = {
            "bind": volume["containerPath"],
            "mode": "ro" if volume.get("readOnly") else "rw",
        }
    if volumes:
        kwargs["volumes"] = volumes
    if "envs" in inputs:
        kwargs["environment"] = list(inputs["envs"])
    if "capabilities" in inputs:
        caps = inputs["capabilities"]
        kwargs["cap_add"], kwargs["cap_drop"] = caps.get("adds", []), caps.get("drops", [])
    if "sysctls" in inputs:
        kwargs["sysctls"] = inputs["sysctls"]
    if "logDriver" in inputs or "logOpts" in inputs:
        kwargs["log_config"] = {"Type": inputs.get("logDriver", "json-file"), "Config": inputs.get("logOpts", {})}
    if "healthcheck" in inputs:
        check = inputs["healthcheck"]
        require_known(resource, check, {"tests", "interval", "timeout", "retries", "startPeriod"}, "healthcheck ")
        kwargs["healthcheck"] = {
            "test": check["tests"],
            "interval": _duration_ns(check.get("interval", "0s")),
            "timeout": _duration_ns(check.get("timeout", "0s")),
            "retries": int(check.get("retries", 0)),
            "start_period": _duration_ns(check.get("startPeriod", "0s")),
        }
    return kwargs


def _duration_ns(text: str) -> int:
    """Go duration strings the provider accepts ("500ms", "2s", "1m") as nanoseconds."""
    units = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000}
    for suffix in ("ms", "s", "m"):
        if text.endswith(suffix):
            return int(float(text.removesuffix(suffix)) * units[suffix])
    raise ValueError(f"unsupported duration {text!r}")


def _tar_one(path: str, content: str) -> bytes:
    return tar_archive([Entry(path, content.encode(), 0o644)])
