"""sklambda.conformal and its training half: the quantile math, the manifest's record, and the
coverage measured on the holdout, near nominal on the bundled data and on a generated table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sklambda.config import ModelConfig, load_config
from sklambda.conformal import (
    GRID,
    IntervalInfo,
    asked,
    conformal_quantile,
    interval_info,
    requested_coverage,
    residuals,
)
from sklambda.data import Dataset, parse_csv, prepare, read_csv
from sklambda.errors import RequestError
from sklambda.manifest import Manifest
from sklambda.training import train
from tests.generated_tables import hand_config, wide_housing_table
from tests.helpers import churn_config, churn_csv

pytestmark = pytest.mark.unit


def with_evaluation(config: ModelConfig, **changes: Any) -> ModelConfig:
    return config.model_copy(update={"evaluation": config.evaluation.model_copy(update=changes)})


# --- the quantile ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "coverage", "k"),
    [
        (9, 0.9, 9),
        (19, 0.9, 18),
        (99, 0.9, 90),
        (100, 0.9, 91),
        (100, 0.5, 51),
        (99, 0.55, 55),  # (n+1)·0.55 is 55.00000000000001 in floats: not the 56th
        (445, 0.95, 424),
    ],
)
def test_the_quantile_is_the_ceil_n_plus_1_times_coverage_th_smallest(
    n: int, coverage: float, k: int
) -> None:
    # GIVEN scores 1..n, shuffled: the k-th smallest is k
    scores = np.random.default_rng(0).permutation(np.arange(1, n + 1, dtype=float))
    # THEN the half-width is the ceil((n+1)·coverage)-th smallest
    assert k == math.ceil(round((n + 1) * coverage, 9))
    assert conformal_quantile(scores, coverage) == k


@pytest.mark.parametrize(("n", "coverage"), [(8, 0.9), (18, 0.95), (0, 0.5), (98, 0.99)])
def test_a_level_that_n_scores_cannot_promise_has_no_quantile(n: int, coverage: float) -> None:
    assert conformal_quantile(np.arange(n, dtype=float), coverage) is None


def test_levels_too_few_residuals_cannot_promise_are_left_out_of_the_record() -> None:
    scores = np.arange(1, 30, dtype=float)  # 29: 0.98 needs ceil(30·0.98) = 30 > 29
    info = interval_info(
        served=scores,
        calibration=scores,
        holdout=scores,
        default=0.9,
        scale="identity",
        measured_on="test",
    )
    assert info is not None
    assert info.coverages == [c for c in GRID if c <= 0.95]
    nothing = interval_info(
        served=scores[:0],
        calibration=scores,
        holdout=scores,
        default=0.9,
        scale="log",
        measured_on="test",
    )
    assert nothing is None


def test_the_measured_coverage_is_the_share_of_holdout_residuals_within_the_calibrated_width() -> (
    None
):
    calibration = np.arange(1, 20, dtype=float)  # 19 scores: the 0.9 width is the 18th, 18.0
    holdout = np.array([1.0, 17.9, 18.0, 18.1, 50.0])
    info = interval_info(
        served=calibration * 2,
        calibration=calibration,
        holdout=holdout,
        default=0.9,
        scale="identity",
        measured_on="test",
    )
    assert info is not None
    level = info.level(0.9)
    assert level.half_width == 36.0  # from `served`
    assert level.holdout_coverage == pytest.approx(3 / 5)  # from `calibration`


def test_log_scale_residuals_and_asymmetric_bounds() -> None:
    # GIVEN a log-scale record with a 0.9 half-width of ln 2
    assert residuals(np.array([10.0]), np.array([5.0]), "log") == pytest.approx([math.log(2)])
    info = IntervalInfo(
        scale="log",
        default=0.9,
        residual_rows=100,
        holdout_rows=20,
        measured_on="test",
        levels=[{"coverage": 0.9, "half_width": math.log(2)}],  # type: ignore[list-item]
    )
    # THEN the bounds are [p/2, 2p]: on the target's scale, asymmetric around p
    bounds = info.bounds(np.array([100.0, 8.0]), 0.9)
    np.testing.assert_allclose(bounds, [[50.0, 200.0], [4.0, 16.0]])
    identity = info.model_copy(update={"scale": "identity"})
    assert identity.bounds(np.array([100.0]), 0.9)[0] == pytest.approx(
        [100 - math.log(2), 100 + math.log(2)]
    )


def test_an_overflowing_prediction_is_an_infinite_residual_not_nan() -> None:
    assert residuals(np.array([1.0]), np.array([np.inf]), "log").tolist() == [math.inf]


# --- the request option ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "where", "expected"),
    [
        (False, "body", None),
        (True, "body", 0.8),
        (0.9, "body", 0.9),
        (0.5, "parameters", 0.5),
        ("true", "query", 0.8),
        ("false", "query", None),
        ("0.95", "query", 0.95),
        (".5", "query", 0.5),
    ],
)
def test_the_intervals_option_as_json_or_as_query_text(
    value: Any, where: str, expected: float | None
) -> None:
    assert requested_coverage(value, 0.8, where) == expected


@pytest.mark.parametrize(
    ("value", "where"),
    [
        *((v, "body") for v in (None, 0, 1, 1.5, -0.2, "0.9", "true", [0.9], {"c": 1})),
        *((v, "body") for v in (10**400, float("nan"), float("inf"))),
        (10**400, "parameters"),
        *((v, "query") for v in ("", "yes", "abc", "nan", "1", "0", "-0.1", "inf")),
        # text Python's float() reads but the query grammar (sklambda.options) does not
        *((v, "query") for v in ("0.9_0", " 0.9", "0.9 ", "1e-1", "0x1p-1", "TRUE", "+0.9")),
    ],
)
def test_any_other_intervals_value_is_a_400(value: Any, where: str) -> None:
    with pytest.raises(RequestError) as caught:
        requested_coverage(value, 0.9, where)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_intervals"
    assert f"({where})" in caught.value.message


def test_a_level_not_recorded_is_a_400_listing_the_levels() -> None:
    scores = np.arange(1, 200, dtype=float)
    info = interval_info(
        served=scores,
        calibration=scores,
        holdout=scores,
        default=0.9,
        scale="identity",
        measured_on="test",
    )
    with pytest.raises(RequestError) as caught:
        asked(info, 0.93, "body", classifier=False, model="m v")
    assert caught.value.status == 400
    assert "0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99" in caught.value.message


def test_intervals_of_a_classifier_or_a_model_without_them_are_a_400_saying_why() -> None:
    with pytest.raises(RequestError, match="intervals are for regression models"):
        asked(None, True, "body", classifier=True, model="churn v1")
    with pytest.raises(RequestError, match="has no interval data.*retrain"):
        asked(None, 0.9, "body", classifier=False, model="house-prices v1")
    assert asked(None, False, "body", classifier=True, model="churn v1") is None


# --- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> IntervalInfo | None:
    """The intervals of 5,000 generated sales (a log-price ridge, the config a person would
    write): a holdout of ~1,000 rows, where the binomial spread of a 90% coverage is 1 point."""
    folder = tmp_path_factory.mktemp("wide")
    source = wide_housing_table(rows=5_000, seed=12).write_csv(folder / "wide_sales.csv")
    (folder / "hand.toml").write_text(hand_config(source))
    config = load_config(folder / "hand.toml")
    return train(config, prepare(config, read_csv(config.data.source))).intervals


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_holdout_coverage_is_near_nominal_on_a_generated_table(
    generated: IntervalInfo | None, coverage: float
) -> None:
    intervals = generated
    assert intervals is not None and intervals.holdout_rows > 900
    measured = intervals.level(coverage).holdout_coverage
    assert measured == pytest.approx(coverage, abs=0.03)


def test_holdout_coverage_is_near_nominal_on_the_bundled_data(
    house_config: ModelConfig, house_dataset: Dataset
) -> None:
    """Its holdout is ~100 rows (a 90% coverage's binomial spread: 3 points), so the check
    averages the holdouts of ten seeds (each a different hashed split and CV)."""
    measured: dict[float, list[float]] = {0.8: [], 0.9: [], 0.95: []}
    for seed in range(1, 11):
        intervals = train(with_evaluation(house_config, seed=seed), house_dataset).intervals
        assert intervals is not None and intervals.scale == "log"
        for coverage, values in measured.items():
            value = intervals.level(coverage).holdout_coverage
            assert value is not None
            values.append(value)
    for coverage, values in measured.items():
        assert np.mean(values) == pytest.approx(coverage, abs=0.03), (coverage, values)


def test_the_manifest_records_the_configured_default_and_a_grid(manifest: Manifest) -> None:
    intervals = manifest.intervals
    assert intervals is not None
    assert intervals.default == 0.9 and intervals.scale == "log"
    assert intervals.coverages == list(GRID)
    assert intervals.residual_rows == manifest.metrics["train_rows"]
    assert intervals.holdout_rows == manifest.metrics["holdout_rows"]
    widths = [level.half_width for level in intervals.levels]
    assert widths == sorted(widths) and widths[0] > 0
    assert "not fitted or calibrated on" in intervals.measured_on


def test_a_configured_coverage_off_the_grid_is_recorded_and_is_the_default(
    house_config: ModelConfig, house_dataset: Dataset
) -> None:
    intervals = train(
        with_evaluation(house_config, interval_coverage=0.88), house_dataset
    ).intervals
    assert intervals is not None
    assert intervals.default == 0.88 and 0.88 in intervals.coverages
    assert asked(intervals, True, "body", classifier=False, model="m").coverage == 0.88  # type: ignore[union-attr]


def test_an_all_rows_fit_serves_widths_from_every_row_and_says_what_the_holdout_measures(
    house_config: ModelConfig, house_dataset: Dataset
) -> None:
    split = train(house_config, house_dataset).intervals
    every = train(with_evaluation(house_config, final_fit="all_rows"), house_dataset).intervals
    assert split is not None and every is not None
    assert every.residual_rows == len(house_dataset.y) > split.residual_rows
    # the same recipe on the same training split: the same measured coverage
    assert [lv.holdout_coverage for lv in every.levels] == [
        lv.holdout_coverage for lv in split.levels
    ]
    assert "no rows are left to test the served intervals" in every.measured_on


def test_a_classifier_gets_no_intervals() -> None:
    config = churn_config()
    dataset = prepare(config, parse_csv(churn_csv().encode(), "churn.csv"))
    assert train(config, dataset).intervals is None


def test_a_manifest_written_before_intervals_still_loads(manifest: Manifest) -> None:
    raw = manifest.model_dump(mode="json")
    del raw["intervals"]
    assert Manifest.model_validate(raw).intervals is None


def test_the_interval_coverage_setting_is_checked(house_config: ModelConfig) -> None:
    from sklambda.config import parse_config
    from sklambda.errors import ConfigError

    raw = house_config.model_dump(mode="json")
    raw["evaluation"]["interval_coverage"] = 1.2
    with pytest.raises(ConfigError):
        parse_config(raw)


def test_the_bundled_config_trains_intervals_without_a_setting() -> None:
    from tests.helpers import HOUSE_CONFIG

    assert "interval_coverage" not in Path(HOUSE_CONFIG).read_text()
    assert load_config(HOUSE_CONFIG).evaluation.interval_coverage == 0.9


def test_training_show_prints_the_measured_coverage(manifest: Manifest) -> None:
    from training.cli import describe

    intervals = manifest.intervals
    assert intervals is not None
    measured = intervals.measured(0.9)
    assert measured is not None
    text = " ".join(describe(manifest).split())
    assert f"intervals 90% nominal: {measured:.1%} of {intervals.holdout_rows} holdout" in text
