"""`python -m ops.tls_keys --stack NAME [--dir DIR]`: the keys an HTTPS stack needs (issue 19), made once.

Writes the ACME account key (RSA 3072: Debian 12's dehydrated 0.7.0 signs with RS256 only) and the
certificate's key (ECDSA P-256), shared by both balancers, as 0600 files, and prints the `pulumi config
set --secret` commands that read each from its file on stdin: a key never goes on a command line.
An existing file is kept (the same keys keep the same account and certificate), unless --new.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common.files import write_private
from components.fields import ACME_ACCOUNT_KEY_KEY, CONFIG_NAMESPACE, TLS_PRIVATE_KEY_KEY
from lab.acme import ensure_tls_keys

FILES = {ACME_ACCOUNT_KEY_KEY: "acme-account.pem", TLS_PRIVATE_KEY_KEY: "tls-key.pem"}


def default_dir(stack: str) -> Path:
    return Path.home() / ".pihalb" / f"tls-{stack}"


def commands(stack: str, directory: Path) -> list[str]:
    return [
        f"pulumi config set --stack {shlex.quote(stack)} --secret {CONFIG_NAMESPACE}:{key} "
        f"< {shlex.quote(str(directory / name))}"
        for key, name in FILES.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.tls_keys", description=__doc__)
    parser.add_argument("--stack", required=True, help="the stack the keys are for, e.g. pi")
    parser.add_argument("--dir", type=Path, help="where to write them (default ~/.pihalb/tls-<stack>/)")
    parser.add_argument("--new", action="store_true", help="replace existing keys (a new account and key)")
    args = parser.parse_args(argv)
    directory = args.dir or default_dir(args.stack)
    if args.new:
        for name in FILES.values():
            (directory / name).unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ensure_tls_keys(directory)
    write_private(
        directory / "README",
        "Private keys of pi-ha-lb's HTTPS (0600). Set them with:\n" + "\n".join(commands(args.stack, directory)) + "\n",
    )
    print(f"keys in {directory} (0600); set them as secrets:")
    for line in commands(args.stack, directory):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
