"""Drift statistics against a reference profile: PSI, KS from stored quantiles, level shares."""

import numpy as np
import pytest
from scipy.stats import ks_2samp

from sklambda.monitor import ks_statistic, live_metric, psi, version_drift
from sklambda.profile import numeric_profile, reference_profile
from sklambda.schema import Feature, FeatureSchema

pytestmark = pytest.mark.unit


def test_psi_is_zero_for_the_same_shares_and_large_for_moved_ones():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert psi([0.5, 0.5], [0.9, 0.1]) > 0.2


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_ks_from_stored_quantiles_is_within_two_hundredths_of_ks_on_the_rows(shift):
    rng = np.random.default_rng(1)
    train, live = rng.lognormal(size=2000), rng.lognormal(mean=shift, size=500)
    stored = numeric_profile(train).quantiles
    assert ks_statistic(stored, live) == pytest.approx(
        ks_2samp(train, live).statistic, abs=0.02 + 1e-9
    )


def test_ks_handles_repeated_integer_quantiles():
    rng = np.random.default_rng(2)
    train, live = rng.integers(1, 5, size=1000).astype(float), rng.integers(1, 5, size=400)
    stored = numeric_profile(train).quantiles
    assert ks_statistic(stored, live.astype(float)) == pytest.approx(
        ks_2samp(train, live).statistic,
        abs=0.02 + 1e-9,  # the grid step bounds the error
    )


def test_only_the_shifted_feature_crosses_the_threshold():
    rng = np.random.default_rng(3)
    schema = FeatureSchema(
        (
            Feature("size", "number"),
            Feature("rooms", "integer"),
            Feature("kind", "category", categories=("a", "b", "c")),
            Feature("garage", "boolean"),
        )
    )
    n = 3000

    def rows(size_mean: float, m: int) -> np.ndarray:
        return np.column_stack(
            [
                rng.normal(size_mean, 10, m),
                rng.integers(1, 6, m),
                rng.choice(3, m, p=[0.5, 0.3, 0.2]),
                rng.integers(0, 2, m),
            ]
        ).astype(float)

    X = rows(100, n)
    profile = reference_profile(schema, X, X[:, 0] * 2)
    live = rows(115, 600)
    records = [
        {"size": r[0], "rooms": int(r[1]), "kind": "abc"[int(r[2])], "garage": bool(r[3])}
        for r in live
    ]
    drift = version_drift(profile, schema, records, list(live[:, 0] * 2))
    assert drift["drifted"] == ["size"]
    assert drift["features"]["size"]["psi"] > 0.2
    assert all(drift["features"][f]["psi"] < 0.1 for f in ("rooms", "kind", "garage"))
    assert drift["prediction"]["drifted"]


def test_an_unknown_category_counts_as_drift_not_as_an_error():
    schema = FeatureSchema((Feature("kind", "category", categories=("a", "b")),))
    profile = reference_profile(schema, np.array([[0.0], [1.0]] * 100), np.zeros(200))
    drift = version_drift(profile, schema, [{"kind": "z"}] * 150, [0.0] * 150)
    assert drift["features"]["kind"]["shares"]["(unknown)"] == 1.0
    assert drift["drifted"] == ["kind"]


def test_live_metric_on_labelled_rows():
    metric = live_metric(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert metric is not None
    assert metric["rows"] == 3 and metric["mae"] == pytest.approx(1 / 3)
    assert live_metric(np.array([]), np.array([])) is None
