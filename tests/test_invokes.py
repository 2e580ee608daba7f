"""pulumi-command's `local.run` invoke, as the lab engine runs it (docs/pulumi-rules.md, 6)."""

from __future__ import annotations

import pytest

from harness import invokes

pytestmark = pytest.mark.unit


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
