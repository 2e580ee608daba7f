"""The benchmarks' own parsing, on captured lines: what they report is only as good as what they read."""

from __future__ import annotations

import re

import pytest

from bench.runs import HTTPS_SUFFIX, Run, run_stack
from bench.takeover import EXIT_SEEN_AT, adverts_in, exit_seen_at, gratuitous_arps
from drills.load import Recording, Sample

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


def test_haproxys_death_is_read_from_the_exit_waiters_line():
    """The waiter's journal line carries when its pidfd woke it; the microseconds survive."""
    line = "track file 0 (worker 9265 exited, exit seen at 2026-12-07T15:34:23.760320Z)"
    assert exit_seen_at(re.search(EXIT_SEEN_AT, line)) == pytest.approx(1796657663.760320, abs=1e-6)
    assert re.search(EXIT_SEEN_AT, "track file 0 (die )") is None


def _recording(failures: list[tuple[float, str]]) -> Recording:
    """Two VIP moves (lb1 → lb2 at 10.2 s, back at 20.4 s) and the given failed requests among successes."""
    vip = [(t / 5, "lb1" if t / 5 < 10.2 or t / 5 >= 20.4 else "lb2") for t in range(150)]
    ok = [Sample(t, True, 1, "200") for t in range(30)]
    return Recording(30.0, ok + [Sample(t, False, None, detail) for t, detail in failures], vip)


RESET = "ConnectionResetError: [Errno 104] Connection reset by peer"


def test_a_reset_at_a_vip_move_is_explained_once_per_move():
    recording = _recording([(10.25, RESET), (10.3, RESET), (20.0, RESET)])
    assert recording.vip_moves() == [10.2, 20.4]
    assert [s.t for s in recording.cut_by_vip_moves()] == [10.25, 20.0]
    assert [s.t for s in recording.failed_besides_vip_moves()] == [10.3]


def test_a_timeout_or_a_reset_away_from_a_move_is_not_explained():
    recording = _recording([(10.25, "timeout"), (15.0, RESET), (10.3, "503")])
    assert recording.cut_by_vip_moves() == []


def test_the_sweep_table_counts_converged_points_and_names_the_failed_checks():
    from bench.sweep import table

    ok = {"serving": True, "preview empty": True}
    rows = [
        {"class": "page", "stopped_after": 1, "converged": True, "checks": ok},
        {"class": "page", "stopped_after": 2, "converged": False, "checks": ok | {"preview empty": False}},
        {"class": "page", "stopped_after": None, "converged": True, "checks": ok},
        {"class": "keepalived", "stopped_after": None, "converged": True, "checks": ok},
    ]
    lines = table(rows).splitlines()
    assert lines[2] == "| page | 1-2 (and the whole change) | 2 of 3 | N=2: ['preview empty'] |"
    assert lines[3] == "| keepalived | the whole change | 1 of 1 | - |"


def test_a_profiles_https_rows_run_its_own_stack():
    """bench/failover --https names its rows "<profile>-https"; the change scenarios look the stack and their
    toggles up by the profile itself."""
    run = Run("tuned" + HTTPS_SUFFIX, "change-keepalived", 1, 1.0, Recording(1.0))
    assert run.base_profile == "tuned" and run_stack(run.base_profile)[0] == "dev-tuned"
