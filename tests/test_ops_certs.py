"""`python -m ops status` with TLS on (issue 19): each balancer's certificate (names, issuer, days left) in
the table and the JSON, degraded when one is missing, about to expire, or not the other's; TLS off as before."""

from __future__ import annotations

import datetime
import json
import subprocess

import pytest

from components import names
from components.settings import Host
from ops import __main__ as cli
from ops import certs
from ops import config as ops_config
from ops.hosts import facts_script
from tests.ops_fakes import FakeFleet, cluster_facts

from .test_tls import NAMES, ec_key, issue, pem_cert, pem_key, rsa_key

pytestmark = pytest.mark.unit

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def tls_settings(stack_config):
    """The dev stack with TLS on (acme), as `python -m ops` reads it."""
    config = stack_config("dev")
    config["pihalb:cluster"]["haproxy"]["tls"] = {
        "names": NAMES,
        "certificate": {"kind": "acme", "directoryUrl": "https://acme.example/dir"},
    }
    config |= {"pihalb:tlsPrivateKey": pem_key(ec_key()), "pihalb:acmeAccountKey": pem_key(rsa_key())}
    return ops_config.settings_from(ops_config.held_as_secrets(config))[0]


def leaf(days_left: int) -> str:
    """A leaf for NAMES from "test CA", PEM, with `days_left` whole days (and an hour) to go."""
    end = datetime.datetime.now(datetime.UTC) + days_left * DAY + HOUR
    cert = issue(ec_key(), issuer_key=ec_key(), issuer_name="test CA", not_before=end - 90 * DAY, not_after=end)
    return pem_cert(cert)


def status(settings, capsys, *args: str, **certificates: str | None) -> tuple[int, str]:
    """`ops status` on a healthy cluster whose balancers' facts scripts printed these certificates."""
    overrides = {name: {"certificate": pem} for name, pem in certificates.items() if pem is not None}
    fleet = FakeFleet(settings, cluster_facts(settings, **overrides))
    code = cli.main(["status", "--stack", "dev", *args], cluster=fleet)
    return code, capsys.readouterr().out


def test_one_certificate_on_both_balancers_is_healthy_and_shown(tls_settings, capsys):
    pem = leaf(60)
    code, out = status(tls_settings, capsys, lb1=pem, lb2=pem)
    assert code == 0 and out.rstrip().endswith("HEALTHY (exit 0)"), out
    for balancer in ("lb1", "lb2"):
        assert f"{balancer} certificate: www.example.org example.org, issuer test CA, 60 days left" in out, out
    code, out = status(tls_settings, capsys, "--json", lb1=pem, lb2=pem)
    hosts = {h["name"]: h for h in json.loads(out)["hosts"]}
    lb1, lb2 = hosts["lb1"]["certificate"], hosts["lb2"]["certificate"]
    assert (lb1["names"], lb1["issuer"], lb1["days_left"]) == (NAMES, "test CA", 60)
    assert lb1["sha256"] == lb2["sha256"] and len(lb1["sha256"]) == 64
    assert "certificate" not in hosts["server1"]


@pytest.mark.parametrize(("days", "code"), [(13, 1), (certs.CERT_MIN_DAYS_LEFT, 0)])
def test_fewer_than_14_days_left_is_degraded_naming_the_balancer_and_the_days(tls_settings, capsys, days, code):
    pem = leaf(days)
    got, out = status(tls_settings, capsys, lb1=pem, lb2=pem)
    assert got == code, out
    expiring = f"  - lb1: certificate expires in {days} days (fewer than 14"
    assert (expiring in out) == (code == 1), out
    assert "different certificates" not in out


def test_a_short_lived_certificate_is_degraded_only_past_a_sixth_of_its_lifetime(tls_settings, capsys):
    """A 6-day certificate (Let's Encrypt's short-lived profile) with 2 days left is healthy; with 0.9 day is not."""
    for hours_left, code in ((48, 0), (21, 1)):
        end = datetime.datetime.now(datetime.UTC) + hours_left * HOUR
        pem = pem_cert(
            issue(ec_key(), issuer_key=ec_key(), issuer_name="test CA", not_before=end - 6 * DAY, not_after=end)
        )
        got, out = status(tls_settings, capsys, lb1=pem, lb2=pem)
        assert got == code, out
        assert ("lb1: certificate expires in" in out) == (code == 1), out


def test_an_expired_certificate_is_degraded(tls_settings, capsys):
    pem = leaf(-2)
    code, out = status(tls_settings, capsys, lb1=pem, lb2=pem)
    assert code == 1 and "  - lb2: certificate expired on " in out, out


def test_different_certificates_on_the_balancers_are_degraded(tls_settings, capsys):
    code, out = status(tls_settings, capsys, lb1=leaf(60), lb2=leaf(60))
    assert code == 1, out
    assert "  - the balancers serve different certificates: lb1 sha256 " in out and ", lb2 sha256 " in out, out


def test_a_balancer_without_a_certificate_is_degraded(tls_settings, capsys):
    code, out = status(tls_settings, capsys, lb1=leaf(60), lb2=None)
    assert code == 1, out
    assert f"  - lb2: TLS on, but no certificate in {names.HAPROXY_PEM_FILE}" in out and "lb2 certificate: none" in out
    code, out = status(tls_settings, capsys, "--json", lb1=leaf(60), lb2="-----BEGIN CERTIFICATE-----\ngarbage\n")
    lb2 = next(h for h in json.loads(out)["hosts"] if h["name"] == "lb2")
    assert code == 1 and lb2["certificate"] is None


def test_tls_off_status_is_unchanged(settings, capsys):
    """Even a certificate a balancer happened to print is neither shown nor judged."""
    for args in ((), ("--json",)):
        without = status(settings, capsys, *args)
        with_one = status(settings, capsys, *args, lb1=leaf(3), lb2=leaf(60))
        assert with_one == without and without[0] == 0
        assert "certificate" not in without[1]
    lb1 = Host(name="lb1", address="10.0.0.2", role="balancer", priority=101)
    assert names.HAPROXY_PEM_FILE not in facts_script(lb1, tls=False)


def test_the_facts_script_sends_the_leaf_and_never_the_key(tmp_path):
    lb1 = Host(name="lb1", address="10.0.0.2", role="balancer", priority=101)
    script = facts_script(lb1, tls=True)
    assert f"echo @@certificate; sudo -n {certs.leaf_command()} " in script
    assert names.HAPROXY_PEM_FILE not in facts_script(Host(name="s1", address="10.0.0.3", role="server"), tls=True)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    # HAProxy's PEM as the keeper writes it: the chain (leaf, then its CA), then the key.
    key, ca_key = ec_key(), ec_key()
    now = datetime.datetime.now(datetime.UTC)
    chain = issue(key, issuer_key=ca_key, issuer_name="test CA", not_after=now + 30 * DAY + HOUR)
    pem = tmp_path / "site.pem"
    pem.write_text(pem_cert(chain) + pem_cert(issue(ca_key, [], ca=True)) + pem_key(key))
    out = subprocess.run(["bash", "-c", certs.leaf_command(str(pem))], capture_output=True, text=True, check=True)
    assert out.stdout == pem_cert(chain)
    read = certs.read_leaf(out.stdout)
    assert read is not None and (read.names, read.issuer, read.days_left) == (NAMES, "test CA", 30)
