"""HostPreparation: the paper's `install` role, and the Docker provider for that host's own daemon."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from common.files import write_private
from components import render
from components.remote import every_run_script, remote_script
from components.settings import Cluster, Host


@dataclass(frozen=True)
class HostPreparationArgs:
    """Inputs of one host's preparation."""

    cluster: Cluster
    """The validated stack settings (platform, SSH defaults, package policy)."""
    host: Host
    """The Pi being prepared."""
    user: str
    """SSH login user, also the user given passwordless sudo and the docker group."""
    port: int
    """SSH port."""
    host_key: str
    """The host's pinned SSH public key ("type base64"): a different key refuses the connection."""
    private_key: pulumi.Input[str]
    """The SSH private key, a Pulumi secret."""
    ssh_dir: Path
    """Local directory holding the key file and known_hosts the Docker provider's ssh client uses."""
    rendering: render.Renderer
    """Renders the host scripts from the deployment's files root."""


def local_ssh_dir(project: str, stack: str) -> Path:
    """Where the Docker provider's ssh client finds its key and known_hosts (override: PIHALB_SSH_DIR)."""
    base = os.environ.get("PIHALB_SSH_DIR") or str(Path.home() / ".pihalb")
    return Path(base) / f"{project}-{stack}"


def _write_private(path: Path, content: str) -> str:
    return str(write_private(path, content if content.endswith("\n") else content + "\n"))


def docker_ssh_opts(args: HostPreparationArgs) -> pulumi.Output[list[str]]:
    """ssh options for `ssh://`: our key only, the pinned host key only, no prompts.

    The Docker provider runs the local `ssh` client, which cannot take a key as a value, so the secret
    key is written to a 0600 file; the file name, not the key, is what reaches the provider.
    """
    key_file = args.ssh_dir / "id_pihalb"
    known_hosts = args.ssh_dir / f"known_hosts_{args.host.name}"
    # OpenSSH writes the default port as the bare address, any other as [address]:port.
    known_as = str(args.host.address) if args.port == 22 else f"[{args.host.address}]:{args.port}"
    entry = f"{known_as} {args.host_key}\n"
    _write_private(known_hosts, entry)
    written = pulumi.Output.from_input(args.private_key).apply(lambda key: _write_private(key_file, key))
    return pulumi.Output.unsecret(written).apply(
        lambda key_path: [
            "-i",
            key_path,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"ConnectTimeout={args.cluster.ssh.connect_timeout}",
            # One SSH connection per host for all of the provider's requests: a burst of new handshakes
            # can meet sshd's MaxStartups limit (10 unauthenticated), which drops connections at random.
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={args.ssh_dir / 'cm-%C'}",
            "-o",
            "ControlPersist=60",
        ]
    )


PROJECT_DIR = Path(__file__).resolve().parent.parent
HEALTH_INTERVAL = "2s"  # Docker runs the first check one interval after the start; `wait` polls for it


def health_check(port: int, http: bool = True) -> docker.ContainerHealthcheckArgs:
    """A health check inside the container (the images have bash, not curl): an HTTP 200 on `port`, or
    with `http=False` an accepted connection. With `wait`, a create is done only once it passes."""
    probe = f"exec 3<>/dev/tcp/127.0.0.1/{port}"
    if http:
        probe += (
            " && printf 'GET / HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3"
            " && read -r status <&3 && case $status in *' 200 '*) ;; *) exit 1 ;; esac"
        )
    return docker.ContainerHealthcheckArgs(
        tests=["CMD", "bash", "-c", probe], interval=HEALTH_INTERVAL, timeout="2s", retries=3
    )


def container_logging() -> dict:
    """Docker's json-file log, rotated: every request is logged, and an SD card is small."""
    return {"log_driver": "json-file", "log_opts": {"max-size": "10m", "max-file": "3"}}


def image_prune(
    name: str,
    rendering: render.Renderer,
    cluster: Cluster,
    kind: str,
    image: docker.Image,
    prepared: HostPreparation,
    parent: pulumi.Resource,
):
    """After every build of `kind`: its leftovers and old tags removed; on delete all of ours (the containers
    depend on it, so they go first). pulumi-docker's classic build never asks the daemon to remove the
    containers of its steps (see docs/pulumi-rules.md), so nothing else would."""
    return remote_script(
        name,
        prepared.connection,
        image.repo_digest.apply(lambda image_id: rendering.image_prune_script(cluster, kind, image_id)),
        delete_script=rendering.image_prune_delete_script(kind),
        parent=parent,
        depends_on=[prepared.ready, image],
    )


def image_on_host(
    name: str, rendering: render.Renderer, cluster: Cluster, kind: str, opts: pulumi.ResourceOptions
) -> docker.Image:
    """An image built by the host's own daemon from `files/<kind>/`, for the stack's platform, never pushed.

    Paths are relative to the project (where `pulumi up` runs), so another checkout shows no diff. The
    classic builder is pinned: it is the one the lab engine drives, so the lab builds what Pis build.
    """
    context = Path(os.path.relpath(rendering.files / kind, PROJECT_DIR))
    return docker.Image(
        name,
        image_name=rendering.image_name(cluster, kind),
        build=docker.DockerBuildArgs(
            context=str(context),
            dockerfile=str(context / "Dockerfile"),
            platform=cluster.platform,
            args=rendering.build_args(cluster, kind),
            builder_version=docker.BuilderVersion.BUILDER_V1,
        ),
        skip_push=True,
        build_on_preview=False,
        opts=opts,
    )


class HostPreparation(pulumi.ComponentResource):
    """Connectivity check, then sudoers drop-in, packages and Docker; then a provider for its daemon."""

    connection: command.remote.ConnectionArgs
    """How every remote command reaches this host."""
    ready: command.remote.Command
    """The last preparation step: every later step on this host depends on it."""
    docker_provider: docker.Provider
    """The Docker provider bound to this host's own daemon over ssh://."""
    host: Host
    """The Pi it prepares."""

    def __init__(self, name: str, args: HostPreparationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:HostPreparation", name, None, opts)
        host = self.host = args.host
        self.connection = command.remote.ConnectionArgs(
            host=str(host.address),
            port=args.port,
            user=args.user,
            private_key=args.private_key,
            host_key=args.host_key,
            dial_error_limit=3,
            per_dial_timeout=args.cluster.ssh.connect_timeout,
        )
        # The paper's connectivity check comes first on every `pulumi up`, not only the first.
        ping = every_run_script(
            f"{name}-ping", self.connection, args.rendering.check_connectivity_script(args.cluster), parent=self
        )
        self.ready = remote_script(
            f"{name}-install",
            self.connection,
            args.rendering.prepare_host_script(args.cluster, args.user),
            delete_script=args.rendering.prepare_host_delete_script(),
            parent=self,
            depends_on=[ping],
        )
        self.docker_provider = docker.Provider(
            f"{name}-docker",
            host=f"ssh://{args.user}@{host.address}:{args.port}",
            ssh_opts=docker_ssh_opts(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready]),
        )
        # Outputs registered last, so the component is complete only when the host is ready.
        self.register_outputs({"address": str(host.address), "ready": self.ready.stdout})
