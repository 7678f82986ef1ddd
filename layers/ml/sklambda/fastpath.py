"""A lean predict path for the pipelines `training.build_pipeline` makes.

scikit-learn's meta-estimators re-validate inputs and tags on every call: for one row, the
ColumnTransformer + Pipeline + TransformedTargetRegressor stack costs ~0.7 ms here, almost all
overhead. Our schema encoding already guarantees a finite float matrix in the right shape, so
the fitted pieces are applied directly with numpy (imputation values, log, one-hot codes, the
linear model's coefficients; other estimators' own `predict`). `compile_fast` returns None for
anything it does not recognise, and the caller checks the result against the pipeline's own
predictions before using it, so the fast path can never serve a different answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

Block = Callable[[np.ndarray], np.ndarray]
Predict = Callable[[np.ndarray], np.ndarray]


def compile_fast(model: Any) -> Predict | None:
    """An equivalent numpy predict function, or None when the model has another shape."""
    inverse: Callable[[np.ndarray], np.ndarray] | None = None
    pipeline = model
    if isinstance(model, TransformedTargetRegressor):
        if model.transformer is not None or model.inverse_func is not np.exp:
            return None
        inverse, pipeline = np.exp, model.regressor_
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    prep, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(prep, ColumnTransformer):
        return None
    blocks = [
        _block(t, np.asarray(cols, dtype=np.intp))
        for _, t, cols in prep.transformers_
        if not (isinstance(t, str) and t == "drop")
    ]
    if any(b is None for b in blocks):
        return None
    parts: list[Block] = [b for b in blocks if b is not None]
    final = _final(estimator)
    if final is None:
        return None

    def predict(X: np.ndarray) -> np.ndarray:
        Xt = np.hstack([part(X) for part in parts]) if len(parts) > 1 else parts[0](X)
        y = final(Xt)
        return inverse(y) if inverse is not None else y

    return predict


def _final(estimator: Any) -> Predict | None:
    if isinstance(estimator, (LinearRegression, Ridge)):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = float(estimator.intercept_)
        if coef.ndim != 1:
            return None
        return lambda Xt: Xt @ coef + intercept
    predict: Predict = estimator.predict  # trees and boosting: their own (fast) predict
    return predict


def _block(transformer: Any, cols: np.ndarray) -> Block | None:
    if isinstance(transformer, str):
        return (lambda X: X[:, cols]) if transformer == "passthrough" else None
    if isinstance(transformer, OneHotEncoder):
        return _one_hot(transformer, cols)
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("only", transformer)]
    funcs: list[Block] = []
    for _, step in steps:
        if isinstance(step, SimpleImputer) and step.strategy in ("median", "mean"):
            funcs.append(_imputer(np.asarray(step.statistics_, dtype=np.float64)))
        elif isinstance(step, FunctionTransformer) and step.func is np.log:
            funcs.append(np.log)
        elif isinstance(step, FunctionTransformer) and step.func is None:
            continue  # a fitted "passthrough" is an identity FunctionTransformer
        else:
            return None

    def apply(X: np.ndarray) -> np.ndarray:
        Z = X[:, cols]
        for func in funcs:
            Z = func(Z)
        return Z

    return apply


def _imputer(fill: np.ndarray) -> Block:
    def impute(Z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.where(np.isnan(Z), fill, Z)
        return out

    return impute


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

    def apply(X: np.ndarray) -> np.ndarray:
        # Unknown codes match no kept category: all zeros, as handle_unknown="ignore" does.
        return np.hstack(
            [
                (X[:, [c]] == kept).astype(np.float64)
                for c, kept in zip(cols, categories, strict=True)
            ]
        )

    return apply
