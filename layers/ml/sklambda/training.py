"""Fit and evaluate a scikit-learn Pipeline from a ModelConfig, deterministically."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from sklambda.config import EstimatorConfig, ModelConfig
from sklambda.data import Dataset
from sklambda.errors import ConfigError, DataValidationError
from sklambda.schema import FeatureSchema

ESTIMATORS: dict[str, type[RegressorMixin]] = {
    "linear_regression": LinearRegression,
    "ridge": Ridge,
    "gradient_boosting": GradientBoostingRegressor,
    "random_forest": RandomForestRegressor,
    "hist_gradient_boosting": HistGradientBoostingRegressor,
}
LINEAR = frozenset({"linear_regression", "ridge"})

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    """The shipped model, its metrics, and which rows it was fitted on and tested on."""

    model: Any
    metrics: dict[str, Any]
    seconds: float
    train_rows: np.ndarray
    holdout_rows: np.ndarray


def make_estimator(spec: EstimatorConfig, seed: int) -> RegressorMixin:
    cls = ESTIMATORS[spec.kind]
    params = dict(spec.params)
    if "random_state" in cls().get_params() and "random_state" not in params:
        params["random_state"] = seed
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"estimator {spec.kind}: {exc}") from None


def build_pipeline(config: ModelConfig, schema: FeatureSchema) -> Any:
    """Preprocessing + estimator; the target transform wraps the whole pipeline."""
    idx = {"log": [], "num": [], "cat": []}  # type: dict[str, list[int]]
    for j, f in enumerate(schema.features):
        if f.type == "category":
            idx["cat"].append(j)
        elif f.transform == "log":
            idx["log"].append(j)
        else:
            idx["num"].append(j)
    optional = {j for j, f in enumerate(schema.features) if not f.required}

    def numeric(cols: list[int], log: bool) -> Any:
        steps: list[tuple[str, Any]] = []
        if optional & set(cols):
            steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
        if log:
            steps.append(("log", FunctionTransformer(np.log, feature_names_out="one-to-one")))
        return Pipeline(steps) if steps else "passthrough"

    # Linear models need one column dropped per category to stay identifiable (textbook OLS).
    drop = "first" if config.estimator.kind in LINEAR else None
    parts: list[tuple[str, Any, list[int]]] = []
    if idx["log"]:
        parts.append(("log", numeric(idx["log"], True), idx["log"]))
    if idx["num"]:
        parts.append(("num", numeric(idx["num"], False), idx["num"]))
    if idx["cat"]:
        categories = [
            [float(i) for i in range(len(schema.features[j].categories))] for j in idx["cat"]
        ]
        encoder = OneHotEncoder(
            categories=categories, drop=drop, handle_unknown="ignore", sparse_output=False
        )
        parts.append(("cat", encoder, idx["cat"]))
    pipeline = Pipeline(
        [
            ("prep", ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)),
            ("model", make_estimator(config.estimator, config.evaluation.seed)),
        ]
    )
    if config.target.transform == "log":
        return TransformedTargetRegressor(pipeline, func=np.log, inverse_func=np.exp)
    return pipeline


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R², RMSE, MAE and MAPE (as a fraction), in the target's own units."""
    err = y_pred - y_true
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    nonzero = y_true != 0
    return {
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "mape": float(np.mean(np.abs(err[nonzero] / y_true[nonzero]))) if nonzero.any() else 0.0,
    }


def holdout_indices(dataset: Dataset, config: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of the holdout, decided row by row from a hash of the row.

    A row's side depends only on its values and the seed, never on the file's size or order, so
    when a retrain adds data, rows the champion trained on stay in the training split and rows it
    was tested on stay in the holdout: the champion never scores rows it has seen, and both
    models are compared on exactly the same rows (a plain shuffled split would leak ~80% of the
    new holdout into the champion's training data).
    """
    schema = dataset.schema
    in_test = np.empty(len(dataset.y), dtype=bool)
    for i, (row, target) in enumerate(zip(dataset.X.tolist(), dataset.y.tolist(), strict=True)):
        values = [
            f.categories[int(v)] if f.type == "category" and not math.isnan(v) else repr(v)
            for f, v in zip(schema.features, row, strict=True)
        ]
        key = "\x1f".join([str(config.evaluation.seed), *values, repr(target)]).encode()
        draw = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest()) / 2.0**64
        in_test[i] = draw < config.evaluation.holdout_fraction
    if in_test.all() or not in_test.any():
        raise DataValidationError(
            f"{len(in_test)} rows leave no rows on one side of a "
            f"{config.evaluation.holdout_fraction:g} holdout; add data"
        )
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


def train(config: ModelConfig, dataset: Dataset, progress: Progress | None = None) -> TrainResult:
    """k-fold CV on all rows, then the shipped model: fitted on the training split only.

    The holdout rows are never fitted, so the holdout metrics are this exact model's, and a later
    retrain can score it on the same rows without leakage (see holdout_indices).
    """
    say = progress or (lambda _msg: None)
    ev = config.evaluation
    started = time.perf_counter()
    X, y = dataset.X, dataset.y
    folds = KFold(n_splits=ev.cv_folds, shuffle=True, random_state=ev.seed)
    fold_metrics = []
    for k, (tr, te) in enumerate(folds.split(X), start=1):
        model = build_pipeline(config, dataset.schema).fit(X[tr], y[tr])
        fold_metrics.append(regression_metrics(y[te], model.predict(X[te])))
        say(f"cv fold {k}/{ev.cv_folds}: r2={fold_metrics[-1]['r2']:.3f}")
    cv = {
        name: {
            "mean": float(np.mean([m[name] for m in fold_metrics])),
            "sd": float(np.std([m[name] for m in fold_metrics], ddof=1)),
        }
        for name in fold_metrics[0]
    }
    tr, te = holdout_indices(dataset, config)
    final = build_pipeline(config, dataset.schema).fit(X[tr], y[tr])
    holdout = regression_metrics(y[te], final.predict(X[te]))
    # What predicting the training mean scores on the same rows: the bar a model must clear.
    baseline = DummyRegressor(strategy="mean").fit(X[tr], y[tr])
    say(f"fitted on {len(tr)} rows; holdout ({len(te)} rows): r2={holdout['r2']:.3f}")
    metrics = {
        "primary": ev.primary_metric,
        "cv": cv,
        "cv_folds": ev.cv_folds,
        "holdout": holdout,
        "baseline": regression_metrics(y[te], baseline.predict(X[te])),
        "holdout_rows": int(len(te)),
        "train_rows": int(len(tr)),
        "rows": int(len(y)),
    }
    return TrainResult(final, metrics, time.perf_counter() - started, tr, te)


def higher_is_better(metric: str) -> bool:
    return metric == "r2"


def shortfall(metric: str, score: float, reference: float) -> float:
    """How much worse `score` is than `reference`: absolute for r2, relative for error metrics
    (rmse, mae, mape); negative when it is better."""
    if higher_is_better(metric):
        return reference - score
    return (score - reference) / reference if reference > 0 else score - reference
