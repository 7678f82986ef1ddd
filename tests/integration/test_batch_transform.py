"""A whole batch transform job on a moto S3: the definition in statemachines/ run by the local
interpreter (tools/local/statemachine.py), BatchPredictFunction's handler in process. Every row
ends in out/ or rejected/ with a reason, and _SUCCESS.json's counts match."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import batch_predict_handler
import pytest

from sklambda.settings import BatchSettings
from sklambda.store import ModelStore
from tests.helpers import HOUSE_CSV
from tools.local.statemachine import (
    LocalStepFunctions,
    StateMachine,
    TaskError,
    in_process,
    load_definition,
)

pytestmark = [pytest.mark.integration, pytest.mark.tooling]


@pytest.fixture
def live(
    store: ModelStore, trained_dir: Path, bucket: str, tmp_path: Path, monkeypatch: Any
) -> str:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    settings = BatchSettings(
        bucket=bucket,
        model_name="house-prices",
        cache_dir=tmp_path / "cache",
        tolerated_failure_percentage=0,
    )
    monkeypatch.setattr(batch_predict_handler, "settings", settings)
    monkeypatch.setattr(batch_predict_handler, "_holders", {})
    return manifest.version


def machine(s3: Any, handle: Any = None) -> StateMachine:
    invoke = in_process({"BatchPredictFunction": handle or batch_predict_handler.handle})
    return StateMachine(load_definition(), invoke, s3, max_concurrency=4, sleep=lambda _: None)


def big_csv(rows: int, bad_every: int) -> tuple[str, set[int]]:
    """`rows` sales drawn from the bundled data; every `bad_every`-th row has a broken value.
    Returns the CSV and the lines (header = 1) of the broken rows."""
    with HOUSE_CSV.open(newline="") as f:
        reader = csv.DictReader(f)
        source, header = list(reader), reader.fieldnames or []
    rng = random.Random(7)
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, header, lineterminator="\n")
    writer.writeheader()
    bad: set[int] = set()
    for i in range(rows):
        row = dict(rng.choice(source))
        if i % bad_every == bad_every - 1:
            row[rng.choice(["lotsize", "airco", "bedrooms"])] = "??"
            bad.add(i + 2)
        writer.writerow(row)
    return out.getvalue(), bad


def objects(s3: Any, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def lines_in(s3: Any, bucket: str, prefix: str) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for key in objects(s3, bucket, prefix):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for row in csv.DictReader(io.StringIO(body)):
            assert int(row["line"]) not in found, "a row written twice"
            found[int(row["line"])] = row
    return found


def test_a_5000_row_job_accounts_for_every_row(live: str, s3: Any, bucket: str) -> None:
    text, bad = big_csv(5000, bad_every=97)
    s3.put_object(Bucket=bucket, Key="batch/in/sales.csv", Body=text.encode())
    run = machine(s3).run({"key": "batch/in/sales.csv"}, name="job-5000")
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.map_batches >= 3  # 200,000-byte batches of ~300-byte items
    out = lines_in(s3, bucket, "batch/job-5000/out/")
    rejected = lines_in(s3, bucket, "batch/job-5000/rejected/")
    assert set(rejected) == bad and len(bad) == 51
    assert set(out) | set(rejected) == set(range(2, 5002)) and not set(out) & set(rejected)
    assert all("expected" in r["reason"] for r in rejected.values())
    success = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/job-5000/_SUCCESS.json")["Body"].read()
    )
    assert (success["rows_in"], success["rows_out"], success["rows_rejected"]) == (5000, 4949, 51)
    assert success["model"]["version"] == live and success["status"] == "succeeded"
    assert success["duration_seconds"] >= 0
    assert objects(s3, bucket, "batch/job-5000/results/")  # ResultWriter's files


def test_jsonl_input_is_scored_too(live: str, s3: Any, bucket: str) -> None:
    with HOUSE_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))[:40]
    numbers = {"lotsize", "bedrooms", "bathrms", "stories", "garagepl"}
    lines = [
        json.dumps({k: int(v) if k in numbers else v for k, v in r.items() if k}) for r in rows
    ]
    lines[5] = json.dumps([1, 2, 3])
    lines[9] = json.dumps({**json.loads(lines[9]), "bedrooms": "three"})
    s3.put_object(Bucket=bucket, Key="batch/in/s.jsonl", Body="\n".join(lines).encode())
    run = machine(s3).run({"key": "batch/in/s.jsonl"}, name="job-jsonl")
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    rejected = lines_in(s3, bucket, "batch/job-jsonl/rejected/")
    assert rejected == {
        6: {"line": "6", "reason": "expected a JSON object"},
        10: {"line": "10", "reason": "bedrooms: expected a number, got string"},
    }
    out = lines_in(s3, bucket, "batch/job-jsonl/out/")
    assert set(out) == set(range(1, 41)) - {6, 10}


def test_a_header_without_a_feature_fails_at_once_and_scores_nothing(
    live: str, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="batch/in/x.csv", Body=b"lotsize,bedrooms\n5850,3\n")
    run = machine(s3).run({"key": "batch/in/x.csv"}, name="job-bad-header")
    assert (run.status, run.error) == ("FAILED", "BatchTransformFailed")
    failed = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/job-bad-header/_FAILED.json")["Body"].read()
    )
    assert failed["error"]["error"] == "DataValidationError"
    assert "header has no column bathrms" in failed["error"]["cause"]
    assert objects(s3, bucket, "batch/job-bad-header/") == ["batch/job-bad-header/_FAILED.json"]


def test_a_batch_that_times_out_is_retried_then_counted_against_the_tolerance(
    live: str, s3: Any, bucket: str, monkeypatch: Any
) -> None:
    text, _ = big_csv(2000, bad_every=10**9)
    s3.put_object(Bucket=bucket, Key="batch/in/s.csv", Body=text.encode())
    calls: dict[int, int] = {}

    def flaky(event: dict[str, Any]) -> Any:
        if "Items" in event:
            first = event["Items"][0]["index"]
            calls[first] = calls.get(first, 0) + 1
            if first == 0 or (first > 0 and calls[first] == 1):  # part 0 always times out
                raise TaskError("States.Timeout", "Task timed out after 300.00 seconds")
        return batch_predict_handler.handle(event)

    invoke = in_process({"BatchPredictFunction": flaky})
    run = StateMachine(load_definition(), invoke, s3, sleep=lambda _: None).run(
        {"key": "batch/in/s.csv"}, name="job-flaky"
    )
    assert run.status == "FAILED"  # 1 of the batches failed; 0 % tolerated
    assert calls[0] == 7  # the first try and six retries
    assert all(n == 2 for first, n in calls.items() if first)  # the others: once more, then ok
    failed = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/job-flaky/_FAILED.json")["Body"].read()
    )
    assert failed["error"]["error"] == "States.ExceedToleratedFailureThreshold"
    assert failed["rows_failed"] > 0 and failed["failed_batches"] == 1
    assert failed["rows_in"] == 2000 == failed["rows_out"] + failed["rows_failed"]

    # With a tolerance, the same job succeeds and says what failed.
    tolerant = batch_predict_handler.settings.model_copy(
        update={"tolerated_failure_percentage": 50}
    )
    monkeypatch.setattr(batch_predict_handler, "settings", tolerant)
    calls.clear()
    run = StateMachine(load_definition(), invoke, s3, sleep=lambda _: None).run(
        {"key": "batch/in/s.csv"}, name="job-flaky-2"
    )
    assert run.status == "SUCCEEDED"
    done = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/job-flaky-2/_SUCCESS.json")["Body"].read()
    )
    assert done["failed_batches"] == 1 and done["rows_in"] == 2000


MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:sklambda-batch-transform"


def test_cli_submits_waits_with_progress_and_reports_status(
    live: str, s3: Any, bucket: str, monkeypatch: Any, capsys: Any
) -> None:
    from training import cli

    local = LocalStepFunctions(lambda: machine(s3))
    monkeypatch.setattr(cli, "_stepfunctions", lambda: local)
    text, bad = big_csv(3000, bad_every=50)
    s3.put_object(Bucket=bucket, Key="batch/in/s.csv", Body=text.encode())
    submit = ["batch", "submit", "--input", f"s3://{bucket}/batch/in/s.csv", "--job", "job-cli"]
    wait = ["--wait", "--poll", "0.05", "--state-machine", MACHINE_ARN]
    assert cli.main([*submit, *wait]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == (
        "job job-cli: SUCCEEDED; batches 4/4 (0 failed); rows in 3,000, out 2,940, "
        "rejected 60, failed 0"
    )
    assert "job job-cli started on" in out.err
    assert "job job-cli: RUNNING" in out.err  # progress while it runs
    status = ["batch", "status", "job-cli", "--bucket", bucket, "--json"]
    assert cli.main([*status, "--state-machine", MACHINE_ARN]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["status"] == "SUCCEEDED" and state["record"]["rows_rejected"] == len(bad)
    assert state["batches"]["succeeded"] == state["batches"]["total"] > 1


def test_cli_refuses_an_input_outside_batch_in(monkeypatch: Any, capsys: Any) -> None:
    from training import cli

    args = ["batch", "submit", "--input", "s3://b/datasets/x.csv", "--state-machine", MACHINE_ARN]
    assert cli.main(args) == 1
    assert "batch/in/" in capsys.readouterr().err
