"""Checks on the VRRP pair shared by the lab test modules."""

from __future__ import annotations

from drills import observe
from drills.load import Recording
from lab.lab import Lab


def assert_the_master_kept_the_vip(lab: Lab, recording: Recording, since: float) -> None:
    """The MASTER entered no other state and the BACKUP never became MASTER (the notify hook's journal, which
    sees a blip the 0.2 s holder samples would miss), and every sample saw the VIP on the MASTER alone."""
    master, backup = (b.name for b in lab.balancers)
    assert observe.vrrp_states_entered(lab, master, since) == []
    assert "MASTER" not in observe.vrrp_states_entered(lab, backup, since)
    assert {holders for _, holders in recording.vip} == {master}
