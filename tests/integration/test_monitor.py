"""The drift monitor on a moto S3 server: capture in AWS's and moto's Firehose layouts, the
cursor, labels, and a report where the shifted feature, and only it, drifts."""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import joblib
import monitor_handler
import numpy as np
import pytest
from cfnlint.decode import decode

from sklambda.capture import Capture
from sklambda.manifest import Manifest, open_verified, read_manifest, verify_file
from sklambda.model import LoadedModel
from sklambda.monitor import cursor_key, report_key, run_monitor
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore
from tests.helpers import HOUSE_CONFIG, ROOT, load_event

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


@pytest.fixture
def published(store: ModelStore, trained_dir: Any) -> Manifest:
    return store.publish(trained_dir)


def _traffic(
    trained_dir: Any, rows: int, shift: dict[str, float], seed: int = 0
) -> list[dict[str, Any]]:
    """Captured records: training rows drawn with replacement, `shift` multiplying features,
    each with the model's own prediction."""
    manifest = read_manifest(trained_dir)
    schema = manifest.feature_schema
    with (HOUSE_CONFIG.parent / "../data/windsor_housing.csv").open() as fh:
        table = list(csv.DictReader(fh))
    rng = np.random.default_rng(seed)
    picked = [table[i] for i in rng.integers(0, len(table), rows)]
    records = []
    for row in picked:
        features: dict[str, Any] = {}
        for f in schema.features:
            value: Any = row[f.name]
            if f.type in ("number", "integer"):
                value = float(value) * shift.get(f.name, 1.0)
                value = round(value) if f.type == "integer" else value
            features[f.name] = value
        records.append(features)
    model = open_verified(verify_file(trained_dir / "model.joblib", manifest))
    predictions = model.predict(schema.encode_records(records))
    return [
        {
            "request_id": str(uuid.uuid4()),
            "row": 0,
            "time": NOW.isoformat(),
            "model_version": manifest.version,
            "features": features,
            "prediction": float(p),
        }
        for features, p in zip(records, predictions, strict=True)
    ]


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _aws_key(name: str, when: datetime) -> str:
    return (
        f"capture/{name}/year={when:%Y}/month={when:%m}/day={when:%d}/hour={when:%H}/"
        f"capture-1-{when:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}"
    )


def test_moto_firehose_capture_with_one_shifted_feature_drifts_that_feature_only(
    s3, bucket, s3_endpoint, published, trained_dir
):
    # GIVEN traffic where lotsize is 2.5 times what training saw, delivered by (moto's) Firehose
    firehose = boto3.client("firehose", endpoint_url=s3_endpoint)
    stream = f"capture-{uuid.uuid4().hex[:8]}"
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": f"capture/{published.name}/",
        },
    )
    records = _traffic(trained_dir, 400, {"lotsize": 2.5})
    for start in range(0, len(records), 200):
        firehose.put_record_batch(
            DeliveryStreamName=stream,
            Records=[{"Data": _jsonl([r])} for r in records[start : start + 200]],
        )
    # WHEN the monitor runs today
    run = run_monitor(s3, bucket, published.name, now=datetime.now(UTC))
    # THEN it read moto's YYYY/MM/DD/HH/ objects, and only lotsize crossed the threshold
    assert run.report is not None and run.report["records"] == 400
    (section,) = run.report["versions"]
    assert section["version"] == published.version
    assert run.report["drifted"] == ["lotsize"]
    assert section["features"]["lotsize"]["psi"] > 0.2
    assert section["features"]["lotsize"]["ks"] > 0.3
    assert section["features"]["lotsize"]["ks_pvalue"] < 1e-6
    others = {n: f["psi"] for n, f in section["features"].items() if n != "lotsize"}
    assert max(others.values()) < 0.2, others
    stored = json.loads(s3.get_object(Bucket=bucket, Key=run.report_key)["Body"].read())
    assert stored["drifted"] == ["lotsize"]
    page = s3.get_object(Bucket=bucket, Key=run.report_key.replace(".json", ".html"))
    assert page["ContentType"] == "text/html; charset=utf-8"
    assert page["Body"].read().count(b"<svg") == len(section["features"]) + 1
    assert run.report_key.startswith(f"reports/{published.name}/")


def test_unshifted_traffic_drifts_nothing(s3, bucket, published, trained_dir):
    s3.put_object(
        Bucket=bucket,
        Key=_aws_key(published.name, NOW),
        Body=_jsonl(_traffic(trained_dir, 400, {}, seed=1)),
    )
    run = run_monitor(s3, bucket, published.name, now=NOW)
    assert run.report is not None and run.report["records"] == 400
    assert run.report["drifted"] == []
    assert not run.report["versions"][0]["prediction"]["drifted"]


class _Collect:
    """Firehose in-process: keeps the lines capture puts."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def put_record_batch(self, *, DeliveryStreamName: str, Records: Any) -> dict[str, Any]:
        self.lines.extend(r["Data"] for r in Records)
        return {"FailedPutCount": 0}


def test_features_capture_withholds_are_listed_not_compared(s3, bucket, published, trained_dir):
    # GIVEN unshifted traffic captured by sklambda.capture with lotsize excluded and driveway
    # (a category) hashed
    manifest = read_manifest(trained_dir)
    model = LoadedModel(manifest, joblib.load(trained_dir / "model.joblib"))
    settings = ServingSettings(
        capture_stream="s",
        capture_sample_rate=1.0,
        capture_flush_ms=0,
        capture_exclude="lotsize",
        capture_hash="driveway",
    )
    firehose = _Collect()
    capture = Capture(settings, lambda: firehose)
    records = _traffic(trained_dir, 400, {}, seed=1)
    for start in range(0, len(records), 100):
        chunk = records[start : start + 100]
        X = model.schema.encode_records([r["features"] for r in chunk])
        capture.observe(model, X, [r["prediction"] for r in chunk], f"req-{start}")
    capture.flush()
    assert capture.wait_idle(30) and len(firehose.lines) == 400
    s3.put_object(Bucket=bucket, Key=_aws_key(published.name, NOW), Body=b"".join(firehose.lines))
    # WHEN the monitor runs
    run = run_monitor(s3, bucket, published.name, now=NOW)
    # THEN nothing drifts: the withheld features are listed, not read as missing or unknown
    assert run.report is not None and run.report["records"] == 400
    (section,) = run.report["versions"]
    assert section["not_compared"] == {"lotsize": "excluded", "driveway": "hashed"}
    assert "lotsize" not in section["features"] and "driveway" not in section["features"]
    assert run.report["drifted"] == [] and "lotsize" not in run.report["max_psi"]
    page = s3.get_object(Bucket=bucket, Key=run.report_key.replace(".json", ".html"))
    assert b"not compared" in page["Body"].read()


def test_each_capture_object_is_read_once_across_runs(s3, bucket, published, trained_dir):
    # GIVEN one object in AWS's partitioned layout, read by a first run
    records = _traffic(trained_dir, 10, {})
    s3.put_object(Bucket=bucket, Key=_aws_key(published.name, NOW), Body=_jsonl(records))
    first = run_monitor(s3, bucket, published.name, now=NOW)
    assert (first.files, first.report_key) == (1, report_key(published.name, NOW.date()))
    # WHEN nothing new arrives, THEN the next run reads nothing and writes no report
    again = run_monitor(s3, bucket, published.name, now=NOW + timedelta(hours=1))
    assert (again.files, again.report) == (0, None)
    # WHEN one more object arrives the next day, THEN only it is read
    later = NOW + timedelta(days=1)
    s3.put_object(Bucket=bucket, Key=_aws_key(published.name, later), Body=_jsonl(records[:3]))
    third = run_monitor(s3, bucket, published.name, now=later)
    assert third.files == 1 and third.report is not None and third.report["records"] == 3
    cursor = json.loads(s3.get_object(Bucket=bucket, Key=cursor_key(published.name))["Body"].read())
    assert cursor["day"] == NOW.date().isoformat() and len(cursor["read"]) == 2


def test_labels_joined_by_request_id_give_the_live_metric(s3, bucket, published, trained_dir):
    records = _traffic(trained_dir, 20, {})
    records.append({"garbled": True})
    s3.put_object(Bucket=bucket, Key=_aws_key(published.name, NOW), Body=_jsonl(records) + b"{\n")
    for r in records[:10]:
        s3.put_object(
            Bucket=bucket,
            Key=f"labels/{published.name}/{r['request_id']}.json",
            Body=json.dumps({"label": r["prediction"] + 1000.0}).encode(),
        )
    s3.put_object(Bucket=bucket, Key=f"labels/{published.name}/other.json", Body=b"not json")
    run = run_monitor(s3, bucket, published.name, now=NOW)
    assert run.report is not None and run.report["bad_lines"] == 2
    metric = run.report["versions"][0]["live_metric"]
    assert metric["rows"] == 10
    assert metric["mae"] == pytest.approx(1000.0) and metric["rmse"] == pytest.approx(1000.0)
    assert metric["holdout"] == published.metrics["holdout"]


def test_a_version_without_a_profile_is_reported_not_failed(s3, bucket, published, trained_dir):
    records = [
        {**r, "model_version": "20200101T000000Z-00000000"} for r in _traffic(trained_dir, 5, {})
    ]
    s3.put_object(Bucket=bucket, Key=_aws_key(published.name, NOW), Body=_jsonl(records))
    run = run_monitor(s3, bucket, published.name, now=NOW)
    assert run.report is not None
    assert "no version" in run.report["versions"][0]["error"]


def _template_resource(logical_id: str) -> dict[str, Any]:
    template, _ = decode(str(ROOT / "template.yaml"))
    assert template is not None
    return dict(json.loads(json.dumps(template["Resources"][logical_id])))


def test_scheduled_run_emits_feature_drift_and_the_metric_the_drift_alarm_watches(
    s3, bucket, published, trained_dir, monkeypatch, lambda_context, capsys
):
    # GIVEN today's capture with lotsize shifted, and the function configured as deployed
    now = datetime.now(UTC)
    s3.put_object(
        Bucket=bucket,
        Key=_aws_key(published.name, now),
        Body=_jsonl(_traffic(trained_dir, 300, {"lotsize": 2.0}, seed=2)),
    )
    env = _template_resource("MonitorFunction")["Properties"]["Environment"]["Variables"]
    monkeypatch.setattr(monitor_handler.metrics.provider, "service", env["POWERTOOLS_SERVICE_NAME"])
    monkeypatch.setattr(
        monitor_handler,
        "settings",
        monitor_handler.MonitorSettings(bucket=bucket, model=published.name),
    )
    # WHEN the scheduled event invokes it
    summary = monitor_handler.lambda_handler(load_event("monitor_schedule"), lambda_context)
    # THEN it wrote the report, one FeatureDrift per feature, and MaxFeatureDrift for the alarm
    assert summary["drifted"] == ["lotsize"] and summary["records"] == 300
    assert summary["report"] == report_key(published.name, now.date())
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    # single_metric writes its one value as a list (valid EMF)
    drift = {m["feature"]: m["FeatureDrift"][0] for m in emf if "FeatureDrift" in m}
    assert set(drift) == set(published.feature_schema.names)
    assert drift["lotsize"] > 0.2 and max(v for f, v in drift.items() if f != "lotsize") < 0.2
    (emitted,) = [m for m in emf if "MaxFeatureDrift" in m]
    assert emitted["MaxFeatureDrift"] == [drift["lotsize"]]
    alarm = _template_resource("DriftAlarm")["Properties"]
    directive = emitted["_aws"]["CloudWatchMetrics"][0]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == alarm["Namespace"]  # tests set their own
    assert sorted(directive["Dimensions"][0]) == sorted(d["Name"] for d in alarm["Dimensions"])
    for dimension in alarm["Dimensions"]:
        value = published.name if dimension["Value"] == {"Ref": "ModelName"} else dimension["Value"]
        assert emitted[dimension["Name"]] == value
