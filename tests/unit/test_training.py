"""Training: quality floor, determinism, textbook OLS, directional checks, every estimator."""

import numpy as np
import pytest

from sklambda.config import parse_config
from sklambda.data import parse_csv, prepare
from sklambda.training import build_pipeline, holdout_indices, regression_metrics, train
from tests.helpers import UNSEEN_CSV

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def house_result(house_config, house_dataset):
    return train(house_config, house_dataset)


def test_default_model_reaches_cv_r2_floor(house_result):
    assert house_result.metrics["cv"]["r2"]["mean"] >= 0.66


def test_training_is_deterministic(house_config, house_dataset, house_result):
    again = train(house_config, house_dataset)
    assert again.metrics == house_result.metrics
    np.testing.assert_array_equal(
        again.model.predict(house_dataset.X), house_result.model.predict(house_dataset.X)
    )


def test_linear_model_is_plain_ols_on_log_price(house_config, house_dataset):
    """Same coefficients as numpy least squares of log(price) on [1, log(lotsize), others]."""
    model = build_pipeline(house_config, house_dataset.schema).fit(house_dataset.X, house_dataset.y)
    X = house_dataset.X.copy()
    X[:, 0] = np.log(X[:, 0])
    design = np.column_stack([np.ones(len(X)), X])
    beta, *_ = np.linalg.lstsq(design, np.log(house_dataset.y), rcond=None)
    ols = model.regressor_.named_steps["model"]
    np.testing.assert_allclose(ols.intercept_, beta[0], rtol=1e-9)
    np.testing.assert_allclose(ols.coef_, beta[1:], rtol=1e-9)
    # Verbeek (2004), ch. 3: log(lotsize) 0.303 (every figure: tests/unit/test_final_fit.py).
    assert round(float(ols.coef_[0]), 3) == 0.303


def test_shipped_model_never_saw_its_holdout_rows(house_config, house_dataset, house_result):
    tr, te = holdout_indices(house_dataset, house_config)
    assert len(tr) + len(te) == len(house_dataset.y) and not set(tr) & set(te)
    assert 0.1 < len(te) / len(house_dataset.y) < 0.3  # holdout_fraction is 0.2
    on_train = build_pipeline(house_config, house_dataset.schema).fit(
        house_dataset.X[tr], house_dataset.y[tr]
    )
    np.testing.assert_allclose(
        house_result.model.predict(house_dataset.X), on_train.predict(house_dataset.X)
    )
    on_price = regression_metrics(house_dataset.y[te], on_train.predict(house_dataset.X[te]))
    assert {k: house_result.metrics["holdout"][k] for k in on_price} == on_price


def test_a_row_keeps_its_side_of_the_holdout_when_data_is_added_or_reordered(
    house_config, house_dataset
):
    """So a retrain never scores the champion on rows it was fitted on."""
    from dataclasses import replace

    first = house_dataset
    _, first_test = holdout_indices(replace(first, X=first.X[:300], y=first.y[:300]), house_config)
    order = np.random.default_rng(1).permutation(len(first.y))  # all rows, shuffled
    grown = replace(first, X=first.X[order], y=first.y[order])
    _, grown_test = holdout_indices(grown, house_config)
    assert set(order[grown_test]) & set(range(300)) == set(first_test)


def test_more_bathrooms_never_lowers_the_price(house_dataset, house_result):
    j = house_dataset.schema.names.index("bathrms")
    base = house_dataset.X.copy()
    more = base.copy()
    more[:, j] += 1
    assert (house_result.model.predict(more) >= house_result.model.predict(base)).all()


def test_metrics_agree_with_scikit_learn():
    from sklearn import metrics as skm

    y, p = np.array([100.0, 200.0, 50.0]), np.array([110.0, 190.0, 70.0])
    assert regression_metrics(y, p) == pytest.approx(
        {
            "r2": skm.r2_score(y, p),
            "rmse": skm.root_mean_squared_error(y, p),
            "mae": skm.mean_absolute_error(y, p),
            "mape": skm.mean_absolute_percentage_error(y, p),
        }
    )


@pytest.mark.parametrize(
    "kind",
    ["linear_regression", "ridge", "gradient_boosting", "random_forest", "hist_gradient_boosting"],
)
def test_unseen_csv_with_categories_and_missing_values_trains_with_every_estimator(kind):
    params = {"n_estimators": 20} if kind in ("gradient_boosting", "random_forest") else {}
    config = parse_config(
        {
            "name": "rents",
            "target": {"name": "rent"},
            "features": [
                {"name": "size", "type": "number", "transform": "log"},
                {"name": "kind", "type": "category"},
                {"name": "floor", "type": "integer", "required": False},
            ],
            "estimator": {"kind": kind, "params": params},
            "evaluation": {"cv_folds": 3},
        }
    )
    data = prepare(config, parse_csv(UNSEEN_CSV.encode(), "rents.csv"))
    result = train(config, data)
    assert result.metrics["cv"]["r2"]["mean"] > 0.5
    new = np.array([[45.0, 2.0, np.nan]])  # a missing optional value is imputed
    assert np.isfinite(result.model.predict(new)).all()


@pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")  # on purpose
def test_unknown_category_code_is_ignored_by_the_encoder():
    config = parse_config(
        {"name": "m", "target": {"name": "y"}, "features": [{"name": "c", "type": "category"}]}
    )
    data = prepare(config, parse_csv(("y,c\n" + "1,a\n2,b\n" * 20).encode(), "t.csv"))
    model = build_pipeline(config, data.schema).fit(data.X, data.y)
    assert np.isfinite(model.predict(np.array([[7.0]]))).all()
