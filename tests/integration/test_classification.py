"""A classifier through the registry on a moto S3 server: publish, serve from the bucket (the
numpy form), and retrain through the gate on log loss (lower is better)."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from sklambda.artifact import train_artifact
from sklambda.config import load_config
from sklambda.data import parse_csv, prepare
from sklambda.manifest import Manifest
from sklambda.retrain import Retrainer, RetrainRequest
from sklambda.serving import ModelHolder
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore
from tests.helpers import PENGUINS_CONFIG, PENGUINS_CSV, cold_predict

pytestmark = pytest.mark.integration

DATA_KEY = "datasets/penguins/penguins.csv"
CONTENT = PENGUINS_CSV.read_bytes()


def rows_of(content: bytes) -> tuple[list[str], list[list[str]]]:
    header, *body = list(csv.reader(io.StringIO(content.decode())))
    return header, body


def as_csv(header: list[str], body: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    return out.getvalue().encode()


def three_in_four() -> bytes:
    """Three rows in four (the file is sorted by species: every species is in them)."""
    header, body = rows_of(CONTENT)
    return as_csv(header, [r for i, r in enumerate(body) if i % 4 != 3])


def shuffled_species(seed: int = 3) -> bytes:
    header, body = rows_of(CONTENT)
    j = header.index("species")
    labels = [r[j] for r in body]
    random.Random(seed).shuffle(labels)
    return as_csv(
        header, [[*r[:j], label, *r[j + 1 :]] for r, label in zip(body, labels, strict=True)]
    )


def without_species(name: str) -> bytes:
    header, body = rows_of(CONTENT)
    j = header.index("species")
    return as_csv(header, [r for r in body if r[j] != name])


@pytest.fixture
def champion(store: ModelStore, tmp_path: Path) -> Manifest:
    """Penguins trained on three rows in four, published and live."""
    config = load_config(PENGUINS_CONFIG)
    data = prepare(config, parse_csv(three_in_four(), "three-in-four.csv"))
    manifest = store.publish(train_artifact(config, data, tmp_path / "penguins").folder)
    store.promote(manifest.name, manifest.version)
    return manifest


def retrain(store: ModelStore, s3: Any, bucket: str, content: bytes) -> Any:
    s3.put_object(Bucket=bucket, Key=DATA_KEY, Body=content)
    return Retrainer(store).run(RetrainRequest(model="penguins"))


def test_a_published_classifier_is_served_from_the_bucket_without_scikit_learn(
    store: ModelStore, bucket: str, champion: Manifest, tmp_path: Path
) -> None:
    settings = ServingSettings(bucket=bucket, model_name="penguins", cache_dir=tmp_path / "cache")
    model = ModelHolder(settings, lambda: store).get()
    assert model.format == "npz" and model.manifest.version == champion.version
    assert model.classes == ("Adelie", "Chinstrap", "Gentoo")
    X = model.schema.encode_records(
        [{"island": "Biscoe", "bill_length_mm": 48.6, "bill_depth_mm": 16.0,
          "flipper_length_mm": 230, "body_mass_g": 5800, "sex": "male"}]
    )  # fmt: skip
    answer = model.answer(X)
    assert answer.predictions == ["Gentoo"]
    assert answer.probability_records()[0]["Gentoo"] > 0.9


def test_more_data_retrains_the_classifier_through_the_log_loss_gate(
    store: ModelStore, s3: Any, bucket: str, champion: Manifest
) -> None:
    record = retrain(store, s3, bucket, CONTENT)
    assert record.status in ("promoted", "rejected"), record.reason
    assert record.gate["metric"] == "log_loss" and record.gate["direction"] == "lower"
    assert record.champion["scored_on"] == "new_holdout"
    champion_score = record.champion["holdout"]["log_loss"]
    challenger_score = record.challenger["metrics"]["holdout"]["log_loss"]
    assert record.challenger["metrics"]["baseline"]["log_loss"] > challenger_score
    # lower is better: promoted exactly when within 1% (relative) of the champion, or better
    within = (challenger_score - champion_score) / champion_score <= 0.01
    assert (record.status == "promoted") == within, record.reason
    run = json.loads(
        s3.get_object(Bucket=bucket, Key=f"models/penguins/runs/{record.run_id}.json")[
            "Body"
        ].read()
    )
    assert run["challenger"]["metrics"]["confusion_matrix"]["labels"] == [
        "Adelie",
        "Chinstrap",
        "Gentoo",
    ]


def test_shuffled_species_hold_the_run_for_a_person(
    store: ModelStore, s3: Any, bucket: str, champion: Manifest
) -> None:
    record = retrain(store, s3, bucket, shuffled_species())
    assert record.status == "held", record.reason
    assert "log_loss" in record.reason and "a person decides" in record.reason
    assert store.resolve("penguins").version == champion.version


def test_a_champion_that_knows_other_classes_is_not_scored_on_the_new_data(
    store: ModelStore, s3: Any, bucket: str, champion: Manifest
) -> None:
    record = retrain(store, s3, bucket, without_species("Chinstrap"))
    assert record.champion["scored_on"] == "none"
    assert record.challenger["metrics"]["confusion_matrix"]["labels"] == ["Adelie", "Gentoo"]
    assert record.status in ("promoted", "rejected"), record.reason


def test_a_classifier_cold_start_from_its_numpy_form_imports_no_scikit_learn(
    store: ModelStore, bucket: str, champion: Manifest, tmp_path: Path
) -> None:
    """A fresh interpreter: import the handler, answer events/penguins_predict.json; sklearn,
    scipy and joblib stay unloaded."""
    result = cold_predict(bucket, "penguins", "penguins_predict", tmp_path / "cache")
    assert result["heavy"] == []
    assert result["reply"]["species"] == "Gentoo"
    assert set(result["reply"]["probabilities"][0]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_a_batch_part_of_the_classifier_carries_each_class_probability(
    s3: Any, bucket: str, store: ModelStore, champion: Manifest, tmp_path: Path
) -> None:
    from sklambda.batch import Item, score_batch

    settings = ServingSettings(bucket=bucket, model_name="penguins", cache_dir=tmp_path / "cache")
    model = ModelHolder(settings, lambda: store).get()
    with PENGUINS_CSV.open(newline="") as f:
        rows = list(csv.DictReader(f))[:6]  # row 3 (line 5) has no measurements: still scored
    rows[1]["island"] = "Atlantis"  # an island the model does not know: rejected
    result = score_batch(
        s3, bucket, "job-p", model, [Item(i, r) for i, r in enumerate(rows)], fmt="csv"
    )
    assert (result.out, result.rejected) == (5, 1)
    body = s3.get_object(Bucket=bucket, Key=result.out_key)["Body"].read().decode()
    out = list(csv.DictReader(io.StringIO(body)))
    assert list(out[0]) == [
        "line",
        "prediction",
        "probability_Adelie",
        "probability_Chinstrap",
        "probability_Gentoo",
    ]
    assert [r["line"] for r in out] == ["2", "4", "5", "6", "7"]
    assert all(r["prediction"] == "Adelie" for r in out)
    for r in out:
        assert sum(float(r[k]) for k in list(r)[2:]) == pytest.approx(1.0)
