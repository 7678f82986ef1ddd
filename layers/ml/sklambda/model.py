"""The loaded model: a verified artifact in memory with its manifest and schema, predicting from
an encoded float matrix (the numpy form, a pickle's verified fast path, or its own predict).
A classifier answers labels and, per row, each class's probability (`answer`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sklambda.classes import Label, decide
from sklambda.errors import DataValidationError, Problem
from sklambda.explain import (
    Explainer,
    Explanation,
    ExplanationUnavailableError,
    explainer_for,
)
from sklambda.manifest import Manifest
from sklambda.numpy_form import NumpyModel
from sklambda.schema import MAX_PROBLEMS, FeatureSchema


@dataclass(frozen=True)
class Answer:
    """Predictions in row order (numbers, or a classifier's labels) and a classifier's
    probabilities: an (n, k) array whose columns are `classes`."""

    predictions: list[Any]
    probabilities: np.ndarray | None = None
    classes: tuple[Label, ...] = ()

    def probability_records(self) -> list[dict[str, float]]:
        """One {label: probability} object per row (JSON keys: labels as text)."""
        if self.probabilities is None:
            return []
        keys = [str(label) for label in self.classes]
        return [dict(zip(keys, row, strict=True)) for row in self.probabilities.tolist()]


@dataclass
class LoadedModel:
    """A verified model in memory with its manifest and schema."""

    manifest: Manifest
    model: Any
    schema: FeatureSchema = field(init=False)
    fast: bool = field(init=False, default=False)
    _predict: Callable[[np.ndarray], np.ndarray] = field(init=False, repr=False)
    _explainer: Explainer | None = field(init=False, default=None, repr=False)
    # A version that cannot explain keeps its 409: a pickle would re-run export() on every
    # /openapi.json and explain request to find that out again.
    _unexplainable: ExplanationUnavailableError | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.schema = self.manifest.feature_schema
        # A classifier's output is its probabilities; the labels are decided from them.
        classifier = self.manifest.classes is not None
        self._predict = self.model.predict_proba if classifier else self.model.predict
        if isinstance(self.model, NumpyModel):
            self.fast = True  # checked against the pipeline's own predictions when trained
            return
        from sklambda.export import agrees, compile_fast  # imports scikit-learn: pickles only

        fast = compile_fast(self.model)
        if fast is not None and agrees(fast, self._predict, self.probe_rows()):
            self._predict, self.fast = fast, True

    @property
    def format(self) -> str:
        """What is served: "npz" (numpy arrays, no scikit-learn) or "joblib" (the pickle)."""
        return "npz" if isinstance(self.model, NumpyModel) else "joblib"

    @property
    def classes(self) -> tuple[Label, ...]:
        """A classifier's labels, in the order of its probability columns; () for regression."""
        info = self.manifest.classes
        return tuple(info.labels) if info is not None else ()

    def answer(self, X: np.ndarray) -> Answer:
        """Predictions for encoded rows (and a classifier's probabilities); 422 naming the rows
        that give no finite answer."""
        with np.errstate(all="ignore"):
            output: np.ndarray = self._predict(X)
        finite = np.isfinite(output) if output.ndim == 1 else np.isfinite(output).all(axis=1)
        bad = np.flatnonzero(~finite)
        if bad.size:  # finite inputs far outside the training range can overflow (exp of 1e300)
            raise DataValidationError(
                f"{bad.size} row(s) give no finite prediction; inputs far outside the training "
                "range (see GET /model for each feature's min and max)",
                [Problem(None, "prediction is not finite", int(i)) for i in bad[:MAX_PROBLEMS]],
            )
        info = self.manifest.classes
        if info is None:
            return Answer(output.tolist())
        chosen = decide(output, info.threshold, info.positive_index)
        labels = [info.labels[i] for i in chosen.tolist()]
        return Answer(labels, output, tuple(info.labels))

    def explain(self, X: np.ndarray) -> Explanation:
        """Each feature's contribution to each row's prediction, on the model's scale
        (sklambda.explain); a binary classifier's shown for its positive class. 409 for a
        version that cannot explain. The explainer is built on first use, then kept."""
        explanation = self._explaining().explain(X)
        info = self.manifest.classes
        return replace(explanation, positive=info.positive_index) if info else explanation

    @property
    def explainable(self) -> bool:
        """Whether `explain` answers (a version without explanation data does not)."""
        try:
            self._explaining()
        except ExplanationUnavailableError:
            return False
        return True

    def _explaining(self) -> Explainer:
        if self._unexplainable is not None:  # a fresh error: no traceback piling up
            raise ExplanationUnavailableError(self._unexplainable.message)
        if self._explainer is None:
            try:
                self._explainer = explainer_for(self.model, tuple(self.schema.names), self.classes)
            except ExplanationUnavailableError as exc:
                self._unexplainable = exc
                raise
        return self._explainer

    def predict(self, X: np.ndarray) -> list[Any]:
        """The predictions alone: numbers, or a classifier's labels."""
        return self.answer(X).predictions

    def sample_row(self) -> np.ndarray:
        """One valid encoded row built from the schema (the warm-up prediction)."""
        return self.probe_rows()[:1]

    def probe_rows(self) -> np.ndarray:
        """Valid encoded rows spanning the schema: training min/mid/max of numbers, both
        booleans, every category code, and a missing value where one can be encoded (an
        optional feature, or a category whose unknown values are predicted as missing)."""
        columns = []
        for f in self.schema.features:
            if f.type == "category":
                values = [float(i) for i in range(max(len(f.categories), 1))]
            elif f.type == "boolean":
                values = [0.0, 1.0]
            elif f.min is not None and f.max is not None:
                values = [(f.min + f.max) / 2, f.min, f.max]
            else:
                values = [1.0]
            if f.may_be_missing:
                values.append(float("nan"))
            columns.append(values)
        rows = max(len(v) for v in columns)
        return np.array([[v[i % len(v)] for v in columns] for i in range(rows)], dtype=np.float64)
