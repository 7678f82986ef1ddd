"""Batch transform core: every row of a batch is scored or rejected with its reason, a bad row
never sinks its batch, and names that become keys are checked."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from sklambda.batch import Item, part_keys, score_rows
from sklambda.errors import DataValidationError, InvalidNameError
from sklambda.manifest import Manifest
from sklambda.model import LoadedModel
from tests.helpers import HOUSE_CSV

pytestmark = pytest.mark.unit


@pytest.fixture
def model(manifest: Manifest, trained_dir: Path) -> LoadedModel:
    return LoadedModel(manifest, joblib.load(trained_dir / "model.joblib"))


def csv_items(n: int) -> list[Item]:
    with HOUSE_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    return [Item(i, row) for i, row in enumerate(rows)]


def test_every_good_csv_row_is_scored_with_its_line(model: LoadedModel) -> None:
    items = csv_items(50)
    scored, rejected = score_rows(model, items, "csv")
    assert rejected == []
    assert [line for line, _ in scored] == list(range(2, 52))  # the header is line 1
    X = model.schema.encode_columns(
        {k: [it.row[k] for it in items] for k in model.schema.names}, 50, text=True
    )
    assert [p for _, p in scored] == pytest.approx(model.predict(X))


def test_bad_rows_are_rejected_with_every_reason_and_the_rest_scored(model: LoadedModel) -> None:
    items = csv_items(10)
    items[3].row["lotsize"] = "n/a?"
    items[7].row["airco"] = "maybe"
    items[7].row["bedrooms"] = "2.5"
    scored, rejected = score_rows(model, items, "csv")
    assert [line for line, _ in scored] == [2, 3, 4, 6, 7, 8, 10, 11]
    assert [line for line, _ in rejected] == [5, 9]
    assert "lotsize: expected a number, got 'n/a?'" in rejected[0][1]
    assert "bedrooms: expected an integer" in rejected[1][1]
    assert "airco: expected a boolean" in rejected[1][1]


def test_jsonl_records_missing_a_feature_or_not_objects_are_rejected(model: LoadedModel) -> None:
    good: dict[str, Any] = {
        "lotsize": 5850, "bedrooms": 3, "bathrms": 1, "stories": 2, "driveway": "yes",
        "recroom": "no", "fullbase": "yes", "gashw": "no", "airco": "no", "garagepl": 1,
        "prefarea": "no",
    }  # fmt: skip
    partial = {k: v for k, v in good.items() if k != "stories"}
    items = [Item(100, good), Item(101, partial), Item(102, [1, 2]), Item(103, good)]
    scored, rejected = score_rows(model, items, "jsonl")
    assert [line for line, _ in scored] == [101, 104]  # JSON Lines: index + 1
    assert rejected == [(102, "stories: missing feature"), (103, "expected a JSON object")]


def test_a_csv_without_a_feature_column_fails_the_batch(model: LoadedModel) -> None:
    items = csv_items(3)
    for item in items:
        del item.row["stories"]
    with pytest.raises(DataValidationError, match="no column stories"):
        score_rows(model, items, "csv")


@pytest.mark.parametrize(("job", "part"), [("../x", 0), ("a/b", 0), ("", 0), ("j1", -1)])
def test_job_ids_and_part_numbers_are_validated(job: str, part: int) -> None:
    with pytest.raises(InvalidNameError):
        part_keys(job, part)


def test_part_keys_are_zero_padded_under_the_job() -> None:
    assert part_keys("job-1", 500) == (
        "batch/job-1/out/part-0000000500.csv",
        "batch/job-1/rejected/part-0000000500.csv",
    )


def test_a_row_without_a_finite_prediction_is_rejected_alone(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    j = model.schema.names.index("lotsize")
    # GIVEN a model that overflows on a huge lot size (as exp() of a log target can)
    monkeypatch.setattr(model, "_predict", lambda X: np.where(X[:, j] > 1e9, np.inf, 1.0))
    items = csv_items(4)
    items[2].row["lotsize"] = "1e12"
    scored, rejected = score_rows(model, items, "csv")
    assert scored == [(2, 1.0), (3, 1.0), (5, 1.0)]
    assert rejected == [(4, "prediction is not finite (inputs far outside the training range)")]
