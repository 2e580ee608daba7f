"""HaproxyBalancer: HAProxy compiled from source on a balancer, fed every server of the inventory.

A config change is checked, swapped in and reloaded in place (no new container). A replacement of the
container (a new image) is delete-before-replace, so the program rolls it: the BACKUP goes first, then
the MASTER, and before a balancer's HAProxy stops its VRRP priority drops to the floor until the peer
holds the VIP (leave); once the new container answers, the priority comes back (rejoin). The leave step
carries the container's spec and image ID, so it runs exactly when the container changes. The rejoin step
is keyed (its `triggers`) on the leave step's `stdout` (a fresh run id on every run of the leave) and the
container's `id`. It runs again exactly when one of them changed since it last ran, so an `up` of a
converged stack plans no step, and a balancer left with its priority lowered (or, without preemption,
its keepalived stopped) is brought back by the next `up` wherever the previous one stopped:
- after the leave completed and before the rejoin ran, whatever became of the container (not started,
  replaced, its create failed or killed): the leave's stdout in the state is not the one the rejoin
  recorded, so the next `up` rejoins once the container is there (replacing or creating it first);
- an `up` that reverts the change instead: the leave runs again with the old script (handing the VIP
  over again only if the running container must change back), and the rejoin after it;
- after the BACKUP rejoined, before the MASTER left: the BACKUP is in service, and the next `up` rolls
  the MASTER as usual;
- a rejoin whose create failed left no state (or its old copy with the old triggers): it runs again;
- a container replaced without a leave (`pulumi up --replace` on the container): a new `id`.
Not covered by Pulumi's state: a leave killed or failed while running, then an `up` that reverts the
change; `pulumi up --replace` on the rejoin step brings the balancer back.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components import names, render, tls_host
from components.host import HostPreparation, container_logging, health_check, image_on_host, image_prune
from components.remote import bring_back_script, remote_script
from components.settings import Cluster, Host


@dataclass(frozen=True)
class HaproxyBalancerArgs:
    """Inputs of one load balancer."""

    rendering: render.Renderer
    """Renders the page, configs and scripts from the deployment's files root."""
    cluster: Cluster
    """The validated stack settings (HAProxy options, ports, platform)."""
    host: Host
    """The balancer's inventory entry."""
    servers: tuple[Host, ...]
    """The application servers it balances, in inventory order."""
    stats_password: pulumi.Input[str]
    """Password of the stats page (user admin), a Pulumi secret."""
    prepared: HostPreparation
    """The host's preparation: its connection, Docker provider, and the step everything waits for."""
    servers_ready: tuple[pulumi.Resource, ...]
    """The servers' ready steps: the config that lists them goes live once they are all in service."""
    after: tuple[pulumi.Resource, ...] = ()
    """The other balancer's rejoin step, when this one rolls second (the MASTER after the BACKUP)."""
    acme_thumbprint: str = ""
    """With an acme certificate (haproxy.tls): the account's thumbprint, for the HTTP-01 answers."""
    tls: pulumi.Output | None = None
    """With haproxy.tls: the checked TLS secrets (tls_secrets.TlsMaterial), one secret Output; None without TLS."""
    peer: Host | None = None
    """The other balancer (with TLS: where the renewal looks for a newer certificate)."""


class HaproxyBalancer(pulumi.ComponentResource):
    """Image, checked config (reloaded in place when it changes), and the container on the frontend port."""

    image: docker.Image
    """The HAProxy image, compiled on this host's daemon."""
    config: pulumi.Resource
    """The remote step that checks and installs haproxy.cfg, then reloads HAProxy."""
    container: docker.Container
    """The running balancer."""
    rejoined: pulumi.Resource
    """The step after which this balancer takes part in VRRP again."""

    def __init__(self, name: str, args: HaproxyBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:HaproxyBalancer", name, None, opts)
        cluster, prepared, hp = args.cluster, args.prepared, args.cluster.haproxy
        on_host = pulumi.ResourceOptions(parent=self, provider=prepared.docker_provider, depends_on=[prepared.ready])
        self.image = image_on_host(f"{name}-image", args.rendering, cluster, "haproxy", on_host)
        prune = image_prune(f"{name}-image-prune", args.rendering, cluster, "haproxy", self.image, prepared, self)
        config = pulumi.Output.from_input(args.stats_password).apply(
            lambda password: args.rendering.haproxy_cfg(
                cluster, args.host, list(args.servers), password, args.acme_thumbprint
            )
        )
        # With TLS: the keys and HAProxy's first certificate are on the host before haproxy.cfg, whose
        # check then mounts them (components/tls_host.py); without, none of it is declared.
        tls_steps = (
            [
                tls_host.balancer_tls_step(
                    name, args.rendering, cluster, args.host, args.peer, args.tls, prepared.connection,
                    parent=self, depends_on=[prepared.ready],
                )
            ]
            if args.tls is not None
            else []
        )  # fmt: skip
        self.config = remote_script(
            f"{name}-config",
            prepared.connection,
            pulumi.Output.all(config, self.image.image_name).apply(
                lambda text_and_image: (tls_host.config_script_with_pem if tls_steps else str)(
                    args.rendering.haproxy_config_script(*text_and_image)
                )
            ),
            delete_script=args.rendering.haproxy_config_delete_script(),
            carries_secrets=True,
            parent=self,
            depends_on=[prepared.ready, self.image, *args.servers_ready, *tls_steps],
        )
        spec = dict(
            name=names.HAPROXY_CONTAINER,
            image=args.rendering.image_name(cluster, "haproxy"),
            restart=names.RESTART_POLICY,
            must_run=True,
            ports=[
                docker.ContainerPortArgs(internal=names.HAPROXY_FRONTEND_CONTAINER_PORT, external=hp.frontend_port),
                docker.ContainerPortArgs(internal=names.HAPROXY_STATS_CONTAINER_PORT, external=hp.stats_port),
                *tls_host.tls_ports(cluster),
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    host_path=names.HAPROXY_CONFIG_DIR,
                    container_path=names.HAPROXY_CONTAINER_CONFIG_DIR,
                    read_only=True,
                )
            ],
            healthcheck=health_check(names.HAPROXY_FRONTEND_CONTAINER_PORT, http=False),
            wait=True,
            wait_timeout=60,
            # SIGUSR1 (its STOPSIGNAL) lets the requests in flight finish; then it is killed.
            destroy_grace_seconds=10,
            **container_logging(),
        )
        # The container runs the image by its ID (see NginxBackend); the leave step carries the same key.
        rolling_key = self.image.repo_digest.apply(
            lambda image_id: args.rendering.rolling_key(render.spec_digest(spec), image_id)
        )
        leave = remote_script(
            f"{name}-leave",
            prepared.connection,
            rolling_key.apply(lambda key: args.rendering.balancer_leave_script(cluster, key)),
            parent=self,
            # Out of service only once its new image is built and its config checked: never during a build
            # (compiling HAProxy starves a small host; a balancer taken out meanwhile would stay out for it).
            depends_on=[prepared.ready, self.image, self.config, *args.after],
            takes_out=True,
        )
        self.container = docker.Container(
            f"{name}-container",
            **(spec | {"image": self.image.repo_digest}),  # an output: the container waits for its build
            labels=[docker.ContainerLabelArgs(label=names.SPEC_LABEL, value=rolling_key)],  # read by the leave step
            opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(depends_on=[self.config, prune, leave])),
        )
        self.rejoined = bring_back_script(
            f"{name}-rejoin",
            prepared.connection,
            args.rendering.balancer_rejoin_script(),
            keyed_on=[self.container.id, leave.stdout],
            parent=self,
            depends_on=[self.container],
        )
        tls_host.balancer_renewal_step(
            name, args.rendering, cluster, prepared.connection, parent=self, depends_on=[self.rejoined]
        )
        # Registered last: the balancer counts as done once its container runs the checked config.
        self.register_outputs({"image": self.image.image_name, "container": self.container.name})
