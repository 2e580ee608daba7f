"""NginxBackend: one application server, its image built on its own Docker daemon, rolled one at a time.

A replacement of the container (a new image, say) is delete-before-replace (pulumi-docker sets it on
every Container), so the server is gone for a few seconds. The program makes that cost no request:
- each balancer first puts the server in maintenance and lets its requests in flight finish (drain);
- the new container must answer its health check before the create counts as done (`wait`);
- each balancer then sends it requests again once its own check says UP (ready);
- the next server's drain waits for this server's ready steps, so one server at a time is out.
The drain step carries the container's spec and image ID, so it runs exactly when the container changes.
Each ready step is keyed (its `triggers`) on its balancer's drain step's `stdout`, which carries a fresh
run id on every run of the drain, and on the container's `id`. It runs again exactly when one of them
changed since it last ran, so an `up` of a converged stack plans no step, and a server left drained is
brought back by the next `up` wherever the previous one stopped:
- after a drain completed (on one balancer or both) and before the ready steps ran, whatever became of
  the container (not started, replaced, its create failed or killed): the drain's stdout in the state is
  not the one the ready step recorded, so the next `up` runs it, once the container is there (that `up`
  drains the other balancer and replaces or creates the container first if the previous one did not);
- an `up` that reverts the change instead: the drain that ran has the new script in the state, so it
  runs again with the old one, and its ready step after it (and the container goes back if it changed);
- after one ready step: the other one's triggers still differ from its state, so it runs;
- a ready step whose create failed (the server never came UP) left no state, or its old copy with the old
  triggers: the next `up` runs it again;
- a container replaced without a drain (`pulumi up --replace` on the container): a new `id`.
Not covered by Pulumi's state: a drain killed or failed *while* running, followed by an `up` that reverts
the change (the state keeps the drain's old inputs, so nothing re-runs): `pulumi up --replace` on its
ready step puts the server back.
The page is a file on the host that the container serves read-only: a new page is no new container.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components import names, render
from components.host import HostPreparation, container_logging, health_check, image_on_host, image_prune
from components.remote import bring_back_script, remote_script
from components.settings import Cluster, Host


@dataclass(frozen=True)
class NginxBackendArgs:
    """Inputs of one application server."""

    rendering: render.Renderer
    """Renders the page, configs and scripts from the deployment's files root."""
    cluster: Cluster
    """The validated stack settings (platform, base image, server port)."""
    host: Host
    """The server's inventory entry."""
    number: int
    """Its number in the inventory, shown on its page ("Hello world from server N!")."""
    prepared: HostPreparation
    """The host's preparation: its connection, Docker provider, and the step everything waits for."""
    balancers: tuple[HostPreparation, ...]
    """The balancers' preparations: the drain and ready steps run on each of them."""
    after: tuple[pulumi.Resource, ...] = ()
    """The previous server's ready steps: this server is taken out only once that one is back."""


class NginxBackend(pulumi.ComponentResource):
    """nginx serving its own page on the server port, restarted unless stopped by hand."""

    image: docker.Image
    """The image, tagged by the hash of its build context, args and platform."""
    container: docker.Container
    """The running server; replaced (after a drain) when its image or spec changes."""
    ready: tuple[pulumi.Resource, ...]
    """One step per balancer, done once that balancer sends this server requests again."""

    def __init__(self, name: str, args: NginxBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:NginxBackend", name, None, opts)
        cluster, prepared, server = args.cluster, args.prepared, args.host.name
        on_host = pulumi.ResourceOptions(parent=self, provider=prepared.docker_provider, depends_on=[prepared.ready])
        self.image = image_on_host(f"{name}-image", args.rendering, cluster, "nginx", on_host)
        prune = image_prune(f"{name}-image-prune", args.rendering, cluster, "nginx", self.image, prepared, self)
        page = remote_script(
            f"{name}-page",
            prepared.connection,
            args.rendering.nginx_page_script(args.number),
            delete_script=args.rendering.nginx_page_delete_script(),
            parent=self,
            depends_on=[prepared.ready],
        )
        image_name = args.rendering.image_name(cluster, "nginx")
        spec = dict(
            name=names.NGINX_CONTAINER,
            image=image_name,
            restart=names.RESTART_POLICY,
            must_run=True,
            ports=[docker.ContainerPortArgs(internal=80, external=cluster.nginx.server_port)],
            volumes=[
                docker.ContainerVolumeArgs(
                    host_path=names.NGINX_PAGE_DIR, container_path=names.NGINX_CONTAINER_PAGE_DIR, read_only=True
                )
            ],
            healthcheck=health_check(80),
            wait=True,
            wait_timeout=60,
            # nginx stops gracefully on SIGQUIT (its STOPSIGNAL); without a grace it is killed at once.
            destroy_grace_seconds=10,
            **container_logging(),
        )
        # The container runs the image by its ID (repo_digest, with skip_push the local image ID): a
        # rebuild under the same tag still replaces it, and the rolling key changes with it.
        rolling_key = self.image.repo_digest.apply(
            lambda image_id: args.rendering.rolling_key(render.spec_digest(spec), image_id)
        )
        drain_script = rolling_key.apply(lambda key: args.rendering.server_drain_script(server, key))
        drains = [
            remote_script(
                f"{name}-drain-on-{balancer.host.name}",
                balancer.connection,
                drain_script,
                parent=self,
                # Drained only once its new image is built: a server is out of service for the swap alone.
                depends_on=[balancer.ready, self.image, page, *args.after],
                takes_out=True,
            )
            for balancer in args.balancers
        ]
        self.container = docker.Container(
            f"{name}-container",
            **(spec | {"image": self.image.repo_digest}),  # an output: the container waits for its build
            labels=[docker.ContainerLabelArgs(label=names.SPEC_LABEL, value=rolling_key)],
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(depends_on=[page, prune, *drains])),
        )
        self.ready = tuple(
            bring_back_script(
                f"{name}-ready-on-{balancer.host.name}",
                balancer.connection,
                args.rendering.server_ready_script(cluster, server),
                keyed_on=[self.container.id, drain.stdout],
                parent=self,
                depends_on=[self.container],
            )
            for balancer, drain in zip(args.balancers, drains, strict=True)
        )
        # Registered last: the component's outputs exist once the server runs and is back in service.
        self.register_outputs({"image": self.image.image_name, "container": self.container.name})
