"""Issue 19: what `haproxy.tls` adds to each balancer in the program (components/tls_host.py): the keys'
step, the renewal timer (acme), the published TLS port, haproxy.cfg checked with the PEM in place; the
keys only in secret, unlogged scripts on stdin."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest

from components import names, tls, tls_host
from components.remote import RUN_SCRIPT_FROM_STDIN

from .artifact_tools import script_of, tool
from .conftest import without_tls
from .test_tls import chain as chain  # noqa: F401 (the fixture)
from .test_tls import ec_key, pem_key, rsa_key

COMMAND = "command:remote:Command"
NAMES = ["www.example.org", "example.org"]
ACME = {
    "kind": "acme",
    "directoryUrl": "https://172.30.42.1:14000/dir",
    "rootsUrl": "https://172.30.42.1:15000/roots/0",
}


def with_tls(certificate: dict, secrets: dict, port: int = 443):
    def alter(config: dict) -> None:
        haproxy = config["pihalb:cluster"]["haproxy"]
        haproxy["tls"] = {"port": port, "names": NAMES, "certificate": certificate}
        config.update({f"pihalb:{k}": v for k, v in secrets.items()})

    return alter


@pytest.fixture(scope="module")
def keys():
    return {"tlsPrivateKey": pem_key(ec_key()), "acmeAccountKey": pem_key(rsa_key())}


@pytest.fixture
def acme_program(run_stack, keys):
    return run_stack("dev", with_tls(ACME, keys, port=8443))


def balancers(program) -> list[str]:
    return [r.name.removesuffix("-haproxy") for r in program.of_type("pihalb:index:HaproxyBalancer")]


def test_acme_declares_the_keys_step_and_the_renewal_on_each_balancer(acme_program):
    program = acme_program
    for lb in balancers(program):
        balancer = program.named(f"{lb}-haproxy")
        keys_step, renewal = program.named(f"{lb}-haproxy-tls"), program.named(f"{lb}-haproxy-tls-renewal")
        config, container = program.named(f"{lb}-haproxy-config"), program.named(f"{lb}-haproxy-container")
        for step in (keys_step, renewal):
            assert step.parent == balancer.urn and step.inputs["addPreviousOutputInEnv"] is False
            assert step.inputs["create"] == RUN_SCRIPT_FROM_STDIN and "triggers" not in step.inputs
        assert program.depends_on(config, keys_step) and program.depends_on(renewal, keys_step)
        ports = {(p["internal"], p["external"]) for p in container.inputs["ports"]}
        assert (tls.HAPROXY_TLS_CONTAINER_PORT, 8443) in ports
        # haproxy.cfg is checked with the config directory (and so the PEM) mounted as HAProxy mounts it.
        mount = f"-v {names.HAPROXY_CONFIG_DIR}:{names.HAPROXY_CONTAINER_CONFIG_DIR}:ro"
        assert mount in script_of(config)
        assert (
            names.HAPROXY_CONFIG_DIR + tls.HAPROXY_CERT_FILE.removeprefix(names.HAPROXY_CONTAINER_CONFIG_DIR)
            == names.HAPROXY_PEM_FILE
        )
        # The delete scripts remove what the steps installed.
        deleted = script_of(keys_step, "delete")
        for path in (tls_host.TLS_DIR, names.HAPROXY_PEM_DIR, tls_host.KEEPER, tls_host.LIB_DIR):
            assert shlex.quote(path) in deleted
        assert "disable --now" in script_of(renewal, "delete")


def test_the_keeper_settings_name_the_peer_the_vip_and_the_acme_server(acme_program):
    lb1, lb2 = balancers(acme_program)
    installs = [r for r in acme_program.of_type(COMMAND) if r.name.endswith("-install")]
    addresses = {r.name.removesuffix("-install"): r.inputs["connection"]["host"] for r in installs}
    for lb, peer in ((lb1, lb2), (lb2, lb1)):
        script = script_of(acme_program.named(f"{lb}-haproxy-tls"))
        env = _b64_var(script, "ENV_B64")
        assert f"PEER={addresses[peer]}\n" in env and "TLS_PORT=8443\n" in env
        assert "ACME_DIRECTORY_URL=https://172.30.42.1:14000/dir\n" in env
        assert "ROOTS_URL=https://172.30.42.1:15000/roots/0\n" in env
        assert "NAMES='www.example.org example.org'\n" in env
        assert "PRIVATE KEY" not in env


def test_the_keys_are_only_in_secret_unlogged_stdin(acme_program, keys):
    key_texts = [k.strip().splitlines()[1] for k in keys.values()]  # a line of each key's base64
    for resource in acme_program.resources:
        text = json.dumps(resource.inputs)
        holding = [k for k in key_texts if k in text]
        if not holding:
            continue
        assert resource.name.endswith("-haproxy-tls"), resource.name
        assert "stdin" in resource.secret_paths and resource.inputs["logging"] == "none"
        for field in ("create", "delete"):
            assert not any(k in resource.inputs.get(field, "") for k in key_texts)
    for lb in balancers(acme_program):
        script = script_of(acme_program.named(f"{lb}-haproxy-tls"))
        for key in keys.values():
            assert key.strip() in script  # the script writes them through root's stdin


def test_provided_installs_the_chain_and_has_no_renewal(run_stack, chain):  # noqa: F811
    key, pem = chain
    program = run_stack("dev", with_tls({"kind": "provided"}, {"tlsPrivateKey": pem_key(key), "tlsCertificate": pem}))
    for lb in balancers(program):
        script = script_of(program.named(f"{lb}-haproxy-tls"))
        assert "CHAIN_PEM=" in script and pem.strip().splitlines()[1] in script
        assert "ACCOUNT_KEY_PEM=''" in script and "dehydrated" not in _var(script, "PACKAGES")
        with pytest.raises(KeyError):
            program.named(f"{lb}-haproxy-tls-renewal")
        ports = {(p["internal"], p["external"]) for p in program.named(f"{lb}-haproxy-container").inputs["ports"]}
        assert (tls.HAPROXY_TLS_CONTAINER_PORT, 443) in ports


def test_the_tls_scripts_pass_bash_n_and_shellcheck(acme_program, tmp_path):
    for lb in balancers(acme_program)[:1]:
        for name in ("tls", "tls-renewal", "config"):
            step = acme_program.named(f"{lb}-haproxy-{name}")
            for kind in ("create", "delete"):
                path = tmp_path / f"{name}-{kind}.sh"
                path.write_text(script_of(step, kind))
                subprocess.run([tool("bash"), "-n", str(path)], check=True)
                done = subprocess.run(
                    [tool("shellcheck"), "--shell=bash", "--severity=style", str(path)], capture_output=True, text=True
                )
                assert done.returncode == 0, done.stdout


def _var(script: str, name: str) -> str:
    line = next(line for line in script.splitlines() if line.startswith(f"{name}="))
    return shlex.split(line.split("=", 1)[1])[0] if line.split("=", 1)[1] else ""


def _b64_var(script: str, name: str) -> str:
    import base64

    return base64.b64decode(_var(script, name)).decode()


@pytest.mark.parametrize("stack", ["dev", "dev-tuned", "pi", "pi-tuned"])
def test_without_tls_a_stack_declares_no_tls_step_port_or_file(run_stack, stack):
    """Without `haproxy.tls` (off in every shipped stack but dev-tuned, the lab's HTTPS, taken out here): no TLS
    step, no TLS port published, no certificate in any script."""
    program = run_stack(stack, without_tls)
    assert not [r.name for r in program.resources if "-tls" in r.name]
    for lb in balancers(program):
        container = program.named(f"{lb}-haproxy-container")
        assert tls.HAPROXY_TLS_CONTAINER_PORT not in {p["internal"] for p in container.inputs["ports"]}
    scripts = json.dumps([r.inputs for r in program.resources], default=str)
    assert "ssl crt" not in scripts and "acme" not in scripts.lower()
