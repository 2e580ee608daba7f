"""Helpers of the artifact tests: the real tools (haproxy, keepalived, visudo, shellcheck) run on what the
program declares, and the scripts and files read out of its resources."""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from components import names


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: scripts/setup installs it (apt-get install {name})")
    return path


def libfaketime() -> str:
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime is not installed: scripts/setup installs it (apt-get install faketime)")
    return str(found[0])


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)
    assert done.returncode == 0, f"{args[0]} refused it:\n{done.stdout}\n{done.stderr}"
    return done


def script_of(resource, step: str = "create") -> str:
    """The bash script a remote command runs for `step`: its stdin, or the `bash -c` argument."""
    if step == "create" and resource.inputs.get("stdin"):
        return resource.inputs["stdin"]
    words = shlex.split(resource.inputs[step])
    assert words[:3] == ["exec", "bash", "-c"]
    return words[3]


def embedded_file(resource) -> str:
    """The config file a script carries as CONFIG_B64."""
    match = re.search(r"^CONFIG_B64=(\S+)$", script_of(resource), re.M)
    return base64.b64decode(shlex.split(match.group(1))[0]).decode()


def sudoers_line(program, host: str) -> str:
    """The drop-in line prepare-host.sh writes for `host`, computed by bash from the shipped script."""
    script = script_of(program.named(f"{host}-install"))
    header = script.split("\nset -eu\n", 1)[0]
    line = next(x for x in script.splitlines() if x.startswith("sudoers_line="))
    done = run([tool("bash"), "-c", f'{header}\n{line}\nprintf "%s\\n" "$sudoers_line"'])
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stats_login(cfg: str, passwords: list[str], tmp_path: Path) -> list[int]:
    """Start the rendered stats frontend on loopback with the real haproxy; the status of each login."""
    port = free_port()
    stats = cfg[cfg.index("frontend stats") :].replace(
        f"bind *:{names.HAPROXY_STATS_CONTAINER_PORT}", f"bind 127.0.0.1:{port}"
    )
    path = tmp_path / "stats.cfg"
    path.write_text(
        "global\n    maxconn 64\ndefaults\n    mode http\n    timeout connect 1s\n"
        f"    timeout client 5s\n    timeout server 5s\n\n{stats}"
    )
    proc = subprocess.Popen([tool("haproxy"), "-db", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        statuses = []
        for password in passwords:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/stats")
            token = base64.b64encode(f"admin:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
            for attempt in range(50):
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        statuses.append(response.status)
                    break
                except urllib.error.HTTPError as err:
                    statuses.append(err.code)
                    break
                except OSError:
                    assert proc.poll() is None and attempt < 49, proc.stdout.read().decode() if proc.stdout else ""
                    time.sleep(0.05)
        return statuses
    finally:
        proc.kill()
        proc.wait(5)


# A line of keepalived's `-d` dump on the console: strftime's "%c" in the C locale, then "Name = value".
# "%c" pads the day of the month with a space ("Mon Dec  7 10:57:05 2026"), hence ` +`.
KEEPALIVED_DUMP_LINE = re.compile(r"^\w{3} \w{3} +\d{1,2} \d{2}:\d{2}:\d{2} \d{4}:\s+(\w[\w ]*?) = (.*)$")


def keepalived_dump(
    conf: str, interface: str, address: str, tmp_path: Path, faked_date: str | None = None
) -> dict[str, str]:
    """Start the real keepalived on the rendered config in a throwaway network namespace (a veth pair
    named like the configured interface) and return its own dump of what it read (`-d`); with
    `faked_date`, keepalived's clock says that date (Debian's libfaketime)."""
    path = tmp_path / "keepalived.conf"
    path.write_text(conf)
    peer = "pihalb-peer0" if interface != "pihalb-peer0" else "pihalb-peer1"
    setup = (
        'ip link add "$1" type veth peer name "$2" && ip link set "$1" up && ip link set "$2" up '
        '&& ip addr add "$3" dev "$1" && exec "$4" -n -l -D -d -f "$5" --vrrp -p "$6" -r "$7"'
    )
    args = [tool("unshare"), "-n", "sh", "-c", setup, "sh", interface, peer, f"{address}/24", tool("keepalived")]
    args += [str(path), str(tmp_path / "k.pid"), str(tmp_path / "v.pid")]
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}
    if faked_date is not None:
        # libfaketime preloaded ("@": the clock starts at that date and runs). It keeps a semaphore and a
        # segment named after the first process's PID in /dev/shm, which its exit would remove but a kill (as
        # here) leaves: a later process given the same PID then fails ("sem_open: File exists"), so they are
        # removed below. (The `faketime` wrapper has the same leftovers under its own PID.)
        env |= {"LD_PRELOAD": libfaketime(), "FAKETIME": f"@{faked_date}"}
    # A session of its own, signalled as a whole (keepalived forks its VRRP process).
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    lines = []
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "< Interfaces >" in line:
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for left in (f"faketime_shm_{proc.pid}", f"sem.faketime_sem_{proc.pid}"):
            (Path("/dev/shm") / left).unlink(missing_ok=True)
    dump = {}
    for line in lines:
        match = KEEPALIVED_DUMP_LINE.search(line.rstrip("\n"))
        if match:
            dump.setdefault(match.group(1), match.group(2))
    assert "Priority" in dump, "".join(lines)
    errors = [line for line in lines if re.search(r": Line \d+\)", line)]
    assert not errors, "keepalived reported config errors:\n" + "".join(errors)
    return dump
