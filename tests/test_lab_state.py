"""`python -m lab up` after hosts were lost (this machine restarted, `docker rm`) or added: the lab engine's
stack state describes the old hosts, and a deploy that trusted it would skip preparing new ones."""

from __future__ import annotations

import pytest

from harness import rules
from harness.backend import Backend
from harness.state import Resource
from lab.inventory import Inventory
from lab.lab import Lab

pytestmark = pytest.mark.unit


def _lab_with_applied_stack(tmp_path, skip: str = "") -> Lab:
    """A lab whose `dev` stack holds a remote command on every host but `skip`."""
    lab = Lab(tmp_path, Inventory.from_stack("dev"))
    (lab.stacks_dir / "dev").mkdir(parents=True)
    checkpoint = Backend(lab.stacks_dir).checkpoint("dev")  # where the lab engine writes it (lab/stack.py)
    for host in lab.hosts:
        if host.name != skip:
            urn = f"urn:pulumi:dev::pihalb::{rules.COMMAND}::{host.name}-ping"
            checkpoint.put(Resource(urn, rules.COMMAND, True, inputs={"connection": {"host": str(host.address)}}))
    return lab


def test_every_host_new_sets_the_old_state_aside(tmp_path, capsys):
    lab = _lab_with_applied_stack(tmp_path)
    lab._forget_stacks_of_old_hosts([h.name for h in lab.hosts])
    assert not lab.stacks_dir.exists()
    [aside] = lab.state_dir.glob("engine.old-hosts-*")
    assert len(Backend(aside).checkpoint("dev").resources) == len(lab.hosts)
    assert "every host is new" in capsys.readouterr().out


def test_some_hosts_new_keeps_the_state_and_says_what_to_do(tmp_path, capsys):
    lab = _lab_with_applied_stack(tmp_path)
    lab._forget_stacks_of_old_hosts(["server2"])
    assert Backend(lab.stacks_dir).state_path("dev").exists()
    out = capsys.readouterr().out
    assert "server2 created anew" in out and "python -m lab down" in out


def test_a_host_new_to_the_stack_is_no_lost_host(tmp_path, capsys):
    """A server added to the stack file: the stack has nothing on it yet, so there is nothing to say."""
    lab = _lab_with_applied_stack(tmp_path, skip="server3")
    lab._forget_stacks_of_old_hosts(["server3"])
    assert Backend(lab.stacks_dir).state_path("dev").exists()
    assert capsys.readouterr().out == ""


def test_hosts_only_started_again_keep_the_state(tmp_path, capsys):
    lab = _lab_with_applied_stack(tmp_path)
    lab._forget_stacks_of_old_hosts([])
    assert Backend(lab.stacks_dir).state_path("dev").exists()
    assert capsys.readouterr().out == ""
