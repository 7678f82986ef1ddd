"""Batch transform against a moto S3 server: parts written once (a retried batch succeeds, other
bytes are never written over), the header checked before any row, results summed into
_SUCCESS.json."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import pytest

from sklambda.batch import Item, finish_job, resolve_job, score_batch
from sklambda.errors import DataValidationError, IntegrityError
from sklambda.manifest import Manifest
from sklambda.model import LoadedModel
from tests.helpers import HOUSE_CSV

pytestmark = pytest.mark.integration


@pytest.fixture
def model(manifest: Manifest, trained_dir: Path) -> LoadedModel:
    return LoadedModel(manifest, joblib.load(trained_dir / "model.joblib"))


def items(start: int, n: int) -> list[Item]:
    with HOUSE_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))[start : start + n]
    return [Item(start + i, row) for i, row in enumerate(rows)]


def read_csv(s3: Any, bucket: str, key: str) -> list[dict[str, str]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_a_batch_writes_its_predictions_and_rejected_rows(
    s3: Any, bucket: str, model: LoadedModel
) -> None:
    batch = items(20, 5)
    batch[1].row["bathrms"] = "lots"
    result = score_batch(s3, bucket, "job-1", model, batch, fmt="csv")
    assert (result.part, result.rows, result.out, result.rejected) == (20, 5, 4, 1)
    out = read_csv(s3, bucket, "batch/job-1/out/part-0000000020.csv")
    assert [r["line"] for r in out] == ["22", "24", "25", "26"]
    assert all(float(r["prediction"]) > 0 for r in out)
    rejected = read_csv(s3, bucket, "batch/job-1/rejected/part-0000000020.csv")
    assert rejected == [{"line": "23", "reason": "bathrms: expected a number, got 'lots'"}]


def test_a_clean_batch_writes_no_rejected_part(s3: Any, bucket: str, model: LoadedModel) -> None:
    result = score_batch(s3, bucket, "job-1", model, items(0, 3), fmt="csv")
    assert result.rejected_key is None
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="batch/job-1/")
    assert [o["Key"] for o in listed["Contents"]] == ["batch/job-1/out/part-0000000000.csv"]


def test_a_retried_batch_succeeds_and_a_different_part_is_never_overwritten(
    s3: Any, bucket: str, model: LoadedModel
) -> None:
    score_batch(s3, bucket, "job-1", model, items(0, 3), fmt="csv")
    again = score_batch(s3, bucket, "job-1", model, items(0, 3), fmt="csv")  # Step Functions retry
    assert again.out == 3
    other = items(0, 3)
    other[0].row["lotsize"] = "9000"
    with pytest.raises(IntegrityError, match="already exists"):
        score_batch(s3, bucket, "job-1", model, other, fmt="csv")


def put_input(s3: Any, bucket: str, key: str, text: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=text.encode())


def test_resolve_refuses_a_header_without_a_feature_before_scoring(
    s3: Any, bucket: str, model: LoadedModel
) -> None:
    put_input(s3, bucket, "batch/in/x.csv", "lotsize,bedrooms\n5850,3\n")
    with pytest.raises(DataValidationError, match="header has no column bathrms"):
        resolve_job(s3, bucket, "batch/in/x.csv", "job-1", lambda _: model)


def test_resolve_pins_the_version_and_the_format(s3: Any, bucket: str, model: LoadedModel) -> None:
    put_input(s3, bucket, "batch/in/x.csv", HOUSE_CSV.read_text())
    job = resolve_job(s3, bucket, "batch/in/x.csv", "job-1", lambda _: model)
    assert (job["version"], job["format"]) == (model.manifest.version, "csv")


def test_finish_sums_the_map_results_into_success(s3: Any, bucket: str) -> None:
    def record(status: str, output: dict[str, Any] | None, rows: int) -> dict[str, Any]:
        items = [{"index": i, "row": {}} for i in range(rows)]
        return {
            "Status": status,
            "Input": json.dumps({"Items": items, "BatchInput": {}}),
            "Output": json.dumps(output) if output else None,
        }

    results = "batch/job-1/results/abc/"
    s3.put_object(
        Bucket=bucket,
        Key=results + "SUCCEEDED_0.json",
        Body=json.dumps(
            [record("SUCCEEDED", {"rows": 10, "out": 9, "rejected": 1}, 10)] * 2
        ).encode(),
    )
    s3.put_object(
        Bucket=bucket,
        Key=results + "FAILED_0.json",
        Body=json.dumps([record("FAILED", None, 4)]).encode(),
    )
    manifest = {
        "ResultFiles": {
            "SUCCEEDED": [{"Key": results + "SUCCEEDED_0.json"}],
            "FAILED": [{"Key": results + "FAILED_0.json"}],
            "PENDING": [],
        }
    }
    s3.put_object(Bucket=bucket, Key=results + "manifest.json", Body=json.dumps(manifest))
    job = {"job_id": "job-1", "key": "batch/in/x.csv", "model": "m", "version": "v"}
    done = finish_job(
        s3,
        bucket,
        job,
        "2026-11-29T10:00:00.000Z",
        results_manifest_key=results + "manifest.json",
        now=lambda: datetime(2026, 11, 29, 10, 0, 30, tzinfo=UTC),
    )
    written = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/job-1/_SUCCESS.json")["Body"].read()
    )
    assert written == done
    assert (done["rows_in"], done["rows_out"], done["rows_rejected"], done["rows_failed"]) == (
        24,
        18,
        2,
        4,
    )
    assert done["duration_seconds"] == 30.0 and done["model"]["version"] == "v"


def test_a_failed_job_writes_a_failure_record(s3: Any, bucket: str) -> None:
    error = {"Error": "ValidationError", "Cause": "the header has no column stories"}
    finish_job(s3, bucket, {"job_id": "job-2"}, "2026-11-29T10:00:00Z", error=error)
    failed = json.loads(s3.get_object(Bucket=bucket, Key="batch/job-2/_FAILED.json")["Body"].read())
    assert failed["status"] == "failed" and "stories" in failed["error"]["cause"]
