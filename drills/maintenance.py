"""Maintenance done to the lab by hand, as an operator would on the Pis: shared by the bench and the tests."""

from __future__ import annotations

import time

from components import names
from drills import stack
from drills.observe import servers_seen_by, wait_until
from lab.images import BASE_IMAGE, BASE_IMAGE_ALIAS
from lab.lab import Lab
from ops.hosts import in_flight, runtime_command


def runtime(lab: Lab, balancer: str, command: str) -> str:
    """One command to a balancer's HAProxy runtime API, as `python -m ops` sends it (over `docker exec` here)."""
    return lab.sh(balancer, runtime_command(command))[1]


def sessions(lab: Lab, server: str) -> int:
    """Requests in flight to `server`, summed over both balancers."""
    return sum(in_flight(runtime(lab, balancer.name, "show stat"), server) for balancer in lab.balancers)


def container_healthy(lab: Lab, host: str, container: str) -> bool:
    """Docker's health status says healthy (not starting, not unhealthy)."""
    status = f"docker inspect -f '{{{{if .State.Health}}}}{{{{.State.Health.Status}}}}{{{{end}}}}' {container}"
    return lab.sh(host, status, check=False)[1].strip() == "healthy"


def restart_engines_rolling(lab: Lab) -> None:
    """dockerd restarted on every host, one at a time, the MASTER last after handing the VIP over: what an
    engine upgrade does to a host (the engine packages are held, so it happens only like this, on purpose).
    A server is drained on both balancers first and put back once its container answers, as README's
    procedure and `python -m ops reboot` do."""
    for server in lab.servers:
        for balancer in lab.balancers:
            runtime(lab, balancer.name, f"set server {names.HAPROXY_BACKEND}/{server.name} state maint")
        wait_until(f"{server.name}'s requests in flight to finish", lambda s=server.name: sessions(lab, s) == 0, 30)
        lab.sh(server.name, "systemctl restart docker", timeout=120)
        wait_until(
            f"{server.name}'s container healthy",
            lambda s=server.name: container_healthy(lab, s, names.NGINX_CONTAINER),
            60,
        )
        for balancer in lab.balancers:
            runtime(lab, balancer.name, f"set server {names.HAPROXY_BACKEND}/{server.name} state ready")
        stack.wait_serving(lab)
    lab.sh(lab.backup.name, "systemctl restart docker", timeout=120)
    stack.wait_serving(lab)
    master = lab.master.name
    lab.sh(master, f"echo 1 > {names.VRRP_HANDOVER_FILE}")
    wait_until("the VIP to move for the engine restart", lambda: lab.vip_holders() == [lab.backup.name], 30)
    time.sleep(1)
    lab.sh(master, "systemctl restart docker", timeout=120)
    wait_until("HAProxy back on the MASTER", lambda: servers_seen_by(lab, master), 60)
    lab.sh(master, f"echo 0 > {names.VRRP_HANDOVER_FILE}")
    stack.wait_serving(lab)


def base_image_alias(lab: Lab) -> str:
    """The lab's one base image under a second name, so `baseImage` can change without a registry (every
    daemon the lab seeds has it, hosts added later too)."""
    for host in lab.hosts:
        lab.sh(host.name, f"docker tag {BASE_IMAGE} {BASE_IMAGE_ALIAS}")
    return BASE_IMAGE_ALIAS
