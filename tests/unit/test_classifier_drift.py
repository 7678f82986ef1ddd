"""Drift of a classifier: its predictions are labels, profiled as each label's share; the live
metric is accuracy (and balanced accuracy, macro F1); champion and shadow agree on equal labels."""

from typing import Any

import numpy as np
import pytest

from sklambda.drift_page import render
from sklambda.monitor import (
    _Rows,
    classification_metric,
    shadow_comparison,
    version_drift,
)
from sklambda.profile import LevelProfile, numeric_profile, reference_profile
from sklambda.schema import Feature, FeatureSchema

pytestmark = pytest.mark.unit

SCHEMA = FeatureSchema((Feature("tenure", "number"),))
LABELS = ("no", "yes")


def _profile(yes_share: float = 0.3, n: int = 2000) -> Any:
    rng = np.random.default_rng(0)
    X = rng.normal(30, 10, (n, 1))
    predicted = (rng.random(n) < yes_share).astype(float)  # the index of the decided label
    return reference_profile(SCHEMA, X, predicted, classes=LABELS)


def _live(yes_share: float, n: int = 500, seed: int = 1) -> tuple[list[dict[str, Any]], list[str]]:
    rng = np.random.default_rng(seed)
    records = [{"tenure": float(v)} for v in rng.normal(30, 10, n)]
    return records, ["yes" if r < yes_share else "no" for r in rng.random(n)]


def test_a_classifiers_profile_holds_the_share_of_each_predicted_label():
    profile = _profile(0.3)
    assert isinstance(profile.prediction, LevelProfile)
    assert set(profile.prediction.shares) == set(LABELS)
    assert profile.prediction.shares["yes"] == pytest.approx(0.3, abs=0.03)
    assert profile.prediction.missing == 0.0


def test_integer_labels_are_profiled_by_their_text():
    X = np.zeros((4, 1))
    profile = reference_profile(SCHEMA, X, np.array([0.0, 1.0, 1.0, 1.0]), classes=[0, 1])
    assert profile.prediction.shares == {"0": 0.25, "1": 0.75}


def test_the_same_label_mix_does_not_drift_and_string_labels_are_all_read():
    records, labels = _live(0.3)
    drift = version_drift(_profile(0.3), SCHEMA, records, labels, classes=LABELS)
    prediction = drift["prediction"]
    assert prediction["rows"] == 500 and prediction["invalid"] == 0
    assert prediction["psi"] < 0.05 and not prediction["drifted"]
    assert set(prediction["shares"]) >= set(LABELS)


def test_a_moved_label_mix_drifts_the_prediction():
    records, labels = _live(0.7)
    drift = version_drift(_profile(0.3), SCHEMA, records, labels, classes=LABELS)
    assert drift["prediction"]["drifted"] and drift["prediction"]["psi"] > 0.2
    assert drift["prediction"]["shares"]["yes"] == pytest.approx(0.7, abs=0.05)
    assert drift["drifted"] == []  # the features did not move


def test_a_label_the_model_does_not_have_is_counted_as_unknown():
    records, labels = _live(0.3, n=200)
    drift = version_drift(_profile(0.3), SCHEMA, records, ["maybe"] * 200, classes=LABELS)
    assert drift["prediction"]["shares"]["(unknown)"] == 1.0
    assert drift["prediction"]["drifted"]


def test_a_profile_of_class_indices_from_an_older_manifest_still_compares_labels():
    # GIVEN a manifest written before labels were profiled: the predicted index as a number
    rng = np.random.default_rng(4)
    old = reference_profile(SCHEMA, rng.normal(30, 10, (2000, 1)), np.zeros(2000))
    old = old.model_copy(
        update={"prediction": numeric_profile((rng.random(2000) < 0.3).astype(float))}
    )
    # WHEN live labels arrive, THEN they are compared as the same index, none left out
    records, labels = _live(0.3)
    same = version_drift(old, SCHEMA, records, labels, classes=LABELS)["prediction"]
    assert same["rows"] == 500 and same["invalid"] == 0 and not same["drifted"]
    moved = version_drift(old, SCHEMA, *_live(0.8), classes=LABELS)["prediction"]
    assert moved["drifted"]


def test_a_regressor_ignores_a_label_where_a_number_belongs():
    profile = reference_profile(SCHEMA, np.zeros((100, 1)), np.arange(100.0))
    drift = version_drift(profile, SCHEMA, [{"tenure": 1.0}] * 3, [1.0, "high", 2.0])
    assert (drift["prediction"]["rows"], drift["prediction"]["invalid"]) == (2, 1)


def test_classification_metric_on_labelled_rows():
    metric = classification_metric(["a", "a", "a", "b"], ["a", "a", "b", "b"])
    assert metric is not None
    assert metric["rows"] == 4 and metric["accuracy"] == 0.75
    assert metric["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert metric["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert classification_metric([], []) is None


def test_champion_and_shadow_classifiers_agree_on_equal_labels():
    # GIVEN four rows the champion labelled, three of them scored by the shadow, two labelled
    rows = _Rows(
        features=[{}] * 4,
        predictions=["yes", "no", "no", "yes"],
        ids=[("r1", 0), ("r2", 0), ("r3", 0), ("r4", 0)],
    )
    scored: list[tuple[int, float | str]] = [(0, "yes"), (1, "yes"), (3, "yes")]
    labels: dict[tuple[str, int], float | str] = {("r1", 0): "yes", ("r2", 0): "no"}
    # WHEN they are compared
    out = shadow_comparison("v2", scored, rows, labels, classifier=True)
    # THEN agreement is the share of equal labels, and each is scored on the labelled rows
    assert out["rows"] == 3 and out["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert out["mean_difference"] is None
    assert out["live_metric"]["accuracy"] == 0.5
    assert out["champion_live_metric"]["accuracy"] == 1.0
    # ...and drift.html shows it
    records, predictions = _live(0.3, n=50)
    section = version_drift(_profile(0.3), SCHEMA, records, predictions, classes=LABELS)
    page = render(
        {
            "model": "churn",
            "generated_at": "t",
            "threshold": 0.2,
            "records": 4,
            "drifted": [],
            "versions": [
                {
                    "version": "v1",
                    "records": 4,
                    **section,
                    "live_metric": out["champion_live_metric"],
                    "shadow": [out],
                }
            ],
        }
    )
    assert "66.7% (same label)" in page and "accuracy 100.0%" in page
    assert page.count("<svg") == 2  # tenure and the predicted labels
