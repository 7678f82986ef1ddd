"""The retrain gate and the retrain function's event parsing, without S3."""

from __future__ import annotations

import pytest

from sklambda.errors import RequestError
from sklambda.retrain import MIN_HOLDOUT_ROWS, gate, request_from_event
from sklambda.settings import RetrainSettings
from tests.helpers import load_event

pytestmark = pytest.mark.unit

ROWS = 100  # a holdout large enough to compare models on


def passes(metric: str, challenger: float, champion: float | None, **kw: float | None) -> bool:
    options = {"tolerance": 0.01, "floor": None, "holdout_rows": ROWS, **kw}
    return gate(metric, challenger, champion, **options)[0]  # type: ignore[arg-type]


def test_r2_tolerance_is_absolute() -> None:
    assert passes("r2", 0.700, 0.709)
    assert not passes("r2", 0.698, 0.709)


def test_error_metric_tolerance_is_relative_and_lower_is_better() -> None:
    assert passes("rmse", 101.0, 100.0)
    assert not passes("rmse", 101.5, 100.0)
    assert passes("mae", 50.0, 100.0)


def test_floor_holds_with_or_without_a_champion() -> None:
    assert not passes("r2", 0.4, None, floor=0.5)
    assert not passes("r2", 0.9, 0.2, floor=0.95)
    assert not passes("rmse", 120.0, None, floor=100.0)
    assert passes("r2", 0.6, None, floor=0.5)


def test_no_champion_score_passes_on_the_floor_alone() -> None:
    ok, reason = gate("r2", 0.1, None, tolerance=0.01, floor=None, holdout_rows=ROWS)
    assert ok and "no champion score" in reason


def test_a_holdout_of_too_few_rows_never_passes() -> None:
    ok, reason = gate(
        "r2", 0.99, 0.1, tolerance=0.01, floor=None, holdout_rows=MIN_HOLDOUT_ROWS - 1
    )
    assert not ok and "too few" in reason
    assert passes("r2", 0.99, 0.1, holdout_rows=MIN_HOLDOUT_ROWS)


SETTINGS = RetrainSettings(bucket="b", model="house-prices", tolerance=0.02, floor=0.5)


def test_scheduled_event_retrains_every_dataset_file() -> None:
    request = request_from_event(load_event("retrain_schedule"), SETTINGS)
    assert (request.trigger, request.dataset_key, request.model) == (
        "schedule",
        None,
        "house-prices",
    )
    assert (request.tolerance, request.floor) == (0.02, 0.5)


def test_s3_event_under_the_models_datasets_retrains_every_dataset_file() -> None:
    request = request_from_event(load_event("retrain_s3_object_created"), SETTINGS)
    assert (request.trigger, request.dataset_key) == ("s3", None)


def test_s3_event_for_another_prefix_is_refused() -> None:
    event = load_event("retrain_s3_object_created")
    event["detail"]["object"]["key"] = "datasets/other-model/x.csv"
    with pytest.raises(RequestError, match="not under datasets/house-prices/"):
        request_from_event(event, SETTINGS)


def test_manual_event_may_name_one_dataset_key() -> None:
    request = request_from_event({"dataset_key": "datasets/house-prices/2026-11.csv"}, SETTINGS)
    assert (request.trigger, request.dataset_key) == ("manual", "datasets/house-prices/2026-11.csv")
