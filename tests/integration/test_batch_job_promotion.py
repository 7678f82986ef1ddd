"""A promotion in the middle of a whole batch transform job (issue 15's fault list): the alias
moves after the first batch, and every batch of the job is still scored by the version resolve
pinned. The definition in statemachines/ runs on the local interpreter, BatchPredictFunction's
handler in process, on a moto S3 (test_batch_handler.py shows the same for single events)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import batch_predict_handler
import pytest

from sklambda import batch
from sklambda.artifact import train_artifact
from sklambda.config import EstimatorConfig, ModelConfig
from sklambda.data import Dataset
from sklambda.settings import BatchSettings
from sklambda.store import ModelStore
from tests.helpers import HOUSE_CSV
from tools.local.statemachine import StateMachine, in_process, load_definition

pytestmark = [pytest.mark.integration, pytest.mark.tooling]


def predictions(s3: Any, bucket: str, prefix: str) -> dict[int, float]:
    found: dict[int, float] = {}
    for entry in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode()
        found.update(
            {int(r["line"]): float(r["prediction"]) for r in csv.DictReader(io.StringIO(body))}
        )
    return found


def expected(model: Any, rows: list[dict[str, str]]) -> dict[int, float]:
    items = [batch.Item(i, row) for i, row in enumerate(rows)]
    scored, rejected = batch.score_rows(model, items, "csv")
    assert not rejected
    return dict(scored)


def test_a_promotion_after_the_first_batch_leaves_the_whole_job_on_its_version(
    store: ModelStore,
    trained_dir: Path,
    house_config: ModelConfig,
    house_dataset: Dataset,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a live model, and another one (a heavily regularised ridge: other predictions)
    first = store.publish(trained_dir)
    store.promote(first.name, first.version)
    ridge = EstimatorConfig(kind="ridge", params={"alpha": 50.0})
    other = house_config.model_copy(update={"estimator": ridge})
    second = store.publish(train_artifact(other, house_dataset, tmp_path / "b").folder)
    settings = BatchSettings(bucket=bucket, model_name="house-prices", cache_dir=tmp_path / "c")
    monkeypatch.setattr(batch_predict_handler, "settings", settings)
    monkeypatch.setattr(batch_predict_handler, "_holders", {})
    # and a file of several batches
    header, *lines = HOUSE_CSV.read_text().splitlines()
    body = "\n".join([header, *lines, *lines, *lines]) + "\n"  # 1,638 rows: 2 batches
    s3.put_object(Bucket=bucket, Key="batch/in/sales.csv", Body=body.encode())
    batches: list[int] = []

    def handle(event: dict[str, Any]) -> Any:
        result = batch_predict_handler.handle(event)
        if "Items" in event:
            batches.append(len(event["Items"]))
            if len(batches) == 1:  # WHEN the alias moves once the first batch is scored
                store.promote(second.name, second.version)
        return result

    invoke = in_process({"BatchPredictFunction": handle})
    machine = StateMachine(load_definition(), invoke, s3, max_concurrency=1, sleep=lambda _: None)
    run = machine.run({"key": "batch/in/sales.csv"}, name="job-promoted")
    # THEN the job succeeds on the first version, every batch scored by it
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert len(batches) >= 2
    record = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/job-promoted/_SUCCESS.json")["Body"].read()
    )
    assert record["model"]["version"] == first.version and record["rows_in"] == 3 * len(lines)
    rows = list(csv.DictReader(io.StringIO(body)))
    pinned = expected(batch_predict_handler.load(first.version), rows)
    promoted = expected(batch_predict_handler.load(second.version), rows)
    assert promoted != pytest.approx(pinned)  # the versions disagree, so the check can fail
    assert predictions(s3, bucket, "batch/job-promoted/out/") == pytest.approx(pinned)
    # and the next job resolves the promoted version
    machine.run({"key": "batch/in/sales.csv"}, name="job-after")
    after = s3.get_object(Bucket=bucket, Key="batch/job-after/_SUCCESS.json")["Body"].read()
    assert json.loads(after)["model"]["version"] == second.version
