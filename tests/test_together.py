"""Issue 21: values that are each valid must work together, and with the hosts, in the real daemons.

Each class of the issue has its refusals in test_settings.py; here, what is accepted is run through the
real consumer (haproxy, keepalived, nginx, OpenSSH's ssh-keygen, curl) and must behave as written.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from components import render

from .test_artifacts import embedded_file, free_port, tool

pytestmark = pytest.mark.artifact


def _haproxy(config: dict) -> dict:
    return config["pihalb:cluster"]["haproxy"]


@contextlib.contextmanager
def haproxy_on_loopback(cfg: str, tmp_path: Path, server_port: int) -> Iterator[tuple[int, int]]:
    """The rendered haproxy.cfg run by the real haproxy on loopback: its frontend and runtime API on free
    ports, every server at 127.0.0.1:`server_port`. Yields (frontend port, runtime port)."""
    frontend, runtime = free_port(), free_port()
    cfg = (
        cfg.replace(f"bind *:{render.HAPROXY_FRONTEND_CONTAINER_PORT}", f"bind 127.0.0.1:{frontend}")
        .replace(f"bind *:{render.HAPROXY_STATS_CONTAINER_PORT}", f"bind 127.0.0.1:{free_port()}")
        .replace(f"127.0.0.1:{render.HAPROXY_RUNTIME_PORT}", f"127.0.0.1:{runtime}")
    )
    cfg = re.sub(r"^(    server \S+) \S+:\d+", rf"\1 127.0.0.1:{server_port}", cfg, flags=re.M)
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    proc = subprocess.Popen([tool("haproxy"), "-db", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", runtime), timeout=1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.05)
        yield frontend, runtime
    finally:
        proc.kill()
        proc.wait(5)


def runtime_api(port: int, command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def backend_stat(port: int, field: str, server: str = "BACKEND") -> str:
    """A column of `show stat` for the `servers` backend (or one of its servers)."""
    header, *rows = runtime_api(port, "show stat").splitlines()
    columns = header.removeprefix("# ").split(",")
    for row in rows:
        values = row.split(",")
        if values[:2] == [render.HAPROXY_BACKEND, server]:
            return values[columns.index(field)]
    raise AssertionError(f"no {server} in show stat")


def get_status(port: int, timeout: float = 10) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


# ---- class 3: values whose meaning depends on another value -------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retries_reach_haproxy_as_written(run_stack, tmp_path, retries):
    """`retries: 0` rendered no line, so HAProxy used its default of 3. A request to a server that refuses
    connections is retried exactly `retries` times (HAProxy's own counter, `wretr`)."""
    program = run_stack("dev", lambda config: _haproxy(config).update(retries=retries))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    assert f"    retries {retries}\n" in cfg
    closed = free_port()  # nothing listens there: every connection attempt is refused
    with haproxy_on_loopback(cfg, tmp_path, closed) as (frontend, runtime):
        assert get_status(frontend) == 503
        assert backend_stat(runtime, "wretr") == str(retries)
