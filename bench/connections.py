"""Requests one after the other at a fixed rate, each on a new connection, plain or TLS (a full handshake
each, or each resuming the last session): what bench/latency and bench/handshakes time."""

from __future__ import annotations

import socket
import ssl
import statistics
import time


def percentiles(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 3), "p99_ms": round(cuts[98] * 1000, 3)}


def one_after_another(
    address: str,
    port: int,
    rate: int,
    seconds: float,
    name: str,
    context: ssl.SSLContext | None = None,
    resume: bool = False,
) -> dict:
    """`rate` GETs/s of `/` for `seconds` with Host `name` (also the TLS server name): counts, how many TLS
    sessions were resumed, and the latency percentiles of the 200s."""
    session, latencies, failed, resumed = None, [], 0, 0
    total = int(rate * seconds)
    start = time.monotonic()
    for number in range(total):
        time.sleep(max(0.0, start + number / rate - time.monotonic()))
        sent = time.monotonic()
        try:
            with socket.create_connection((address, port), timeout=1.0) as raw:
                conn = raw
                if context is not None:
                    conn = context.wrap_socket(raw, server_hostname=name, session=session if resume else None)
                conn.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                reply = b"".join(iter(lambda conn=conn: conn.recv(65536), b""))
                if context is not None:
                    resumed += conn.session_reused
                    session = conn.session
            ok = reply.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        if ok:
            latencies.append(time.monotonic() - sent)
        else:
            failed += 1
    return {"requests": total, "failed": failed, "resumed": resumed, **percentiles(latencies)}
