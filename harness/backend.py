"""Where the lab engine keeps a stack: its checkpoint and the config a user would `pulumi config set`.

Like Pulumi's local backend (`pulumi login --local`): one directory per stack under `.pihalb-engine/`
(git-ignored, 0700). `config.json` holds the values that cannot live in `Pulumi.<stack>.yaml`
(host keys, secrets), `state.json` the checkpoint.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness import program
from harness.state import Checkpoint

ROOT = program.ROOT
DEFAULT_DIR = ROOT / ".pihalb-engine"


class Backend:
    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        self.directory = directory

    def stack_dir(self, stack: str) -> Path:
        return self.directory / stack

    def state_path(self, stack: str) -> Path:
        """The stack's checkpoint file."""
        return self.stack_dir(stack) / "state.json"

    def checkpoint(self, stack: str) -> Checkpoint:
        return Checkpoint.load(self.state_path(stack))

    def config(self, stack: str) -> dict[str, Any]:
        """The stack file's config, then the values set for it."""
        path = self.stack_dir(stack) / "config.json"
        extra = json.loads(path.read_text()) if path.exists() else {}
        return program.stack_file_config(stack) | extra

    def remove(self, stack: str) -> None:
        """Forget a stack whose hosts are gone (`pulumi stack rm --force`)."""
        shutil.rmtree(self.stack_dir(stack), ignore_errors=True)
