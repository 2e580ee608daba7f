"""Issue 19: haproxy.cfg with TLS, through the real haproxy (`-c`, and serving on loopback to curl), and
the paper's stacks rendering exactly as before while `haproxy.tls` is not set."""

from __future__ import annotations

import http.server
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from components import names, render, tls, tls_secrets

from .artifact_tools import embedded_file, free_port, run, tool
from .conftest import STATS_PASSWORD, without_tls
from .test_tls import ec_key, issue, pem_cert, pem_key

pytestmark = pytest.mark.artifact

NAMES = ["www.example.org", "example.org"]


def strip_tls_blocks(template: str) -> str:
    """The template without its `{%- if tls %}` blocks (nested ifs inside them included)."""
    out, depth, pos = [], 0, 0
    for tag in re.finditer(r"\{%-? *(if tls *|if [^%]*|endif) *-?%\}", template):
        words = tag.group(1).split()
        if depth == 0 and words == ["if", "tls"]:
            before = template[pos : tag.start()]
            out.append(before.rstrip() if tag.group(0).startswith("{%-") else before)  # as Jinja's "-" does
            depth = 1
        elif depth and words[0] == "if":
            depth += 1
        elif depth and words[0] == "endif":
            depth -= 1
            if depth == 0:
                pos = tag.end()
    return "".join(out) + template[pos:]


@pytest.mark.parametrize("stack", ["dev", "dev-tuned", "pi", "pi-tuned"])
def test_without_haproxy_tls_the_stacks_render_as_before(run_stack, stack, tmp_path):
    """What the program ships is, byte for byte, what the template renders without any of its TLS lines
    (and, when they came in, what main rendered for these four stacks: compared, identical); dev-tuned, which
    has TLS on for the lab, with its `haproxy.tls` block taken out."""
    from components.settings import parse_cluster
    from harness import program as harness_program

    template = (render.FILES / "templates" / "haproxy.cfg.j2").read_text()
    stripped = strip_tls_blocks(template)
    assert "if tls" in template and "tls" not in stripped
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "haproxy.cfg.j2").write_text(stripped)
    program = run_stack(stack, without_tls)
    file_config = harness_program.stack_file_config(stack)
    without_tls(file_config)
    cluster = parse_cluster(file_config["pihalb:cluster"])
    servers = [h for h in cluster.hosts if h.role == "server"]
    for balancer in (h for h in cluster.hosts if h.role == "balancer"):
        shipped = embedded_file(program.named(f"{balancer.name}-haproxy-config"))
        before = render.Renderer(tmp_path).haproxy_cfg(cluster, balancer, servers, STATS_PASSWORD)
        assert shipped == before
        assert "ssl" not in shipped and "X-Forwarded-Proto" not in shipped


# ---- TLS on ---------------------------------------------------------------------------------------------

THUMBPRINT = tls_secrets.jwk_thumbprint(ec_key().public_key())
VARIANTS = {
    "provided, 443": ({"certificate": {"kind": "provided"}}, ""),
    "provided, redirect, hsts": (
        {"certificate": {"kind": "provided"}, "redirectHttp": True, "hsts": 31536000},
        "",
    ),
    "acme, 8443, redirect, hsts": (
        {
            "port": 8443,
            "redirectHttp": True,
            "hsts": 63072000,
            "certificate": {"kind": "acme", "directoryUrl": "https://acme.example/dir"},
        },
        THUMBPRINT,
    ),
}


def rendered(variant: str) -> str:
    from components.settings import parse_cluster
    from harness import program as harness_program

    raw = harness_program.stack_file_config("dev")["pihalb:cluster"]
    values, thumbprint = VARIANTS[variant]
    raw = raw | {"haproxy": raw["haproxy"] | {"tls": {"names": NAMES} | values}}
    cluster = parse_cluster(raw)
    servers = [h for h in cluster.hosts if h.role == "server"]
    balancer = next(h for h in cluster.hosts if h.role == "balancer")
    return render.Renderer(render.FILES).haproxy_cfg(cluster, balancer, servers, "stats-Pa55word-xyz", thumbprint)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A CA, and the PEM HAProxy serves for NAMES (chain then key): (CA file, site PEM file)."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key, key = ec_key(), ec_key()
    ca = issue(ca_key, [], ca=True)
    leaf = issue(key, NAMES, issuer_key=ca_key, issuer_name="test CA")
    (directory / "ca.pem").write_text(pem_cert(ca))
    (directory / "site.pem").write_text(pem_cert(leaf) + pem_cert(ca) + pem_key(key))
    return directory / "ca.pem", directory / "site.pem"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tls_configs_pass_haproxy_check(variant, site, tmp_path):
    cfg = rendered(variant)
    assert f"ssl crt {tls.HAPROXY_CERT_FILE} alpn h2,http/1.1" in cfg
    assert "ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets" in cfg
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg.replace(tls.HAPROXY_CERT_FILE, str(site[1])))
    done = run([tool("haproxy"), "-c", "-f", str(path)])
    assert "Configuration file is valid" in done.stdout + done.stderr
    assert (THUMBPRINT in cfg) == variant.startswith("acme")


class _Echo(http.server.BaseHTTPRequestHandler):
    """A server: 200 with the request's X-Forwarded-Proto headers in the body."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = ("xfp=" + ",".join(self.headers.get_all("X-Forwarded-Proto") or []) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def serving(site, tmp_path):
    """The rendered config of a variant run by the real haproxy on loopback, in front of one echo server:
    a function giving (http port, https port)."""
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    procs = []

    def start(variant: str) -> tuple[int, int]:
        cfg = rendered(variant)
        plain, secure = free_port(), free_port()
        cfg = cfg.replace(f"bind *:{names.HAPROXY_FRONTEND_CONTAINER_PORT}\n", f"bind 127.0.0.1:{plain}\n")
        cfg = cfg.replace(f"bind *:{tls.HAPROXY_TLS_CONTAINER_PORT} ssl crt {tls.HAPROXY_CERT_FILE}",
                          f"bind 127.0.0.1:{secure} ssl crt {site[1]}")  # fmt: skip
        cfg = cfg.replace(f"bind *:{names.HAPROXY_STATS_CONTAINER_PORT}", f"bind 127.0.0.1:{free_port()}")
        cfg = cfg.replace(f"127.0.0.1:{names.HAPROXY_RUNTIME_PORT}", f"127.0.0.1:{free_port()}")
        cfg = re.sub(r"(server \S+) \S+ check", rf"\1 127.0.0.1:{backend.server_address[1]} check", cfg)
        path = tmp_path / f"{len(procs)}.cfg"
        path.write_text(cfg)
        procs.append(subprocess.Popen([tool("haproxy"), "-db", "-f", str(path)], stdout=subprocess.DEVNULL))
        for _ in range(100):
            if curl(plain, "http", "/.well-known/none", check=False).returncode == 0:
                break
            assert procs[-1].poll() is None, "haproxy exited"
            time.sleep(0.05)
        return plain, secure

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(5)
    backend.shutdown()


def curl(port: int, scheme: str, path: str, *args: str, check: bool = True, ca: Path | None = None):
    """curl to www.example.org:<port> on loopback: `-sS -i`, the CA trusted, nothing else."""
    cmd = [tool("curl"), "-sS", "-i", "--max-time", "5", "--resolve", f"www.example.org:{port}:127.0.0.1"]
    cmd += ["--cacert", str(ca)] if ca else []
    done = subprocess.run([*cmd, *args, f"{scheme}://www.example.org:{port}{path}"], capture_output=True, text=True)
    assert not check or done.returncode == 0, done.stderr
    return done


def test_https_serves_http2_with_the_scheme_and_hsts_and_plain_http_is_redirected(serving, site):
    plain, secure = serving("acme, 8443, redirect, hsts")
    ca = site[0]
    served = curl(secure, "https", "/", "--http2", "-H", "X-Forwarded-Proto: http", ca=ca).stdout
    assert served.startswith("HTTP/2 200"), served
    assert "xfp=https\n" in served  # the client's own header replaced
    assert "strict-transport-security: max-age=63072000" in served.lower()
    redirected = curl(plain, "http", "/a/b?c=d&e").stdout
    assert redirected.startswith("HTTP/1.1 301"), redirected
    assert "location: https://www.example.org:8443/a/b?c=d&e\n" in redirected.lower()
    assert "strict-transport-security" not in redirected.lower()  # never over plain HTTP (RFC 6797 §7.2)
    # HTTP/1.1 over TLS too (ALPN offers both), and nothing below TLS 1.2.
    assert curl(secure, "https", "/", "--http1.1", ca=ca).stdout.startswith("HTTP/1.1 200")
    old = curl(secure, "https", "/", "--tlsv1.1", "--tls-max", "1.1", ca=ca, check=False)
    assert old.returncode != 0


def test_acme_challenges_are_answered_statelessly_before_the_redirect(serving):
    plain, _ = serving("acme, 8443, redirect, hsts")
    token = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
    answered = curl(plain, "http", f"/.well-known/acme-challenge/{token}").stdout
    assert answered.startswith("HTTP/1.1 200"), answered
    assert answered.endswith(f"\n\n{token}.{THUMBPRINT}")  # (curl's CRLF read as text)
    for odd in ("/.well-known/acme-challenge/", "/.well-known/acme-challenge/a/b", "/.well-known/acme-challengeX"):
        assert curl(plain, "http", odd).stdout.startswith("HTTP/1.1 301"), odd


def test_with_provided_certificate_plain_http_still_serves_and_says_so(serving, site):
    plain, secure = serving("provided, 443")
    served = curl(plain, "http", "/", "-H", "X-Forwarded-Proto: https").stdout
    assert served.startswith("HTTP/1.1 200") and "xfp=http\n" in served
    secure_served = curl(secure, "https", "/", "--http2", ca=site[0]).stdout
    assert secure_served.startswith("HTTP/2 200") and "strict-transport-security" not in secure_served.lower()
    assert "acme-challenge" not in rendered("provided, 443")


def test_the_redirect_to_port_443_drops_the_port_of_the_plain_request(serving):
    plain, _ = serving("provided, redirect, hsts")
    redirected = curl(plain, "http", "/x?y", "-H", "Host: www.example.org:8080").stdout
    assert redirected.startswith("HTTP/1.1 301") and "location: https://www.example.org/x?y\n" in redirected.lower()
    assert "acme-challenge" not in rendered("provided, redirect, hsts")
