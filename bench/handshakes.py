"""What a TLS handshake costs a balancer, by key type: ECDSA P-256 (the lab's and Let's Encrypt's default)
and RSA 2048, full and resumed.

`bench/handshakes [--stack dev-tuned] [--rate 100] [--seconds 20]`: on the MASTER, a second HAProxy from
the very image the stack built (host network, its own ports, removed at the end) serves a fixed 200 on
three binds: plain HTTP, TLS with an ECDSA P-256 certificate, TLS with an RSA 2048 one, each with the
site's TLS settings (Mozilla's intermediate profile, as haproxy.cfg has them). Throwaway self-signed
certificates, made on the host by openssl (their keys never leave it). This machine sends `rate`
requests/s for `seconds` to each, each a new connection, a full handshake each or each resuming the last
session, and reads that HAProxy's CPU time from /proc. Handshakes per CPU-second = 1 / (CPU per TLS request
- CPU per plain request). Writes docs/bench/handshakes-<stack>.json.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.connections import one_after_another  # noqa: E402
from bench.runs import OUT, cpu_seconds, deployed  # noqa: E402
from components import names  # noqa: E402
from components.tls import MOZILLA_INTERMEDIATE  # noqa: E402
from lab.lab import Lab  # noqa: E402

CONTAINER = "pihalb-bench-handshakes"
DIRECTORY = "/tmp/pihalb-bench-handshakes"
PORTS = {"plain": 18080, "ecdsa-p256": 18443, "rsa-2048": 18444}
KEYS = {"ecdsa-p256": "-newkey ec -pkeyopt ec_paramgen_curve:P-256", "rsa-2048": "-newkey rsa:2048"}
SERVER_NAME = "handshakes.bench.invalid"


def config() -> str:
    """Three frontends answering 200 themselves, TLS with the site's settings (Mozilla's intermediate)."""
    profile = MOZILLA_INTERMEDIATE
    lines = ["global", "    maxconn 2000"]
    lines += [f"    ssl-default-bind-{key} {profile[key]}" for key in ("curves", "ciphers", "ciphersuites", "options")]
    lines += ["defaults", "    mode http", "    timeout connect 1s", "    timeout client 5s", "    timeout server 5s"]
    for kind, port in PORTS.items():
        tls = "" if kind == "plain" else f" ssl crt {DIRECTORY}/{kind}.pem alpn http/1.1"
        lines += [
            f"frontend {kind}",
            f"    bind :{port}{tls}",
            "    http-request return status 200 content-type text/plain string ok",
        ]
    return "\n".join(lines) + "\n"


def start(lab: Lab, host: str) -> int:
    """The bench HAProxy running on `host`; its pid there."""
    image = lab.read(host, f"docker inspect -f '{{{{.Image}}}}' {names.HAPROXY_CONTAINER}")[1].strip()
    certificates = " && ".join(
        f"openssl req -x509 -nodes {KEYS[kind]} -days 1 -subj /CN={SERVER_NAME} -keyout {DIRECTORY}/{kind}.key"
        f" -out {DIRECTORY}/{kind}.crt 2>/dev/null && cat {DIRECTORY}/{kind}.crt {DIRECTORY}/{kind}.key"
        f" > {DIRECTORY}/{kind}.pem && rm {DIRECTORY}/{kind}.key"
        for kind in KEYS
    )
    lab.shell.stream_in(host, ["sh", "-c", f"umask 077 && mkdir -p {DIRECTORY} && cat > {DIRECTORY}/haproxy.cfg"],
                        [config().encode()])  # fmt: skip
    lab.sh(
        host, f"umask 077 && {certificates} && chgrp -R {names.HAPROXY_GID} {DIRECTORY} && chmod -R g+rX {DIRECTORY}"
    )
    lab.sh(
        host,
        f"docker run -d --name {CONTAINER} --network host -v {DIRECTORY}:{DIRECTORY}:ro --entrypoint haproxy "
        f"{image} -db -f {DIRECTORY}/haproxy.cfg",
    )
    time.sleep(1)
    return int(lab.read(host, f"docker inspect -f '{{{{.State.Pid}}}}' {CONTAINER}")[1].strip())


def stop(lab: Lab, host: str) -> None:
    lab.sh(host, f"docker rm -f {CONTAINER} >/dev/null 2>&1; rm -rf {DIRECTORY}", check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/handshakes", description=__doc__)
    parser.add_argument("--stack", default="dev-tuned")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    lab = deployed(args.stack)
    host = lab.master
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the cost is measured, not the trust
    runs = [("plain", None, False)] + [(kind, context, resume) for kind in KEYS for resume in (False, True)]
    result: dict = {"stack": args.stack, "balancer": host.name, "rate_per_s": args.rate, "seconds": args.seconds}
    try:
        pid = start(lab, host.name)
        for kind, tls, resume in runs:
            before = sum(cpu_seconds(lab, host.name, str(pid)))
            measured = one_after_another(
                str(host.address), PORTS[kind], args.rate, args.seconds, SERVER_NAME, tls, resume
            )
            measured["cpu_s_per_10k"] = round(
                (sum(cpu_seconds(lab, host.name, str(pid))) - before) * 10_000 / measured["requests"], 3
            )
            result[f"{kind}{'-resumed' if resume else ''}"] = measured
    finally:
        stop(lab, host.name)
    plain = result["plain"]["cpu_s_per_10k"] / 10_000
    for key, measured in list(result.items()):
        if isinstance(measured, dict) and key != "plain":
            per_handshake = measured["cpu_s_per_10k"] / 10_000 - plain
            measured["handshakes_per_cpu_second"] = round(1 / per_handshake) if per_handshake > 0 else None
    result["command"] = f"bench/handshakes --stack {args.stack} --rate {args.rate} --seconds {args.seconds:g}"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"handshakes-{args.stack}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
