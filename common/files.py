"""One writer of private files and one tar builder, for the program (the Docker provider's key file), the
lab engine (checkpoints, stack config, uploads) and the lab (keys, its state, host files)."""

from __future__ import annotations

import io
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path


def write_private(path: Path, content: str | bytes) -> Path:
    """Write `content` to `path`, readable by its owner only and never briefly by anyone else; atomically
    (a reader sees the old file or the new one), the parent made 0700 when missing."""
    data = content.encode() if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(staged, 0o600)  # an older staged file keeps its mode through O_CREAT
    os.replace(staged, path)
    return path


@dataclass(frozen=True)
class Entry:
    """One member of a tar archive: a file with `content`, or a directory when `content` is None."""

    name: str
    content: bytes | None
    mode: int
    owner: int = 0


def tar_archive(entries: list[Entry]) -> bytes:
    """A tar of `entries` (owner and group `owner`), for a container's `put_archive`."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name.lstrip("/"))
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.owner, entry.owner, now
            if entry.content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
    return buffer.getvalue()
