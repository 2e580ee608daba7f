"""What the program ships, checked by the real tools: haproxy, keepalived, nginx, bash, shellcheck.

The tools come from Debian packages (`.ci/run` installs them); a missing tool fails the test.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components import render

from .test_program import embedded_file, script_of

pytestmark = pytest.mark.artifact

VARIANTS = {
    "paper": lambda config: None,
    "unicast-v3-fast": lambda config: config["pihalb:cluster"]["vrrp"].update(
        mode="unicast", version=3, advertInterval=0.5, preempt=True
    ),
    "nopreempt": lambda config: config["pihalb:cluster"]["vrrp"].update(preempt=False),
    "events-tracking": lambda config: config["pihalb:cluster"]["vrrp"]["track"].update(kind="events"),
    "tuned-haproxy": lambda config: config["pihalb:cluster"]["haproxy"].update(
        retries=3, redispatch=True, retryOn="conn-failure empty-response response-timeout", balance="leastconn"
    ),
}


def tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install haproxy keepalived nginx-light shellcheck psmisc")
    return path


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)
    assert done.returncode == 0, f"{args[0]} refused it:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(params=sorted(VARIANTS))
def variant(request, run_stack):
    return run_stack("dev", VARIANTS[request.param])


@pytest.fixture
def dev(run_stack):
    return run_stack("dev")


def test_haproxy_cfg_passes_haproxy_check(variant, tmp_path):
    for name in ("lb1", "lb2"):
        cfg = tmp_path / f"{name}.cfg"
        cfg.write_text(embedded_file(variant.named(f"{name}-haproxy-config")))
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
        f"http {{\n include {render.files_dir() / 'nginx' / 'default.conf'};\n}}\n"
    )
    site = (render.files_dir() / "nginx" / "default.conf").read_text()
    assert "access_log /var/log/nginx/access.log pihalb;" in site
    run([tool("nginx"), "-t", "-p", str(tmp_path), "-c", str(main)])


def _scripts(program):
    for command in program.of_type("command:remote:Command"):
        yield command.name, script_of(command)
        if "delete" in command.inputs:
            yield f"{command.name}-delete", script_of(command, "delete")


def test_host_scripts_pass_bash_n_and_shellcheck(variant, tmp_path):
    checked = 0
    for name, script in _scripts(variant):
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        run([tool("bash"), "-n", str(path)])
        run([tool("shellcheck"), "--shell=bash", "--severity=style", str(path)])
        checked += 1
    commands = variant.of_type("command:remote:Command")
    assert checked == len(commands) + len([c for c in commands if "delete" in c.inputs]) >= 16


def test_dockerfiles_name_their_base_as_a_build_arg():
    for kind in ("nginx", "haproxy"):
        dockerfile = (render.files_dir() / kind / "Dockerfile").read_text()
        assert "ARG BASE_IMAGE=" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile
    assert "USER haproxy" in (render.files_dir() / "haproxy" / "Dockerfile").read_text()
