"""HTTPS on the balancers' hosts (issue 19): the steps `haproxy.tls` adds to a HaproxyBalancer.

With TLS off none of this is declared, and the balancer declares exactly what it did before
(tests/test_tls_off_unchanged.py). With TLS on, each balancer gets:
- `<name>-tls`: the shared certificate key (and for acme the account key) in root's 0600 files under
  TLS_DIR, the certificate keeper (files/acme/pihalb-tls.sh) with its settings, and the certificate
  HAProxy starts with (the provided chain, or a short-lived self-signed one until the first issuance) in
  HAProxy's PEM, under the config directory its container already mounts where haproxy.cfg expects it
  (components/tls.py HAPROXY_CERT_FILE). The keys travel in the step's script, on stdin, and the step
  does not log; its delete removes keys, keeper and PEM;
- `<name>-tls-renewal` (acme): the keeper's systemd timer;
- the container's TLS listener published on `tls.port`, and haproxy.cfg checked with the PEM in place.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Sequence

import pulumi
import pulumi_docker as docker

from components import names
from components.remote import remote_script
from components.render import Renderer, b64
from components.settings import Cluster, Host
from components.tls import (
    HAPROXY_CERT_DIR,
    HAPROXY_CERT_FILE,
    HAPROXY_TLS_CONTAINER_PORT,
    SECRETS_OF_SOURCE,
)
from components.tls_secrets import TlsMaterial, check_tls_secrets

TLS_DIR = "/etc/pihalb/tls"  # root's 0700: the keys, the keeper's settings and work
KEEPER = "/usr/local/sbin/pihalb-tls"
LIB_DIR = "/usr/local/lib/pihalb"
RENEWAL_UNIT = "pihalb-tls-renew"
RENEWAL_INTERVAL_MIN = 10
RENEWAL_RANDOM_DELAY_S = 120
FIRST_VALIDITY_DAYS = 2  # the first-start certificate: the VIP holder replaces it at once
SYSTEM_TRUST = "/etc/ssl/certs/ca-certificates.crt"  # Debian's ca-certificates (a host package)
TLS_PACKAGES = ("openssl", "curl")
ACME_PACKAGES = ("dehydrated",)  # Debian 12's 0.7.0: the client acme-obtain.sh drives
# The line of haproxy-config.sh that checks the new haproxy.cfg in a throwaway container of the image.
# With TLS the check needs HAProxy's PEM, so that container mounts the config directory as HAProxy's does.
_CONFIG_CHECK = 'docker run --rm -i --network none --entrypoint haproxy "$IMAGE"'

PEM_FILE_IN_CONTAINER = HAPROXY_CERT_FILE
assert f"{HAPROXY_CERT_DIR}/site.pem" == PEM_FILE_IN_CONTAINER and HAPROXY_CERT_DIR.startswith(
    names.HAPROXY_CONTAINER_CONFIG_DIR
), "HAProxy's PEM must sit under the mounted config directory, as names.HAPROXY_PEM_FILE does on the host"


def tls_material(config: pulumi.Config, cluster: Cluster) -> pulumi.Output[TlsMaterial] | None:
    """The TLS secrets the stack's certificate kind reads, checked and canonical, as one secret Output;
    None with TLS off (nothing read, nothing declared)."""
    tls = cluster.haproxy.tls
    if tls is None:
        return None
    wanted = SECRETS_OF_SOURCE[tls.certificate.kind]
    values = pulumi.Output.all(*(config.require_secret(key) for key in wanted))
    return pulumi.Output.secret(
        values.apply(lambda got: check_tls_secrets(tls, dict(zip(wanted, got, strict=True)).get))
    )


def keeper_env(cluster: Cluster, host: Host, peer: Host) -> str:
    """The keeper's settings (files/acme/pihalb-tls.sh reads them): public values only, bash-quoted."""
    tls = cluster.haproxy.tls
    assert tls is not None
    cert = tls.certificate
    acme = cert.kind == "acme"
    values = {
        "KIND": cert.kind,
        "NAMES": " ".join(tls.names),
        "KEY": f"{TLS_DIR}/site.key",
        "ACCOUNT_KEY": f"{TLS_DIR}/account.pem" if acme else "",
        "CERT_FILE": names.HAPROXY_PEM_FILE,
        "HAPROXY_CERT": PEM_FILE_IN_CONTAINER,
        "HAPROXY_GID": str(names.HAPROXY_GID),
        "PEM_OWNER": "root",
        "CONTAINER": names.HAPROXY_CONTAINER,
        "RUNTIME_PORT": str(names.HAPROXY_RUNTIME_PORT),
        "TLS_DIR": TLS_DIR,
        "FIRST_VALIDITY_DAYS": str(FIRST_VALIDITY_DAYS),
        "TRUST_STORE": SYSTEM_TRUST,
        "ACME_DIRECTORY_URL": cert.directory_url,
        "ACME_EMAIL": cert.email,
        "ACME_CA_BUNDLE": f"{TLS_DIR}/acme-ca.pem" if cert.ca_bundle else "",
        "ROOTS_URL": cert.roots_url,
        "OBTAIN": f"{LIB_DIR}/acme-obtain.sh",
        "VIP": str(cluster.vrrp.vip.ip),
        "INTERFACE": cluster.vrrp.interface,
        "PEER": str(peer.address),
        "TLS_PORT": str(tls.port),
    }
    return "# pi-ha-lb: the certificate keeper's settings (pihalb-tls), written by the program\n" + "".join(
        f"{key}={shlex.quote(value)}\n" for key, value in values.items()
    )


def tls_host_script(rendering: Renderer, cluster: Cluster, host: Host, peer: Host, material: TlsMaterial) -> str:
    """The `-tls` step's script: carries the keys (a secret), so its step does not log."""
    tls = cluster.haproxy.tls
    assert tls is not None
    acme = tls.certificate.kind == "acme"
    return rendering.script(
        "tls-host.sh",
        KEY_PEM=material.private_key.strip(),
        ACCOUNT_KEY_PEM=material.account_key.strip(),
        CHAIN_PEM=material.certificate.strip(),
        ACME_CA_BUNDLE_PEM=tls.certificate.ca_bundle.strip(),
        KEEPER_B64=_file_b64(rendering, "acme/pihalb-tls.sh"),
        OBTAIN_B64=_file_b64(rendering, "acme/acme-obtain.sh"),
        ENV_B64=b64(keeper_env(cluster, host, peer)),
        TLS_DIR=TLS_DIR,
        LIB_DIR=LIB_DIR,
        KEEPER=KEEPER,
        CERT_FILE=names.HAPROXY_PEM_FILE,
        PACKAGES=" ".join(TLS_PACKAGES + (ACME_PACKAGES if acme else ())),
        APT_MAX_AGE_MINUTES=str(cluster.host_prep.apt_max_age_minutes),
    )


def tls_host_delete_script(rendering: Renderer) -> str:
    return rendering.script(
        "tls-host-delete.sh", TLS_DIR=TLS_DIR, PEM_DIR=names.HAPROXY_PEM_DIR, LIB_DIR=LIB_DIR, KEEPER=KEEPER
    )


def tls_renewal_script(rendering: Renderer) -> str:
    return rendering.script(
        "tls-renewal.sh",
        KEEPER=KEEPER,
        UNIT=RENEWAL_UNIT,
        INTERVAL_MIN=str(RENEWAL_INTERVAL_MIN),
        RANDOM_DELAY_S=str(RENEWAL_RANDOM_DELAY_S),
    )


def tls_renewal_delete_script(rendering: Renderer) -> str:
    return rendering.script("tls-renewal-delete.sh", UNIT=RENEWAL_UNIT)


def tls_ports(cluster: Cluster) -> list[docker.ContainerPortArgs]:
    """HAProxy's TLS listener published on `tls.port`; none without TLS."""
    tls = cluster.haproxy.tls
    return [] if tls is None else [docker.ContainerPortArgs(internal=HAPROXY_TLS_CONTAINER_PORT, external=tls.port)]


def config_script_with_pem(script: str) -> str:
    """haproxy-config.sh as the rendering gives it, its check container mounting the config directory
    read-only, as HAProxy's container does, so `haproxy -c` finds the PEM an ssl bind names. (Only with
    TLS: without it the script stays byte for byte what stacks without TLS already run.)"""
    if script.count(_CONFIG_CHECK) != 1:
        raise ValueError("haproxy-config.sh no longer has the one check line components/tls_host.py mounts into")
    mount = f"-v {names.HAPROXY_CONFIG_DIR}:{names.HAPROXY_CONTAINER_CONFIG_DIR}:ro"
    return script.replace(_CONFIG_CHECK, _CONFIG_CHECK.replace("--network none", f"--network none {mount}"))


def _file_b64(rendering: Renderer, relative: str) -> str:
    return base64.b64encode((rendering.files / relative).read_bytes()).decode()


def balancer_tls_step(
    name: str,
    rendering: Renderer,
    cluster: Cluster,
    host: Host,
    peer: Host,
    material: pulumi.Output[TlsMaterial],
    connection,
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> pulumi.Resource:
    """The keys, the keeper and the PEM of one balancer, a child of its HaproxyBalancer; the config step
    waits for it (HAProxy does not start an ssl bind without its PEM)."""
    return remote_script(
        f"{name}-tls",
        connection,
        material.apply(lambda m: tls_host_script(rendering, cluster, host, peer, m)),
        delete_script=tls_host_delete_script(rendering),
        carries_secrets=True,
        parent=parent,
        depends_on=depends_on,
    )


def balancer_renewal_step(
    name: str,
    rendering: Renderer,
    cluster: Cluster,
    connection,
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> pulumi.Resource | None:
    """With acme, the renewal timer of one balancer, after the balancer is back in service with its TLS config:
    its first run orders the first certificate, and Pebble or Let's Encrypt validates the order through the
    VIP, so HAProxy must already answer the challenges (with the config of before, it would not)."""
    tls = cluster.haproxy.tls
    if tls is None or tls.certificate.kind != "acme":
        return None
    return remote_script(
        f"{name}-tls-renewal",
        connection,
        tls_renewal_script(rendering),
        delete_script=tls_renewal_delete_script(rendering),
        parent=parent,
        depends_on=depends_on,
    )
