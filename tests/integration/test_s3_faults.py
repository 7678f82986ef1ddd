"""S3 faults on the serving path: an S3 that hangs (accepts, never answers) and one that refuses
connections, on a cold start and in a warm container. The figures (how fast, how much latency)
are measured by benchmarks/bench_faults.py; these tests prove the behaviour."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import boto3
import pytest

import predict_handler
from sklambda.serving import MIN_PHASE_SECONDS, ModelHolder
from sklambda.settings import ServingSettings
from sklambda.store import SERVING_S3_CONFIG, ModelStore
from tests.helpers import load_event
from tools.local.loopback import HangingServer, free_port

pytestmark = pytest.mark.integration

LIVENESS = (
    30  # seconds: a request that has not returned by then is stuck (boto3's defaults: minutes)
)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def serving_store(endpoint: str, bucket: str) -> ModelStore:
    return ModelStore(boto3.client("s3", endpoint_url=endpoint, config=SERVING_S3_CONFIG), bucket)


@pytest.fixture
def holder(bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> ModelHolder:
    """The handler's holder with a switchable S3 endpoint (`holder.endpoint`)."""
    settings = ServingSettings(
        bucket=bucket, model_name="house-prices", refresh_seconds=60, cache_dir=tmp_path / "c"
    )
    errors: list[Exception] = []
    made = ModelHolder(
        settings,
        lambda: serving_store(made.endpoint, bucket),  # type: ignore[attr-defined]
        on_refresh_error=errors.append,
        clock=Clock(),
    )
    made.errors = errors  # type: ignore[attr-defined]
    monkeypatch.setattr(predict_handler, "holder", made)
    return made


def invoke(context: Any) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """One request through the handler, in a thread, so a stuck one fails the test."""
    result: list[dict[str, Any]] = []
    worker = threading.Thread(
        target=lambda: result.append(
            predict_handler.lambda_handler(load_event("predict"), context)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(LIVENESS)
    assert result, f"the request did not return within {LIVENESS} s"
    reply = result[0]
    return reply["statusCode"], json.loads(reply["body"]), reply


@pytest.fixture
def live(store: ModelStore, trained_dir: Any) -> str:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    return manifest.version


def test_cold_start_with_s3_hanging_answers_503_after_one_bounded_retry(holder, lambda_context):
    with HangingServer() as s3:
        holder.endpoint = s3.url
        status, body, reply = invoke(lambda_context)
        assert status == 503 and body["error"]["code"] == "model_unavailable"
        assert reply["multiValueHeaders"]["Retry-After"] == ["1"]
        assert len(s3.accepted) == SERVING_S3_CONFIG.retries["total_max_attempts"]
        assert "Read timeout" in body["error"]["message"]


def test_cold_start_with_s3_refusing_answers_503_then_backs_off(holder, lambda_context):
    holder.endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    status, body, _ = invoke(lambda_context)
    assert status == 503 and "Could not connect" in body["error"]["message"]
    status, body, _ = invoke(lambda_context)  # within the back-off: answered without S3
    assert status == 503 and "next attempt in" in body["error"]["message"]


def test_warm_container_answers_from_its_model_while_s3_hangs(
    holder, live, s3_endpoint, lambda_context
):
    holder.endpoint = s3_endpoint
    assert invoke(lambda_context)[0] == 200
    with HangingServer() as s3:
        holder.endpoint = s3.url
        holder.clock.now += 60  # the alias re-check is due
        status, body, _ = invoke(lambda_context)
        assert status == 200 and body["model"]["version"] == live
        # It answered before the re-check had finished: the re-check is off the request path...
        assert holder.refreshing
        for _ in range(100):  # ...and it is waiting on the hanging S3
            if s3.accepted:
                break
            time.sleep(0.05)
        assert s3.accepted and holder.refreshing
        for _ in range(5):
            assert invoke(lambda_context)[0] == 200
        holder.wait_for_refresh(LIVENESS)
        assert holder.errors and "Read timeout" in str(holder.errors[0])
        attempts = len(s3.accepted)
        assert invoke(lambda_context)[0] == 200
        assert len(s3.accepted) == attempts  # backing off: no new attempt on the next request


def test_warm_container_backs_off_while_s3_refuses(holder, live, s3_endpoint, lambda_context):
    holder.endpoint = s3_endpoint
    assert invoke(lambda_context)[0] == 200
    holder.endpoint = f"http://127.0.0.1:{free_port()}"
    holder.clock.now += 60
    for _ in range(3):
        assert invoke(lambda_context)[0] == 200
        holder.wait_for_refresh(LIVENESS)
    assert len(holder.errors) == 1  # one failed re-check, then the back-off
    holder.endpoint = s3_endpoint
    holder.clock.now += 60
    assert invoke(lambda_context)[0] == 200
    holder.wait_for_refresh(LIVENESS)
    assert len(holder.errors) == 1


def test_a_cold_start_with_too_little_time_left_answers_503_without_trying(holder, lambda_context):
    with HangingServer() as s3:
        holder.endpoint = s3.url
        lambda_context.get_remaining_time_in_millis = lambda: int(MIN_PHASE_SECONDS * 1000) - 1
        status, body, _ = invoke(lambda_context)
        assert status == 503 and body["error"]["code"] == "deadline"
        assert not s3.accepted
