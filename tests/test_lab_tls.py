"""HTTPS at the VIP on the lab, after tests/test_lab_tuned.py turned it on with dev-tuned: a certificate from
the lab's Pebble (a real RFC 8555 server) on both balancers, HTTP/2 from every server in turn, a renewal
under HTTPS load, a renewal that loses its balancer's HAProxy midway, and the MASTER's power cut. The
client trusts Pebble's root of the moment only. No test asserts a timing.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from components.tls_secrets import dns_names
from drills import faults, stack
from drills.https import KEEPER_TIMEOUT_S, Site, certificates_on_both, keeper, pebble
from drills.observe import get_vip, wait_until
from lab.lab import Lab
from ops.probe import PAGE, get
from tests.lab_checks import FAILOVER_S, RATE, stats_get
from tests.tls_checks import TLS_PROFILE, issuer, keeper_in_background, site
from tests.vrrp_checks import assert_no_request_failed

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def https_site(deployed, lab: Lab) -> Site:
    """dev-tuned as shipped (after test_lab_tuned: multicast again), and a certificate on both balancers
    (nothing to do when they have one: it is not due, and the peer's is not newer)."""
    stack.apply(lab, profile=TLS_PROFILE, log=lambda line: None)
    stack.wait_serving(lab)
    certificates_on_both(lab)
    return site(lab)


def vip(lab: Lab) -> str:
    return str(lab.vip.ip)


def test_both_balancers_serve_one_certificate_from_pebble_for_the_names(https_site, lab):
    served = [https_site.served(str(b.address)) for b in lab.balancers] + [https_site.served(vip(lab))]
    for cert in served:  # each verified against Pebble's root, for the first name, valid now
        assert issuer(cert).startswith("Pebble Intermediate CA"), issuer(cert)
        assert sorted(dns_names(cert)) == sorted(https_site.names)
    assert len({cert.serial_number for cert in served}) == 1


def test_https_with_http2_answers_from_every_server_in_turn(https_site, lab, tmp_path):
    roots = tmp_path / "pebble-roots.pem"
    roots.write_text(pebble(lab).issuing_roots())
    name, port = https_site.names[0], https_site.port
    servers, versions = [], set()
    for _ in range(2 * len(lab.servers)):
        done = subprocess.run(
            ["curl", "-sS", "--http2", "--max-time", "5", "--cacert", str(roots), "--resolve",
             f"{name}:{port}:{vip(lab)}", "-w", "\n%{http_version}", f"https://{name}:{port}/"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        page, version = done.stdout.rsplit("\n", 1)
        servers.append(int(PAGE.search(page).group(1)))
        versions.add(version)
    assert versions == {"2"}
    assert set(servers) == {int(s.name.removeprefix("server")) for s in lab.servers}
    assert all(a != b for a, b in zip(servers, servers[1:], strict=False)), servers  # roundrobin
    assert get(vip(lab), port, https=https_site.https).headers.get("x-forwarded-proto-seen") == "https"
    assert get(vip(lab), lab.frontend_port).headers.get("x-forwarded-proto-seen") == "http"


def metric(lab: Lab, address: str, series: str) -> float:
    """One unlabelled series of a balancer's Prometheus metrics (the stats port, the stats login)."""
    status, body = stats_get(address, lab.stats_port, "/metrics", lab.state().stats_password)
    assert status == 200, body[:500]
    return float(next(line.split()[-1] for line in body.splitlines() if line.startswith(f"{series} ")))


def test_prometheus_metrics_count_the_tls_handshakes(https_site, lab):
    address = str(lab.master.address)
    before = metric(lab, address, "haproxy_process_ssl_connections_total")
    for _ in range(5):  # each a new connection, a full handshake (no session reuse across them here)
        assert get(address, https_site.port, https=https_site.https).ok
    assert metric(lab, address, "haproxy_process_ssl_connections_total") >= before + 5


def test_a_renewal_under_https_load_costs_no_request_and_both_serve_the_new_certificate(https_site, lab):
    before = https_site.served(vip(lab)).serial_number
    load = https_site.load(lab, 100, 600).start()
    try:
        time.sleep(2)
        keeper(lab, lab.master.name, "renew", "--now")  # committed at run time: no reload
        keeper(lab, lab.backup.name, "renew")  # adopts the peer's newer certificate
    finally:
        recording = load.finish(tail=3)
    assert_no_request_failed(recording)
    after = {https_site.served(str(b.address)).serial_number for b in lab.balancers}
    assert len(after) == 1 and before not in after


def test_a_renewal_survives_the_death_of_its_balancers_haproxy(https_site, lab):
    """The MASTER's HAProxy dies for good while the MASTER renews: the VIP and the ACME validation go to the
    BACKUP, which answers the challenge from the account's thumbprint and serves a valid certificate for
    the names meanwhile; the renewal completes, and the new certificate reaches both."""
    master, backup = lab.master.name, lab.backup.name
    load = https_site.load(lab, RATE, 600).start()
    renewal = keeper_in_background(lab, master, "renew", "--now")
    try:
        time.sleep(1)
        assert renewal.poll() is None, "the renewal was over before the kill"
        faults.kill_haproxy_for_good(lab, master)
        wait_until(f"the VIP on {backup}", lambda: lab.vip_holders() == [backup], FAILOVER_S)
        on_backup = https_site.served(vip(lab))
        assert sorted(dns_names(on_backup)) == sorted(https_site.names)
        out, _ = renewal.communicate(timeout=KEEPER_TIMEOUT_S)
        assert renewal.returncode == 0, out
        installed = int(re.search(r"installed serial ([0-9A-F]+)", out).group(1), 16)
    finally:
        renewal.kill()
        faults.restore_haproxy(lab, master)
        recording = load.finish(tail=3)
    assert recording.time_to_recovery() is not None, "the site did not answer again"
    wait_until(f"the VIP back on {master}", lambda: lab.vip_holders() == [master], FAILOVER_S)
    assert https_site.served(str(lab.master.address)).serial_number == installed  # loaded at its start
    keeper(lab, backup, "renew")
    assert https_site.served(str(lab.backup.address)).serial_number == installed


def test_the_masters_power_cut_under_https_load_leaves_the_backup_serving_the_names(https_site, lab):
    master, backup = lab.master.name, lab.backup.name
    before = https_site.served(vip(lab)).serial_number
    load = https_site.load(lab, RATE, 20).start()
    try:
        time.sleep(3)
        lab.cut_power(master)
        wait_until(f"the VIP on {backup}", lambda: lab.vip_holders() == [backup], FAILOVER_S)
        assert https_site.served(vip(lab)).serial_number == before
        recording = load.join()
    finally:
        lab.start_host(master)
    assert recording.time_to_recovery() is not None, "the site did not answer again"
    wait_until(f"the VIP back on {master}", lambda: lab.vip_holders() == [master], FAILOVER_S)
    wait_until(f"the site through {master}", lambda: get_vip(lab).status == 200, 10)
    assert https_site.served(vip(lab)).serial_number == before
