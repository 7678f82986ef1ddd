"""The local API under a burst: 32 clients at once, each opening a new connection per request
for a few seconds, get an answer to every request (no reset, no refused connection, no 5xx).

With http.server's default accept backlog of 5, 32 clients connecting at once had 6 connections
reset; LocalApiServer.request_queue_size is 128. Loopback only; bounded in time (DURATION) and
in requests (MAX_PER_CLIENT)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from sklambda.store import ModelStore
from tests.helpers import EVENTS, load_event
from tools.local.api import LocalApiServer
from tools.local.loopback import FAKE_CREDENTIALS
from tools.local.runner import LocalApi

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "load-key"
CLIENTS = 32
DURATION = 3.0  # seconds of load, after every client is connected and waiting at the barrier
MAX_PER_CLIENT = 200  # a bound on the request count whatever the machine's speed
REQUEST_TIMEOUT = 60  # the first requests wait for cold starts

pytestmark = [pytest.mark.e2e, pytest.mark.tooling]


@pytest.fixture(scope="module")
def api_port(moto_endpoint: str, trained_dir: Path) -> Iterator[int]:
    creds = {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", **creds)
    bucket = f"load-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    store = ModelStore(s3, bucket)
    store.promote("house-prices", store.publish(trained_dir).version)
    env = json.loads((EVENTS / "env.json").read_text())
    env["PredictFunction"]["MODEL_BUCKET"] = bucket
    with LocalApi(
        ROOT / "template.yaml",
        env_vars=env,
        port=0,
        api_key=API_KEY,
        s3_endpoint=moto_endpoint,
        seed=None,
        concurrency=4,
        log=lambda line: None,
    ) as api:
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
