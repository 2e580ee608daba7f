"""Real daemons for the artifact tests: HAProxy on loopback and its runtime API, keepalived pairs in
throwaway network namespaces, and the settings a test runs them with."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from components import names
from components.settings import ConfigError
from ops.wait import wait_for
from tests.artifact_tools import free_port, tool


def haproxy_of(config: dict) -> dict:
    return config["pihalb:cluster"]["haproxy"]


@contextlib.contextmanager
def haproxy_on_loopback(cfg: str, tmp_path: Path, server_port: int) -> Iterator[tuple[int, int]]:
    """The rendered haproxy.cfg run by the real haproxy on loopback: its frontend and runtime API on free
    ports, every server at 127.0.0.1:`server_port`. Yields (frontend port, runtime port)."""
    frontend, runtime = free_port(), free_port()
    cfg = (
        cfg.replace(f"bind *:{names.HAPROXY_FRONTEND_CONTAINER_PORT}", f"bind 127.0.0.1:{frontend}")
        .replace(f"bind *:{names.HAPROXY_STATS_CONTAINER_PORT}", f"bind 127.0.0.1:{free_port()}")
        .replace(f"127.0.0.1:{names.HAPROXY_RUNTIME_PORT}", f"127.0.0.1:{runtime}")
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
        if values[:2] == [names.HAPROXY_BACKEND, server]:
            return values[columns.index(field)]
    raise AssertionError(f"no {server} in show stat")


def accepted(run_stack, alter, *keys: str):
    """The program's run, or None when the settings refused the values, naming one of `keys` and the fix."""
    try:
        return run_stack("dev", alter)
    except ConfigError as err:
        assert any(f"pihalb:{key}" in str(err) for key in keys), str(err)
        assert "Fix:" in str(err)
        return None


class Netns:
    """A throwaway network namespace (unshare, a process holding it), for keepalived on veth pairs."""

    def __init__(self) -> None:
        self.holder = subprocess.Popen([tool("unshare"), "-n", "sleep", "600"])
        self.keepalived: list[subprocess.Popen] = []
        # Until unshare has switched, the holder is still in this machine's namespace: nothing may run there.
        wait_until(self._unshared, 10, "unshare to enter a new network namespace")

    def _unshared(self) -> bool:
        with contextlib.suppress(FileNotFoundError):
            return os.readlink(f"/proc/{self.holder.pid}/ns/net") != os.readlink("/proc/self/ns/net")
        return False

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [tool("nsenter"), "-t", str(self.holder.pid), "-n", *args], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    def start_keepalived(self, conf: str, tmp_path: Path) -> None:
        """keepalived on `conf`, with the files it tracks moved into `tmp_path`; the track script succeeds
        (HAProxy runs) and the notify hook is left out (neither exists on this machine)."""
        n = len(self.keepalived)
        conf = (
            conf.replace(names.VRRP_HANDOVER_FILE, str(tmp_path / "handover"))
            .replace(names.HAPROXY_TRACK_FILE, str(tmp_path / "haproxy-alive"))
            .replace('script "/usr/bin/killall -0 haproxy"', 'script "/bin/true"')
        )
        conf = re.sub(r"^ *notify .*\n", "", conf, flags=re.M)
        (tmp_path / "haproxy-alive").write_text("1\n")
        path = tmp_path / f"keepalived{n}.conf"
        path.write_text(conf)
        args = ["-n", "-l", "-D", "-f", str(path), "--vrrp", "-p", str(tmp_path / f"k{n}.pid")]
        args += ["-r", str(tmp_path / f"v{n}.pid")]
        nsenter = [tool("nsenter"), "-t", str(self.holder.pid), "-n", tool("keepalived"), *args]
        self.keepalived.append(subprocess.Popen(nsenter, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def holds(self, vip: str) -> bool:
        return f" {vip}/" in self.run("ip", "-4", "-o", "addr", "show")

    def close(self) -> None:
        for proc in [*self.keepalived, self.holder]:
            proc.terminate()
        for proc in [*self.keepalived, self.holder]:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@contextlib.contextmanager
def balancer_namespaces(*addresses: str, interface: str = "eth0") -> Iterator[list[Netns]]:
    """One namespace per balancer address, joined by a veth pair named `interface` on both ends (a single
    balancer gets the pair's other end in its own namespace)."""
    spaces = [Netns() for _ in addresses]
    try:
        first = spaces[0]
        peer = ["name", interface, "netns", str(spaces[1].holder.pid)] if len(spaces) > 1 else ["name", "peer0"]
        first.run("ip", "link", "add", interface, "type", "veth", "peer", *peer)
        if len(spaces) == 1:
            first.run("ip", "link", "set", "peer0", "up")
        for space, address in zip(spaces, addresses, strict=True):
            space.run("ip", "addr", "add", address, "dev", interface)
            space.run("ip", "link", "set", interface, "up")
        yield spaces
    finally:
        for space in spaces:
            space.close()


def wait_until(predicate, seconds: float, what: str) -> None:
    """`ops.wait.wait_for`, polling every 0.1 s (a daemon on loopback answers fast)."""
    wait_for(what, predicate, seconds, interval=0.1)


def get_status(port: int, timeout: float = 10) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
