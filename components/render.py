"""Pure rendering: templates and host scripts from `files/`, no Pulumi in here.

Every artifact is a function of the validated settings, so the tests (and the lab harness) can render
exactly what a deployment would ship, and content hashes drive re-runs and image tags.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import jinja2

from components import names, timing
from components.cluster_rules import handover_weight
from components.debian import HAPROXY_RUNTIME_PACKAGES
from components.settings import PLATFORM_ARCH, Cluster, Host
from components.tls import haproxy_tls
from components.tracking import track_kind

FILES = Path(__file__).resolve().parent.parent / "files"  # the project's own; a Renderer may read a copy

HOST_PACKAGES = ("docker.io", "ca-certificates")
ENGINE_PACKAGES = ("docker.io", "containerd", "runc")  # held: upgraded on purpose, one host at a time


# Characters a word may hold bare in haproxy.cfg and keepalived.conf; any other makes it quoted.
_BARE_WORD = re.compile(r"[A-Za-z0-9._~/:@%+=,-]+")


def haproxy_word(value: str) -> str:
    """One haproxy.cfg word that HAProxy reads back as exactly `value`.

    Bare when it is only plain characters; otherwise double-quoted, with the three characters HAProxy
    still interprets inside double quotes (`\\`, `"` and `$` for environment variables) escaped.
    Inside the quotes `#` no longer starts a comment, nor a space ends the word.
    """
    if _BARE_WORD.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def keepalived_word(value: str) -> str:
    """One keepalived.conf word that keepalived reads back as exactly `value`.

    Bare when it is only plain characters; otherwise double-quoted, inside which `#`, `!` (comments),
    `{` and `}` (blocks) are plain characters. keepalived has no escape for `"` and interprets `\\`
    inside quotes, so values holding either are refused by the settings, never rendered.
    """
    if _BARE_WORD.fullmatch(value):
        return value
    if '"' in value or "\\" in value:
        raise ValueError("keepalived.conf cannot quote '\"' or '\\'; the settings refuse such values")
    return f'"{value}"'


def sha256(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def tree_hash(directory: Path) -> str:
    """Hash of every file under a build context: a changed Dockerfile or file means a new image tag."""
    parts: list[str | bytes] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(directory)), path.read_bytes()]
    return sha256(*parts)


def keepalived_state(cluster: Cluster, host: Host, master: Host) -> str:
    """MASTER on the higher priority; with preemption off both start as BACKUP (keepalived requires it)."""
    if not cluster.vrrp.preempt:
        return "BACKUP"
    return "MASTER" if host.name == master.name else "BACKUP"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def expected_arch(cluster: Cluster) -> str:
    return PLATFORM_ARCH[cluster.platform]


def image_build_args(cluster: Cluster, kind: str) -> dict[str, str]:
    args = {"BASE_IMAGE": cluster.base_image}
    if kind == "haproxy":
        src = cluster.haproxy.source
        args |= {
            "HAPROXY_SOURCE": src.kind,
            "HAPROXY_VERSION": src.version,
            "HAPROXY_SECURITY_POCKET": "yes" if src.security_pocket else "no",
            "HAPROXY_URL": src.url,
            "HAPROXY_SHA256": src.sha256,
            "HAPROXY_UID": str(names.HAPROXY_UID),
            "HAPROXY_GID": str(names.HAPROXY_GID),
            "HAPROXY_RUNTIME_PACKAGES": " ".join(HAPROXY_RUNTIME_PACKAGES),
        }
    return args


def spec_digest(spec: dict) -> str:
    """A short digest of a container's declared inputs: rolling steps carry it, so they run when it changes."""
    return sha256(json.dumps(spec, sort_keys=True, default=_plain))[:16]


def _plain(value: object) -> object:
    """Pulumi input classes (ContainerPortArgs, ...) as the dicts of their set fields."""
    return (
        {key: val for key, val in vars(value).items() if val is not None} if hasattr(value, "__dict__") else str(value)
    )


def _server(server: str) -> dict[str, str]:
    """What the drain and ready steps need to reach `server` in a balancer's HAProxy."""
    return {
        "SERVER": server,
        "BACKEND": names.HAPROXY_BACKEND,
        "CONTAINER": names.HAPROXY_CONTAINER,
        "RUNTIME_PORT": str(names.HAPROXY_RUNTIME_PORT),
    }


@dataclass(frozen=True)
class Renderer:
    """Renders from one files root (templates, scripts, Dockerfiles): the project's `files/`, or a copy a
    test or the bench changes. The root is a parameter of the deployment, never a reassigned global."""

    files: Path
    """The files root."""

    def _env(self) -> jinja2.Environment:
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(self.files)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
        env.filters["haproxy_word"] = haproxy_word
        env.filters["keepalived_word"] = keepalived_word
        return env

    def nginx_page(self, number: int) -> str:
        return self._env().get_template("templates/index.html.j2").render(number=number)

    def haproxy_cfg(
        self, cluster: Cluster, balancer: Host, servers: list[Host], stats_password: str, acme_thumbprint: str = ""
    ) -> str:
        """`acme_thumbprint`: the ACME account's (tls_secrets.TlsMaterial), with an acme certificate."""
        hp = cluster.haproxy
        return (
            self._env()
            .get_template("templates/haproxy.cfg.j2")
            .render(
                balancer=balancer.name,
                maxconn=4096,
                stop_grace_ms=hp.stop_grace_ms,
                timeouts=hp.timeouts,
                retries=hp.retries,
                redispatch=hp.redispatch,
                retry_on=hp.retry_on,
                frontend_container_port=names.HAPROXY_FRONTEND_CONTAINER_PORT,
                stats_container_port=names.HAPROXY_STATS_CONTAINER_PORT,
                runtime_port=names.HAPROXY_RUNTIME_PORT,
                balance=hp.balance,
                health=hp.health_check,
                servers=servers,
                server_port=cluster.nginx.server_port,
                stats_password=stats_password,
                backend=names.HAPROXY_BACKEND,
                stats_user=names.STATS_USER,
                container=names.HAPROXY_CONTAINER,
                tls=haproxy_tls(hp.tls, acme_thumbprint),
            )
        )

    def keepalived_conf(self, cluster: Cluster, host: Host, peer: Host, master: Host, vrrp_password: str) -> str:
        vrrp = cluster.vrrp
        advert = vrrp.advert_interval
        return (
            self._env()
            .get_template("templates/keepalived.conf.j2")
            .render(
                host=host,
                peer=peer,
                state=keepalived_state(cluster, host, master),
                vrrp=vrrp,
                # As written: a whole number bare, a fraction in its shortest form (0.2, not 0.20000000000000001).
                advert_int=int(advert) if advert == int(advert) else repr(advert),
                track_block=track_kind(vrrp.track.kind).block,
                track_file=names.HAPROXY_TRACK_FILE,
                handover_file=names.VRRP_HANDOVER_FILE,
                notify=names.KEEPALIVED_NOTIFY,
                state_file=names.VRRP_STATE_FILE,
                log_tag=names.VRRP_LOG_TAG,
                watch_unit=names.HAPROXY_WATCH_UNIT,
                garp_refresh_s=timing.GARP_REFRESH_S,
                handover_weight=handover_weight(host.priority or 1, vrrp.track.weight),
                vrrp_password=vrrp_password,
            )
        )

    def script(self, name: str, libraries: tuple[str, ...] = ("lib.sh",), **variables: str) -> str:
        """A host script from `files/scripts/`, preceded by its inputs as quoted shell assignments.

        The scripts stay plain files that `bash -n` and shellcheck read; the values go in as data, never
        spliced into the code. `libraries` (`lib.sh`: helpers that check before they change) go in front.
        """
        scripts = self.files / "scripts"
        header = "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(variables.items()))
        body = "".join((scripts / library).read_text() for library in (*libraries, name))
        return f"#!/bin/bash\n# pi-ha-lb: {name}\n{header}{body}"

    def check_connectivity_script(self, cluster: Cluster) -> str:
        return self.script("check-connectivity.sh", EXPECTED_ARCH=expected_arch(cluster))

    def prepare_host_script(self, cluster: Cluster, login_user: str) -> str:
        prep = cluster.host_prep
        return self.script(
            "prepare-host.sh",
            LOGIN_USER=login_user,
            UPGRADE_PACKAGES="yes" if prep.upgrade_packages else "no",
            APT_MAX_AGE_MINUTES=str(prep.apt_max_age_minutes),
            PACKAGES=" ".join(HOST_PACKAGES),
            ENGINE_PACKAGES=" ".join(ENGINE_PACKAGES),
        )

    def prepare_host_delete_script(self) -> str:
        return self.script("prepare-host-delete.sh")

    def haproxy_config_script(self, config: str, image: str) -> str:
        return self.script(
            "haproxy-config.sh",
            CONFIG_B64=b64(config),
            CONFIG_DIR=names.HAPROXY_CONFIG_DIR,
            HAPROXY_GID=str(names.HAPROXY_GID),
            IMAGE=image,
            CONTAINER=names.HAPROXY_CONTAINER,
        )

    def haproxy_config_delete_script(self) -> str:
        return self.script("haproxy-config-delete.sh", CONFIG_DIR=names.HAPROXY_CONFIG_DIR)

    def vrrp_host_script(self, cluster: Cluster, peer: Host) -> str:
        return self.script(
            "vrrp-host.sh",
            INTERFACE=cluster.vrrp.interface,
            APT_MAX_AGE_MINUTES=str(cluster.host_prep.apt_max_age_minutes),
            VIP=str(cluster.vrrp.vip.ip),
            PEER=str(peer.address),
            PEER_ALIVE_S=str(timing.peer_alive_s(cluster)),
            HANDOFF_CHAIN=names.HANDOFF_CHAIN,
            PEER_LIST=names.PEER_ALIVE_LIST,
        )

    def vrrp_host_delete_script(self, cluster: Cluster) -> str:
        return self.script("vrrp-host-delete.sh", INTERFACE=cluster.vrrp.interface, HANDOFF_CHAIN=names.HANDOFF_CHAIN)

    def haproxy_watch_script(self) -> str:
        return self.script(
            "haproxy-watch.sh",
            TRACK_FILE=names.HAPROXY_TRACK_FILE,
            CONTAINER=names.HAPROXY_CONTAINER,
            UNIT=names.HAPROXY_WATCH_UNIT,
            EXIT_WAITER_B64=b64((self.files / "scripts" / "haproxy-exit-wait.pl").read_text()),
            EXIT_WAITER_PATH=names.HAPROXY_EXIT_WAITER,
        )

    def haproxy_watch_delete_script(self) -> str:
        return self.script(
            "haproxy-watch-delete.sh", UNIT=names.HAPROXY_WATCH_UNIT, EXIT_WAITER_PATH=names.HAPROXY_EXIT_WAITER
        )

    def track_step(self, step: str) -> tuple[str, str]:
        """A tracking step of components/tracking.py TRACK_KINDS: its script and its delete script."""
        steps = {"haproxy-watch": (self.haproxy_watch_script, self.haproxy_watch_delete_script)}
        if step not in steps:
            raise ValueError(f"no host script for the tracking step {step!r} (components/render.py track_step)")
        script, delete = steps[step]
        return script(), delete()

    def keepalived_script(self, cluster: Cluster, config: str, pause_for_peer: bool) -> str:
        """`pause_for_peer` on the BACKUP, whose step runs first: stopped if its config changes, until the
        resume step (a reload on each host in turn lets them disagree in between)."""
        return self.script(
            "keepalived.sh",
            CONFIG_B64=b64(config),
            PAUSE_FOR_PEER="yes" if pause_for_peer else "no",
            INTERFACE=cluster.vrrp.interface,
            VIP=str(cluster.vrrp.vip.ip),
            PEER_TAKEOVER_S=f"{timing.peer_takeover_s(cluster):g}",
            NOTIFY=names.KEEPALIVED_NOTIFY,  # the hook it installs, which writes STATE_FILE (read by ops status)
            STATE_FILE=names.VRRP_STATE_FILE,
            LOG_TAG=names.VRRP_LOG_TAG,
            REALTIME=names.KEEPALIVED_REALTIME,
            DROPIN=names.KEEPALIVED_DROPIN,
            RT_PRIORITY=str(timing.VRRP_RT_PRIORITY),
            RTTIME_US=str(timing.VRRP_RTTIME_US),
        )

    def keepalived_resume_script(self) -> str:
        """After the MASTER's keepalived step, on every up: the BACKUP's keepalived running again."""
        return self.script("keepalived-resume.sh")

    def keepalived_delete_script(self) -> str:
        return self.script(
            "keepalived-delete.sh",
            NOTIFY=names.KEEPALIVED_NOTIFY,
            STATE_FILE=names.VRRP_STATE_FILE,
            REALTIME=names.KEEPALIVED_REALTIME,
            DROPIN=names.KEEPALIVED_DROPIN,
        )

    def image_name(self, cluster: Cluster, kind: str) -> str:
        """A tag that changes with the build context, the build args and the platform."""
        context = self.files / kind
        args = image_build_args(cluster, kind)
        digest = sha256(tree_hash(context), cluster.platform, *(f"{k}={v}" for k, v in sorted(args.items())))
        # `localhost/`: should the image ever be missing, a pull goes nowhere instead of to Docker Hub's
        # `pihalb/` namespace, which this project does not own.
        return f"{names.image_repository(kind)}:{digest[:12]}"

    def build_args(self, cluster: Cluster, kind: str) -> dict[str, str]:
        """The build's args: the settings', and the tag a multi-stage build labels its build stage with."""
        args = image_build_args(cluster, kind)
        return args | {names.BUILD_OF_ARG: self.image_name(cluster, kind)} if kind == "haproxy" else args

    def image_prune_script(self, cluster: Cluster, kind: str, image_id: str) -> str:
        """Runs after each build (`image_id` changes with it): old tags, the build's leftovers."""
        return self.script(
            "image-prune.sh",
            REPOSITORY=names.image_repository(kind),
            CURRENT=self.image_name(cluster, kind),
            CURRENT_ID=image_id,
            KIND_LABEL=f"{names.IMAGE_LABEL}={kind}",
            BUILD_OF_LABEL=names.BUILD_OF_LABEL,
            CONTAINER=names.HAPROXY_CONTAINER if kind == "haproxy" else names.NGINX_CONTAINER,
        )

    def image_prune_delete_script(self, kind: str) -> str:
        return self.script(
            "image-prune-delete.sh", REPOSITORY=names.image_repository(kind), KIND_LABEL=f"{names.IMAGE_LABEL}={kind}"
        )

    def nginx_page_script(self, number: int) -> str:
        return self.script("nginx-page.sh", PAGE_B64=b64(self.nginx_page(number)), PAGE_DIR=names.NGINX_PAGE_DIR)

    def nginx_page_delete_script(self) -> str:
        return self.script("nginx-page-delete.sh", PAGE_DIR=names.NGINX_PAGE_DIR)

    def _rolling(self, name: str, **variables: str) -> str:
        return self.script(name, libraries=("lib.sh", "haproxy-runtime.sh"), **variables)

    @staticmethod
    def rolling_key(container_spec: str, image_id: str) -> str:
        """What a container runs: its declared spec and its image's ID (a rebuild under the same tag gives
        a new ID). The step before a replacement carries it, so it runs exactly when the container changes;
        the container carries it as a label, for the leave step to see whether it really changes."""
        return f"{container_spec}@{image_id}"

    def server_drain_script(self, server: str, rolling_key: str) -> str:
        """Before `server`'s container is replaced: out of service on one balancer, requests finished."""
        return self._rolling(
            "server-drain.sh",
            CONTAINER_SPEC=rolling_key,
            DRAIN_TIMEOUT_S=str(timing.DRAIN_TIMEOUT_S),
            **_server(server),
        )

    def server_ready_script(self, cluster: Cluster, server: str) -> str:
        """After it, on every up: back in service once UP (a no-op for a server in service)."""
        return self._rolling("server-ready.sh", READY_TIMEOUT_S=str(timing.ready_timeout_s(cluster)), **_server(server))

    def balancer_leave_script(self, cluster: Cluster, rolling_key: str) -> str:
        """Before this balancer's HAProxy container is replaced: the VIP handed over to the peer."""
        return self._rolling(
            "balancer-leave.sh",
            CONTAINER_SPEC=rolling_key,
            CONTAINER=names.HAPROXY_CONTAINER,
            SPEC_LABEL=names.SPEC_LABEL,
            INTERFACE=cluster.vrrp.interface,
            VIP=str(cluster.vrrp.vip.ip),
            HANDOVER_FILE=names.VRRP_HANDOVER_FILE,
            HANDOVER_TIMEOUT_S=str(timing.handover_timeout_s(cluster)),
            PREEMPT="yes" if cluster.vrrp.preempt else "no",
        )

    def balancer_rejoin_script(self) -> str:
        """After it, on every up: the VRRP priority back and keepalived running (a no-op when they are)."""
        return self._rolling(
            "balancer-rejoin.sh",
            HANDOVER_FILE=names.VRRP_HANDOVER_FILE,
            CONTAINER=names.HAPROXY_CONTAINER,
            HEALTHY_TIMEOUT_S=str(timing.READY_TIMEOUT_S),
        )
