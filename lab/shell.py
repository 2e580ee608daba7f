"""Commands inside a host as root, through `docker exec`: inspection, fault injection, image seeding.

Never how the program reaches a host (that is SSH, as on a real Pi); this is the lab's console cable.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator

from docker.errors import NotFound
from docker.models.containers import Container
from docker.utils.socket import frames_iter

from lab.docker_engine import DockerEngine
from lab.inventory import Inventory, container_name
from lab.output import LabError

# The last line of every `Shell.read`: docker exec sometimes hands back an empty output with exit 0 (docker/docker-py
# #2042; measured here, 1 read in 1,902 while `stress-ng --cpu 2 --io 1` ran), and a lost answer must not read
# as "no VIP here" or "no transition".
END_OF_OUTPUT = "pihalb-lab: end of output"


class Shell:
    """Root shells on the hosts of one inventory."""

    def __init__(self, engine: DockerEngine, inventory: Inventory):
        self.engine = engine
        self.inventory = inventory

    def container(self, name: str) -> Container:
        """The outer container of host `name`."""
        wanted = container_name(self.inventory.host(name))
        try:
            return self.engine.client.containers.get(wanted)
        except NotFound as error:
            raise LabError(f"{name}: container {wanted} does not exist; run `python -m lab up`") from error

    def sh(self, name: str, command: str, check: bool = True, timeout: int = 60) -> tuple[int, str]:
        """Run `command` as root inside host `name`, bounded by coreutils `timeout` (exit 124 when it fires).

        Returns (exit code, stdout+stderr); with `check`, a non-zero exit raises LabError.
        """
        wrapped = ["timeout", "--kill-after=5", str(timeout), "sh", "-c", command]
        result = self.container(name).exec_run(wrapped, user="root")
        output = result.output.decode(errors="replace")
        if check and result.exit_code != 0:
            why = f"timed out after {timeout}s" if result.exit_code == 124 else f"exited {result.exit_code}"
            raise LabError(f"{name}: `{command}` {why}:\n{output}")
        return result.exit_code, output

    def read(
        self, name: str, command: str, check: bool = True, timeout: int = 60, attempts: int = 3
    ) -> tuple[int, str]:
        """`sh` for a command that only reads, made again when docker exec lost its output (END_OF_OUTPUT
        missing), up to `attempts` times, then a LabError. A read that timed out (exit 124) is returned as is."""
        marked = f"( {command}\n); status=$?; echo '{END_OF_OUTPUT}'; exit $status"
        for _ in range(attempts):
            code, output = self.sh(name, marked, check=check, timeout=timeout)
            text, marker, rest = output.rpartition(END_OF_OUTPUT + "\n")
            if marker and not rest:
                return code, text
            if code == 124:
                return code, output
        raise LabError(f"{name}: docker exec returned {attempts} incomplete outputs for `{command}`: {output!r}")

    def bash(self, name: str, script: str, timeout: float = 60) -> tuple[int, str, str]:
        """Run `script` with bash as root inside host `name`, bounded as `sh` is: (exit code, stdout, stderr)
        apart, as a login's would be (what `ops.lab_fleet.ConsoleRunner` gives the ops scripts)."""
        wrapped = ["timeout", "--kill-after=5", str(int(timeout)), "bash", "-c", script]
        result = self.container(name).exec_run(wrapped, user="root", demux=True)
        out, err = result.output if result.output else (None, None)
        return result.exit_code, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace")

    def stream_in(self, name: str, command: list[str], chunks: Iterable[bytes]) -> str:
        """Run `command` in host `name` with `chunks` streamed to its stdin (what `docker exec -i` does)."""
        api = self.engine.client.api
        exec_id = api.exec_create(self.container(name).id, command, stdin=True, stdout=True, stderr=True)["Id"]
        stream = api.exec_start(exec_id, socket=True)
        raw_socket = getattr(stream, "_sock", stream)
        try:
            for chunk in chunks:
                raw_socket.sendall(chunk)
            raw_socket.shutdown(socket.SHUT_WR)
            output = b"".join(data for _, data in frames_iter(stream, tty=False)).decode(errors="replace")
        finally:
            stream.close()
        self._check_exit(name, command, exec_id, output)
        return output

    def stream_out(self, name: str, command: list[str]) -> Iterator[bytes]:
        """Run `command` in host `name` and yield its stdout as it comes (`docker exec` to a pipe); its
        stderr is kept for the error a non-zero exit raises, after the last chunk."""
        api = self.engine.client.api
        exec_id = api.exec_create(self.container(name).id, command, stdout=True, stderr=True)["Id"]
        errors = []
        for out, err in api.exec_start(exec_id, stream=True, demux=True):
            if err:
                errors.append(err)
            if out:
                yield out
        self._check_exit(name, command, exec_id, b"".join(errors).decode(errors="replace"))

    def _check_exit(self, name: str, command: list[str], exec_id: str, output: str) -> None:
        exit_code = self.engine.client.api.exec_inspect(exec_id)["ExitCode"]
        if exit_code != 0:
            raise LabError(f"{name}: `{' '.join(command)}` exited {exit_code}:\n{output}")
