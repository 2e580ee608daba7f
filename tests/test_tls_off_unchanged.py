"""Issue 19: with `haproxy.tls` unset, the program declares exactly what it declared before the HTTPS host
steps came in (commit bfee45d): every resource of every shipped stack, its type, inputs, options and
dependencies, compared with digests recorded then (tests/data/declared_without_tls.json).

What varies from run to run is replaced before hashing: the session's SSH key pair and host keys, and
the temporary directory the program writes the key file to. Regenerate the digests only for a change
that is meant to reach stacks without TLS: `PIHALB_WRITE_DECLARED=1 pytest tests/test_tls_off_unchanged.py`
(then say why in the commit).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest

from harness.program import stack_file_config

from .conftest import STACKS, host_key

GOLDEN = Path(__file__).resolve().parent / "data" / "declared_without_tls.json"


def digests(program, private_key: str, ssh_dir: str, hosts: list[str]) -> dict[str, str]:
    """name -> sha256 of the resource as declared, run-specific values replaced by placeholders."""
    replacements = {private_key: "<ssh private key>", ssh_dir: "<ssh dir>"}
    replacements |= {host_key(name): f"<host key {name}>" for name in hosts}
    out = {}
    for resource in program.resources:
        text = json.dumps(dataclasses.asdict(resource), sort_keys=True, default=str)
        for value, placeholder in replacements.items():
            text = text.replace(json.dumps(value)[1:-1], placeholder)
        out[f"{resource.type}::{resource.name}"] = hashlib.sha256(text.encode()).hexdigest()
    return out


def declared(run_stack, ssh_private_key, tmp_path, stack: str) -> dict[str, str]:
    program = run_stack(stack)
    names = [h["name"] for h in stack_file_config(stack)["pihalb:cluster"]["hosts"]]
    return digests(program, ssh_private_key, str(tmp_path / "ssh"), names)


@pytest.mark.parametrize("stack", STACKS)
def test_without_tls_every_stack_declares_what_it_declared_before(run_stack, ssh_private_key, tmp_path, stack):
    now = declared(run_stack, ssh_private_key, tmp_path, stack)
    if os.environ.get("PIHALB_WRITE_DECLARED"):
        recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        GOLDEN.write_text(json.dumps(recorded | {stack: now}, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())[stack]
    assert sorted(now) == sorted(golden), "resources added or removed without TLS"
    changed = sorted(name for name in now if now[name] != golden[name])
    assert not changed, f"declared differently without TLS: {changed}"
