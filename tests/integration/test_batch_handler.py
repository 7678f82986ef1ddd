"""BatchPredictFunction over a moto S3: the events in events/ (Distributed Map item batches),
the model pinned to the version resolved at job start even when the alias moves mid-job, and
signature / sha256 checks through the same holder as PredictFunction."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import batch_predict_handler
import boto3
import pytest

from sklambda.artifact import train_artifact
from sklambda.config import ModelConfig
from sklambda.data import prepare, read_csv
from sklambda.errors import DataValidationError, InvalidNameError, ModelUnavailableError
from sklambda.settings import BatchSettings
from sklambda.store import ModelStore
from tests.helpers import HOUSE_CSV, load_event

pytestmark = pytest.mark.integration


@pytest.fixture
def handler(bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings = BatchSettings(bucket=bucket, model_name="house-prices", cache_dir=tmp_path / "c")
    monkeypatch.setattr(batch_predict_handler, "settings", settings)
    monkeypatch.setattr(batch_predict_handler, "_holders", {})
    return batch_predict_handler


def rows_of(s3: Any, bucket: str, key: str) -> list[dict[str, str]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def with_version(name: str, version: str) -> dict[str, Any]:
    event = load_event(name)
    event["BatchInput"]["version"] = version
    return event


@pytest.mark.parametrize(
    ("name", "out", "rejected"),
    [("batch_items_csv", ["2", "3"], ["4"]), ("batch_items_jsonl", ["1"], ["2"])],
)
def test_batch_events_score_every_row_or_reject_it(
    handler: Any,
    s3: Any,
    bucket: str,
    store: ModelStore,
    trained_dir: Path,
    lambda_context: Any,
    name: str,
    out: list[str],
    rejected: list[str],
) -> None:
    manifest = store.publish(trained_dir)
    result = handler.lambda_handler(with_version(name, manifest.version), lambda_context)
    assert (result["rows"], result["out"], result["rejected"]) == (
        len(out) + len(rejected),
        len(out),
        len(rejected),
    )
    assert [r["line"] for r in rows_of(s3, bucket, result["out_key"])] == out
    assert [r["line"] for r in rows_of(s3, bucket, result["rejected_key"])] == rejected


def test_a_containers_batches_share_its_clients(
    handler: Any,
    store: ModelStore,
    trained_dir: Path,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a container counting the boto3 clients it makes
    made: list[str] = []
    real = boto3.client

    def counting(service: str, **kwargs: Any) -> Any:
        made.append(service)
        return real(service, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(boto3, "client", counting)
    manifest = store.publish(trained_dir)
    # WHEN it scores four batches of a job
    for _ in range(4):
        event = with_version("batch_items_csv", manifest.version)
        assert handler.lambda_handler(event, lambda_context)["rows"] == 3
    # THEN it made one client for the job's files and one to read the model, not one a batch
    assert sorted(made) == ["s3", "s3"]


def test_a_promotion_during_a_job_does_not_change_its_version(
    handler: Any,
    s3: Any,
    bucket: str,
    store: ModelStore,
    trained_dir: Path,
    house_config: ModelConfig,
    tmp_path: Path,
    lambda_context: Any,
) -> None:
    first = store.publish(trained_dir)
    store.promote(first.name, first.version)
    resolve = {**load_event("batch_resolve"), "job_id": "job-1"}
    s3.put_object(Bucket=bucket, Key=resolve["key"], Body=HOUSE_CSV.read_bytes())
    job = handler.lambda_handler(resolve, lambda_context)
    assert job["version"] == first.version and job["results_prefix"] == "batch/job-1/results"
    # GIVEN another model (one feature fewer: other predictions) promoted mid-job
    other = house_config.model_copy(update={"features": house_config.features[:-1]})
    other_data = prepare(other, read_csv(other.data.source))
    second = store.publish(train_artifact(other, other_data, tmp_path / "b").folder)
    store.promote(second.name, second.version)
    event = with_version("batch_items_csv", job["version"])
    event["BatchInput"]["job_id"] = "job-1"
    result = handler.lambda_handler(event, lambda_context)
    pinned, promoted = handler.load(first.version), handler.load(second.version)
    scored = [float(r["prediction"]) for r in rows_of(s3, bucket, result["out_key"])]
    assert pinned.manifest.version == first.version
    rows = [i["row"] for i in event["Items"][:2]]

    def predictions(model: Any) -> Any:
        names = model.schema.names
        return model.predict(
            model.schema.encode_columns({k: [r[k] for r in rows] for k in names}, 2, text=True)
        )

    assert scored == pytest.approx(predictions(pinned))
    # THEN the job scored with the pinned model: the promoted one predicts otherwise
    assert promoted.schema.names == house_config.feature_names[:-1]
    other_scores = predictions(promoted)
    assert len(other_scores) == len(scored) == 2
    assert all(a != pytest.approx(b, rel=1e-3) for a, b in zip(scored, other_scores, strict=True))
    # and the next job resolves the new version
    assert handler.lambda_handler({**resolve, "job_id": "job-2"}, lambda_context)["version"] == (
        second.version
    )


def test_a_tampered_artifact_is_refused_before_any_row_is_scored(
    handler: Any, s3: Any, bucket: str, store: ModelStore, trained_dir: Path, lambda_context: Any
) -> None:
    manifest = store.publish(trained_dir)
    base = store.version_prefix(manifest.name, manifest.version)
    for info in manifest.artifacts:
        s3.put_object(Bucket=bucket, Key=base + info.key, Body=b"not the model")
    with pytest.raises(ModelUnavailableError) as caught:
        handler.lambda_handler(with_version("batch_items_csv", manifest.version), lambda_context)
    assert caught.value.code == "integrity_error"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="batch/")


def test_finish_writes_success_with_the_counts(
    handler: Any, s3: Any, bucket: str, lambda_context: Any
) -> None:
    event = {
        "action": "finish",
        "job_id": "job-1",
        "started_at": "2026-11-29T10:00:00.000Z",
        "state": {"key": "batch/in/x.csv", "job": {"job_id": "job-1", "version": "v"}},
    }
    record = handler.lambda_handler(event, lambda_context)
    assert record["status"] == "succeeded" and record["rows_in"] == 0
    assert "Contents" in s3.list_objects_v2(Bucket=bucket, Prefix="batch/job-1/_SUCCESS.json")


@pytest.mark.parametrize(
    "event",
    [
        {"action": "resolve", "key": "batch/in/x.csv"},  # no job id
        {"action": "resolve", "job_id": "../models", "key": "batch/in/x.csv"},
        {"action": "resolve", "job_id": "j", "key": "models/house-prices/x.csv"},
        {"Items": [{"index": 0, "row": {}}], "BatchInput": {"version": "v", "format": "csv"}},
        {"action": "drop"},
    ],
)
def test_events_that_name_no_job_or_leave_batch_are_refused(
    handler: Any, s3: Any, bucket: str, lambda_context: Any, event: dict[str, Any]
) -> None:
    with pytest.raises((InvalidNameError, DataValidationError)):
        handler.lambda_handler(event, lambda_context)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
