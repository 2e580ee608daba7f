"""The benchmarks' own parsing, on captured lines: what they report is only as good as what they read."""

from __future__ import annotations

import pytest

from bench.takeover import adverts_in, gratuitous_arps

pytestmark = pytest.mark.unit

# Lines as `tcpdump -n -e -tt` printed them on the lab bridge during a takeover (addresses of the dev stack).
CAPTURE = [
    "1764357001.100010 02:42:ac:1e:2a:15 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54: "
    "172.30.42.21 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 101, intvl 8cs, length 12",
    "1764357001.151200 02:42:ac:1e:2a:15 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 54: "
    "172.30.42.21 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 0, intvl 8cs, length 12",
    "1764357001.160000 02:42:ac:1e:2a:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: "
    "Request who-has 172.30.42.240 tell 172.30.42.1, length 28",
    "1764357001.200300 02:42:ac:1e:2a:16 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: "
    "Request who-has 172.30.42.240 (ff:ff:ff:ff:ff:ff) tell 172.30.42.240, length 28",
    "1764357001.200400 02:42:ac:1e:2a:16 > 02:42:ac:1e:2a:01, ethertype ARP (0x0806), length 42: "
    "Reply 172.30.42.240 is-at 02:42:ac:1e:2a:16, length 28",
]


def test_adverts_are_read_with_sender_and_priority():
    assert adverts_in(CAPTURE) == [(1764357001.10001, "172.30.42.21", 101), (1764357001.1512, "172.30.42.21", 0)]


def test_only_the_vips_own_announcement_counts_as_gratuitous_arp():
    """A client asking for the VIP, the holder's reply to it, or another host's announcement is not the
    BACKUP's takeover announcement."""
    assert gratuitous_arps(CAPTURE, "172.30.42.240", "02:42:ac:1e:2a:16") == [1764357001.2003]
    assert gratuitous_arps(CAPTURE, "172.30.42.240", "02:42:ac:1e:2a:15") == []  # not from the BACKUP
    assert gratuitous_arps(CAPTURE, "172.30.42.241", "02:42:ac:1e:2a:16") == []
