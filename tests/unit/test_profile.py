"""The reference profile: training stores what its rows and predictions looked like."""

import json

import numpy as np
import pytest

from sklambda.manifest import Manifest
from sklambda.profile import KS_QUANTILES, ReferenceProfile, numeric_profile

pytestmark = pytest.mark.unit


def test_manifest_carries_a_small_profile_of_every_feature_and_the_predictions(
    trained_dir, house_dataset
):
    raw = json.loads((trained_dir / "manifest.json").read_text())
    profile = ReferenceProfile.model_validate(raw["profile"])
    assert set(profile.features) == set(house_dataset.schema.names)
    assert profile.rows == raw["metrics"]["fit"]["rows"]
    assert len(json.dumps(raw["profile"])) < 12_000  # a few KB for 11 features
    for feature in house_dataset.schema.features:
        shown = profile.features[feature.name]
        total = (
            sum(shown.shares.values()) if shown.kind == "levels" else sum(shown.shares)
        ) + shown.missing
        assert total == pytest.approx(1.0, abs=1e-4), feature.name
        assert shown.kind == ("numeric" if feature.type in ("number", "integer") else "levels")
    lotsize = profile.features["lotsize"]
    assert len(lotsize.edges) == 9 and len(lotsize.quantiles) == KS_QUANTILES
    assert lotsize.quantiles[0] >= 1650.0 and lotsize.quantiles[-1] <= 16200.0
    assert profile.prediction.quantiles[0] < profile.prediction.quantiles[-1]


def test_quantile_bins_hold_about_a_tenth_of_the_rows_each():
    values = np.random.default_rng(0).normal(size=5000)
    profile = numeric_profile(values)
    assert len(profile.shares) == 10
    assert all(share == pytest.approx(0.1, abs=0.005) for share in profile.shares)
    assert profile.missing == 0.0


def test_repeated_integers_get_distinct_edges_and_missing_values_their_own_share():
    values = np.array([1, 1, 1, 2, 2, 3, np.nan, np.nan, 1, 2], dtype=float)
    profile = numeric_profile(values)
    assert profile.edges == sorted(set(profile.edges))
    assert profile.missing == pytest.approx(0.2)
    assert sum(profile.shares) == pytest.approx(0.8)
    assert profile.bin_shares(np.array([np.nan, 1.0]))[-1] == 0.5


def test_a_manifest_without_a_profile_stays_valid(manifest):
    raw = json.loads(manifest.to_json())
    del raw["profile"]
    assert Manifest.model_validate(raw).profile is None
