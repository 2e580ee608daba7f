"""Checks on the load through the VIP and on the VRRP pair, shared by the lab test modules."""

from __future__ import annotations

from components import names
from drills import observe
from drills.load import Recording
from lab.lab import Lab


def assert_the_master_kept_the_vip(lab: Lab, recording: Recording, since: float) -> None:
    """The MASTER entered no other state and the BACKUP never became MASTER (the notify hook's journal, which
    sees a blip the 0.2 s holder samples would miss), and every sample saw the VIP on the MASTER alone."""
    master, backup = (b.name for b in lab.balancers)
    entered = {name: observe.vrrp_states_entered(lab, name, since) for name in (master, backup)}
    assert entered[master] == [] and "MASTER" not in entered[backup], f"{entered}\n{journals(lab, since)}"
    read = [(t, holders) for t, holders in recording.vip if not holders.startswith("unknown")]
    unread = len(recording.vip) - len(read)
    assert len(read) > unread, f"the VIP holder could not be read in {unread} of {len(recording.vip)} samples"
    elsewhere = [(t, holders) for t, holders in read if holders != master]
    assert not elsewhere, (
        f"the VIP was not on {master} alone at {elsewhere[0][0]}s ({len(elsewhere)} of {len(read)} samples read); "
        f"samples within 2 s: {[(t, h) for t, h in recording.vip if abs(t - elsewhere[0][0]) <= 2]}"
    )


def assert_no_request_failed(recording: Recording, vip_moves: bool = False) -> None:
    """Nothing failed; with `vip_moves` (a balancer handing the VIP over and back), except a connection
    reset by the new holder at the instant of a move, at most one per move (`Recording.cut_by_vip_moves`)."""
    assert recording.samples, "the load sent nothing"
    failed = recording.failed_besides_vip_moves() if vip_moves else recording.failed
    assert failed == [], (
        f"{len(failed)} of {len(recording.samples)} failed, first at {failed[0].t}s: {failed[0].detail}; "
        f"VIP holders sampled within 2 s of it: {[(t, h) for t, h in recording.vip if abs(t - failed[0].t) <= 2]}; "
        f"VRRP states within 2 s: {[s for s in recording.states if abs(s[0] - failed[0].t) <= 2]}"
    )


def journals(lab: Lab, since: float) -> str:
    """keepalived's, the notify hook's and the HAProxy watcher's journal lines of both balancers since `since`:
    what a failed VRRP check shows (the lab is gone by the time anyone reads the report)."""
    command = (
        f"journalctl -o short-precise --no-pager --since @{int(since)} -u keepalived -u {names.HAPROXY_WATCH_UNIT} "
        f"-t {names.VRRP_LOG_TAG} | tail -n 60"
    )
    return "\n".join(f"--- {b.name}\n{lab.read(b.name, command, check=False)[1]}" for b in lab.balancers)
