"""Names the hosts share with the code, each defined once.

Container names, host paths, HAProxy's backend and stats user, image labels: the templates and the host
scripts receive them as inputs (components/render.py passes them), and ops/, drills/, lab/, bench/ and the
tests import them from here. Change one here and every place that writes or reads it follows.
"""

from __future__ import annotations

# -- containers -------------------------------------------------------------------------------------------
HAPROXY_CONTAINER = "pihalb-haproxy"
NGINX_CONTAINER = "pihalb-nginx"
# `always`, not `unless-stopped`: after a dockerd restart the lab once left an `unless-stopped` HAProxy
# exited (0) and never started it again; `always` containers are started on every daemon start.
RESTART_POLICY = "always"
SPEC_LABEL = "pihalb.spec"  # a container's rolling key, read by the balancer's leave step

# -- HAProxy ----------------------------------------------------------------------------------------------
# Ports HAProxy listens on inside its container (unprivileged, so it need not run as root).
HAPROXY_FRONTEND_CONTAINER_PORT = 8080
HAPROXY_STATS_CONTAINER_PORT = 8404
# HAProxy's runtime API, inside its container only (never published): the rolling steps drain with it.
HAPROXY_RUNTIME_PORT = 9999
# The image's haproxy user and group (files/haproxy/Dockerfile build args): the host gives the config
# file, which holds the stats password, to this group alone.
HAPROXY_UID = 10099
HAPROXY_GID = 10099
HAPROXY_CONFIG_DIR = "/etc/pihalb/haproxy"  # on the host, mounted read-only at HAPROXY_CONTAINER_CONFIG_DIR
HAPROXY_CONTAINER_CONFIG_DIR = "/usr/local/etc/haproxy"  # files/haproxy/Dockerfile's ENTRYPOINT reads it
# With TLS on: the certificate HAProxy serves, chain then key (files/acme/pihalb-tls.sh keeps it), in the
# config directory the container mounts; `ops status` reads its leaf.
HAPROXY_PEM_DIR = f"{HAPROXY_CONFIG_DIR}/tls"
HAPROXY_PEM_FILE = f"{HAPROXY_PEM_DIR}/site.pem"
HAPROXY_BACKEND = "servers"  # haproxy.cfg's backend, which the drain and ready steps address
STATS_USER = "admin"  # the stats page's and /metrics' login, with the stats password

# -- nginx ------------------------------------------------------------------------------------------------
NGINX_PAGE_DIR = "/etc/pihalb/nginx/html"  # on the host, mounted read-only at NGINX_CONTAINER_PAGE_DIR
NGINX_CONTAINER_PAGE_DIR = "/usr/share/nginx/html"

# -- VRRP on the balancers --------------------------------------------------------------------------------
HAPROXY_TRACK_FILE = "/run/pihalb/haproxy-alive"  # written by the events watcher, read by keepalived
VRRP_HANDOVER_FILE = "/run/pihalb-vrrp-handover"  # tmpfs: a boot clears a handover left half done
VRRP_STATE_FILE = "/run/pihalb-vrrp-state"  # "STATE TIMESTAMP", written by keepalived's notify hook
VRRP_LOG_TAG = "pihalb-vrrp"  # the notify hook's journal tag (`journalctl -t pihalb-vrrp`)
HANDOFF_CHAIN = "PIHALB-HANDOFF"  # mangle chain: packets of the peer's open connections go to the peer
PEER_ALIVE_LIST = "pihalb-peer"  # xt_recent list: when the peer last sent a VRRP packet
KEEPALIVED_NOTIFY = "/usr/local/sbin/pihalb-keepalived-notify"  # installed by keepalived.sh
KEEPALIVED_REALTIME = "/usr/local/sbin/pihalb-keepalived-realtime"  # installed by keepalived.sh, run by DROPIN
KEEPALIVED_DROPIN = "/etc/systemd/system/keepalived.service.d/pihalb.conf"  # restart, real-time hook
HAPROXY_WATCH_UNIT = "pihalb-haproxy-watch"  # the events watcher's systemd unit (haproxy-watch.sh)
HAPROXY_EXIT_WAITER = "/usr/local/sbin/pihalb-haproxy-exit-wait"  # the watcher's fast path (haproxy-exit-wait.pl)

# -- images -----------------------------------------------------------------------------------------------
# On every stage of files/*/Dockerfile ("LABEL org.pihalb.image=<kind>" first): pulumi-docker's classic build
# leaves a stopped container per step, and these labels are how the prune steps find them and our images.
IMAGE_LABEL = "org.pihalb.image"
BUILD_OF_LABEL = "org.pihalb.build-of"  # a build stage's last image: the tag it was built for
BUILD_OF_ARG = "PIHALB_BUILD_OF"


def image_repository(kind: str) -> str:
    """Where the images of `kind` (`nginx`, `haproxy`) are tagged on each host's daemon."""
    return f"localhost/pihalb/{kind}"
