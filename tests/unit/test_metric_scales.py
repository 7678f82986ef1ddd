"""Metrics on both scales for a transformed target: R² and RMSE on the target's own scale (what
the retrain gate compares) and on the model's log scale (what a paper reports), labelled."""

import numpy as np
import pytest

from sklambda.config import parse_config
from sklambda.data import parse_csv, prepare
from sklambda.training import holdout_indices, regression_metrics, train
from tests.helpers import UNSEEN_CSV
from training.cli import format_metrics

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def house_result(house_config, house_dataset):
    return train(house_config, house_dataset)


def test_a_log_target_is_scored_on_both_scales_and_each_metric_is_labelled(house_result):
    metrics = house_result.metrics
    assert metrics["scales"] == {
        "r2": "price",
        "rmse": "price",
        "mae": "price",
        "mape": "price",
        "r2_log": "log(price)",
        "rmse_log": "log(price)",
    }
    for section in ("holdout", "baseline", "fit"):
        assert set(metrics["scales"]) <= set(metrics[section]), section
    assert set(metrics["scales"]) == set(metrics["cv"])


def test_log_scale_metrics_are_those_of_log_predictions_on_the_same_holdout(
    house_config, house_dataset, house_result
):
    _, test_rows = holdout_indices(house_dataset, house_config)
    y, predicted = (
        house_dataset.y[test_rows],
        house_result.model.predict(house_dataset.X[test_rows]),
    )
    on_price = regression_metrics(y, predicted)
    on_log = regression_metrics(np.log(y), np.log(predicted))
    holdout = house_result.metrics["holdout"]
    # The gate's keys keep their meaning: the target's own scale.
    assert {k: holdout[k] for k in on_price} == on_price
    assert (holdout["r2_log"], holdout["rmse_log"]) == (on_log["r2"], on_log["rmse"])
    assert holdout["r2_log"] != pytest.approx(holdout["r2"], abs=1e-3)


def test_an_untransformed_target_has_one_scale():
    config = parse_config(
        {
            "name": "rents",
            "target": {"name": "rent"},
            "features": [{"name": "size"}, {"name": "kind", "type": "category"}],
            "evaluation": {"cv_folds": 3},
        }
    )
    metrics = train(config, prepare(config, parse_csv(UNSEEN_CSV.encode(), "r.csv"))).metrics
    assert metrics["scales"] == {"r2": "rent", "rmse": "rent", "mae": "rent", "mape": "rent"}
    assert "r2_log" not in metrics["holdout"]


def test_the_cli_table_shows_both_scales_with_their_labels(house_result):
    text = format_metrics(house_result.metrics)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    holdout = house_result.metrics["holdout"]
    assert rows["r2_log"][2] == f"{holdout['r2_log']:.4f}"
    assert rows["rmse_log"][2] == f"{holdout['rmse_log']:.4f}"  # log units: not 1 decimal
    assert rows["rmse"][2] == f"{holdout['rmse']:,.1f}"
    assert "r2_log, rmse_log on log(price); the others on price" in text
