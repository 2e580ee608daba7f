"""Bytes the lab writes: private files, tar archives for `put_archive`, and the content fingerprints.

One writer of each, so a key, the state file and a host's authorized_keys are all written the same way.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path


def write_private(path: Path, content: str | bytes) -> None:
    """Write `content` to `path` readable by its owner only; the file is never briefly world-readable."""
    data = content.encode() if isinstance(content, str) else content
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)  # an older file keeps its mode through O_CREAT


@dataclass(frozen=True)
class Entry:
    """One member of a tar archive: a file with `content`, or a directory when `content` is None."""

    name: str
    content: bytes | None
    mode: int
    owner: int = 0


def tar_archive(entries: list[Entry]) -> bytes:
    """A tar of `entries`, owner and group set to `owner`, for a container's `put_archive`."""
    buffer = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.owner, entry.owner, now
            if entry.content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
    return buffer.getvalue()


def fingerprint(*parts: bytes) -> str:
    """SHA-256 over the parts' own digests: a label value that changes when any part does."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def tree_bytes(directory: Path) -> bytes:
    """Every file of a build context, with its relative path, in a stable order (for `fingerprint`)."""
    parts = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        parts.append(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes())
    return b"\0\0".join(parts)
