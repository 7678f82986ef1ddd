"""Fit and evaluate a scikit-learn Pipeline from a ModelConfig, deterministically."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from sklambda.classes import Label, decide, json_label, positive_index
from sklambda.config import METRIC_HIGHER_IS_BETTER, EstimatorConfig, ModelConfig, TargetConfig
from sklambda.conformal import IntervalInfo, Scale, interval_info, residuals
from sklambda.data import Dataset
from sklambda.errors import ConfigError, DataValidationError, Problem
from sklambda.schema import Feature, FeatureSchema

# Each task's estimator kinds (sklambda.config.KINDS) as scikit-learn classes.
ESTIMATORS: dict[str, dict[str, type[BaseEstimator]]] = {
    "regression": {
        "linear_regression": LinearRegression,
        "ridge": Ridge,
        "gradient_boosting": GradientBoostingRegressor,
        "random_forest": RandomForestRegressor,
        "hist_gradient_boosting": HistGradientBoostingRegressor,
    },
    "classification": {
        "logistic_regression": LogisticRegression,
        "gradient_boosting": GradientBoostingClassifier,
        "random_forest": RandomForestClassifier,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
    },
}
LINEAR = frozenset({"linear_regression", "ridge", "logistic_regression"})
# Defaults that differ from scikit-learn's, unless the config's params set them: features are
# not scaled here, and lbfgs (scikit-learn's default solver) takes ~1,400 iterations on the
# penguins' grams and millimetres where Newton-Cholesky takes ~10 (same optimum).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"solver": "newton-cholesky", "max_iter": 1000},
}

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
    classes: list[Label] = field(default_factory=list)  # a classifier's, in predict_proba order
    intervals: IntervalInfo | None = None  # a regressor's conformal intervals (sklambda.conformal)


def make_estimator(spec: EstimatorConfig, seed: int, task: str = "regression") -> BaseEstimator:
    cls = ESTIMATORS[task][spec.kind]
    params = {**DEFAULT_PARAMS.get(spec.kind, {}), **spec.params}
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
            ("model", make_estimator(config.estimator, config.evaluation.seed, config.task)),
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
    coef = np.atleast_2d(estimator.coef_)  # a view: one row per class of a classifier
    for col, levels, drop in zip(cols, encoder.categories_, dropped, strict=True):
        kept = [i for i in range(len(levels)) if i != drop]
        last = len(levels) - 1
        if kept and kept[-1] == last and np.isnan(levels[last]) and not np.isnan(X[:, col]).any():
            share = [float(np.mean(X[:, col] == levels[i])) for i in kept[:-1]]
            effects = coef[:, position : position + len(kept) - 1]
            coef[:, position + len(kept) - 1] = effects @ np.asarray(share)
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


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[Label], target: TargetConfig
) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro F1 of the decided labels (the most probable class,
    or the binary threshold's decision), ROC AUC (one-vs-rest for multiclass), log loss and the
    Brier score (binary: of the positive class; multiclass: the sum over classes, averaged over
    rows) of the probabilities, whose columns are `classes`. ROC AUC is left out when a class
    has no row in y_true (it is undefined there)."""
    labels = np.asarray(classes, dtype=object)
    truth = np.asarray(y_true, dtype=object)
    positive = positive_index(classes, target.positive) if len(classes) == 2 else 1
    predicted = labels[decide(proba, target.threshold, positive)]
    onehot = (truth[:, None] == labels[None, :]).astype(np.float64)
    present = onehot.any(axis=0)
    recalls = [
        float(np.mean(predicted[truth == label] == label)) for label in labels[present].tolist()
    ]
    out = {
        "accuracy": float(np.mean(predicted == truth)),
        "balanced_accuracy": float(np.mean(recalls)),
        "f1_macro": _f1_macro(truth, predicted, labels),
    }
    if present.all():
        if len(classes) == 2:
            out["roc_auc"] = float(roc_auc_score(onehot[:, 1], proba[:, 1]))
        else:
            out["roc_auc"] = float(roc_auc_score(onehot, proba, average="macro"))
    out["log_loss"] = float(log_loss(onehot, proba))
    if len(classes) == 2:
        out["brier"] = float(np.mean((proba[:, positive] - onehot[:, positive]) ** 2))
    else:
        out["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    return out


def _f1_macro(truth: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> float:
    """The F1 score of each class, averaged (0 for a class neither true nor predicted, as
    scikit-learn's zero_division=0); on object arrays, which scikit-learn cannot type."""
    scores = []
    for label in labels.tolist():
        hit = int(np.sum((predicted == label) & (truth == label)))
        wrong = int(np.sum(predicted == label)) + int(np.sum(truth == label)) - 2 * hit
        scores.append(2 * hit / (2 * hit + wrong) if hit or wrong else 0.0)
    return float(np.mean(scores))


def confusion_matrix(
    y_true: np.ndarray, proba: np.ndarray, classes: list[Label], target: TargetConfig
) -> list[list[int]]:
    """Rows: the true label; columns: the decided label; both in the order of `classes`."""
    labels = np.asarray(classes, dtype=object)
    positive = positive_index(classes, target.positive) if len(classes) == 2 else 1
    predicted = decide(proba, target.threshold, positive)
    truth = np.asarray(y_true, dtype=object)
    return [
        [int(np.sum((truth == label) & (predicted == j))) for j in range(len(labels))]
        for label in labels.tolist()
    ]


def evaluate(
    config: ModelConfig, model: Any, X: np.ndarray, y: np.ndarray, classes: list[Label]
) -> dict[str, float]:
    """The task's metrics of `model` on (X, y): reported_metrics of its predictions, or
    classification_metrics of its probabilities (columns: `classes`)."""
    if config.task == "regression":
        return reported_metrics(y, model.predict(X), config.target.transform)
    return classification_metrics(y, model.predict_proba(X), classes, config.target)


def class_labels(config: ModelConfig, dataset: Dataset) -> list[Label]:
    """The sorted class labels of a classification dataset (scikit-learn's classes_ order),
    checked: at least two, each with as many rows as CV folds (each fold's training rows then
    hold every class), and a threshold only for two of them. [] for regression."""
    if config.task != "classification":
        return []
    labels, counts = np.unique(dataset.y, return_counts=True)
    classes = [json_label(v) for v in labels.tolist()]
    name, folds = config.target.name, config.evaluation.cv_folds
    if len(classes) < 2:
        raise DataValidationError(f"{name}: every row has the label {classes}; need two or more")
    few = [f"{c!r} ({n})" for c, n in zip(classes, counts.tolist(), strict=True) if n < folds]
    if few:
        raise DataValidationError(
            f"{name}: each class needs at least {folds} rows (cv_folds); too few: " + ", ".join(few)
        )
    target = config.target
    if target.threshold is not None and len(classes) != 2:
        raise ConfigError(
            f"threshold is for a binary task; {name} has {len(classes)} classes "
            f"({', '.join(map(str, classes))})"
        )
    if target.positive is not None:
        try:
            positive_index(classes, target.positive)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return classes


# What sklambda.data.prepare takes from each feature's config into the dataset's schema.
_PREPARED_FROM_CONFIG = ("type", "transform", "required")


def check_dataset(config: ModelConfig, dataset: Dataset) -> None:
    """Refuse a Dataset prepared (sklambda.data.prepare) for another config: the model is
    fitted on its X and schema, and the manifest publishes that schema, so a config with
    other features would otherwise train, and be named for, the dataset's model."""
    problems: list[Problem] = []
    have = {f.name: f for f in dataset.schema.features}
    wanted = {f.name: f for f in config.features}
    for spec in config.features:
        feature = have.get(spec.name)
        if feature is None:
            problems.append(Problem(spec.name, "in the config, not in the dataset"))
            continue
        for key in _PREPARED_FROM_CONFIG:
            mine, theirs = getattr(spec, key), getattr(feature, key)
            if mine != theirs:
                problems.append(
                    Problem(spec.name, f"{key} {mine} in the config, {theirs} in the dataset")
                )
        if spec.categories and tuple(spec.categories) != feature.categories:
            problems.append(Problem(spec.name, "other categories in the config"))
        if spec.type == "category" and feature.unknown != config.unknown_categories:
            problems.append(
                Problem(
                    spec.name,
                    f"unknown_categories {config.unknown_categories} in the config, "
                    f"{feature.unknown} in the dataset",
                )
            )
    problems += [
        Problem(name, "in the dataset, not in the config") for name in have if name not in wanted
    ]
    if problems:
        raise ConfigError(
            "the dataset was prepared for another config; prepare it from this one "
            "(sklambda.data.prepare)",
            problems,
        )
    if list(have) != list(wanted):
        raise ConfigError(
            "the dataset's features are in another order than the config's; prepare it from "
            "this one (sklambda.data.prepare)"
        )


def train(config: ModelConfig, dataset: Dataset, progress: Progress | None = None) -> TrainResult:
    """k-fold CV on all rows (stratified by class for a classifier); then the holdout: a fit on
    the training split, scored on the rows it was not fitted on, beside a trivial baseline
    (the training mean; for a classifier the training class shares, DummyClassifier "prior").
    The shipped model is that fit (final_fit "train_split": a later retrain can score it on the
    same rows without leakage, see holdout_indices) or, with "all_rows", a refit on every row
    once evaluation is done. "fit" holds the shipped model's in-sample metrics on the rows it
    was fitted on; a classifier's metrics add the holdout's confusion matrix. The dataset must
    have been prepared from this config (check_dataset)."""
    check_dataset(config, dataset)
    say = progress or (lambda _msg: None)
    ev = config.evaluation
    primary = ev.primary_metric
    started = time.perf_counter()
    X, y = dataset.X, dataset.y
    classes = class_labels(config, dataset)
    cv, out_of_fold = _cross_validate(config, dataset, classes, say)
    tr, te = holdout_indices(dataset, config)
    if classes:
        absent = sorted(set(classes) - {json_label(v) for v in y[tr].tolist()}, key=str)
        if absent:
            raise DataValidationError(
                f"{config.target.name}: the training split has no row of {absent}; add data"
            )
    evaluated = fit_pipeline(config, dataset.schema, X[tr], y[tr])
    holdout = evaluate(config, evaluated, X[te], y[te], classes)
    if primary not in holdout:
        raise DataValidationError(
            f"{primary} is undefined on the holdout ({len(te)} rows): a class has no row there; "
            "add data or choose another primary_metric"
        )
    # What a trivial model scores on the same rows: the bar a model must clear.
    if classes:
        baseline: Any = DummyClassifier(strategy="prior").fit(X[tr], y[tr])
    else:
        baseline = DummyRegressor(strategy="mean").fit(X[tr], y[tr])
    intervals = None
    if not classes:
        intervals = _intervals(
            config, dataset, split=(tr, te), evaluated=evaluated, out_of_fold=out_of_fold, say=say
        )
    final, fitted = evaluated, tr
    refit = ""
    if ev.final_fit == "all_rows":
        final, fitted = fit_pipeline(config, dataset.schema, X, y), np.arange(len(y))
        refit = f"; refitted on all {len(y)} rows"
    say(
        f"fitted on {len(tr)} rows; holdout ({len(te)} rows): "
        f"{primary}={holdout[primary]:.3f}{refit}"
    )
    metrics: dict[str, Any] = {
        "primary": primary,
        "direction": ev.direction,
    }
    if not classes:
        metrics["scales"] = metric_scales(config)
    metrics |= {
        "cv": cv,
        "cv_folds": ev.cv_folds,
        "holdout": holdout,
        "baseline": evaluate(config, baseline, X[te], y[te], classes),
        "holdout_rows": int(len(te)),
        "train_rows": int(len(tr)),
        "rows": int(len(y)),
        "fit": {"rows": int(len(fitted)), **evaluate(config, final, X[fitted], y[fitted], classes)},
    }
    if classes:
        metrics["confusion_matrix"] = {
            "labels": classes,
            "matrix": confusion_matrix(
                y[te], evaluated.predict_proba(X[te]), classes, config.target
            ),
            "of": "holdout rows: one row per true label, one column per predicted label",
        }
    seconds = time.perf_counter() - started
    return TrainResult(final, metrics, seconds, fitted, te, classes, intervals)


def _cross_validate(
    config: ModelConfig, dataset: Dataset, classes: list[Label], say: Progress
) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """k-fold CV on all rows (stratified by class for a classifier): each metric's mean and sd
    over the folds, and a regressor's out-of-fold predictions (the intervals of an all_rows fit;
    NaN for a classifier)."""
    ev = config.evaluation
    X, y = dataset.X, dataset.y
    if classes:
        split = StratifiedKFold(n_splits=ev.cv_folds, shuffle=True, random_state=ev.seed).split(
            X, y.astype(str)
        )
    else:
        split = KFold(n_splits=ev.cv_folds, shuffle=True, random_state=ev.seed).split(X)
    fold_metrics = []
    out_of_fold = np.full(len(y), np.nan)
    for k, (tr, te) in enumerate(split, start=1):
        model = fit_pipeline(config, dataset.schema, X[tr], y[tr])
        fold_metrics.append(evaluate(config, model, X[te], y[te], classes))
        if not classes:
            out_of_fold[te] = model.predict(X[te])
        score = fold_metrics[-1].get(ev.primary_metric, math.nan)
        say(f"cv fold {k}/{ev.cv_folds}: {ev.primary_metric}={score:.3f}")
    names = [n for n in fold_metrics[0] if all(n in m for m in fold_metrics)]
    cv = {
        name: {
            "mean": float(np.mean([m[name] for m in fold_metrics])),
            "sd": float(np.std([m[name] for m in fold_metrics], ddof=1)),
        }
        for name in names
    }
    return cv, out_of_fold


def _intervals(
    config: ModelConfig,
    dataset: Dataset,
    *,
    split: tuple[np.ndarray, np.ndarray],
    evaluated: Any,
    out_of_fold: np.ndarray,
    say: Progress,
) -> IntervalInfo | None:
    """Cross-conformal intervals (sklambda.conformal) at the configured coverage and the grid's.

    Calibration: out-of-fold residuals of a k-fold over the training split alone (k fits more),
    so the holdout rows stay unseen and the measured coverage is honest. With final_fit
    "train_split" those residuals give the half-widths served with the model fitted on the
    training split, and the holdout measures exactly what a client gets. With "all_rows" the
    served half-widths come from the CV over every row (`out_of_fold`: fits on (k-1)/k of the
    rows, as the served model is on all of them), and the holdout measures the recipe, run on
    the training split. None when the training split is too small for k folds."""
    ev = config.evaluation
    X, y = dataset.X, dataset.y
    tr, te = split
    if len(tr) < 2 * ev.cv_folds:
        say(f"intervals: none; {len(tr)} training rows are too few for {ev.cv_folds} folds")
        return None
    scale: Scale = "log" if config.target.transform == "log" else "identity"
    calibrated = np.empty(len(tr))
    folds = KFold(n_splits=ev.cv_folds, shuffle=True, random_state=ev.seed)
    for fit_rows, out_rows in folds.split(tr):
        model = fit_pipeline(config, dataset.schema, X[tr[fit_rows]], y[tr[fit_rows]])
        calibrated[out_rows] = model.predict(X[tr[out_rows]])
    calibration = residuals(y[tr], calibrated, scale)
    holdout = residuals(y[te], evaluated.predict(X[te]), scale)
    if ev.final_fit == "all_rows":
        served = residuals(y, out_of_fold, scale)
        measured_on = (
            f"the recipe on the training split: the fit on it, with half-widths from its own "
            f"out-of-fold residuals, on the {len(te)} holdout rows. The served model is refitted "
            "on every row and its half-widths are from out-of-fold residuals of every row "
            "(holdout rows included), so no rows are left to test the served intervals"
        )
    else:
        served = calibration
        measured_on = (
            f"the served model and half-widths on the {len(te)} holdout rows it was not fitted "
            "or calibrated on"
        )
    info = interval_info(
        served=served,
        calibration=calibration,
        holdout=holdout,
        default=ev.interval_coverage,
        scale=scale,
        measured_on=measured_on,
    )
    say(f"intervals: {info.summary()}" if info else "intervals: none (too few residuals)")
    return info


def higher_is_better(metric: str) -> bool:
    """The metric's own direction (sklambda.config.METRIC_HIGHER_IS_BETTER)."""
    return METRIC_HIGHER_IS_BETTER[metric]


def shortfall(metric: str, score: float, reference: float, higher: bool | None = None) -> float:
    """How much worse `score` is than `reference`: absolute for a metric where higher is better
    (r2, accuracy, ROC AUC, ...), relative for one where lower is better (rmse, mae, mape, log
    loss, Brier); negative when it is better. `higher`: the direction, when the caller has it
    (a gate policy); else the metric's own."""
    if higher_is_better(metric) if higher is None else higher:
        return reference - score
    return (score - reference) / reference if reference > 0 else score - reference
