"""The Debian release is one setting (components/debian.py): nothing else names it, and the HAProxy image
gets the release's runtime packages from the program."""

from __future__ import annotations

import re
import subprocess

import pytest

from components import render
from components.debian import DEBIAN_BASE_IMAGE, DEBIAN_RELEASE, HAPROXY_RUNTIME_PACKAGES
from components.settings import parse_cluster
from harness.program import ROOT, stack_file_config

pytestmark = pytest.mark.unit

# Where the release may still be written: its one definition, and the default of a Dockerfile's BASE_IMAGE
# build arg (a bare `docker build`; the program and the lab always pass the setting's value).
ALLOWED = re.compile(
    r"^(components/debian\.py:.*|[\w/]*Dockerfile:ARG BASE_IMAGE=" + re.escape(DEBIAN_BASE_IMAGE) + ")$"
)


def test_only_the_setting_names_the_release():
    tracked = subprocess.run(
        ["git", "grep", "-n", "-I", "-e", DEBIAN_RELEASE, "--", "*.py", "*Dockerfile", "scripts/", "files/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    named = [re.sub(r":\d+:", ":", line, count=1) for line in tracked]
    assert [line for line in named if not ALLOWED.match(line) and not line.startswith("tests/")] == []


def test_the_haproxy_image_installs_the_releases_runtime_packages():
    cluster = parse_cluster(stack_file_config("pi")["pihalb:cluster"])
    assert cluster.base_image == DEBIAN_BASE_IMAGE
    args = render.image_build_args(cluster, "haproxy")
    assert args["HAPROXY_RUNTIME_PACKAGES"].split() == list(HAPROXY_RUNTIME_PACKAGES)
    dockerfile = (render.FILES / "haproxy" / "Dockerfile").read_text()
    for arg in args:
        assert re.search(rf"^ARG {arg}(=|$)", dockerfile, re.M), f"files/haproxy/Dockerfile does not declare {arg}"
    assert "install -y --no-install-recommends $HAPROXY_RUNTIME_PACKAGES;" in dockerfile
