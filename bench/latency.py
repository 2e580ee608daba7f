"""What the VIP costs a request, measured at a fixed rate rather than at saturation.

`bench/latency [--stack dev-tuned] [--rate 100] [--seconds 30]`: the same client sends RATE requests/s
(each on a new connection) for SECONDS, first straight to server1, then through the VIP; it reports the
latency percentiles of each and the difference (what HAProxy and the extra hop add). Meanwhile it reads
the CPU time of the MASTER's HAProxy processes (utime + stime from /proc, 10 ms ticks) and reports it
per 10,000 requests, beside the same reading over an idle window of the same length (health checks
alone). On two shared cores a saturation ratio (`wrk`, in bench/failover) measures the lab more than the
design; a fixed rate does not saturate anything. With `haproxy.tls` on in the stack (dev-tuned), the
same again over HTTPS through the VIP (trusting Pebble's root only, ECDSA P-256), each request a new
connection with a full handshake, then each resuming the previous one's session: the latency HTTPS adds
to HTTP, and the HAProxy CPU time it adds per request, whose inverse is how many such handshakes a core
of that balancer does per second. Writes docs/bench/latency-<stack>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.connections import one_after_another, percentiles  # noqa: E402
from bench.runs import OUT, cpu_seconds, deployed  # noqa: E402
from drills import https  # noqa: E402
from drills.https import Site  # noqa: E402
from drills.load import Load  # noqa: E402
from lab.lab import Lab  # noqa: E402
from ops.probe import Https  # noqa: E402


def haproxy_cpu_seconds(lab: Lab, host: str) -> tuple[float, float]:
    """User and system CPU seconds so far of every haproxy process on `host` (bench.runs.cpu_seconds)."""
    return cpu_seconds(lab, host, "$(pgrep -x haproxy)")


def spent(before: tuple[float, float], after: tuple[float, float], per_10k: float) -> dict[str, float]:
    user, system = (round((a - b) * per_10k, 3) for a, b in zip(after, before, strict=True))
    return {"user": user, "system": system, "total": round(user + system, 3)}


def measure(host: str, port: int, rate: int, seconds: float, https: Https | None = None) -> dict:
    recording = Load(host, rate, seconds, timeout=1.0, port=port, https=https).start().join()
    ok = [s.latency for s in recording.samples if s.ok]
    return {"requests": len(recording.samples), "failed": len(recording.samples) - len(ok), **percentiles(ok)}


def https_figures(lab: Lab, site: Site, rate: int, seconds: float, http: dict, http_cpu: dict) -> dict:
    """The same load over HTTPS through the VIP, each request with a full handshake, then each resuming
    the previous one's session: what they add to plain HTTP's latency and to HAProxy's CPU."""
    figures = {}
    for kind, run in (("full", lambda: measure(str(lab.vip.ip), site.port, rate, seconds, https=site.https)),
                      ("resumed", lambda: one_after_another(str(lab.vip.ip), site.port, rate, seconds, site.names[0],
                                                             site.context, resume=True))):  # fmt: skip
        before = haproxy_cpu_seconds(lab, lab.master.name)
        via_vip = run()
        cpu = spent(before, haproxy_cpu_seconds(lab, lab.master.name), 10_000 / via_vip["requests"])
        per_handshake_s = (cpu["total"] - http_cpu["total"]) / 10_000
        figures[f"via_vip_https_{kind}"] = via_vip
        figures[f"added_by_https_{kind}_ms"] = {k: round(via_vip[k] - http[k], 3) for k in ("p50_ms", "p99_ms")}
        figures[f"haproxy_cpu_s_per_10k_https_{kind}"] = cpu
        figures[f"{kind}_handshakes_per_cpu_second"] = round(1 / per_handshake_s) if per_handshake_s > 0 else None
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/latency", description=__doc__)
    parser.add_argument("--stack", default="dev-tuned")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    lab = deployed(args.stack)
    master = lab.master.name
    direct = measure(str(lab.servers[0].address), lab.server_port, args.rate, args.seconds)
    idle_before = haproxy_cpu_seconds(lab, master)
    time.sleep(args.seconds)
    idle_after = haproxy_cpu_seconds(lab, master)
    busy_before = haproxy_cpu_seconds(lab, master)
    via_vip = measure(str(lab.vip.ip), lab.frontend_port, args.rate, args.seconds)
    busy_after = haproxy_cpu_seconds(lab, master)
    per_10k = 10_000 / via_vip["requests"]
    result = {
        "stack": args.stack,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "direct": direct,
        "via_vip": via_vip,
        "added_by_vip_ms": {k: round(via_vip[k] - direct[k], 3) for k in ("p50_ms", "p99_ms")},
        "haproxy_cpu_s_per_10k_requests": spent(busy_before, busy_after, per_10k),
        "haproxy_cpu_s_idle_same_window_per_10k": spent(idle_before, idle_after, per_10k),
        "command": f"bench/latency --stack {args.stack} --rate {args.rate} --seconds {args.seconds:g}",
    }
    site = https.site(lab, args.stack)
    if site:
        result |= https_figures(lab, site, args.rate, args.seconds, via_vip, result["haproxy_cpu_s_per_10k_requests"])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"latency-{args.stack}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
