"""HaproxyBalancer: HAProxy compiled from source on a balancer, fed every server of the inventory."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components import render
from components.host import HostPreparation, image_on_host
from components.remote import remote_script
from components.settings import Cluster, Host


class HaproxyBalancerArgs:
    """Inputs of one load balancer."""

    cluster: Cluster
    """The validated stack settings (HAProxy options, ports, platform)."""
    host: Host
    """The balancer's inventory entry."""
    servers: list[Host]
    """The application servers it balances, in inventory order."""
    stats_password: pulumi.Input[str]
    """Password of the stats page (user admin), a Pulumi secret."""
    prepared: HostPreparation
    """The host's preparation: its connection, Docker provider, and the step everything waits for."""
    after: list[pulumi.Resource]
    """Resources to wait for first (the servers, so health checks find them up)."""

    def __init__(self, cluster, host, servers, stats_password, prepared, after):
        self.cluster, self.host, self.servers = cluster, host, servers
        self.stats_password, self.prepared, self.after = stats_password, prepared, after


class HaproxyBalancer(pulumi.ComponentResource):
    """Image, checked config (reloaded in place when it changes), and the container on the frontend port."""

    image: docker.Image
    """The HAProxy image, compiled on this host's daemon."""
    config: pulumi.Resource
    """The remote step that checks and installs haproxy.cfg, then reloads HAProxy."""
    container: docker.Container
    """The running balancer."""

    def __init__(self, name: str, args: HaproxyBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:HaproxyBalancer", name, None, opts)
        cluster, prepared, hp = args.cluster, args.prepared, args.cluster.haproxy
        on_host = pulumi.ResourceOptions(parent=self, provider=prepared.docker_provider, depends_on=[prepared.ready])
        self.image = image_on_host(f"{name}-image", cluster, "haproxy", on_host)
        config = pulumi.Output.from_input(args.stats_password).apply(
            lambda password: render.haproxy_cfg(cluster, args.host, args.servers, password)
        )
        self.config = remote_script(
            f"{name}-config",
            prepared.connection,
            pulumi.Output.all(config, self.image.image_name).apply(
                lambda text_and_image: render.haproxy_config_script(*text_and_image)
            ),
            delete_script=render.haproxy_config_delete_script(),
            carries_secrets=True,
            parent=self,
            depends_on=[prepared.ready, self.image, *args.after],
        )
        self.container = docker.Container(
            f"{name}-container",
            name=render.HAPROXY_CONTAINER,
            image=self.image.image_name,
            restart="unless-stopped",
            must_run=True,
            ports=[
                docker.ContainerPortArgs(internal=render.HAPROXY_FRONTEND_CONTAINER_PORT, external=hp.frontend_port),
                docker.ContainerPortArgs(internal=render.HAPROXY_STATS_CONTAINER_PORT, external=hp.stats_port),
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    host_path=render.HAPROXY_CONFIG_DIR, container_path="/usr/local/etc/haproxy", read_only=True
                )
            ],
            destroy_grace_seconds=10,
            # The fixed name and host ports cannot exist twice: remove the old one, then create.
            opts=pulumi.ResourceOptions.merge(
                on_host, pulumi.ResourceOptions(depends_on=[self.config], delete_before_replace=True)
            ),
        )
        # Registered last: the balancer counts as done once its container runs the checked config.
        self.register_outputs({"image": self.image.image_name, "container": self.container.name})
