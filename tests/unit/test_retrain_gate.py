"""The retrain gate and the retrain function's event parsing, without S3."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sklambda.errors import RequestError
from sklambda.retrain import MIN_HOLDOUT_ROWS, GatePolicy, Scores, gate, request_from_event
from sklambda.settings import RetrainSettings
from tests.helpers import load_event

pytestmark = pytest.mark.unit

POLICY = GatePolicy("r2", tolerance=0.01, floor=None, baseline_margin=0.05, collapse_tolerance=0.25)


def decide(challenger: float, champion: float | None = None, **changes: object) -> str:
    """The gate's decision for an r2 challenger (baseline 0.0, 100 holdout rows) unless `changes`
    names other scores or policy fields."""
    policy = replace(POLICY, **{k: v for k, v in changes.items() if hasattr(POLICY, k)})
    best = None if champion is None else ("v1", champion)
    scores = Scores(
        holdout_rows=100, challenger=challenger, baseline=0.0, champion=champion, best=best
    )
    scores = replace(scores, **{k: v for k, v in changes.items() if hasattr(scores, k)})
    return gate(policy, scores)[0]


def test_r2_tolerance_is_absolute() -> None:
    assert decide(0.700, 0.709) == "promote"
    assert decide(0.698, 0.709) == "rejected"


def test_error_metric_tolerance_is_relative_and_lower_is_better() -> None:
    rmse = {"metric": "rmse", "baseline": 200.0}
    assert decide(101.0, 100.0, **rmse) == "promote"
    assert decide(101.5, 100.0, **rmse) == "rejected"
    assert decide(50.0, 100.0, **rmse) == "promote"


def test_a_challenger_must_beat_the_baseline_by_the_margin_with_no_floor() -> None:
    assert decide(0.04, None) == "rejected"  # R² 0.04 over a mean predictor's 0.0
    assert decide(0.06, None) == "promote"
    assert decide(0.04, None, baseline_margin=0.0) == "promote"
    assert decide(191.0, None, metric="rmse", baseline=200.0) == "rejected"  # 5% better needed
    assert decide(190.0, None, metric="rmse", baseline=200.0) == "promote"


def test_floor_holds_with_or_without_a_champion() -> None:
    assert decide(0.4, None, floor=0.5) == "rejected"
    assert decide(0.9, 0.2, floor=0.95) == "rejected"
    assert decide(120.0, None, metric="rmse", baseline=300.0, floor=100.0) == "rejected"
    assert decide(0.6, None, floor=0.5) == "promote"


def test_a_collapsed_champion_holds_the_run() -> None:
    assert decide(0.7, -1.26, champion_recorded=0.709) == "held"  # broken labels
    assert decide(0.5, 0.45, champion_recorded=0.709) == "held"  # a changed world
    assert decide(0.7, 0.68, champion_recorded=0.709) == "promote"
    ok, reason = gate(POLICY, Scores(100, 0.7, 0.0, champion=-1.26, champion_recorded=0.709))
    assert ok == "held" and "a person decides" in reason


def test_a_sequence_of_small_losses_stops_at_one_tolerance_below_the_best() -> None:
    """Each challenger is 0.6 tolerance worse than the live model: the first passes, the second
    would put the live model 1.2 tolerances below the best, and is rejected."""
    history = [("v1", 0.70)]
    live = 0.70
    decisions = []
    for _ in range(2):
        challenger = live - 0.006
        best = max(history, key=lambda pair: pair[1])
        scores = Scores(100, challenger, 0.0, champion=live, champion_recorded=live, best=best)
        decision, _ = gate(POLICY, scores)
        decisions.append(decision)
        if decision == "promote":
            history.insert(0, ("next", challenger))
            live = challenger
    assert decisions == ["promote", "rejected"]


def test_no_champion_score_passes_on_the_baseline_and_floor_alone() -> None:
    decision, reason = gate(POLICY, Scores(100, 0.3, 0.0))
    assert decision == "promote" and "no champion score" in reason


def test_a_holdout_of_too_few_rows_never_passes() -> None:
    decision, reason = gate(POLICY, Scores(MIN_HOLDOUT_ROWS - 1, 0.99, 0.0))
    assert decision == "rejected" and "too few" in reason
    assert decide(0.99, 0.1, holdout_rows=MIN_HOLDOUT_ROWS) == "promote"


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
