"""The drift monitor on a classifier with string labels, against a moto S3 and Firehose server:
every captured label is read (none counted as a bad line), the predicted label mix is compared
with the training one, labels give accuracy, and a shadow classifier is compared by label."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from sklambda.artifact import train_artifact
from sklambda.data import parse_csv, prepare
from sklambda.manifest import Manifest, open_verified, read_manifest, verify_file
from sklambda.monitor import run_monitor
from sklambda.store import ModelStore
from tests.helpers import churn_config, churn_csv

pytestmark = pytest.mark.integration


def _train(folder: Path, **estimator: Any) -> Path:
    config = churn_config(**({"estimator": estimator} if estimator else {}))
    data = prepare(config, parse_csv(churn_csv(rows=400).encode(), "churn.csv"))
    return train_artifact(config, data, folder).folder


@pytest.fixture
def models(store: ModelStore, tmp_path: Path) -> tuple[Path, Path]:
    """The champion (live) and a strongly regularised candidate: other labels on some rows."""
    champion = _train(tmp_path / "champion")
    candidate = _train(tmp_path / "candidate", kind="logistic_regression", params={"C": 0.002})
    store.promote("churn", store.publish(champion).version)
    store.promote("churn", store.publish(candidate).version, "candidate")
    return champion, candidate


def _predict(folder: Path, records: list[dict[str, Any]]) -> tuple[Manifest, list[str]]:
    manifest = read_manifest(folder)
    model = open_verified(verify_file(folder / "model.joblib", manifest))
    return manifest, [
        str(p) for p in model.predict(manifest.feature_schema.encode_records(records))
    ]


def _records(rows: int, seed: int) -> list[dict[str, Any]]:
    """The churn table's rows as a JSON request carries them (what capture writes)."""
    table = csv.DictReader(io.StringIO(churn_csv(rows=rows, seed=seed)))
    return [
        {
            "tenure": float(row["tenure"]),
            "plan": row["plan"],
            "calls": int(row["calls"]) if row["calls"] else None,
            "paperless": {"yes": True, "no": False}.get(row["paperless"]),
        }
        for row in table
    ]


def test_a_classifiers_string_labels_are_monitored_with_accuracy_and_a_shadow_comparison(
    s3, bucket, s3_endpoint, models
):
    # GIVEN 300 captured requests (labels "no"/"yes", scored by the shadow too) through Firehose
    champion_dir, candidate_dir = models
    records = _records(300, seed=11)
    champion, labels = _predict(champion_dir, records)
    candidate, shadow_labels = _predict(candidate_dir, records)
    truth = [row["churn"] for row in csv.DictReader(io.StringIO(churn_csv(rows=300, seed=11)))]
    lines = [
        {
            "request_id": f"req-{i}",
            "row": 0,
            "time": datetime.now(UTC).isoformat(),
            "model_version": champion.version,
            "features": features,
            "prediction": label,
            "shadow": {"model_version": candidate.version, "prediction": shadow},
        }
        for i, (features, label, shadow) in enumerate(
            zip(records, labels, shadow_labels, strict=True)
        )
    ]
    firehose = boto3.client("firehose", endpoint_url=s3_endpoint)
    stream = f"capture-{uuid.uuid4().hex[:8]}"
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "capture/churn/",
        },
    )
    firehose.put_record_batch(
        DeliveryStreamName=stream,
        Records=[{"Data": json.dumps(line).encode() + b"\n"} for line in lines],
    )
    # ...and the true label of the first 100 requests
    for i in range(100):
        s3.put_object(
            Bucket=bucket, Key=f"labels/churn/req-{i}.json", Body=json.dumps({"label": truth[i]})
        )
    # WHEN the monitor runs
    run = run_monitor(s3, bucket, "churn", now=datetime.now(UTC))
    # THEN every line was read, and the prediction is compared as a mix of labels
    assert run.report is not None
    assert (run.report["records"], run.report["bad_lines"]) == (300, 0)
    (section,) = run.report["versions"]
    prediction = section["prediction"]
    assert set(prediction["shares"]) >= {"no", "yes"} and prediction["invalid"] == 0
    assert prediction["psi"] < 0.2 and not prediction["drifted"]  # the same kind of customers
    # ...labels give the live accuracy
    metric = section["live_metric"]
    expected = sum(t == p for t, p in zip(truth[:100], labels[:100], strict=True)) / 100
    assert metric["rows"] == 100 and metric["accuracy"] == pytest.approx(expected)
    assert "accuracy" in metric["holdout"]
    # ...and the shadow is compared by label
    (shadow,) = section["shadow"]
    agree = sum(a == b for a, b in zip(labels, shadow_labels, strict=True)) / 300
    assert shadow["version"] == candidate.version and shadow["rows"] == 300
    assert shadow["agreement"] == pytest.approx(agree, abs=1e-4) and agree < 1.0
    assert shadow["mean_difference"] is None
    page = s3.get_object(Bucket=bucket, Key=run.report_key.replace(".json", ".html"))
    assert b"(same label)" in page["Body"].read()
