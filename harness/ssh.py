"""The one SSH login of the project's tooling: a given key, the pinned host key only, never a prompt.

pulumi-command logs in the same way (its `connection.hostKey` is the only key accepted); the engine, the
lab's readiness checks and the drills all come through here.
"""

from __future__ import annotations

import base64
import io
import time
from dataclasses import dataclass

import paramiko


class SshError(RuntimeError):
    """A login or a command failed; the message names the host."""


def private_key(text: str) -> paramiko.PKey:
    """An OpenSSH/PEM private key (ed25519, ECDSA or RSA) from its text."""
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError):
            continue
    raise SshError("the SSH private key is not an ed25519, ECDSA or RSA key")


@dataclass(frozen=True)
class Login:
    """Where and as whom to log in, and the only host key to trust ("type base64")."""

    host: str
    port: int
    user: str
    private_key: str
    host_key: str

    def connect(self, attempts: int = 1, timeout: float = 10.0) -> paramiko.SSHClient:
        """A connected client; retries a failed dial `attempts` times, never a wrong host key."""
        client = paramiko.SSHClient()
        key_type, key_b64 = self.host_key.split()[:2]
        # OpenSSH and paramiko name the default port by the bare address, any other as [address]:port.
        known_as = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        client.get_host_keys().add(
            known_as, key_type, paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64))
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        for attempt in range(1, attempts + 1):
            try:
                client.connect(
                    self.host,
                    port=self.port,
                    username=self.user,
                    pkey=private_key(self.private_key),
                    timeout=timeout,
                    banner_timeout=timeout,
                    auth_timeout=timeout,
                    allow_agent=False,
                    look_for_keys=False,
                )
                return client
            except (OSError, paramiko.SSHException) as error:
                if attempt == attempts or isinstance(error, paramiko.BadHostKeyException):
                    raise SshError(
                        f"cannot log in to {self.user}@{self.host}:{self.port} after {attempt} attempt(s): "
                        f"{type(error).__name__}: {error}"
                    ) from error
                time.sleep(1)
        raise AssertionError("unreachable")

    def run(
        self,
        command: str,
        stdin: str | None = None,
        timeout: float = 900,
        attempts: int = 1,
        connect_timeout: float = 10.0,
    ) -> tuple[int, str, str]:
        """Run `command`, feeding `stdin` (kept off the command line: it may carry secrets); (exit, out, err).

        A dial or login that fails, a dropped connection and a command running past `timeout` raise SshError."""
        client = self.connect(attempts=attempts, timeout=connect_timeout)
        try:
            channel_in, stdout, stderr = client.exec_command(command, timeout=timeout)
            if stdin is not None:
                channel_in.write(stdin)
            channel_in.channel.shutdown_write()
            out = stdout.read().decode(errors="replace")
            err = stderr.read().decode(errors="replace")
            return stdout.channel.recv_exit_status(), out, err
        except TimeoutError as error:
            raise SshError(f"{self.host}: `{command[:60]}` took longer than {timeout:.0f}s") from error
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise SshError(f"{self.host}: `{command[:60]}`: {type(error).__name__}: {error}") from error
        finally:
            client.close()
