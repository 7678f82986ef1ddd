"""HTTP: the template's API served locally (tools.local's LocalApi: the RIE and the real
Python runtime client, one process per concurrent request as Lambda scales), POST /predict with
one record at concurrency 1 and 8, bounded request counts, over loopback keep-alive connections.

The functions run from the source tree on the venv's Python (the shipped build holds compiled
packages for the template's runtime, which may not load here). The client shares the machine's
CPUs with the server and the function processes, so these are local, not Lambda, figures.
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import ENV_VARS, TEMPLATE, percentile, seeded_registry
from tools.local.runner import LocalApi

LEVELS = {1: 300, 8: 60}  # concurrency: requests per client thread


def _client(port: int, body: str, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            latencies.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
    finally:
        connection.close()
    return latencies


def _level(port: int, body: str, concurrency: int, per_client: int) -> dict[str, float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        runs = list(pool.map(lambda _: _client(port, body, per_client), range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies = [t for run in runs for t in run]
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "requests_per_s": len(latencies) / elapsed,
    }


def main(endpoint: str | None = None) -> dict[str, Any]:
    from tests.helpers import load_event

    if endpoint is None:
        with seeded_registry() as local:
            return main(local)
    body = load_event("predict")["body"]
    json.loads(body)

    def discard(line: str) -> None:  # the functions' logs: one JSON line per request
        pass

    top = max(LEVELS)
    with LocalApi(
        TEMPLATE,
        env_vars=ENV_VARS,
        port=0,
        s3_endpoint=endpoint,
        seed=None,
        concurrency=top,
        log=discard,
    ) as api:
        port = api.server.port if api.server else 0
        _level(port, body, top, 2)  # starts every process (cold starts), not measured
        return {f"c{c}": _level(port, body, c, n) for c, n in LEVELS.items()}


if __name__ == "__main__":
    for level, figures in main().items():
        print(
            f"{level}: {figures['requests']:.0f} requests, p50 {figures['p50_ms']:.2f} ms, "
            f"p99 {figures['p99_ms']:.2f} ms, {figures['requests_per_s']:.0f} requests/s"
        )
