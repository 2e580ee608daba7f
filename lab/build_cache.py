"""HAProxy's compile, kept by the lab across runs: a new balancer's Docker daemon gets the last build.

Each balancer compiles HAProxy in its own daemon (the program's design: a Pi builds its own image), about
2.5 minutes of a fresh lab's first deployment on this 2-core machine, the same work twice, every run. A Pi
keeps its build cache between `pulumi up`s; a fresh lab host, like a reinstalled Pi, has none. So after an
apply the lab saves the build stage's image chain (base to compiled binary, `docker save` of every image
in it, which keeps their parent links) from a balancer to `CACHE_DIR`, outside the repository, and loads it
into each new balancer's daemon when that daemon comes up, next to the base image. The classic builder then
finds each step of an unchanged Dockerfile in its cache ("Using cache"), exactly as on a Pi that built it
before; a changed Dockerfile, build argument or base image misses it and compiles. What the program
declares and what the hosts run are the same either way: the cache only saves the compile's time.
A new machine, or `python -m lab down --all`, compiles again.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from components import names
from lab.output import LabError, say
from lab.shell import Shell

CACHE_DIR = Path(os.environ.get("PIHALB_LAB_CACHE", "/var/tmp/pihalb-lab-cache"))
PREFIX = "haproxy-build-"
CHUNK = 1 << 20


def _cached() -> Path | None:
    files = sorted(CACHE_DIR.glob(f"{PREFIX}*.tar"))
    return files[-1] if files else None


def _built(shell: Shell, host: str) -> str | None:
    """The ID of the newest HAProxy build stage on `host`'s daemon (the image labelled with its tag), if any."""
    labels = f"--filter label={names.BUILD_OF_LABEL} --filter label={names.IMAGE_LABEL}=haproxy"
    command = f"docker images -q --no-trunc {labels}"
    code, output = shell.sh(host, command, check=False, timeout=30)
    ids = output.split() if code == 0 else []
    return ids[0].removeprefix("sha256:") if ids else None


def keep(shell: Shell, balancers: list[str]) -> None:
    """After an apply: save the build chain of the first balancer that has one, unless it is the one kept."""
    for host in balancers:
        top = _built(shell, host)
        if top is None:
            continue
        command = f"docker history --no-trunc --format '{{{{.ID}}}} {{{{.Size}}}}' {top}"
        code, history = shell.sh(host, command, check=False, timeout=30)
        rows = [line.split(maxsplit=1) for line in history.splitlines() if line.startswith("sha256:")]
        if code != 0 or not rows:
            return
        chain = [image for image, _ in rows]
        # Named after the newest image with content, the compile: the metadata steps on top of it (the tag
        # the build was for) change with every tag, and a cache kept for each would be saved again each time.
        compiled = next((image for image, size in rows if size.strip() != "0B"), chain[0])
        target = CACHE_DIR / f"{PREFIX}{compiled.removeprefix('sha256:')[:16]}.tar"
        if target.exists():
            return
        say(f"{host}: keeping HAProxy's build ({len(chain)} images) in {CACHE_DIR} for the next lab")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=CACHE_DIR, prefix=".saving-", delete=False) as partial:
            try:
                for chunk in shell.stream_out(host, ["docker", "save", *chain]):
                    partial.write(chunk)
            except (LabError, OSError) as error:  # a full disk costs the next lab a compile, not this apply
                os.unlink(partial.name)
                say(f"{host}: HAProxy's build not kept ({error})")
                return
        os.replace(partial.name, target)
        for old in CACHE_DIR.glob(f"{PREFIX}*.tar"):
            if old != target:
                old.unlink()  # one build kept: this machine's disk, not a registry
        return


def give(shell: Shell, host: str) -> None:
    """A balancer's daemon, just up: load the kept build, if there is one and the daemon has no build yet."""
    cached = _cached()
    if cached is None or _built(shell, host) is not None:
        return
    say(f"{host}: loading the kept HAProxy build ({cached.name}) into the inner daemon")
    try:
        shell.stream_in(host, ["docker", "load", "--quiet"], _chunks(cached))
    except LabError as error:  # a damaged file costs a compile, not the deployment
        say(f"{host}: the kept build did not load, HAProxy compiles ({error})")
        cached.unlink(missing_ok=True)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def forget() -> None:
    for kept in CACHE_DIR.glob(f"{PREFIX}*.tar"):
        say(f"removing the kept HAProxy build {kept}")
        kept.unlink()
