"""How long the host steps wait, and keepalived's timing constants: derived from the settings where the
VRRP timers or the health checks decide, so a faster profile does not wait as long as the paper's."""

from __future__ import annotations

import math

from components.settings import Cluster

GARP_REFRESH_S = 5  # the MASTER repeats its gratuitous ARP this often (keepalived.conf.j2)
# keepalived in SCHED_RR (keepalived.sh's real-time hook): 40 stays below the threaded interrupt handlers (50),
# so the network card is still served first. A real-time process that runs 1 s without sleeping is killed.
VRRP_RT_PRIORITY = 40
VRRP_RTTIME_US = 1_000_000
DRAIN_TIMEOUT_S = 30
READY_TIMEOUT_S = 60  # a slow host, a check answered late; the ready step adds the check intervals (ready_timeout_s)


def handover_timeout_s(cluster: Cluster) -> int:
    """How long the peer may take to win: Master_Down_Interval (3 adverts + skew) and a generous margin."""
    return int(4 * cluster.vrrp.advert_interval) + 10


def ready_timeout_s(cluster: Cluster) -> int:
    """How long a server back from maintenance may take to be UP on a balancer. HAProxy keeps its check
    timer across MAINT -> READY, so the check that says UP comes up to one interval later; one failed
    check (a server still starting) costs two more, as a check lasts up to an interval (no `timeout
    check`). The settings bound the interval so that this fits in one step."""
    return READY_TIMEOUT_S + 3 * math.ceil(cluster.haproxy.health_check.inter_ms / 1000)


def peer_takeover_s(cluster: Cluster) -> float:
    """How long a new VRRP instance on the peer takes to be MASTER: Master_Down_Interval (3 adverts and a
    skew under one advert), and a second for the step that started it to have returned."""
    return round(4 * cluster.vrrp.advert_interval + 1, 3)


def peer_alive_s(cluster: Cluster) -> int:
    """How recent the peer's last VRRP packet must be for the VIP holder to hand it the packets of its open
    connections (vrrp-host.sh): two adverts, in whole seconds (xt_recent's unit), at least 1. Shorter than
    Master_Down_Interval with the paper's 1 s adverts, so after a power cut nothing is handed to the dead
    peer; with 0.03 s adverts, for at most 1 s, after which those packets are reset as before."""
    return max(1, math.ceil(2 * cluster.vrrp.advert_interval))
