"""KeepalivedPair: VRRP on the two balancer hosts, outside the containers, moving the VIP."""

from __future__ import annotations

import pulumi

from components import render
from components.host import HostPreparation
from components.remote import remote_script
from components.settings import Cluster, Host


class KeepalivedPairArgs:
    """Inputs of the VRRP pair."""

    cluster: Cluster
    """The validated stack settings (VIP, router id, track script, mode)."""
    balancers: list[Host]
    """The two balancers, MASTER (higher priority) first."""
    prepared: dict[str, HostPreparation]
    """Each balancer's preparation, by host name."""
    vrrp_password: pulumi.Input[str]
    """VRRP PASS authentication (VRRP version 2 only), a Pulumi secret."""
    after: list[pulumi.Resource]
    """The balancers' HAProxy containers: the VIP goes up only where HAProxy already answers."""

    def __init__(self, cluster, balancers, prepared, vrrp_password, after):
        self.cluster, self.balancers, self.prepared = cluster, balancers, prepared
        self.vrrp_password, self.after = vrrp_password, after


class KeepalivedPair(pulumi.ComponentResource):
    """Per balancer: firewall and sysctl for VRRP, then keepalived.conf checked and the service reloaded."""

    master: str
    """Name of the balancer meant to hold the VIP."""

    def __init__(self, name: str, args: KeepalivedPairArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pihalb:index:KeepalivedPair", name, None, opts)
        cluster = args.cluster
        master, backup = args.balancers
        self.master = master.name
        for host, peer in ((master, backup), (backup, master)):
            prepared = args.prepared[host.name]
            vrrp_host = remote_script(
                f"{name}-{host.name}-vrrp-host",
                prepared.connection,
                render.vrrp_host_script(cluster),
                delete_script=render.vrrp_host_delete_script(cluster),
                parent=self,
                depends_on=[prepared.ready],
            )
            tracking = [vrrp_host]
            if cluster.vrrp.track.kind == "events":
                tracking.append(
                    remote_script(
                        f"{name}-{host.name}-haproxy-watch",
                        prepared.connection,
                        render.haproxy_watch_script(),
                        delete_script=render.haproxy_watch_delete_script(),
                        parent=self,
                        depends_on=[vrrp_host],
                    )
                )
            conf = pulumi.Output.from_input(args.vrrp_password).apply(
                lambda password, host=host, peer=peer: render.keepalived_conf(cluster, host, peer, master, password)
            )
            remote_script(
                f"{name}-{host.name}-keepalived",
                prepared.connection,
                conf.apply(render.keepalived_script),
                delete_script=render.keepalived_delete_script(),
                carries_secrets=True,
                parent=self,
                depends_on=[*tracking, *args.after],
            )
        # Registered last, after both hosts' steps are declared.
        self.register_outputs({"master": self.master, "vip": str(cluster.vrrp.vip.ip)})
