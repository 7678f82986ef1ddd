"""Explanations: each original feature's contribution to a prediction, on the model's own scale,
with the base value they add to: base + sum(contributions) == the model's raw prediction.

The scale is the one the model adds up on, named in every explanation:
- "identity": the target's units (a regressor); "log": log(target) (a log-transformed target,
  or a HistGradientBoosting loss with a log link: poisson, gamma);
- "logit": the log-odds of one class (a binary logistic regression or gradient boosting);
- "softmax": per class, the scores whose softmax is the probabilities (multiclass logistic
  regression and gradient boosting; shifting every class's score by the same amount changes
  nothing, so a score means something only next to the other classes');
- "probability": per class, the probability itself (random forests average their trees'
  class probabilities).

Linear models (the numpy form): exact, coefficient x (value - training mean) over the expanded
columns; the base is the prediction at the training means. The means are written into model.npz
at training (sklambda.artifact); a model.npz from before has none, and neither has the pickle
(scikit-learn keeps imputation medians, not column means), so such a version answers 409 and is
explained once retrained: an explanation without the means would be relative to an all-zeros
row, a base no reader expects.

Tree models (random forests, gradient boosting, histogram gradient boosting): per-tree path
attribution (Saabas): each row walks each tree from the root to its leaf, and each split's change
in node value goes to the feature split on. Along a path the changes add up to the leaf's value
minus the root's, so base (the trees' root values, plus a boosting model's initial raw
prediction; HistGradientBoosting stores its roots as 0, so its base is its baseline prediction)
+ the contributions is exactly the raw prediction. The walk is numpy over every tree
at once, one step per level, from the fitted arrays (`tree_` for scikit-learn trees, the
predictors' node records for HistGradientBoosting), taking the branches the estimators take
(scikit-learn trees compare the value rounded to float32; NaN goes where the node says).

Expanded columns (one-hot levels, missing-value indicators, log transforms) are summed back to
the feature they come from (`owners`). numpy only, except where a pickle is explained (trees):
scikit-learn is imported then anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sklambda.classes import Label
from sklambda.errors import RequestError, SklambdaError
from sklambda.numpy_form import Block, NumpyModel
from sklambda.options import query_value


class ExplanationUnavailableError(SklambdaError):
    """A model version that cannot explain its predictions (409: the request is fine, the
    version is not; retraining it writes what explanations need)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, [], 409, "explanations_unavailable")


def requested(value: Any, where: str) -> bool:
    """The `explain` option as given in the body or V2 parameters (a JSON boolean) or the query
    string (sklambda.options: `true` or `false`); 400 for anything else."""
    if where == "query" and isinstance(value, str):
        value = query_value(value)
    if isinstance(value, bool):
        return value
    shown = repr(value) if isinstance(value, (str, int, float)) else type(value).__name__
    raise RequestError(f"'explain' ({where}) must be true or false, got {shown[:40]}")


@dataclass(frozen=True)
class Explanation:
    """Per row, each feature's contribution to each output column, and the base value of each
    column: base + contributions.sum(axis=1) == the raw prediction, shape (rows, columns).

    columns: the classes of a classifier (one column per class, in the manifest's order; a
    binary logit's two columns are the score of the second class and its negative), () for a
    regressor (one column)."""

    scale: str
    base: np.ndarray  # (k,)
    contributions: np.ndarray  # (n, features, k)
    features: tuple[str, ...]
    columns: tuple[Label, ...] = ()
    positive: int = 1  # the column a binary classifier's reply shows

    def raw(self) -> np.ndarray:
        """The predictions on the explanation's scale: base + the sum of contributions."""
        total: np.ndarray = self.base + self.contributions.sum(axis=1)
        return total

    @property
    def multiclass(self) -> bool:
        return len(self.columns) > 2

    @property
    def shown_class(self) -> Label | None:
        """The class a binary classifier's explanation is of (its positive class)."""
        return self.columns[self.positive] if len(self.columns) == 2 else None

    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """(base, contributions) as replies carry them: a regressor's or a binary classifier's
        positive class's, shapes (1,) and (rows, features); a multiclass model's every class's,
        shapes (classes,) and (rows, classes, features)."""
        if self.multiclass:
            return self.base, self.contributions.transpose(0, 2, 1)
        column = self.positive if self.columns else 0
        return self.base[column : column + 1], self.contributions[:, :, column]

    def as_json(self) -> dict[str, Any]:
        """The reply's `explanations`. A regressor's, or a binary classifier's for its positive
        class (named by `class`): {"scale", "base": number, "contributions": [{feature:
        number}, ...]}. A multiclass model's, per class: {"scale", "base": {class: number},
        "contributions": [{class: {feature: number}}, ...]}."""
        names = self.features
        base, contributions = self.shown()
        out: dict[str, Any] = {"scale": self.scale}
        if not self.multiclass:
            if self.columns:
                out["class"] = self.shown_class
            out["base"] = float(base[0])
            out["contributions"] = [
                dict(zip(names, row, strict=True)) for row in contributions.tolist()
            ]
            return out
        keys = [str(c) for c in self.columns]
        out["base"] = dict(zip(keys, base.tolist(), strict=True))
        out["contributions"] = [
            {
                key: dict(zip(names, values, strict=True))
                for key, values in zip(keys, row, strict=True)
            }
            for row in contributions.tolist()
        ]
        return out


class Explainer(Protocol):
    def explain(self, X: np.ndarray) -> Explanation:
        """The explanation of encoded rows (the schema's float matrix)."""
        ...


def owners(blocks: Sequence[Block]) -> np.ndarray:
    """For each column the preprocessing blocks output, in order, the index of the schema
    feature it comes from (a one-hot block gives a column per kept level of each feature)."""
    out: list[int] = []
    for block in blocks:
        for j, col in enumerate(block.cols.tolist()):
            width = len(block.categories[j]) if block.categories is not None else 1
            out.extend([col] * width)
    return np.asarray(out, dtype=np.intp)


def _two_sided(base: np.ndarray, contributions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A binary model's one logit (of the second class) as two columns: the first class's
    log-odds is its negative."""
    return np.concatenate([-base, base]), np.concatenate([-contributions, contributions], axis=2)


def _scale(inverse: str, estimator_scale: str = "identity") -> str:
    """A regressor's scale: a log target's, or its estimator's own link; not both at once."""
    if inverse == "exp" and estimator_scale != "identity":
        raise ExplanationUnavailableError(
            "explanations are not available for a log target with a non-identity loss"
        )
    return "log" if inverse == "exp" else estimator_scale


# --- linear models (the numpy form) --------------------------------------------------------


@dataclass(frozen=True)
class LinearExplainer:
    """coefficient x (value - training mean), per expanded column, summed per feature."""

    form: NumpyModel
    weights: np.ndarray  # (k, expanded columns, features): coefficient where a column is owned
    base: np.ndarray  # (k,)
    means: np.ndarray
    features: tuple[str, ...]
    classes: tuple[Label, ...]
    scale: str

    @classmethod
    def of(
        cls, form: NumpyModel, features: tuple[str, ...], classes: tuple[Label, ...]
    ) -> LinearExplainer:
        if form.coef is None:
            raise ExplanationUnavailableError("this model has no coefficients to explain")
        if form.means is None:
            raise ExplanationUnavailableError(
                "this model version has no explanation data (the training means of its "
                "columns); retrain it to explain its predictions"
            )
        coef = np.atleast_2d(form.coef)  # (k, p): one row per class score
        owned = owners(form.blocks)
        grouping = (owned[:, None] == np.arange(len(features))[None, :]).astype(np.float64)
        weights = coef[:, :, None] * grouping[None, :, :]
        base = np.atleast_1d(np.asarray(form.intercept, dtype=np.float64)) + coef @ form.means
        if form.link:
            scale = "logit" if form.link == "logistic" else "softmax"
        else:
            scale = _scale(form.inverse)
        return cls(form, weights, base, form.means, features, classes, scale)

    def explain(self, X: np.ndarray) -> Explanation:
        centred = self.form.transform(X) - self.means
        contributions = np.einsum("np,kpf->nfk", centred, self.weights)
        base = self.base
        if self.scale == "logit":
            base, contributions = _two_sided(base, contributions)
        return Explanation(self.scale, base, contributions, self.features, self.classes)


# --- tree models -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forest:
    """Every tree of a model in one set of node arrays (global node indices; a leaf's children
    are itself, so a walk that reaches it stays and adds nothing)."""

    feature: np.ndarray  # (N,) the expanded column a node splits on (0 at a leaf)
    owner: np.ndarray  # (N,) the schema feature of that column
    threshold: np.ndarray  # (N,) left when value <= threshold
    missing_left: np.ndarray  # (N,) where NaN goes
    left: np.ndarray
    right: np.ndarray
    internal: np.ndarray  # (N,) bool
    value: np.ndarray  # (N, k): the node's value, times its tree's weight, in its column
    roots: np.ndarray  # (T,)
    depth: int
    float32: bool  # scikit-learn's trees compare the value rounded to float32
    base: np.ndarray  # (k,): the initial raw prediction + the weighted root values

    def contributions(self, Xt: np.ndarray, n_features: int) -> np.ndarray:
        """(n, n_features, k): each row's per-feature sum of its paths' value changes."""
        n, k = Xt.shape[0], self.value.shape[1]
        Z = Xt.astype(np.float32).astype(np.float64) if self.float32 else Xt
        rows = np.arange(n)[:, None]
        nodes = np.broadcast_to(self.roots, (n, self.roots.size))
        columns = np.arange(k)
        out = np.zeros(n * n_features * k)
        for _ in range(self.depth):
            x = Z[rows, self.feature[nodes]]
            with np.errstate(invalid="ignore"):
                go_left = np.where(
                    np.isnan(x), self.missing_left[nodes], x <= self.threshold[nodes]
                )
            child = np.where(go_left, self.left[nodes], self.right[nodes])
            delta = self.value[child] - self.value[nodes]  # (n, T, k)
            slot = (rows * n_features + self.owner[nodes]) * k
            out += np.bincount(
                (slot[..., None] + columns).ravel(), weights=delta.ravel(), minlength=out.size
            )
            nodes = child
            if not self.internal[nodes].any():
                break
        return out.reshape(n, n_features, k)


@dataclass
class _Trees:
    """Accumulates trees into a Forest with `k` output columns; `owned`: each expanded
    column's schema feature."""

    k: int
    owned: np.ndarray
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)
    depth: int = 0
    size: int = 0

    def add(self, *, leaf: np.ndarray, value: np.ndarray, depth: int, **nodes: np.ndarray) -> None:
        """One tree: `nodes` feature, threshold, missing_left, left, right (local indices,
        anything at a leaf), and its values (N, k), already weighted."""
        own = np.arange(leaf.size)
        self.parts.append(
            {
                "feature": np.where(leaf, 0, nodes["feature"]).astype(np.intp),
                "threshold": np.asarray(nodes["threshold"], dtype=np.float64),
                "missing_left": np.asarray(nodes["missing_left"], dtype=bool),
                "left": np.where(leaf, own, nodes["left"]).astype(np.intp) + self.size,
                "right": np.where(leaf, own, nodes["right"]).astype(np.intp) + self.size,
                "internal": ~leaf,
                "value": value,
                "root": np.array([self.size]),
            }
        )
        self.size += leaf.size
        self.depth = max(self.depth, depth)

    def sklearn_tree(self, tree: Any, weight: float, column: int | None) -> None:
        """A scikit-learn Tree: its node values times `weight`, into `column` (a boosting
        stage's score) or, with None, every column (a forest's; a classifier's node values made
        class probabilities, as its predict_proba makes them)."""
        raw = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
        if column is None:
            if raw.shape[1] > 1:
                totals = raw.sum(axis=1, keepdims=True)
                raw = raw / np.where(totals == 0, 1.0, totals)
            value = raw * weight
        else:
            value = np.zeros((raw.shape[0], self.k))
            value[:, column] = raw[:, 0] * weight
        self.add(
            leaf=tree.children_left == -1,
            value=value,
            depth=int(tree.max_depth),
            feature=tree.feature,
            threshold=tree.threshold,
            missing_left=tree.missing_go_to_left,
            left=tree.children_left,
            right=tree.children_right,
        )

    def hist_tree(self, nodes: np.ndarray, shrinkage: float, column: int) -> None:
        """A HistGradientBoosting predictor's node records: leaves are stored shrunk (times the
        learning rate), inner nodes not; both are put on the leaves' footing. A root is stored
        as 0 (the baseline before it is the loss's optimum): the base is the baseline."""
        if nodes["is_categorical"].any():
            raise ExplanationUnavailableError("explanations do not cover categorical splits")
        leaf = nodes["is_leaf"].astype(bool)
        value = np.zeros((leaf.size, self.k))
        value[:, column] = np.where(leaf, nodes["value"], nodes["value"] * shrinkage)
        self.add(
            leaf=leaf,
            value=value,
            depth=int(nodes["depth"].max()),
            feature=nodes["feature_idx"],
            threshold=nodes["num_threshold"],
            missing_left=nodes["missing_go_to_left"],
            left=nodes["left"],
            right=nodes["right"],
        )

    def forest(self, initial: np.ndarray, float32: bool) -> Forest:
        def joined(name: str) -> np.ndarray:
            return np.concatenate([p[name] for p in self.parts])

        feature, value, roots = joined("feature"), joined("value"), joined("root")
        return Forest(
            feature=feature,
            owner=self.owned[feature],
            threshold=joined("threshold"),
            missing_left=joined("missing_left"),
            left=joined("left"),
            right=joined("right"),
            internal=joined("internal"),
            value=value,
            roots=roots,
            depth=self.depth,
            float32=float32,
            base=initial + value[roots].sum(axis=0),
        )


def _forest(estimator: Any, owned: np.ndarray, k: int) -> tuple[Forest, str]:
    """The Forest of a fitted tree ensemble, and its own scale ("identity" for a regressor's
    identity link: the target's transform is the caller's)."""
    from sklearn import ensemble

    if isinstance(estimator, (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor)):
        trees = _Trees(k, owned)
        for tree in estimator.estimators_:
            trees.sklearn_tree(tree.tree_, 1.0 / len(estimator.estimators_), None)
        return trees.forest(np.zeros(k), float32=True), "probability" if k > 1 else "identity"
    if isinstance(
        estimator, (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor)
    ):
        init = estimator.init_
        if not (isinstance(init, str) or type(init).__name__.startswith("Dummy")):
            raise ExplanationUnavailableError("explanations need the default init estimator")
        stages = estimator.estimators_  # (stages, scores): one score for a binary task
        trees = _Trees(stages.shape[1], owned)
        for stage in stages:
            for column, tree in enumerate(stage):
                trees.sklearn_tree(tree.tree_, estimator.learning_rate, column)
        # The default init estimator predicts a constant: its raw prediction for any row.
        initial = np.asarray(estimator._raw_predict_init(np.zeros((1, owned.size)))[0], float)
        return trees.forest(initial, float32=True), _score_scale(k)
    if isinstance(
        estimator,
        (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor),
    ):
        trees = _Trees(estimator.n_trees_per_iteration_, owned)
        for iteration in estimator._predictors:
            for column, predictor in enumerate(iteration):
                trees.hist_tree(predictor.nodes, estimator.learning_rate, column)
        initial = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
        if k == 1 and type(estimator._loss.link).__name__ != "IdentityLink":
            return trees.forest(initial, float32=False), "log"  # poisson, gamma: a log link
        return trees.forest(initial, float32=False), _score_scale(k)
    raise ExplanationUnavailableError(
        f"explanations are not available for {type(estimator).__name__}"
    )


@dataclass(frozen=True)
class TreeExplainer:
    """Saabas path attribution over a fitted forest or boosting model, after the numpy
    preprocessing blocks of its pipeline."""

    prep: NumpyModel
    forest: Forest
    features: tuple[str, ...]
    classes: tuple[Label, ...]
    scale: str

    @classmethod
    def of(
        cls,
        prep: NumpyModel,
        estimator: Any,
        features: tuple[str, ...],
        classes: tuple[Label, ...],
    ) -> TreeExplainer:
        forest, scale = _forest(estimator, owners(prep.blocks), max(len(classes), 1))
        return cls(
            prep, forest, features, classes, scale if classes else _scale(prep.inverse, scale)
        )

    def explain(self, X: np.ndarray) -> Explanation:
        contributions = self.forest.contributions(self.prep.transform(X), len(self.features))
        base = self.forest.base
        if self.scale == "logit":
            base, contributions = _two_sided(base, contributions)
        return Explanation(self.scale, base, contributions, self.features, self.classes)


def _score_scale(columns: int) -> str:
    """A boosting model's raw scores: a regressor's values, a binary logit, softmax scores."""
    return {1: "identity", 2: "logit"}.get(columns, "softmax")


def explainer_for(model: Any, features: tuple[str, ...], classes: tuple[Label, ...]) -> Explainer:
    """The explainer of a served model: the numpy form (linear), or a pickle (its numpy
    preprocessing and its trees; a linear pickle has no training means: 409)."""
    if isinstance(model, NumpyModel):
        return LinearExplainer.of(model, features, classes)
    from sklambda.export import export  # a pickle: scikit-learn is imported already

    exported = export(model)
    if exported is None:
        raise ExplanationUnavailableError("explanations are not available for this pipeline")
    form, estimator = exported
    if estimator is None:
        raise ExplanationUnavailableError(
            "this model version has no explanation data in its pickle: a linear model is "
            "explained from its numpy form (model.npz, served unless MODEL_FORMAT=joblib; "
            "retrain a version written before it held the training means)"
        )
    return TreeExplainer.of(form, estimator, features, classes)
