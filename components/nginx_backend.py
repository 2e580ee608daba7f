"""NginxBackend: one application server, its image built on its own Docker daemon."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components import render
from components.host import HostPreparation, image_on_host
from components.settings import Cluster, Host


class NginxBackendArgs:
    """Inputs of one application server."""

    cluster: Cluster
    """The validated stack settings (platform, base image, server port)."""
    host: Host
    """The server's inventory entry."""
    number: int
    """Its number in the inventory, shown on its page ("Hello world from server N!")."""
    prepared: HostPreparation
    """The host's preparation: its Docker provider, and the step everything waits for."""

    def __init__(self, cluster, host, number, prepared):
        self.cluster, self.host, self.number, self.prepared = cluster, host, number, prepared


class NginxBackend(pulumi.ComponentResource):
    """nginx serving its own page on the server port, restarted unless stopped by hand."""

    image: docker.Image
    """The image, tagged by the hash of its build context, args and platform."""
    container: docker.Container
    """The running server; replaced when its image or page changes."""

    def __init__(self, name: str, args: NginxBackendArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:NginxBackend", name, None, opts)
        cluster, prepared = args.cluster, args.prepared
        on_host = pulumi.ResourceOptions(parent=self, provider=prepared.docker_provider, depends_on=[prepared.ready])
        self.image = image_on_host(f"{name}-image", cluster, "nginx", on_host)
        self.container = docker.Container(
            f"{name}-container",
            name=render.NGINX_CONTAINER,
            image=self.image.image_name,
            restart="unless-stopped",
            must_run=True,
            ports=[docker.ContainerPortArgs(internal=80, external=cluster.nginx.server_port)],
            uploads=[
                docker.ContainerUploadArgs(
                    file="/usr/share/nginx/html/index.html", content=render.nginx_page(args.number)
                )
            ],
            # The fixed name and host port cannot exist twice: remove the old one, then create.
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(delete_before_replace=True)),
        )
        # Registered last: the component's outputs exist once the server runs.
        self.register_outputs({"image": self.image.image_name, "container": self.container.name})
