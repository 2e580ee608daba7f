"""`destroy` on the lab, last of the lab tests: it removes the HAProxy build cache too, so whatever ran after it
would compile HAProxy again. An `up` after it is the first apply on hosts that already run Docker."""

from __future__ import annotations

import pytest

from components import names
from drills import stack

pytestmark = pytest.mark.lab


def test_destroy_leaves_nothing_of_ours_on_any_host(deployed, lab):
    """Checked on every host: containers (build leftovers too), images and their build cache, units, files,
    the sudoers drop-in, firewall rules, the VIP; Docker stays (and the base image our builds start FROM)."""
    stack.lab_stack.destroy(lab, log=lambda line: None)
    checks = {
        "containers": "sudo docker ps -aq",  # the services' and the builds' (ours are all the lab hosts run)
        "images": f"sudo docker images -aq --filter 'reference=localhost/pihalb/*'; "
        f"sudo docker images -aq --filter label={names.IMAGE_LABEL}",
        "sudoers": "ls /etc/sudoers.d/pihalb 2>/dev/null || true",
        "units": "systemctl list-unit-files 'pihalb*' --no-legend; systemctl is-active keepalived || true",
        "files": "ls -d /etc/pihalb /etc/keepalived/keepalived.conf /etc/systemd/system/pihalb-*"
        " /usr/local/sbin/pihalb-* /etc/sysctl.d/60-pihalb-vrrp.conf /etc/tmpfiles.d/pihalb.conf 2>/dev/null || true",
        "firewall": "{ sudo iptables -S INPUT; sudo iptables -t mangle -S; }"
        " | grep -E 'vrrp| 112 |224.0.0.0|PIHALB' || true",
        "vip": f"ip -4 -o addr | grep ' {lab.vip.ip}/' || true",
    }
    for host in lab.hosts:
        for what, command in checks.items():
            output = lab.read(host.name, command, check=False)[1].strip()
            left = output.replace("inactive", "").strip()
            assert left == "", f"{host.name}: {what} left after destroy: {output}"
        assert lab.read(host.name, "systemctl is-active docker", check=False)[1].strip() == "active"
    assert stack.lab_stack.backend(lab).checkpoint("dev").resources == []
