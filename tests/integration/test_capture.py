"""Prediction capture over HTTP: the predict handler's sampled requests through a moto Firehose
into the bucket, read back by the drift monitor; and a dead stream (one that hangs, one that
refuses) that never fails a prediction and is counted in CaptureDropped."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import joblib
import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import predict_handler
from sklambda.capture import CAPTURE_CONFIG, Capture
from sklambda.manifest import Manifest, read_manifest
from sklambda.model import LoadedModel
from sklambda.monitor import run_monitor
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore
from tests.helpers import load_event
from tools.local.loopback import HangingServer, free_port

pytestmark = pytest.mark.integration

RECORD = json.loads(load_event("predict")["body"])


@pytest.fixture
def served(trained_dir: Path) -> Iterator[LoadedModel]:
    manifest = read_manifest(trained_dir)
    model = LoadedModel(manifest, joblib.load(trained_dir / "model.joblib"))
    predict_handler.holder.use(model)
    yield model
    predict_handler.holder.reset()
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True


def _use_capture(monkeypatch: pytest.MonkeyPatch, stream: str, endpoint: str) -> Capture:
    settings = ServingSettings(capture_stream=stream, capture_sample_rate=1.0)
    capture = Capture(
        settings, lambda: boto3.client("firehose", endpoint_url=endpoint, config=CAPTURE_CONFIG)
    )
    monkeypatch.setattr(predict_handler, "capture", capture)
    return capture


def _predict(body: Any, context: Any) -> dict[str, Any]:
    event = load_event("predict")
    event["body"] = json.dumps(body)
    reply: dict[str, Any] = predict_handler.lambda_handler(event, context)
    return reply


def test_captured_requests_land_under_capture_and_the_monitor_reads_them_back(
    s3, bucket, s3_endpoint, capture_stream, trained_dir, served, monkeypatch, lambda_context
):
    # GIVEN the published model and a (moto) Firehose stream into the bucket, as the template's
    published: Manifest = ModelStore(s3, bucket).publish(trained_dir)
    assert published.name == "house-prices"  # capture_stream's prefix
    capture = _use_capture(monkeypatch, capture_stream, s3_endpoint)
    # WHEN requests are answered with capture on
    rows = [{**RECORD, "lotsize": 3000 + 100 * i} for i in range(5)]
    replies = [_predict({"instances": rows[:2]}, lambda_context), _predict(rows[2], lambda_context)]
    replies.append(_predict({"instances": rows[3:]}, lambda_context))
    assert [r["statusCode"] for r in replies] == [200, 200, 200]
    assert capture.wait_idle(10) and capture.sent == 5
    # THEN the records are under capture/<model>/ and the monitor reads every one back
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith(f"capture/{published.name}/") for k in keys)
    run = run_monitor(s3, bucket, published.name, now=datetime.now(UTC), min_rows=1)
    assert run.report is not None
    assert (run.report["records"], run.report["bad_lines"]) == (5, 0)
    (section,) = run.report["versions"]
    assert section["version"] == published.version
    assert {n: f["invalid"] for n, f in section["features"].items()} == dict.fromkeys(
        served.schema.names, 0
    )


@pytest.fixture(params=["hanging", "refused"])
def dead_stream(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "refused":
        yield f"http://127.0.0.1:{free_port()}"  # nothing listens there
        return
    with HangingServer() as hanging:
        yield hanging.url


def test_a_dead_stream_never_fails_a_prediction_and_its_rows_are_counted_as_dropped(
    dead_stream, served, monkeypatch, lambda_context, capsys
):
    # GIVEN capture of every request into a stream that hangs or refuses
    capture = _use_capture(monkeypatch, "capture", dead_stream)
    # WHEN two requests are answered, the first one's put having given up in between
    first = _predict(RECORD, lambda_context)
    assert capture.wait_idle(10)
    second = _predict(RECORD, lambda_context)
    # THEN both predictions are returned, and both rows are counted in CaptureDropped
    assert [first["statusCode"], second["statusCode"]] == [200, 200]
    assert json.loads(second["body"])["predictions"] == json.loads(first["body"])["predictions"]
    emitted = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line
    ]
    dropped = [doc["CaptureDropped"] for doc in emitted if "CaptureDropped" in doc]
    assert sum(sum(v) if isinstance(v, list) else v for v in dropped) == 2
    assert capture.sent == 0 and capture.last_error
