"""The local API under a burst: 32 clients at once, each opening a new connection per request
for a few seconds, get an answer to every request (no reset, no refused connection, no 5xx).

With http.server's default accept backlog of 5, 32 clients connecting at once had 6 connections
reset; LocalApiServer.request_queue_size is 128. Loopback only; bounded in time (DURATION) and
in requests (MAX_PER_CLIENT)."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.helpers import Served, load_event
from tools.local.api import LocalApiServer

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "load-key"
CLIENTS = 32
DURATION = 3.0  # seconds of load, after every client is connected and waiting at the barrier
MAX_PER_CLIENT = 200  # a bound on the request count whatever the machine's speed
REQUEST_TIMEOUT = 60  # the first requests wait for cold starts

pytestmark = [pytest.mark.e2e, pytest.mark.tooling]


@pytest.fixture(scope="module")
def api_port(serve_template: Callable[..., AbstractContextManager[Served]]) -> Iterator[int]:
    with serve_template(API_KEY) as (api, _):
        assert api.server is not None
        yield api.server.port


def _client(port: int, body: str, start: threading.Barrier, stop_at: list[float]) -> Counter[str]:
    """New connection per request until the deadline; counts outcomes (status or error type)."""
    outcomes: Counter[str] = Counter()
    start.wait()
    for _ in range(MAX_PER_CLIENT):
        if time.monotonic() >= stop_at[0]:
            break
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        try:
            headers = {"Content-Type": "application/json", "x-api-key": API_KEY}
            connection.request("POST", "/predict", body, headers)
            response = connection.getresponse()
            response.read()
            outcomes[str(response.status)] += 1
        except (OSError, http.client.HTTPException) as exc:
            outcomes[type(exc).__name__] += 1
        finally:
            connection.close()
    return outcomes


def test_32_clients_connecting_at_once_all_get_answers(api_port: int) -> None:
    assert LocalApiServer.request_queue_size >= CLIENTS
    body = load_event("predict")["body"]
    warm = http.client.HTTPConnection("127.0.0.1", api_port, timeout=REQUEST_TIMEOUT)
    warm.request("GET", "/health")  # one cold start before the burst
    assert warm.getresponse().status == 200
    warm.close()
    stop_at = [float("inf")]
    start = threading.Barrier(CLIENTS + 1)
    with ThreadPoolExecutor(CLIENTS) as pool:
        runs = [pool.submit(_client, api_port, body, start, stop_at) for _ in range(CLIENTS)]
        start.wait()  # every client is ready: they connect at the same moment
        stop_at[0] = time.monotonic() + DURATION
        outcomes = sum(
            (run.result(timeout=DURATION + 2 * REQUEST_TIMEOUT) for run in runs), Counter()
        )
    errors = {outcome: n for outcome, n in outcomes.items() if outcome != "200"}
    assert not errors, outcomes
    assert outcomes["200"] >= CLIENTS, outcomes
    print(f"\n{CLIENTS} clients, {DURATION:.0f} s: {outcomes['200']} requests, all 200")
