"""The whole deployment, from validated settings: hosts, servers, balancers, VRRP pair."""

from __future__ import annotations

from pathlib import Path

import pulumi

from components.haproxy_balancer import HaproxyBalancer, HaproxyBalancerArgs
from components.host import HostPreparation, HostPreparationArgs
from components.keepalived_pair import KeepalivedPair, KeepalivedPairArgs
from components.nginx_backend import NginxBackend, NginxBackendArgs
from components.settings import SSH_PRIVATE_KEY_KEY, STATS_PASSWORD_KEY, VRRP_PASSWORD_KEY, Settings


def deploy(settings: Settings, secrets: dict[str, pulumi.Input[str]], ssh_dir: Path) -> dict[str, object]:
    """Declare every resource; return the stack outputs."""
    cluster = settings.cluster
    prepared = {
        host.name: HostPreparation(
            host.name,
            HostPreparationArgs(
                cluster,
                host,
                settings.user(host),
                settings.port(host),
                settings.host_keys[host.name],
                secrets[SSH_PRIVATE_KEY_KEY],
                ssh_dir,
            ),
        )
        for host in cluster.hosts
    }
    servers = settings.servers
    backends = [
        NginxBackend(f"{host.name}-nginx", NginxBackendArgs(cluster, host, number, prepared[host.name]))
        for number, host in enumerate(servers, start=1)
    ]
    balancers = [
        HaproxyBalancer(
            f"{host.name}-haproxy",
            HaproxyBalancerArgs(
                cluster,
                host,
                servers,
                secrets[STATS_PASSWORD_KEY],
                prepared[host.name],
                after=[b.container for b in backends],
            ),
        )
        for host in settings.balancers
    ]
    pair = KeepalivedPair(
        "vrrp",
        KeepalivedPairArgs(
            cluster, settings.balancers, prepared, secrets[VRRP_PASSWORD_KEY], after=[b.container for b in balancers]
        ),
    )
    vip = cluster.vrrp.vip.ip
    port = cluster.haproxy.frontend_port
    return {
        "vipUrl": f"http://{vip}/" if port == 80 else f"http://{vip}:{port}/",
        "servers": {h.name: str(h.address) for h in servers},
        "balancers": {h.name: str(h.address) for h in settings.balancers},
        "vrrpMaster": pair.master,
        "statsUrls": {h.name: f"http://{h.address}:{cluster.haproxy.stats_port}/stats" for h in settings.balancers},
    }
