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
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from sklambda.config import EstimatorConfig, ModelConfig
from sklambda.data import Dataset
from sklambda.errors import ConfigError, DataValidationError
from sklambda.schema import Feature, FeatureSchema

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
    """The shipped model, its metrics, the rows it was fitted on (every row with final_fit
    "all_rows"), and the holdout rows the evaluation fit was scored on."""

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
    """Preprocessing + estimator; the target transform wraps the whole pipeline.

    Missing values are modelled, not hidden (each feature's rule is in the manifest, as
    sklambda.schema.Feature.missing). A number, integer or boolean that is not required is
    imputed with its training median and, whatever its share of missing cells, flagged by an
    indicator column, so the model learns what "missing" means instead of taking it for a
    typical value. A category that may be missing (optional, or unknown_categories = "warn")
    gets NaN as a level of its own, after its real levels: linear models drop the first real
    level (one column per category, to stay identifiable as in textbook OLS), never the missing
    one. fit_pipeline gives a missing level with no training rows the training mix of levels.
    """
    idx = {"log": [], "num": [], "cat": []}  # type: dict[str, list[int]]
    for j, f in enumerate(schema.features):
        if f.type == "category":
            idx["cat"].append(j)
        elif f.transform == "log":
            idx["log"].append(j)
        else:
            idx["num"].append(j)
    optional = [j for j in idx["log"] + idx["num"] if not schema.features[j].required]

    def numeric(cols: list[int], log: bool) -> Any:
        steps: list[tuple[str, Any]] = []
        if set(optional) & set(cols):
            steps.append(("impute", SimpleImputer(strategy="median", keep_empty_features=True)))
        if log:
            steps.append(("log", FunctionTransformer(np.log, feature_names_out="one-to-one")))
        return Pipeline(steps) if steps else "passthrough"

    drop = "first" if config.estimator.kind in LINEAR else None
    parts: list[tuple[str, Any, list[int]]] = []
    if idx["log"]:
        parts.append(("log", numeric(idx["log"], True), idx["log"]))
    if idx["num"]:
        parts.append(("num", numeric(idx["num"], False), idx["num"]))
    if idx["cat"]:
        levels = [_levels(schema.features[j]) for j in idx["cat"]]
        encoder = OneHotEncoder(
            categories=levels, drop=drop, handle_unknown="ignore", sparse_output=False
        )
        parts.append(("cat", encoder, idx["cat"]))
    if optional:
        parts.append(("missing", MissingIndicator(features="all"), sorted(optional)))
    pipeline = Pipeline(
        [
            ("prep", ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)),
            ("model", make_estimator(config.estimator, config.evaluation.seed)),
        ]
    )
    if config.target.transform == "log":
        return TransformedTargetRegressor(pipeline, func=np.log, inverse_func=np.exp)
    return pipeline


def _levels(feature: Feature) -> list[float]:
    """A category's one-hot levels: its codes, then NaN (the missing level) when it can be
    missing. NaN last: scikit-learn's rule, and never the level `drop="first"` drops."""
    codes = [float(i) for i in range(len(feature.categories))]
    return codes + [math.nan] if feature.may_be_missing else codes


def fit_pipeline(config: ModelConfig, schema: FeatureSchema, X: np.ndarray, y: np.ndarray) -> Any:
    """build_pipeline fitted on (X, y), every time a model is fitted (CV folds, evaluation,
    final fit), so that each is completed the same way (_complete_missing_levels)."""
    model = build_pipeline(config, schema).fit(X, y)
    if config.estimator.kind in LINEAR:
        _complete_missing_levels(model, X)
    return model


def _complete_missing_levels(model: Any, X: np.ndarray) -> None:
    """Give a missing level with no training row the training mix of its feature's levels.

    Nothing in the training rows says what a missing value of that feature means (an optional
    category that was never empty, or the "warn" policy's unknown values). Least squares leaves
    such a column's coefficient at 0, which predicts a missing value as the reference level: an
    arbitrary level, the one `drop="first"` happened to drop. Its coefficient becomes instead the
    average of the feature's level effects (the reference level's is 0), weighted by how often
    each level occurs in the training rows. The column is all zeros in training, so any value
    fits the training rows exactly as well: the fit is unchanged, only missing values move.
    """
    pipeline = model.regressor_ if isinstance(model, TransformedTargetRegressor) else model
    prep, estimator = pipeline.named_steps["prep"], pipeline.named_steps["model"]
    if "cat" not in prep.named_transformers_:
        return
    encoder = prep.named_transformers_["cat"]
    cols = next(cols for name, _, cols in prep.transformers_ if name == "cat")
    dropped = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(cols)
    position = prep.output_indices_["cat"].start
    coef = estimator.coef_
    for col, levels, drop in zip(cols, encoder.categories_, dropped, strict=True):
        kept = [i for i in range(len(levels)) if i != drop]
        last = len(levels) - 1
        if kept and kept[-1] == last and np.isnan(levels[last]) and not np.isnan(X[:, col]).any():
            share = [float(np.mean(X[:, col] == levels[i])) for i in kept[:-1]]
            effects = coef[position : position + len(kept) - 1]
            coef[position + len(kept) - 1] = float(np.dot(share, effects))
        position += len(kept)


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


def reported_metrics(y_true: np.ndarray, y_pred: np.ndarray, transform: str) -> dict[str, float]:
    """regression_metrics on the target's own scale (the keys the retrain gate compares), and
    for a log target R² and RMSE on the log scale the model is fitted on (r2_log, rmse_log: the
    figures a paper reports for a log-linear model)."""
    out = regression_metrics(y_true, y_pred)
    if transform == "log":
        with np.errstate(all="ignore"):
            on_log = regression_metrics(np.log(y_true), np.log(y_pred))
        out["r2_log"], out["rmse_log"] = on_log["r2"], on_log["rmse"]
    return out


def metric_scales(config: ModelConfig) -> dict[str, str]:
    """Each metric's scale, as the manifest labels it: the target, or log(target)."""
    name = config.target.name
    scales = dict.fromkeys(("r2", "rmse", "mae", "mape"), name)
    if config.target.transform == "log":
        scales |= dict.fromkeys(("r2_log", "rmse_log"), f"log({name})")
    return scales


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
    """k-fold CV on all rows; then the holdout: a fit on the training split, scored on the rows
    it was not fitted on, beside a baseline. The shipped model is that fit (final_fit
    "train_split": a later retrain can score it on the same rows without leakage, see
    holdout_indices) or, with "all_rows", a refit on every row once evaluation is done. "fit"
    holds the shipped model's in-sample metrics on the rows it was fitted on."""
    say = progress or (lambda _msg: None)
    ev = config.evaluation
    transform = config.target.transform
    started = time.perf_counter()
    X, y = dataset.X, dataset.y
    folds = KFold(n_splits=ev.cv_folds, shuffle=True, random_state=ev.seed)
    fold_metrics = []
    for k, (tr, te) in enumerate(folds.split(X), start=1):
        model = fit_pipeline(config, dataset.schema, X[tr], y[tr])
        fold_metrics.append(reported_metrics(y[te], model.predict(X[te]), transform))
        say(f"cv fold {k}/{ev.cv_folds}: r2={fold_metrics[-1]['r2']:.3f}")
    cv = {
        name: {
            "mean": float(np.mean([m[name] for m in fold_metrics])),
            "sd": float(np.std([m[name] for m in fold_metrics], ddof=1)),
        }
        for name in fold_metrics[0]
    }
    tr, te = holdout_indices(dataset, config)
    evaluated = fit_pipeline(config, dataset.schema, X[tr], y[tr])
    holdout = reported_metrics(y[te], evaluated.predict(X[te]), transform)
    # What predicting the training mean scores on the same rows: the bar a model must clear.
    baseline = DummyRegressor(strategy="mean").fit(X[tr], y[tr])
    final, fitted = evaluated, tr
    refit = ""
    if ev.final_fit == "all_rows":
        final, fitted = fit_pipeline(config, dataset.schema, X, y), np.arange(len(y))
        refit = f"; refitted on all {len(y)} rows"
    say(f"fitted on {len(tr)} rows; holdout ({len(te)} rows): r2={holdout['r2']:.3f}{refit}")
    metrics = {
        "primary": ev.primary_metric,
        "scales": metric_scales(config),
        "cv": cv,
        "cv_folds": ev.cv_folds,
        "holdout": holdout,
        "baseline": reported_metrics(y[te], baseline.predict(X[te]), transform),
        "holdout_rows": int(len(te)),
        "train_rows": int(len(tr)),
        "rows": int(len(y)),
        "fit": {
            "rows": int(len(fitted)),
            **reported_metrics(y[fitted], final.predict(X[fitted]), transform),
        },
    }
    return TrainResult(final, metrics, time.perf_counter() - started, fitted, te)


def higher_is_better(metric: str) -> bool:
    return metric == "r2"


def shortfall(metric: str, score: float, reference: float) -> float:
    """How much worse `score` is than `reference`: absolute for r2, relative for error metrics
    (rmse, mae, mape); negative when it is better."""
    if higher_is_better(metric):
        return reference - score
    return (score - reference) / reference if reference > 0 else score - reference
