"""Shared fixtures: the shipped stack files plus what a user sets by hand (host keys, secrets)."""

from __future__ import annotations

import copy
import functools
import os
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from components.settings import CONFIG_NAMESPACE, load
from harness import program as harness
from lab import acme as lab_acme

ROOT = Path(__file__).resolve().parent.parent
STACKS = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml"))
VRRP_PASSWORD = "vr5ecret"
STATS_PASSWORD = "stats-Pa55word-xyz"


def _keypair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


@pytest.fixture(scope="session")
def ssh_private_key() -> str:
    return _keypair()[0]


@functools.cache
def host_key(name: str) -> str:
    """One public host key per host name for the whole session, as a real Pi keeps its key."""
    return _keypair()[1]


def user_layer(file_config: dict, private_key: str) -> dict:
    """What README tells a user to set before `pulumi up`: pinned host keys and the three secrets."""
    hosts = file_config["pihalb:cluster"]["hosts"]
    acme = file_config["pihalb:cluster"].get("haproxy", {}).get("tls", {}).get("certificate", {}).get("kind") == "acme"
    return {
        "pihalb:hostKeys": {h["name"]: host_key(h["name"]) for h in hosts},
        "pihalb:sshPrivateKey": private_key,
        "pihalb:vrrpPassword": VRRP_PASSWORD,
        "pihalb:statsPassword": STATS_PASSWORD,
        **(acme_secrets() if acme else {}),
    }


def without_tls(config: dict) -> None:
    """A stack's config with its `haproxy.tls` block and the TLS secrets taken out (dev-tuned's HTTPS aside)."""
    config["pihalb:cluster"].get("haproxy", {}).pop("tls", None)
    for key in ("pihalb:acmeAccountKey", "pihalb:tlsPrivateKey", "pihalb:tlsCertificate"):
        config.pop(key, None)


@functools.cache
def acme_secrets() -> dict[str, str]:
    """The ACME account key and the certificate's key of an acme stack (`python -m ops.tls_keys` makes them
    for a user), made once per session."""
    return {f"pihalb:{key}": pem for key, pem in lab_acme.ensure_tls_keys(Path(tempfile.mkdtemp())).items()}


@pytest.fixture
def stack_config(ssh_private_key, tmp_path, monkeypatch):
    """A function giving the full config of a shipped stack: its file, then the user's layer."""
    monkeypatch.setenv("PIHALB_SSH_DIR", str(tmp_path / "ssh"))

    def build(stack: str) -> dict:
        file_config = copy.deepcopy(harness.stack_file_config(stack))
        return file_config | user_layer(file_config, ssh_private_key)

    return build


def canned_invoke(token: str, args: dict) -> dict:
    """The connectivity check's answer, without a host: what `local.run` returns when the check passes."""
    assert token == "command:local:run", token
    return {**args, "stdout": "pong from a canned host\npihalb-changed: no", "stderr": ""}


@pytest.fixture
def run_stack(stack_config):
    """Run the program on a stack's config (optionally altered first) under mocks, invokes canned."""

    def run(stack: str, alter=None, declared=None, invoke=canned_invoke, files=None) -> harness.Program:
        config = stack_config(stack)
        if alter:
            alter(config)
        return harness.run(stack, config, files, declared=declared, invoke=invoke)

    return run


# -- the lab, shared by every lab test module (one fresh deployment per session) ----------------------------
# In this order: the paper's profile (its experiments, then the ops verbs on it), the switch to the tuned
# profile under load and what it must survive, the change classes on it, and `destroy` last. Every other test
# runs before them: the cheap checks first.
LAB_MODULES = (
    "test_lab.py",
    "test_lab_ops.py",
    "test_lab_tuned.py",
    "test_lab_tls.py",
    "test_lab_changes.py",
    "test_lab_teardown.py",
)


def pytest_collection_modifyitems(config, items):
    unlisted = {i.path.name for i in items if i.get_closest_marker("lab") and i.path.name not in LAB_MODULES}
    if unlisted:
        raise pytest.UsageError(f"lab test modules missing from tests/conftest.py LAB_MODULES: {sorted(unlisted)}")
    items.sort(key=lambda item: LAB_MODULES.index(item.path.name) if item.path.name in LAB_MODULES else -1)


@pytest.fixture(scope="session")
def lab():
    """A fresh lab: hosts as a new Pi would be, without Docker (base images are kept between runs).

    PIHALB_REUSE_LAB=1 keeps a running lab instead (a developer's shortcut; the first-apply test then
    fails, as it should: those hosts are not fresh).
    """
    from lab.lab import Lab

    lab = Lab.from_stack()
    if not os.environ.get("PIHALB_REUSE_LAB"):
        lab.down()
    lab.up()
    yield lab
    if not os.environ.get("PIHALB_KEEP_LAB"):
        lab.down()


@pytest.fixture(scope="session")
def deployed(lab):
    """The dev stack applied to the fresh lab by the lab engine, serving."""
    from drills import stack

    applied = stack.apply(lab)
    stack.wait_serving(lab)
    return applied


@pytest.fixture(scope="session")
def master(lab) -> str:
    return lab.master.name


@pytest.fixture(scope="session")
def backup(lab) -> str:
    return lab.backup.name


@pytest.fixture
def files_copy(tmp_path):
    """A copy of `files/` for the program to render from (`files=`; the same path before and after a change:
    paths are inputs)."""
    import shutil

    from components import render

    files = tmp_path / "files"
    shutil.copytree(render.FILES, files)
    return files


@pytest.fixture
def run_or_refuse(stack_config):
    """Validate first, as the program does before declaring anything (fast, so a suite of mostly refused
    values stays quick); run the whole program under mocks for each accepted value. That a refusal
    happens before any resource is declared is pinned per class in test_settings.py. For the property
    tests (test_properties*.py)."""

    def run_or_refuse(stack: str, alter):
        config = stack_config(stack)
        alter(config)
        get = lambda key: config.get(f"{CONFIG_NAMESPACE}:{key}")  # noqa: E731
        prefix = f"{CONFIG_NAMESPACE}:"
        keys = {k.removeprefix(prefix): k in harness.SECRET_CONFIG_KEYS for k in config if k.startswith(prefix)}
        load(get, get, keys)
        return harness.run(stack, config, invoke=canned_invoke)

    return run_or_refuse


@pytest.fixture(params=STACKS)
def stack(request):
    """Each shipped stack file in turn (a module may parametrize `stack` itself instead)."""
    return request.param


@pytest.fixture
def program(run_stack, stack):
    """The program as declared for `stack`, under mocks."""
    return run_stack(stack)


@pytest.fixture
def settings(stack_config):
    """The dev stack's settings as `python -m ops` reads them (secrets held as secrets)."""
    from ops import config as ops_config

    return ops_config.settings_from(ops_config.held_as_secrets(stack_config("dev")))[0]


_MODULE_SECONDS: dict[str, float] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Wall time per test module, setup and teardown included (a module's deployment counts for it)."""
    started = time.monotonic()
    yield
    module = item.nodeid.split("::")[0]
    _MODULE_SECONDS[module] = _MODULE_SECONDS.get(module, 0.0) + time.monotonic() - started


def pytest_terminal_summary(terminalreporter):
    if not _MODULE_SECONDS:
        return
    terminalreporter.section("time per module")
    for module, seconds in sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {module}")
    terminalreporter.write_line(f"{sum(_MODULE_SECONDS.values()):8.1f} s  in all")
