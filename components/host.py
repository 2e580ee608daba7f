"""HostPreparation: the paper's `install` role, and the Docker provider for that host's own daemon."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from common.files import write_private
from components import render
from components.remote import CHECK_TIMEOUT_S, checked_locally, remote_script, run_script_from_stdin
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


def ssh_key_file(args: HostPreparationArgs) -> pulumi.Output[str]:
    """The SSH private key in a 0600 file, for the local `ssh` client (the Docker provider's and the
    connectivity check's), which cannot take a key as a value: the file name, never the key, is what
    reaches a command line. Written inside an apply, on every run of the program (preview too)."""
    key_file = args.ssh_dir / "id_pihalb"
    written = pulumi.Output.from_input(args.private_key).apply(lambda key: _write_private(key_file, key))
    return pulumi.Output.unsecret(written)


def known_hosts_file(args: HostPreparationArgs) -> Path:
    """The host's pinned key in its own known_hosts file: any other key is refused."""
    known_hosts = args.ssh_dir / f"known_hosts_{args.host.name}"
    # OpenSSH writes the default port as the bare address, any other as [address]:port.
    known_as = str(args.host.address) if args.port == 22 else f"[{args.host.address}]:{args.port}"
    _write_private(known_hosts, f"{known_as} {args.host_key}\n")
    return known_hosts


def _login_options(args: HostPreparationArgs, key_path: str, known_hosts: Path) -> list[str]:
    """Our key only, the pinned host key only, no prompts."""
    return [
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
    ]


def docker_ssh_opts(
    args: HostPreparationArgs, key_path: pulumi.Output[str], known_hosts: Path
) -> pulumi.Output[list[str]]:
    """ssh options for `ssh://`: the login options, and one connection per host for all requests."""
    return key_path.apply(
        lambda path: [
            *_login_options(args, path, known_hosts),
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


def connectivity_check_command(args: HostPreparationArgs, key_path: str, known_hosts: Path) -> str:
    """The local command that runs the connectivity check on the host: `ssh` with the login options, a
    fresh connection (not the Docker provider's shared one), the script read from stdin on the host. On
    failure it says which host, then exits with ssh's status. No secret in it: the key is a file name."""
    address = str(args.host.address)
    ssh = [
        "ssh",
        "-T",
        *_login_options(args, key_path, known_hosts),
        "-o",
        "ConnectionAttempts=3",
        "-o",
        "ServerAliveInterval=10",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-p",
        str(args.port),
        "-l",
        args.user,
        "--",
        address,
        run_script_from_stdin(CHECK_TIMEOUT_S),
    ]
    failed = f"pihalb: connectivity check of {args.host.name} ({args.user}@{address}:{args.port}) failed"
    return f'{shlex.join(ssh)} || {{ status=$?; echo {shlex.quote(failed)}" (exit $status)" >&2; exit "$status"; }}'


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
    checked: pulumi.Output[str]
    """The connectivity check's output; the install step waits for it."""
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
        # The paper's connectivity check (`ansible -m ping`) comes first, on every preview and every up: a
        # `local.run` invoke through the local ssh client, not a resource, so a converged stack shows no
        # change for it. The install step's script is the same value either way, but its registration
        # waits for the check's result, and every other step of this host waits for the install step.
        key_path = ssh_key_file(args)
        known_hosts = known_hosts_file(args)
        self.checked = checked_locally(
            key_path.apply(lambda path: connectivity_check_command(args, path, known_hosts)),
            args.rendering.check_connectivity_script(args.cluster),
        )
        install = args.rendering.prepare_host_script(args.cluster, args.user)
        self.ready = remote_script(
            f"{name}-install",
            self.connection,
            self.checked.apply(lambda _: install),
            delete_script=args.rendering.prepare_host_delete_script(),
            parent=self,
            depends_on=[],
        )
        self.docker_provider = docker.Provider(
            f"{name}-docker",
            host=f"ssh://{args.user}@{host.address}:{args.port}",
            ssh_opts=docker_ssh_opts(args, key_path, known_hosts),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready]),
        )
        # Outputs registered last, so the component is complete only when the host is ready.
        self.register_outputs({"address": str(host.address), "ready": self.ready.stdout})
