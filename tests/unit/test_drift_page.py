"""drift.html: a self-contained page (inline SVG, no scripts, nothing fetched) from drift.json."""

import re

import numpy as np
import pytest

from sklambda.drift_page import render
from sklambda.monitor import version_drift
from sklambda.profile import reference_profile
from sklambda.schema import Feature, FeatureSchema

pytestmark = pytest.mark.unit


@pytest.fixture
def report():
    rng = np.random.default_rng(0)
    schema = FeatureSchema(
        (
            Feature("size", "number"),
            Feature("<kind>", "category", categories=("a", "b&c")),
        )
    )
    X = np.column_stack([rng.normal(100, 10, 2000), rng.integers(0, 2, 2000)]).astype(float)
    profile = reference_profile(schema, X, X[:, 0])
    live = [{"size": v, "<kind>": "b&c"} for v in rng.normal(120, 10, 300)]
    drift = version_drift(profile, schema, live, [r["size"] for r in live])
    return {
        "model": "house-prices",
        "generated_at": "2026-11-29T06:00:00+00:00",
        "threshold": 0.2,
        "records": 300,
        "drifted": drift["drifted"],
        "versions": [{"version": "v1", "records": 300, **drift, "live_metric": None}],
    }


def test_page_draws_every_feature_and_the_prediction_inline(report):
    page = render(report)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3  # two features and the prediction
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "<script" not in page


def test_page_marks_drifted_features_and_escapes_names(report):
    page = render(report)
    assert "&lt;kind&gt;" in page and "<kind>" not in page
    assert "b&amp;c" in page
    assert page.count('class="drifted"') == len(report["drifted"]) + 1  # + the prediction


def test_a_version_without_a_profile_is_shown_with_its_reason():
    page = render(
        {
            "model": "m",
            "generated_at": "t",
            "threshold": 0.2,
            "records": 1,
            "drifted": [],
            "versions": [{"version": "v0", "records": 1, "error": "no profile"}],
        }
    )
    assert "no profile" in page and "<svg" not in page


def test_a_shadow_comparison_is_shown_beside_the_champion(report):
    report["versions"][0]["shadow"] = [
        {
            "version": "v2<",
            "rows": 250,
            "agreement": 0.812,
            "agreement_tolerance": 0.05,
            "mean_difference": -1234.5,
            "mean_absolute_difference": 2345.6,
            "live_metric": {"rows": 10, "rmse": 900.0, "mae": 800.0},
            "champion_live_metric": None,
        }
    ]
    page = render(report)
    assert "champion vs shadow" in page and "v2&lt;" in page
    assert "81.2% (within 5%)" in page and "-1,234" in page and "no labels" in page
