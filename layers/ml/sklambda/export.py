"""Export: a fitted pipeline -> its numpy form (sklambda.numpy_form), and the one check that an
exported form gives the pipeline's own predictions.

scikit-learn's meta-estimators re-validate inputs and tags on every call: for one row, the
ColumnTransformer + Pipeline + TransformedTargetRegressor stack costs ~0.7 ms here, almost all
overhead. Our schema encoding already guarantees a float matrix of the right shape, so the fitted
pieces can be applied with numpy (sklambda.numpy_form): imputation values, log, one-hot codes
(with a missing level), missing-value indicators, a linear model's coefficients; other
estimators keep their own `predict`. `export` returns None
for anything it does not recognise, and every caller checks the result with `agrees` before
using it (training before writing model.npz, serving before taking the fast path for a pickle),
so the numpy form can never serve a different answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from sklambda.numpy_form import Block, NumpyModel

Predict = Callable[[np.ndarray], np.ndarray]


def export(model: Any) -> tuple[NumpyModel, Any] | None:
    """(numpy form, None) for a linear pipeline; (numpy preprocessing, estimator) for other
    estimators; None when the model has another shape."""
    parts = _parts(model)
    if parts is None:
        return None
    inverse, prep, estimator = parts
    blocks = [
        _block(t, np.asarray(cols, dtype=np.intp))
        for _, t, cols in prep.transformers_
        if not (isinstance(t, str) and t == "drop")
    ]
    kept = tuple(b for b in blocks if b is not None)
    if len(kept) != len(blocks) or not kept:
        return None
    if isinstance(estimator, LogisticRegression):
        return _logistic(kept, estimator)
    if not isinstance(estimator, (LinearRegression, Ridge)):
        return NumpyModel(kept, inverse=inverse), estimator
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    if coef.ndim != 1:
        return None
    return NumpyModel(kept, coef, float(estimator.intercept_), inverse), None


def _logistic(
    blocks: tuple[Block, ...], estimator: LogisticRegression
) -> tuple[NumpyModel, Any] | None:
    """A logistic regression's numpy form: binary (one row of coefficients, the logistic link)
    or multinomial (a row per class, softmax), as its predict_proba computes them."""
    coef = np.asarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    binary = len(estimator.classes_) == 2
    link = "logistic" if binary else "softmax"
    if coef.ndim != 2 or coef.shape[0] != (1 if binary else len(estimator.classes_)):
        return None
    return NumpyModel(blocks, coef, intercept, link=link), None


def output(model: Any) -> Predict:
    """What a model's numpy form must reproduce: a classifier's predict_proba, else predict."""
    method: Predict = model.predict_proba if is_classifier(model) else model.predict
    return method


def agrees(candidate: Predict, reference: Predict, X: np.ndarray) -> bool:
    """Whether `candidate` gives `reference`'s predictions on X (rtol 1e-9): the gate every
    exported form passes before it is written or served. X may hold category codes no model has
    seen, on purpose: scikit-learn's warning about them says nothing to anyone, so it is muted
    here (and only here)."""
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Found unknown categories", UserWarning)
            return bool(np.allclose(candidate(X), reference(X), rtol=1e-9, atol=0))
    except (ValueError, TypeError, IndexError):
        return False


def _parts(model: Any) -> tuple[str, ColumnTransformer, Any] | None:
    """(inverse target transform, preprocessing, estimator) of build_pipeline's shape."""
    inverse = ""
    pipeline = model
    if isinstance(model, TransformedTargetRegressor):
        if model.transformer is not None or model.inverse_func is not np.exp:
            return None
        inverse, pipeline = "exp", model.regressor_
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    prep, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    return (inverse, prep, estimator) if isinstance(prep, ColumnTransformer) else None


def compile_fast(model: Any) -> Predict | None:
    """An equivalent numpy function of `output(model)` (predictions, or a classifier's
    probabilities), or None (unverified: the caller checks it)."""
    exported = export(model)
    if exported is None:
        return None
    numpy_model, estimator = exported
    if estimator is None:
        return numpy_model.predict_proba if numpy_model.link else numpy_model.predict
    own_predict: Predict = output(estimator)  # trees and boosting: their own (fast) predict

    def predict(X: np.ndarray) -> np.ndarray:
        return numpy_model.finish(own_predict(numpy_model.transform(X)))

    return predict


def _block(transformer: Any, cols: np.ndarray) -> Block | None:
    if isinstance(transformer, str):
        return Block(cols) if transformer == "passthrough" else None
    if isinstance(transformer, OneHotEncoder):
        return _one_hot(transformer, cols)
    if isinstance(transformer, MissingIndicator):
        flags_nan = isinstance(transformer.missing_values, float) and np.isnan(
            transformer.missing_values
        )
        flagged = cols[np.asarray(transformer.features_, dtype=np.intp)]
        return Block(flagged, indicator=True) if flags_nan else None
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("only", transformer)]
    fill: np.ndarray | None = None
    log = False
    for _, step in steps:
        if isinstance(step, SimpleImputer) and step.strategy in ("median", "mean") and not log:
            fill = np.asarray(step.statistics_, dtype=np.float64)
        elif isinstance(step, FunctionTransformer) and step.func is np.log and not log:
            log = True
        elif isinstance(step, FunctionTransformer) and step.func is None:
            continue  # a fitted "passthrough" is an identity FunctionTransformer
        else:
            return None
    return Block(cols, fill=fill, log=log)


def _one_hot(encoder: OneHotEncoder, cols: np.ndarray) -> Block | None:
    if encoder.handle_unknown != "ignore":
        return None
    categories = []
    drop = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(cols)
    for cats, dropped in zip(encoder.categories_, drop, strict=True):
        kept = np.asarray(cats, dtype=np.float64)
        if dropped is not None:
            kept = np.delete(kept, int(dropped))
        categories.append(kept)
    return Block(cols, categories=tuple(categories))
