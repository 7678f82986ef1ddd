"""The PreTraffic hook end to end: its handler, with the events it ships, invokes the predict
handler in process, which serves a model published to the moto S3 server, and reports to
CodeDeploy whether the new version may take traffic."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import pre_traffic_handler
import predict_handler
from sklambda import smoke
from sklambda.serving import ModelHolder
from sklambda.settings import PreTrafficSettings, ServingSettings
from sklambda.store import ModelStore
from tests.helpers import FakeLambdaContext, load_event

pytestmark = pytest.mark.integration

VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sklambda-dev-PredictFunction:12"
HOOK_EVENT = load_event("pre_traffic_hook")


class PredictVersion:
    """Stands in for the Lambda client: `invoke` runs the predict handler in this process, as
    version 12 would run it. In production the hook's client calls lambda:Invoke on the
    version's ARN (TARGET_FUNCTION_VERSION) and Lambda runs the published version."""

    def __init__(self) -> None:
        self.invoked: list[str] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        self.invoked.append(FunctionName)
        context = FakeLambdaContext(function_version=FunctionName.rsplit(":", 1)[-1])
        reply = json.dumps(predict_handler.lambda_handler(json.loads(Payload), context)).encode()
        return {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(reply), len(reply))}


@pytest.fixture
def version(s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The new version: a fresh container's ModelHolder over the moto bucket."""
    settings = ServingSettings(bucket=bucket, model_name="house-prices", cache_dir=tmp_path)
    holder = ModelHolder(
        settings,
        lambda: ModelStore(boto3.client("s3", endpoint_url=s3_endpoint), bucket),
        on_load_error=predict_handler._on_load_error,
    )
    monkeypatch.setattr(predict_handler, "holder", holder)
    return PredictVersion()


@pytest.fixture
def codedeploy() -> Iterator[Stubber]:
    """A real CodeDeploy client with its one call stubbed (moto has no
    PutLifecycleEventHookExecutionStatus); the stub checks the parameters against the API."""
    client = boto3.client("codedeploy", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def run_hook(
    version: PredictVersion, codedeploy: Stubber, expected_status: str, monkeypatch: Any
) -> dict[str, Any]:
    codedeploy.add_response(
        "put_lifecycle_event_hook_execution_status",
        {},
        {
            "deploymentId": HOOK_EVENT["DeploymentId"],
            "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"],
            "status": expected_status,
        },
    )
    clients = {"lambda": version, "codedeploy": codedeploy.client}
    real = boto3.client  # the predict handler's S3 client stays real (the moto server)
    monkeypatch.setattr(
        boto3, "client", lambda name, *a, **kw: clients.get(name) or real(name, *a, **kw)
    )
    monkeypatch.setattr(pre_traffic_handler, "settings", PreTrafficSettings(target=VERSION_ARN))
    return pre_traffic_handler.lambda_handler(HOOK_EVENT, FakeLambdaContext())  # type: ignore[no-any-return]


def test_a_version_serving_the_published_model_is_let_through(
    store: ModelStore, trained_dir: Path, version: PredictVersion, codedeploy: Stubber, monkeypatch
) -> None:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    summary = run_hook(version, codedeploy, "Succeeded", monkeypatch)
    assert summary["passed"], summary["reasons"]
    assert summary["target"] == VERSION_ARN
    assert version.invoked == [VERSION_ARN] * len(smoke.CASES)  # the new version, nothing else
    assert [c["event"] for c in summary["cases"]] == [c.event for c in smoke.CASES]


def test_a_version_with_no_model_to_serve_stops_the_deploy(
    store: ModelStore, trained_dir: Path, version: PredictVersion, codedeploy: Stubber, monkeypatch
) -> None:
    store.publish(trained_dir)  # published, never promoted: the alias does not exist
    summary = run_hook(version, codedeploy, "Failed", monkeypatch)
    assert not summary["passed"]
    assert summary["reasons"][0].startswith("health: status 503, expected 200")
    assert "alias_not_found" in summary["reasons"][0]


def test_a_tampered_artifact_stops_the_deploy(
    store: ModelStore,
    s3: Any,
    bucket: str,
    trained_dir: Path,
    version: PredictVersion,
    codedeploy: Stubber,
    monkeypatch,
) -> None:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    key = store.version_prefix(manifest.name, manifest.version) + "model.npz"
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the bytes the manifest promises")
    summary = run_hook(version, codedeploy, "Failed", monkeypatch)
    failed = {c["event"] for c in summary["cases"] if not c["passed"]}
    assert {"health", "model_info", "predict", "predict_batch"} <= failed
    assert any("integrity_error" in reason for reason in summary["reasons"])


def test_a_wrong_prediction_from_the_new_version_stops_the_deploy(
    store: ModelStore, trained_dir: Path, version: PredictVersion, codedeploy: Stubber, monkeypatch
) -> None:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    real = predict_handler.lambda_handler

    def answers_null(event: dict[str, Any], context: Any) -> dict[str, Any]:
        """A new version with a bug that loses the prediction (serialises it as null)."""
        reply = real(event, context)
        if event.get("path") == "/predict" and reply["statusCode"] == 200:
            body = json.loads(reply["body"])
            body["predictions"] = [None for _ in body["predictions"]]
            reply["body"] = json.dumps(body)
        return reply

    monkeypatch.setattr(predict_handler, "lambda_handler", answers_null)
    summary = run_hook(version, codedeploy, "Failed", monkeypatch)
    assert [r.split(":")[0] for r in summary["reasons"]] == ["predict", "predict_batch"]
    assert all("not a finite number" in r for r in summary["reasons"])
