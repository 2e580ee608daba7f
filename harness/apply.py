"""Carry out, for real, what the program declared under mocks: the lab's stand-in for `pulumi up`.

Each resource is applied once everything it depends on is (its declared dependencies, its provider,
its components' dependencies), several at a time as Pulumi does. Remote commands run over SSH
(paramiko) with their own declared connection, host key pinned. Images and containers go to the
daemon a resource's Docker provider names, over `ssh://` with the provider's declared ssh options,
through the Docker SDK for Python. A declared input this harness does not know how to honour is an
error, never skipped.

Like Pulumi, the harness keeps state: the declared inputs of each container are hashed into a label,
so an unchanged container is left alone and a changed one is replaced. Unlike Pulumi, every remote
command runs on every apply (as if its trigger had changed): a stricter test of their idempotence.
`delete` scripts belong to `pulumi destroy`; the harness never destroys (`python -m lab down` does).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import paramiko

from harness.program import Declared, Program

SPEC_LABEL = "pihalb.harness.spec"
CHANGED_MARKER = "pihalb-changed: "
IGNORED_TYPES = ("pihalb:index:",)  # component resources: logical grouping, nothing to apply


class ApplyError(RuntimeError):
    """A step failed; the message names the resource, the host and the output."""


@dataclass
class StepResult:
    name: str
    type: str
    action: str  # "ran", "created", "replaced", "unchanged", "built", "present", "configured"
    changed: bool
    seconds: float
    output: str = ""


@dataclass
class ApplyReport:
    steps: list[StepResult] = field(default_factory=list)

    def by_name(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)

    def of_type(self, type_: str) -> list[StepResult]:
        return [s for s in self.steps if s.type == type_]


def _require_known(resource: Declared, inputs: dict, known: set[str], where: str = "") -> None:
    unknown = sorted(set(inputs) - known)
    if unknown:
        raise ApplyError(f"{resource.name}: the harness cannot honour declared {where}inputs {unknown}")


def _private_key(text: str) -> paramiko.PKey:
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise ApplyError("the declared SSH private key is not an ed25519, ECDSA or RSA key")


class _SshShim:
    """An `ssh` on PATH that adds each provider's declared ssh_opts, as pulumi-docker does for ssh://."""

    SCRIPT = """#!/bin/bash
# pi-ha-lb harness: the ssh the Docker SDK runs for ssh://, with the provider's declared ssh_opts.
set -eu
dest=""
prev=""
for arg in "$@"; do
    if [ "$prev" = "--" ]; then dest=$arg; break; fi
    prev=$arg
done
mapfile -t opts <"$(dirname "$0")/opts/$dest"
exec {real_ssh} "${{opts[@]}}" "$@"
"""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pihalb-ssh-shim-"))
        (self.dir / "opts").mkdir()
        real_ssh = "/usr/bin/ssh"
        shim = self.dir / "ssh"
        shim.write_text(self.SCRIPT.format(real_ssh=real_ssh))
        shim.chmod(0o755)
        os.environ["PATH"] = f"{self.dir}{os.pathsep}{os.environ['PATH']}"

    def register(self, host: str, ssh_opts: list[str]) -> None:
        (self.dir / "opts" / host).write_text("".join(f"{opt}\n" for opt in ssh_opts))


@functools.cache
def _shim() -> _SshShim:
    """One shim per process: it goes on PATH once."""
    return _SshShim()


class Applier:
    """Applies one Program to real hosts."""

    def __init__(self, program: Program, on_docker_ready: Callable[[str], None] | None = None, log=print):
        self.program = program
        self.on_docker_ready = on_docker_ready or (lambda address: None)
        self.log = log
        self.clients: dict[str, docker.DockerClient] = {}
        self.shim = _shim()
        self.handlers = {
            "command:remote:Command": self._command,
            "pulumi:providers:docker": self._provider,
            "docker:index/image:Image": self._image,
            "docker:index/container:Container": self._container,
        }

    # -- entry point -------------------------------------------------------------------------------
    def apply(self, parallel: int = 5) -> ApplyReport:
        """Apply every resource once all it depends on is applied, up to `parallel` at a time (as Pulumi does)."""
        report = ApplyReport()
        applicable = [r for r in self.program.resources if not r.type.startswith(IGNORED_TYPES)]
        urns = {r.urn for r in applicable}
        done: dict[str, Future] = {}
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            for resource in applicable:
                waits = [done[u] for u in self._prerequisites(resource) if u in urns]
                done[resource.urn] = pool.submit(self._apply_one, resource, waits, report)
            for future in done.values():
                future.result()
        return report

    def _prerequisites(self, resource: Declared) -> set[str]:
        """What must be applied first: declared dependencies, the provider, and those of its components."""
        needs = set(resource.dependencies)
        if resource.provider_urn:
            needs.add(resource.provider_urn)
        parent = resource.parent
        while parent:
            component = self.program.find(parent)
            if component is None:
                break
            needs |= set(component.dependencies)
            parent = component.parent
        return needs

    def _apply_one(self, resource: Declared, waits: list[Future], report: ApplyReport) -> None:
        for future in waits:
            future.result()  # a failed prerequisite fails this one too, with the first error
        handler = self.handlers.get(resource.type)
        if handler is None:
            raise ApplyError(f"{resource.name}: the harness cannot apply resource type {resource.type}")
        started = time.monotonic()
        action, changed, output = handler(resource)
        step = StepResult(resource.name, resource.type, action, changed, time.monotonic() - started, output)
        report.steps.append(step)
        state = "changed" if changed else "no change"
        self.log(f"  {step.name:<32} {step.action:<10} {state:<9} {step.seconds:6.1f}s")

    # -- remote commands ---------------------------------------------------------------------------
    def _command(self, resource: Declared):
        inputs = resource.inputs
        _require_known(
            resource, inputs, {"connection", "create", "delete", "triggers", "addPreviousOutputInEnv", "logging"}
        )
        if inputs.get("addPreviousOutputInEnv", True):
            raise ApplyError(f"{resource.name}: addPreviousOutputInEnv must be false (runs must not depend on history)")
        code, out, err = self.run_remote(resource, inputs["connection"], inputs["create"])
        host = inputs["connection"]["host"]
        if code != 0:
            raise ApplyError(f"step {resource.name} failed on host {host} (exit {code}):\n{out[-2000:]}\n{err[-3000:]}")
        markers = [line for line in out.splitlines() if line.startswith(CHANGED_MARKER)]
        if not markers:
            raise ApplyError(f"step {resource.name} on {host} did not report '{CHANGED_MARKER}yes|no'")
        return "ran", markers[-1].removeprefix(CHANGED_MARKER) == "yes", out + err

    def run_remote(self, resource: Declared, connection: dict, command: str, timeout: float = 900):
        _require_known(
            resource,
            connection,
            {"host", "port", "user", "privateKey", "hostKey", "dialErrorLimit", "perDialTimeout"},
            "connection ",
        )
        host, port = connection["host"], int(connection.get("port", 22))
        client = paramiko.SSHClient()
        key_type, key_b64 = connection["hostKey"].split()[:2]
        known_as = host if port == 22 else f"[{host}]:{port}"
        client.get_host_keys().add(
            known_as, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        attempts = int(connection.get("dialErrorLimit", 10))
        for attempt in range(1, attempts + 1):
            try:
                client.connect(
                    host,
                    port=port,
                    username=connection["user"],
                    pkey=_private_key(connection["privateKey"]),
                    timeout=float(connection.get("perDialTimeout", 15)),
                    allow_agent=False,
                    look_for_keys=False,
                )
                break
            except (OSError, paramiko.SSHException) as error:
                if attempt == attempts or isinstance(error, paramiko.BadHostKeyException):
                    raise ApplyError(
                        f"step {resource.name}: cannot reach host {host}:{port} over SSH "
                        f"after {attempt} attempts: {error}"
                    ) from error
                time.sleep(1)
        try:
            _, stdout, stderr = client.exec_command(command, timeout=timeout)
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            return stdout.channel.recv_exit_status(), out, err
        except TimeoutError as error:
            raise ApplyError(f"step {resource.name} on {host} took longer than {timeout:.0f}s") from error
        finally:
            client.close()

    # -- docker ------------------------------------------------------------------------------------
    def _provider(self, resource: Declared):
        inputs = resource.inputs
        _require_known(resource, inputs, {"host", "sshOpts"})
        url = inputs["host"]
        if not url.startswith("ssh://"):
            raise ApplyError(f"{resource.name}: only ssh:// Docker hosts are supported, got {url}")
        opts = inputs.get("sshOpts", "[]")
        opts = json.loads(opts) if isinstance(opts, str) else opts
        address = url.removeprefix("ssh://").split("@")[-1].rsplit(":", 1)[0]
        self.shim.register(address, opts)
        client = docker.DockerClient(base_url=url, use_ssh_client=True, timeout=900)
        info = client.info()
        self.clients[resource.urn] = client
        self.on_docker_ready(address)
        return "configured", False, f"docker {info['ServerVersion']} on {address}"

    def _client_for(self, resource: Declared) -> docker.DockerClient:
        urn = resource.provider_urn
        if urn is None:
            raise ApplyError(f"{resource.name}: no explicit Docker provider (it would deploy to the wrong daemon)")
        if urn not in self.clients:
            raise ApplyError(f"{resource.name}: its provider {urn} was not applied before it")
        return self.clients[urn]

    def _image(self, resource: Declared):
        inputs = resource.inputs
        _require_known(resource, inputs, {"imageName", "build", "skipPush", "buildOnPreview"})
        if not inputs.get("skipPush"):
            raise ApplyError(f"{resource.name}: pushing to a registry is not supported (set skip_push)")
        build = inputs["build"]
        _require_known(resource, build, {"context", "dockerfile", "platform", "args"}, "build ")
        client = self._client_for(resource)
        tag = inputs["imageName"]
        try:
            client.images.get(tag)
            return "present", False, tag
        except docker.errors.ImageNotFound:
            pass
        context = Path(build["context"])
        dockerfile = Path(build.get("dockerfile", context / "Dockerfile"))
        try:
            _, logs = client.images.build(
                path=str(context),
                dockerfile=str(dockerfile.relative_to(context)),
                tag=tag,
                buildargs=build.get("args", {}),
                platform=build.get("platform"),
                rm=True,
                forcerm=True,
                pull=False,
            )
        except docker.errors.BuildError as error:
            tail = "".join(chunk.get("stream", "") for chunk in error.build_log)[-3000:]
            raise ApplyError(f"{resource.name}: image build failed: {error}\n{tail}") from error
        return "built", True, "".join(chunk.get("stream", "") for chunk in logs)[-2000:]

    def _container(self, resource: Declared):
        inputs = resource.inputs
        _require_known(
            resource,
            inputs,
            {
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
            },
        )
        for upload in inputs.get("uploads", []):
            _require_known(resource, upload, {"file", "content"}, "upload ")
        client = self._client_for(resource)
        spec = _spec_hash(inputs, client.images.get(inputs["image"]).id)
        name = inputs["name"]
        try:
            existing = client.containers.get(name)
        except docker.errors.NotFound:
            existing = None
        if existing is not None and existing.labels.get(SPEC_LABEL) == spec:
            if inputs.get("mustRun", True) and existing.status != "running":
                existing.start()
                return "started", True, name
            return "unchanged", False, name
        action = "created"
        if existing is not None:
            if not resource.delete_before_replace:
                raise ApplyError(
                    f"{resource.name}: replacing {name} needs delete_before_replace (Pulumi would "
                    "create the new container first and collide with the old one's name)"
                )
            existing.stop(timeout=int(inputs.get("destroyGraceSeconds", 10)))
            existing.remove()
            action = "replaced"
        container = client.containers.create(**_create_kwargs(resource, inputs, spec))
        for upload in inputs.get("uploads", []):
            container.put_archive("/", _tar_one(upload["file"], upload["content"]))
        container.start()
        return action, True, name


def _spec_hash(inputs: dict, image_id: str) -> str:
    return hashlib.sha256(json.dumps([inputs, image_id], sort_keys=True).encode()).hexdigest()[:24]


def _create_kwargs(resource: Declared, inputs: dict, spec: str) -> dict:
    kwargs: dict = {"image": inputs["image"], "name": inputs["name"], "detach": True, "labels": {SPEC_LABEL: spec}}
    if "restart" in inputs:
        kwargs["restart_policy"] = {"Name": inputs["restart"]}
    ports = {}
    for port in inputs.get("ports", []):
        _require_known(resource, port, {"internal", "external", "protocol", "ip"}, "port ")
        key = f"{int(port['internal'])}/{port.get('protocol', 'tcp')}"
        ports[key] = (port["ip"], int(port["external"])) if "ip" in port else int(port["external"])
    if ports:
        kwargs["ports"] = ports
    volumes = {}
    for volume in inputs.get("volumes", []):
        _require_known(resource, volume, {"hostPath", "containerPath", "readOnly"}, "volume ")
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
    return kwargs


def _tar_one(path: str, content: str) -> bytes:
    data = content.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
