"""The lab's kept HAProxy build (lab/build_cache.py), against a recording stand-in for the hosts' shells."""

from __future__ import annotations

import pytest

from lab import build_cache
from lab.output import LabError

pytestmark = pytest.mark.unit

HISTORY = "sha256:top 0B\nsha256:arg 0B\nsha256:compiledcompiled99 67.7MB\nsha256:base 117MB\n"


class FakeShell:
    """A balancer with one HAProxy build whose history is HISTORY; `docker save` yields `saved` or fails."""

    def __init__(self, saved: list[bytes], fail: bool = False) -> None:
        self.saved, self.fail, self.saves = saved, fail, []

    def sh(self, host: str, command: str, check: bool = False, timeout: int = 30) -> tuple[int, str]:
        return (0, "sha256:top\n") if command.startswith("docker images") else (0, HISTORY)

    def stream_out(self, host: str, command: list[str]):
        self.saves.append(command)
        yield from self.saved
        if self.fail:
            raise LabError(f"{host}: `docker save` exited 1")


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(build_cache, "CACHE_DIR", tmp_path)
    return tmp_path


def test_the_whole_chain_is_kept_under_the_compile_step_once(cache_dir):
    shell = FakeShell([b"tar", b"ball"])
    build_cache.keep(shell, ["lb1", "lb2"])
    build_cache.keep(shell, ["lb1", "lb2"])  # the same compile: not saved again
    assert shell.saves == [["docker", "save", "sha256:top", "sha256:arg", "sha256:compiledcompiled99", "sha256:base"]]
    kept = list(cache_dir.iterdir())
    assert [p.name for p in kept] == ["haproxy-build-compiledcompiled.tar"] and kept[0].read_bytes() == b"tarball"


def test_a_failed_save_leaves_no_file_and_does_not_fail_the_apply(cache_dir):
    (cache_dir / "haproxy-build-older.tar").write_bytes(b"old")
    build_cache.keep(FakeShell([b"part"], fail=True), ["lb1"])
    assert [p.name for p in cache_dir.iterdir()] == ["haproxy-build-older.tar"]
