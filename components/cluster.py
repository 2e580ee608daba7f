"""The whole deployment, from validated settings: hosts, servers, balancers, VRRP pair."""

from __future__ import annotations

from pathlib import Path

import pulumi

from components.fields import SSH_PRIVATE_KEY_KEY, STATS_PASSWORD_KEY, VRRP_PASSWORD_KEY
from components.haproxy_balancer import HaproxyBalancer, HaproxyBalancerArgs
from components.host import HostPreparation, HostPreparationArgs
from components.keepalived_pair import KeepalivedPair, KeepalivedPairArgs
from components.nginx_backend import NginxBackend, NginxBackendArgs
from components.render import Renderer
from components.settings import Settings


def vip_url(vip: object, port: int) -> str:
    """Where the site is served: the VIP, with the frontend port unless it is HTTP's own."""
    return f"http://{vip}/" if port == 80 else f"http://{vip}:{port}/"


def vip_held(vip: object, holders: list[str]) -> str:
    """Who holds the VIP, in words (`python -m ops status` and `python -m lab status`): one balancer is the
    only healthy answer; none is an outage; two is a VRRP split brain."""
    if len(holders) > 1:
        return f"VIP {vip}: SPLIT BRAIN, held by {', '.join(holders)} (VRRP adverts are not getting through)"
    if not holders:
        return f"VIP {vip}: NOT HELD by any balancer"
    return f"VIP {vip}: held by {holders[0]}"


def deploy(
    settings: Settings,
    secrets: dict[str, pulumi.Input[str]],
    ssh_dir: Path,
    files: Path,
    tls: pulumi.Output | None = None,
) -> dict[str, object]:
    """Declare every resource, rendering from the files root `files`; return the stack outputs. `tls`: the
    checked TLS secrets (components/tls_host.py tls_material) with haproxy.tls, else None."""
    cluster = settings.cluster
    rendering = Renderer(files)
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
                rendering,
            ),
        )
        for host in cluster.hosts
    }
    servers = settings.servers
    balancer_hosts = [prepared[h.name] for h in settings.balancers]
    # Servers roll one at a time: each is taken out only once the previous one is back on both balancers.
    backends: list[NginxBackend] = []
    for number, host in enumerate(servers, start=1):
        after = backends[-1].ready if backends else ()
        backends.append(
            NginxBackend(
                f"{host.name}-nginx",
                NginxBackendArgs(rendering, cluster, host, number, prepared[host.name], tuple(balancer_hosts), after),
            )
        )
    servers_ready = tuple(step for backend in backends for step in backend.ready)
    # Balancers roll BACKUP first, then the MASTER (which hands the VIP over before its HAProxy stops).
    master_host, backup_host = settings.balancers
    balancers: dict[str, HaproxyBalancer] = {}
    for host in (backup_host, master_host):
        after = (balancers[backup_host.name].rejoined,) if host is master_host else ()
        balancers[host.name] = HaproxyBalancer(
            f"{host.name}-haproxy",
            HaproxyBalancerArgs(
                rendering,
                cluster,
                host,
                tuple(servers),
                secrets[STATS_PASSWORD_KEY],
                prepared[host.name],
                servers_ready,
                after,
                settings.acme_thumbprint,
                tls,
                backup_host if host is master_host else master_host,
            ),
        )
    pair = KeepalivedPair(
        "vrrp",
        KeepalivedPairArgs(
            rendering,
            cluster,
            (master_host, backup_host),
            prepared,
            secrets[VRRP_PASSWORD_KEY],
            tuple(step for b in balancers.values() for step in (b.container, b.rejoined)),
        ),
    )
    vip = cluster.vrrp.vip.ip
    port = cluster.haproxy.frontend_port
    return {
        "vipUrl": vip_url(vip, port),
        "servers": {h.name: str(h.address) for h in servers},
        "balancers": {h.name: str(h.address) for h in settings.balancers},
        "vrrpMaster": pair.master,
        "statsUrls": {h.name: f"http://{h.address}:{cluster.haproxy.stats_port}/stats" for h in settings.balancers},
    }
