"""The lab's console reads: an output docker exec lost is read again, never taken for an answer."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from lab.inventory import Inventory
from lab.output import LabError
from lab.shell import END_OF_OUTPUT, Shell

pytestmark = pytest.mark.unit


class Container:
    """Runs the command with a real sh here, stdout and stderr in one stream as docker exec gives them; `lose`
    says which runs lose their output, as docker exec can."""

    def __init__(self, lose=lambda run: False):
        self.lose, self.runs = lose, 0

    def exec_run(self, command, user):
        self.runs += 1
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = "" if self.lose(self.runs) else result.stdout
        return SimpleNamespace(exit_code=result.returncode, output=output.encode())


def shell_with(container: Container) -> Shell:
    shell = Shell(engine=None, inventory=Inventory.from_stack("dev"))
    shell.container = lambda name: container
    return shell


def test_a_read_returns_the_commands_output_and_exit_code_without_the_marker():
    container = Container()
    assert shell_with(container).read("lb1", "echo one; echo two >&2; exit 3", check=False) == (3, "one\ntwo\n")
    assert container.runs == 1


def test_a_command_ending_in_a_comment_keeps_its_exit_code():
    assert shell_with(Container()).read("lb1", "false # a comment", check=False) == (1, "")


def test_an_output_lost_once_is_read_again():
    container = Container(lose=lambda run: run == 1)
    assert shell_with(container).read("lb1", "echo 'inet 172.30.42.240/24'") == (0, "inet 172.30.42.240/24\n")
    assert container.runs == 2


def test_outputs_lost_every_time_are_an_error_not_an_empty_answer():
    container = Container(lose=lambda run: True)
    with pytest.raises(LabError, match="lb1: docker exec returned 3 incomplete outputs"):
        shell_with(container).read("lb1", "journalctl -t pihalb-vrrp")
    assert container.runs == 3


def test_a_read_that_timed_out_is_returned_as_it_is():
    code, output = shell_with(Container()).read("lb1", "sleep 5", check=False, timeout=1)
    assert code == 124 and END_OF_OUTPUT not in output
