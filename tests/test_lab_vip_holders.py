"""Who holds the VIP, as the lab reads it: a read that lost its output is not "nobody holds it"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.lab import Lab
from lab.output import LabError

pytestmark = pytest.mark.unit


class Shell:
    """Every host running; `ip addr` answers from `outputs[host]`, one item per read (the last repeats)."""

    def __init__(self, outputs: dict[str, list[str]]):
        self.outputs = outputs
        self.reads: dict[str, int] = {}

    def container(self, name):
        return SimpleNamespace(status="running")

    def sh(self, name, command, check=True, timeout=60):
        assert command == "ip -4 -o addr show dev eth0"
        answers = self.outputs.get(name, [""])
        count = self.reads[name] = self.reads.get(name, 0) + 1
        return 0, answers[min(count, len(answers)) - 1]


def addresses(lab: Lab, name: str, vip: bool) -> str:
    host = lab.host(name)
    own = f"2: eth0    inet {host.address}/24 brd 172.30.42.255 scope global eth0\n"
    return own + (f"2: eth0    inet {lab.vip.ip}/24 scope global secondary eth0\n" if vip else "")


def lab_with(outputs) -> Lab:
    lab = Lab.from_stack()
    lab.shell = Shell(outputs(lab))
    return lab


def test_the_holder_is_the_host_whose_eth0_carries_the_vip():
    lab = lab_with(lambda lab: {h.name: [addresses(lab, h.name, h.name == "lb2")] for h in lab.hosts})
    assert lab.vip_holders() == ["lb2"]


def test_an_empty_read_is_made_again_instead_of_reading_as_no_vip():
    """docker exec returned nothing with exit 0 once (docker/docker-py#2042): the next read counts."""
    lab = lab_with(lambda lab: {h.name: ["", addresses(lab, h.name, h.name == "lb1")] for h in lab.hosts})
    assert lab.vip_holders() == ["lb1"]
    assert set(lab.shell.reads.values()) == {2}


def test_reads_that_never_show_the_hosts_own_address_are_an_error_not_an_answer():
    lab = lab_with(lambda lab: {h.name: [addresses(lab, h.name, False)] for h in lab.hosts} | {"lb1": [""]})
    with pytest.raises(LabError, match="lb1: 3 reads of its addresses lacked its own 172.30.42.21"):
        lab.vip_holders()
