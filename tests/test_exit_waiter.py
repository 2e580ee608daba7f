"""The events watcher's fast path (files/scripts/haproxy-exit-wait.pl), run for real on this machine's kernel
against stand-ins for HAProxy's master and workers: it reports a death at once and a reload never."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from components import render

WAITER = render.FILES / "scripts" / "haproxy-exit-wait.pl"
# A master with one worker; SIGUSR2 reloads as HAProxy 2.6 does: the new worker first, then the old one ends.
MASTER = """
trap 'sleep 300 & new=$!; kill $old; old=$new; echo reloaded' USR2
sleep 300 & old=$!
echo ready
while :; do wait; done
"""


@pytest.fixture
def master():
    process = subprocess.Popen(["bash", "-c", MASTER], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n"
    yield process
    subprocess.run(["pkill", "-KILL", "-P", str(process.pid)], check=False)
    process.kill()
    process.wait()


def worker_of(master: subprocess.Popen) -> int:
    return int(subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()[0])


def start_waiter(master: subprocess.Popen, track: Path) -> subprocess.Popen:
    track.write_text("1\n")
    waiter = subprocess.Popen(["perl", str(WAITER), str(master.pid), str(track)], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # armed: its pidfds are open
    return waiter


def test_the_last_workers_death_is_reported_at_once_while_the_master_lives(master, tmp_path):
    track = tmp_path / "haproxy-alive"
    waiter = start_waiter(master, track)
    worker = worker_of(master)
    killed = time.monotonic()
    subprocess.run(["kill", "-KILL", str(worker)], check=True)
    assert waiter.wait(timeout=5) == 0
    assert time.monotonic() - killed < 1
    assert track.read_text() == "0\n"
    assert waiter.stdout.read().startswith(f"track file 0 (worker {worker} exited, exit seen at 20")
    assert master.poll() is None


def test_a_reload_is_not_a_death_and_the_masters_exit_after_it_is(master, tmp_path):
    track = tmp_path / "haproxy-alive"
    waiter = start_waiter(master, track)
    master.send_signal(signal.SIGUSR2)
    assert master.stdout.readline() == "reloaded\n"
    time.sleep(0.3)
    assert waiter.poll() is None
    assert track.read_text() == "1\n"
    master.kill()
    assert waiter.wait(timeout=5) == 0
    assert track.read_text() == "0\n"
    assert f"(master {master.pid} exited" in waiter.stdout.read()


def test_a_master_already_gone_leaves_the_track_file_to_dockers_events(tmp_path):
    track = tmp_path / "haproxy-alive"
    track.write_text("1\n")
    gone = subprocess.Popen(["true"])
    gone.wait()
    waiter = subprocess.run(["perl", str(WAITER), str(gone.pid), str(track)], capture_output=True, timeout=5)
    assert waiter.returncode == 0
    assert track.read_text() == "1\n"
