"""What the program ships, checked by the real tools: haproxy, keepalived, nginx, bash, shellcheck.

The tools come from Debian packages (`.ci/run` installs them); a missing tool fails the test.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components import names, render, tls

from .artifact_tools import embedded_file, keepalived_dump, run, script_of, stats_login, sudoers_line, tool

pytestmark = pytest.mark.artifact

VARIANTS = {
    "paper": lambda config: None,
    "unicast-v3-fast": lambda config: config["pihalb:cluster"]["vrrp"].update(
        mode="unicast", version=3, advertInterval=0.5, preempt=True
    ),
    "nopreempt": lambda config: config["pihalb:cluster"]["vrrp"].update(preempt=False),
    "events-tracking": lambda config: config["pihalb:cluster"]["vrrp"]["track"].update(kind="events"),
    "events-fault": lambda config: config["pihalb:cluster"]["vrrp"]["track"].update(kind="events", weight=0),
    "tuned-haproxy": lambda config: config["pihalb:cluster"]["haproxy"].update(
        retries=3, redispatch=True, retryOn="conn-failure empty-response response-timeout", balance="leastconn"
    ),
    "https-acme": lambda config: _with_acme(config),
}


def _site_pem(directory: Path) -> Path:
    from .test_tls import ec_key, issue, pem_cert, pem_key

    key = ec_key()
    path = directory / "site.pem"
    path.write_text(pem_cert(issue(key, ["www.example.org"])) + pem_key(key))
    return path


def _with_acme(config: dict) -> None:
    """HTTPS with an ACME certificate (issue 19): the TLS host steps and their scripts are declared."""
    from .test_tls import ec_key, pem_key, rsa_key

    config["pihalb:cluster"]["haproxy"]["tls"] = {
        "names": ["www.example.org"],
        "certificate": {"kind": "acme", "directoryUrl": "https://acme.example/dir"},
    }
    config |= {"pihalb:tlsPrivateKey": pem_key(ec_key()), "pihalb:acmeAccountKey": pem_key(rsa_key())}


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, run_stack):
    return run_stack("dev", VARIANTS[request.param])


@pytest.fixture
def dev(run_stack):
    return run_stack("dev")


def test_haproxy_cfg_passes_haproxy_check(variant, tmp_path):
    for name in ("lb1", "lb2"):
        cfg = tmp_path / f"{name}.cfg"
        text = embedded_file(variant.named(f"{name}-haproxy-config"))
        if tls.HAPROXY_CERT_FILE in text:  # the PEM the TLS step puts on the host (https variants)
            text = text.replace(tls.HAPROXY_CERT_FILE, str(_site_pem(tmp_path)))
        cfg.write_text(text)
        done = run([tool("haproxy"), "-c", "-f", str(cfg)])
        assert "Configuration file is valid" in done.stdout + done.stderr


def test_haproxy_check_reads_the_config_from_stdin_as_the_host_script_does(dev):
    cfg = embedded_file(dev.named("lb1-haproxy-config"))
    run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=cfg)
    broken = cfg.replace("balance roundrobin", "balance nonsense")
    refused = subprocess.run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=broken, capture_output=True, text=True)
    assert refused.returncode != 0


def test_keepalived_conf_passes_keepalived_config_test(variant, tmp_path):
    tool("killall")
    for name in ("lb1", "lb2"):
        conf = tmp_path / f"{name}.conf"
        conf.write_text(embedded_file(variant.named(f"vrrp-{name}-keepalived")))
        run([tool("keepalived"), "--config-test", "-f", str(conf)])


def test_keepalived_refuses_the_paper_config_without_script_security(dev, tmp_path):
    """The check is real: the paper's config as printed fails it, ours passes (previous test)."""
    conf = embedded_file(dev.named("vrrp-lb1-keepalived"))
    conf = conf.replace("    enable_script_security\n", "").replace("    script_user root\n", "")
    path = tmp_path / "paper.conf"
    path.write_text(conf)
    done = subprocess.run([tool("keepalived"), "--config-test", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode != 0


def test_nginx_site_passes_nginx_t(tmp_path):
    main = tmp_path / "nginx.conf"
    (tmp_path / "logs").mkdir()
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n include {render.FILES / 'nginx' / 'default.conf'};\n}}\n"
    )
    site = (render.FILES / "nginx" / "default.conf").read_text()
    assert "access_log /var/log/nginx/access.log pihalb;" in site
    run([tool("nginx"), "-t", "-p", str(tmp_path), "-c", str(main)])


# Sourced in front of the other scripts by Renderer.script (its `libraries`), never run on their own.
SCRIPT_LIBRARIES = {"lib.sh", "haproxy-runtime.sh"}


def _scripts(program):
    for command in program.of_type("command:remote:Command"):
        yield command.name, script_of(command)
        if "delete" in command.inputs:
            yield f"{command.name}-delete", script_of(command, "delete")
    for number, invoked in enumerate(program.invokes):  # the connectivity checks (local.run, script on stdin)
        yield f"check-{number}", invoked.args["stdin"]


def _script_file(script: str) -> str:
    """The files/scripts/ file a rendered script runs: Renderer.script names it on the second line."""
    match = re.match(r"#!/bin/bash\n# pi-ha-lb: (\S+)\n", script)
    assert match, f"not a script rendered by Renderer.script: {script[:80]!r}"
    return match.group(1)


def _script_files() -> list[Path]:
    return sorted((render.FILES / "scripts").glob("*.sh"))


def test_host_scripts_pass_bash_n_and_shellcheck(variant, tmp_path):
    for name, script in _scripts(variant):
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        run([tool("bash"), "-n", str(path)])
        run([tool("shellcheck"), "--shell=bash", "--severity=style", str(path)])


def test_every_script_file_is_run_by_a_declared_command(run_stack):
    """So the test above reaches every shipped script (the libraries within the others), and none is dead:
    a file no command runs, a command that runs a library alone, or one whose script is not rendered from
    files/scripts/ fails here."""
    used = {_script_file(script) for alter in VARIANTS.values() for _, script in _scripts(run_stack("dev", alter))}
    shipped = {path.name for path in _script_files()}
    assert shipped >= SCRIPT_LIBRARIES
    assert used == shipped - SCRIPT_LIBRARIES


def test_every_script_file_starts_with_set_eu():
    """Each script stops at its first failing command or unset variable. Checked in the files themselves:
    lib.sh, which sets -eu too, is put in front of every rendered script and would hide a file without it."""
    checked = []
    for path in _script_files():
        if path.name in SCRIPT_LIBRARIES:
            continue
        code = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert code[:1] == ["set -eu"], f"{path.name}: its first command is {code[:1]}, not set -eu"
        checked.append(path.name)
    assert len(checked) >= 16, checked


def test_dockerfiles_name_their_base_as_a_build_arg():
    for kind in ("nginx", "haproxy"):
        dockerfile = (render.FILES / kind / "Dockerfile").read_text()
        assert "ARG BASE_IMAGE=" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile
    assert "USER haproxy" in (render.FILES / "haproxy" / "Dockerfile").read_text()


# ---- accepted values reach the daemons as written ------------------------------------------


def _stats_password(value):
    def alter(config):
        config["pihalb:statsPassword"] = value

    return alter


def test_stats_password_with_comment_and_quote_characters_reaches_haproxy_unchanged(run_stack, tmp_path):
    password = "abc#def\"'$x\\y:z"
    program = run_stack("dev", _stats_password(password))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=cfg)
    assert stats_login(cfg, [password, "abc", password + "x"], tmp_path) == [200, 401, 401]


def test_vrrp_password_with_comment_and_block_characters_reaches_keepalived_unchanged(run_stack, tmp_path):
    program = run_stack("dev", lambda config: config.update({"pihalb:vrrpPassword": "a#b!c}'$"}))
    conf = embedded_file(program.named("vrrp-lb1-keepalived"))
    path = tmp_path / "k.conf"
    path.write_text(conf)
    run([tool("keepalived"), "--config-test", "-f", str(path)])
    dump = keepalived_dump(conf, "eth0", "172.30.42.21", tmp_path)
    assert dump["Password"] == "a#b!c}'$"
    assert dump["Priority"] == "101" and dump["Interface"] == "eth0"


@pytest.mark.parametrize("date", ["2026-12-07 10:57:05", "2026-12-17 10:57:05", "2027-01-01 00:00:00"])
def test_keepalived_dump_is_read_whatever_the_day_of_the_month(dev, tmp_path, date):
    """keepalived pads a one-digit day ("Mon Dec  7"): the suite was red on the 1st-9th of every month."""
    conf = embedded_file(dev.named("vrrp-lb1-keepalived"))
    dump = keepalived_dump(conf, "eth0", "172.30.42.21", tmp_path, faked_date=date)
    assert dump["Priority"] == "101" and dump["Interface"] == "eth0"


def test_health_check_path_with_quote_and_dollar_passes_haproxy(run_stack, tmp_path):
    program = run_stack("dev", lambda c: c["pihalb:cluster"]["haproxy"]["healthCheck"].update(path="/?it's=$ok&a=1"))
    cfg = embedded_file(program.named("lb1-haproxy-config"))
    assert 'option httpchk GET "/?it\'s=\\$ok&a=1"' in cfg
    run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=cfg)


def test_daemon_limits_are_the_settings_limits(run_stack):
    """The largest timer, every retry-on keyword: accepted by the settings and by haproxy itself."""
    from components.fields import HAPROXY_MAX_TIMER_MS, RETRY_ON_KEYWORDS

    def alter(config):
        config["pihalb:cluster"]["haproxy"].update(
            retries=3,
            retryOn=" ".join(k for k in RETRY_ON_KEYWORDS if k != "none"),
            timeouts={"connectMs": HAPROXY_MAX_TIMER_MS, "clientMs": HAPROXY_MAX_TIMER_MS, "serverMs": 1},
        )

    cfg = embedded_file(run_stack("dev", alter).named("lb1-haproxy-config"))
    run([tool("haproxy"), "-c", "-f", "/dev/stdin"], input=cfg)
    refused = subprocess.run(
        [tool("haproxy"), "-c", "-f", "/dev/stdin"],
        input=cfg.replace(str(HAPROXY_MAX_TIMER_MS), str(HAPROXY_MAX_TIMER_MS + 1)),
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "timer overflow" in refused.stderr


def test_sudoers_drop_in_passes_visudo(run_stack, tmp_path):
    program = run_stack("dev", lambda c: c["pihalb:cluster"]["ssh"].update(user="_deploy-1"))
    line = sudoers_line(program, "lb1")
    assert line == "_deploy-1 ALL=(ALL:ALL) NOPASSWD:ALL\n"
    path = tmp_path / "pihalb"
    path.write_text(line)
    run([tool("visudo"), "-c", "-f", str(path)])


def test_prepare_host_refuses_a_bad_login_user_itself():
    script = render.Renderer(render.FILES).prepare_host_script(_dev_cluster(), "pi\nALL")
    script = script.split("\nsudoers_line=", 1)[0]
    done = subprocess.run([tool("bash"), "-c", script], capture_output=True, text=True)
    assert done.returncode == 1 and "refusing login user" in done.stderr


def _dev_cluster():
    from components.settings import parse_cluster
    from harness.program import stack_file_config

    return parse_cluster(stack_file_config("dev")["pihalb:cluster"])


def test_every_dockerfile_stage_is_labelled_first_so_its_build_leftovers_are_found():
    """pulumi-docker's classic build keeps a stopped container per step; the prune steps find ours by
    names.IMAGE_LABEL, which a step's container carries only if the label comes before that step."""
    for kind in ("haproxy", "nginx"):
        lines = [line.strip() for line in (render.FILES / kind / "Dockerfile").read_text().splitlines()]
        code = [line for line in lines if line and not line.startswith("#")]
        stages = [i for i, line in enumerate(code) if line.startswith("FROM ")]
        assert stages, kind
        for i in stages:
            assert code[i + 1] == f"LABEL {names.IMAGE_LABEL}={kind}", f"{kind}: {code[i]} is not labelled first"
    haproxy = (render.FILES / "haproxy" / "Dockerfile").read_text()
    assert f"LABEL {names.BUILD_OF_LABEL}=${{{names.BUILD_OF_ARG}}}" in haproxy
