"""The program's connectivity checks: pulumi-command's `local.run` invoke, as the lab engine runs it.

Pulumi runs an invoke on every preview and every update (docs/pulumi-rules.md, 6); the lab engine runs the
program, invokes included, for both. Here a stand-in `ssh` on PATH plays the hosts: it records its command
line and its stdin, and fails for one address when asked to.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness import invokes, program
from harness.backend import Backend
from harness.command_ops import StepError

from .conftest import STATS_PASSWORD, VRRP_PASSWORD

pytestmark = pytest.mark.unit

FAKE_SSH = """#!/bin/sh
# A stand-in for the ssh client: records its arguments and stdin, answers like check-connectivity.sh.
log="$FAKE_SSH_LOG/$$"
printf '%s\\n' "$@" >"$log.args"
cat >"$log.stdin"
for word in "$@"; do
    if [ "$word" = "$FAKE_SSH_DOWN" ]; then
        echo "ssh: connect to host $word port 22: No route to host" >&2
        exit 255
    fi
done
echo "pong from a stand-in"
echo "pihalb-changed: no"
"""


@pytest.fixture
def fake_ssh(tmp_path, monkeypatch):
    """`ssh` on PATH is the stand-in; returns the directory of its records."""
    bin_dir, log = tmp_path / "bin", tmp_path / "ssh-log"
    bin_dir.mkdir()
    log.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(ssh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    monkeypatch.setenv("FAKE_SSH_DOWN", "nowhere")
    return log


def calls(log: Path) -> list[tuple[list[str], str]]:
    """Each ssh run: its arguments and what it read on stdin."""
    return [
        (args.read_text().splitlines(), args.with_suffix(".stdin").read_text()) for args in sorted(log.glob("*.args"))
    ]


def hosts_of(config: dict) -> list[dict]:
    return config["pihalb:cluster"]["hosts"]


def test_local_run_runs_the_command_with_stdin_environment_and_directory(tmp_path):
    result = invokes.run(
        invokes.LOCAL_RUN,
        {
            "command": 'cat; printf " %s %s\\n" "$PIHALB_X" "$(pwd)"',
            "stdin": "from stdin",
            "environment": {"PIHALB_X": "x"},
            "dir": str(tmp_path),
            "addPreviousOutputInEnv": False,
            "logging": "stdoutAndStderr",
        },
    )
    assert result["stdout"] == f"from stdin x {tmp_path}"  # one trailing newline trimmed, as pulumi-command does
    assert result["stderr"] == "" and result["command"].startswith("cat;")
    assert invokes.run(invokes.LOCAL_RUN, {"command": "echo $0", "interpreter": ["/bin/bash", "-c"]})["stdout"] == (
        "/bin/bash"
    )


def test_a_failed_local_run_names_the_command_and_carries_its_output():
    with pytest.raises(invokes.InvokeError) as failed:
        invokes.run(invokes.LOCAL_RUN, {"command": "echo out; echo err >&2; exit 3"})
    assert str(failed.value).startswith('invoke of command:local:run failed: exit status 3: running "echo out;')
    assert "out\nerr" in str(failed.value)


def test_local_run_refuses_what_it_cannot_honour():
    with pytest.raises(invokes.InvokeError, match="no such inputs"):
        invokes.run(invokes.LOCAL_RUN, {"command": "true", "triggers": [1]})
    with pytest.raises(invokes.InvokeError, match="cannot honour"):
        invokes.run(invokes.LOCAL_RUN, {"command": "true", "assetPaths": ["*"]})
    with pytest.raises(invokes.InvokeError, match="cannot run the invoke"):
        invokes.run("aws:index/getRegion:getRegion", {})


def test_the_lab_engines_capture_runs_each_hosts_check_for_real(stack_config, fake_ssh, ssh_private_key):
    """program.run's default: every check runs through the local ssh, the script on its stdin, the key a
    file name on its command line (never the key, nor any other secret)."""
    config = stack_config("dev")
    declared = program.run("dev", config)  # no canned invoke: the real one
    runs = calls(fake_ssh)
    addresses = sorted(h["address"] for h in hosts_of(config))
    assert sorted(args[args.index("--") + 1] for args, _ in runs) == addresses
    for args, stdin in runs:
        assert stdin.startswith("#!/bin/bash\n# pi-ha-lb: check-connectivity.sh\n")
        key_file = Path(args[args.index("-i") + 1])
        assert key_file.read_text().strip() == ssh_private_key.strip()
        for secret in (ssh_private_key, VRRP_PASSWORD, STATS_PASSWORD):
            assert all(secret not in arg for arg in args)
    assert [i.result["stdout"] for i in declared.invokes] == ["pong from a stand-in\npihalb-changed: no"] * 5


def test_a_failed_check_fails_the_run_naming_the_host(stack_config, fake_ssh, monkeypatch):
    config = stack_config("dev")
    down = hosts_of(config)[2]
    monkeypatch.setenv("FAKE_SSH_DOWN", down["address"])
    with pytest.raises(StepError) as failed:
        program.run("dev", config)
    message = str(failed.value)
    assert f"connectivity check of {down['name']} (pi@{down['address']}:22) failed (exit 255)" in message
    assert "No route to host" in message


@pytest.fixture
def engine_backend(tmp_path, stack_config, monkeypatch):
    """`python -m harness` on a backend in tmp_path holding the dev stack's host keys and secrets."""
    from harness import __main__ as harness_main

    backend = Backend(tmp_path / "engine")
    config = stack_config("dev")
    layer = {k: v for k, v in config.items() if k != "pihalb:cluster"}
    backend.stack_dir("dev").mkdir(parents=True)
    (backend.stack_dir("dev") / "config.json").write_text(json.dumps(layer))
    monkeypatch.setattr(harness_main, "Backend", lambda: backend)
    return harness_main, backend


def test_the_lab_engine_runs_the_checks_on_preview_and_on_up_before_any_step(
    engine_backend, fake_ssh, capsys, monkeypatch
):
    harness_main, backend = engine_backend
    assert harness_main.main(["preview", "dev"]) == 0
    assert len(calls(fake_ssh)) == 5  # one check per host
    assert " to create" in capsys.readouterr().out
    for record in fake_ssh.iterdir():
        record.unlink()
    down = program.stack_file_config("dev")["pihalb:cluster"]["hosts"][0]
    monkeypatch.setenv("FAKE_SSH_DOWN", down["address"])
    assert harness_main.main(["up", "dev"]) == 1
    assert len(calls(fake_ssh)) == 5
    assert f"connectivity check of {down['name']} (" in capsys.readouterr().err
    assert not (backend.stack_dir("dev") / "state.json").exists()  # no step ran: nothing was recorded
