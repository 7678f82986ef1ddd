"""The shadow model on a moto S3 (and Firehose) server: a warm container loads SHADOW_ALIAS in the
background, scores the captured requests with it after the reply (never changing the reply), the
drift report compares the two; and retraining can publish to the shadow alias instead of
promoting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import predict_handler
from sklambda.artifact import train_artifact
from sklambda.capture import CAPTURE_CONFIG, Capture
from sklambda.errors import ModelUnavailableError
from sklambda.manifest import Manifest
from sklambda.monitor import run_monitor
from sklambda.retrain import Retrainer, RetrainRequest, request_from_event
from sklambda.serving import ModelHolder
from sklambda.settings import RetrainSettings, ServingSettings
from sklambda.store import ModelStore
from tests.helpers import ROOT, load_event

pytestmark = pytest.mark.integration

RECORD = json.loads(load_event("predict")["body"])


@pytest.fixture
def champion(store: ModelStore, trained_dir: Path) -> Manifest:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    return manifest


@pytest.fixture
def candidate(store, tmp_path, house_config, house_dataset, champion) -> Manifest:
    """Another model (ridge, strongly regularised: other predictions) as `candidate`."""
    estimator = house_config.estimator.model_copy(
        update={"kind": "ridge", "params": {"alpha": 100.0}}
    )
    other = house_config.model_copy(update={"estimator": estimator})
    manifest = store.publish(train_artifact(other, house_dataset, tmp_path / "candidate").folder)
    store.promote(manifest.name, manifest.version, "candidate")
    return manifest


def _holder(s3_endpoint: str, bucket: str, tmp_path: Path, errors: list[Exception]) -> ModelHolder:
    settings = ServingSettings(
        bucket=bucket, model_name="house-prices", shadow_alias="candidate", cache_dir=tmp_path
    )
    return ModelHolder(
        settings,
        lambda: ModelStore(boto3.client("s3", endpoint_url=s3_endpoint), bucket),
        on_refresh_error=errors.append,
    )


@pytest.fixture
def reset_handler():
    yield
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True


def test_the_shadow_scores_captured_requests_after_the_reply_and_the_report_compares_them(
    s3, bucket, s3_endpoint, capture_stream, tmp_path, champion, candidate, monkeypatch,
    lambda_context, reset_handler,
):  # fmt: skip
    # GIVEN a container with SHADOW_ALIAS=candidate, capturing every request through Firehose
    stream = capture_stream
    errors: list[Exception] = []
    holder = _holder(s3_endpoint, bucket, tmp_path, errors)
    capture = Capture(
        ServingSettings(capture_stream=stream, capture_sample_rate=1.0),
        lambda: boto3.client("firehose", endpoint_url=s3_endpoint, config=CAPTURE_CONFIG),
        shadow=holder.shadow,
    )
    monkeypatch.setattr(predict_handler, "holder", holder)
    monkeypatch.setattr(predict_handler, "capture", capture)
    assert holder.shadow() is None  # nothing is loaded before the champion
    # WHEN requests are answered, the shadow loading in the background after the first
    replies = []
    for i in range(4):
        event = load_event("predict")
        event["body"] = json.dumps({**RECORD, "lotsize": 4000 + 500 * i})
        replies.append(predict_handler.lambda_handler(event, lambda_context))
        capture.wait_idle(10)
        holder.wait_for_shadow(10)
    # THEN every reply is the champion's own
    bodies = [json.loads(r["body"]) for r in replies]
    assert {b["model"]["version"] for b in bodies} == {champion.version}
    assert holder.loaded is not None and holder.shadow() is not None
    assert holder.shadow().manifest.version == candidate.version  # type: ignore[union-attr]
    assert errors == []
    # ...and the report compares champion and shadow on the rows both scored
    run = run_monitor(s3, bucket, "house-prices", now=datetime.now(UTC), min_rows=1)
    assert run.report is not None and run.report["records"] == 4
    (section,) = run.report["versions"]
    (shadow,) = section["shadow"]
    assert shadow["version"] == candidate.version and 1 <= shadow["rows"] <= 4
    assert 0.0 <= shadow["agreement"] <= 1.0 and shadow["mean_absolute_difference"] > 0
    page = s3.get_object(Bucket=bucket, Key=run.report_key.replace(".json", ".html"))
    assert b"champion vs shadow" in page["Body"].read()


def test_a_shadow_alias_that_does_not_resolve_is_reported_and_the_champion_serves_on(
    s3, bucket, s3_endpoint, tmp_path, champion
):
    errors: list[Exception] = []
    holder = _holder(s3_endpoint, bucket, tmp_path, errors)
    assert holder.get().manifest.version == champion.version
    assert holder.shadow() is None  # starts the load
    holder.wait_for_shadow(10)
    assert holder.shadow() is None  # in back-off: no new load, nothing raised
    assert holder.get().manifest.version == champion.version
    assert [e.code for e in errors if isinstance(e, ModelUnavailableError)] == ["shadow"]
    assert "candidate" in str(errors[0])


def test_retraining_can_publish_to_the_shadow_alias_instead_of_promoting(
    store, s3, bucket, champion
):
    # GIVEN new data and the retrain function configured with SHADOW_ALIAS (RetrainToShadow)
    csv = (ROOT / "training" / "data" / "windsor_housing.csv").read_text().splitlines()
    reordered = "\n".join([csv[0], *reversed(csv[1:])]) + "\n"
    s3.put_object(Bucket=bucket, Key="datasets/house-prices/new.csv", Body=reordered.encode())
    settings = RetrainSettings(bucket=bucket, model="house-prices", shadow_alias="candidate")
    request = request_from_event({"model": "house-prices"}, settings)
    assert request == RetrainRequest(model="house-prices", shadow_alias="candidate", tolerance=0.01)
    # WHEN a challenger passes the gate
    record = Retrainer(store).run(request)
    # THEN it is the shadow, and the live alias did not move
    assert record.status == "shadowed", record.reason
    assert store.resolve("house-prices", "candidate").version == record.challenger["version"]
    assert store.resolve("house-prices").version == champion.version
    assert "candidate" in record.reason


def _retrain_env() -> dict[str, Any]:
    from cfnlint.decode import decode

    template, _ = decode(str(ROOT / "template.yaml"))
    assert template is not None
    env: dict[str, Any] = template["Resources"]["RetrainFunction"]["Properties"]["Environment"]
    return dict(env["Variables"])


def test_the_template_sets_the_retrain_shadow_alias_only_when_asked():
    assert _retrain_env()["SHADOW_ALIAS"] == {
        "Fn::If": ["RetrainShadowOn", {"Ref": "ShadowAlias"}, ""]
    }
