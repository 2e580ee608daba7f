"""The Docker engine the lab runs on: connected lazily, started (and installed) when none answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import DockerException

from lab.output import LabError, say

ENGINE_START_TIMEOUT_S = 60
BUILD_TIMEOUT_S = 1800  # an HTTP read timeout for the engine client: builds and long `sh` commands stream slowly


class DockerEngine:
    """A handle on the engine that connects on first use, so reading the inventory needs no Docker."""

    def __init__(self) -> None:
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        """The engine client; starts `dockerd` first when none answers (CI machines start without one)."""
        if self._client is None:
            self._client = _connect()
        return self._client


def _connect() -> docker.DockerClient:
    """A client of a running engine; start `dockerd` (installing docker.io when absent) if none answers."""
    try:
        client = docker.from_env(timeout=BUILD_TIMEOUT_S)
        client.ping()
        return client
    except DockerException:
        if os.environ.get("DOCKER_HOST"):
            raise LabError(f"the Docker engine at DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer") from None
    ensure_command("dockerd", package="docker.io")
    log_path = Path(tempfile.gettempdir()) / "pihalb-lab-dockerd.log"
    say(f"no Docker engine answers: starting dockerd (log: {log_path})")
    with open(log_path, "ab") as log:
        subprocess.Popen(
            ["dockerd"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + ENGINE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            client = docker.from_env(timeout=BUILD_TIMEOUT_S)
            client.ping()
            say("dockerd answers")
            return client
        except DockerException:
            continue
    tail = log_path.read_text(errors="replace").splitlines()[-20:]
    raise LabError(f"dockerd did not answer within {ENGINE_START_TIMEOUT_S}s; log tail:\n" + "\n".join(tail))


def ensure_command(command: str, package: str) -> None:
    """apt-get install `package` when `command` is missing (a fresh CI machine has neither)."""
    if shutil.which(command):
        return
    say(f"{command} missing: apt-get install {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update"], timeout=300, env=env)
    run(["apt-get", "install", "-y", "--no-install-recommends", package], timeout=600, env=env)


def run(command: list[str], timeout: int, env: dict | None = None) -> None:
    """Run a local command, bounded; a failure raises LabError with the output's tail."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as error:
        raise LabError(f"`{' '.join(command)}` did not finish within {timeout}s") from error
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).splitlines()[-30:]
        raise LabError(f"`{' '.join(command)}` exited {result.returncode}:\n" + "\n".join(tail))
