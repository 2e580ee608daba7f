"""`python -m lab up` after the hosts were lost (this machine restarted, `docker rm`): the lab engine's stack
state describes the old hosts, and a deploy that trusted it would skip preparing the new ones."""

from __future__ import annotations

from lab.inventory import Inventory
from lab.lab import Lab


def _lab_with_applied_stack(tmp_path) -> Lab:
    lab = Lab(tmp_path, Inventory.from_stack("dev"))
    (lab.stacks_dir / "dev").mkdir(parents=True)
    (lab.stacks_dir / "dev" / "checkpoint.json").write_text("{}")
    return lab


def test_every_host_new_sets_the_old_state_aside(tmp_path, capsys):
    lab = _lab_with_applied_stack(tmp_path)
    lab._forget_stacks_of_old_hosts([h.name for h in lab.hosts])
    assert not lab.stacks_dir.exists()
    [aside] = lab.state_dir.glob("engine.old-hosts-*")
    assert (aside / "dev" / "checkpoint.json").read_text() == "{}"
    assert "every host is new" in capsys.readouterr().out


def test_some_hosts_new_keeps_the_state_and_says_what_to_do(tmp_path, capsys):
    lab = _lab_with_applied_stack(tmp_path)
    lab._forget_stacks_of_old_hosts(["server2"])
    assert (lab.stacks_dir / "dev" / "checkpoint.json").exists()
    out = capsys.readouterr().out
    assert "server2 created anew" in out and "python -m lab down" in out


def test_hosts_only_started_again_keep_the_state(tmp_path, capsys):
    lab = _lab_with_applied_stack(tmp_path)
    lab._forget_stacks_of_old_hosts([])
    assert (lab.stacks_dir / "dev" / "checkpoint.json").exists()
    assert capsys.readouterr().out == ""
