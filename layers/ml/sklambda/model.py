"""The loaded model: a verified artifact in memory with its manifest and schema, predicting from
an encoded float matrix (the numpy form, a pickle's verified fast path, or its own predict)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sklambda.errors import DataValidationError, Problem
from sklambda.manifest import Manifest
from sklambda.numpy_form import NumpyModel
from sklambda.schema import MAX_PROBLEMS, FeatureSchema


@dataclass
class LoadedModel:
    """A verified model in memory with its manifest and schema."""

    manifest: Manifest
    model: Any
    schema: FeatureSchema = field(init=False)
    fast: bool = field(init=False, default=False)
    _predict: Callable[[np.ndarray], np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.schema = self.manifest.feature_schema
        self._predict = self.model.predict
        if isinstance(self.model, NumpyModel):
            self.fast = True  # checked against the pipeline's own predictions when trained
            return
        from sklambda.export import agrees, compile_fast  # imports scikit-learn: pickles only

        fast = compile_fast(self.model)
        if fast is not None and agrees(fast, self.model.predict, self.probe_rows()):
            self._predict, self.fast = fast, True

    @property
    def format(self) -> str:
        """What is served: "npz" (numpy arrays, no scikit-learn) or "joblib" (the pickle)."""
        return "npz" if isinstance(self.model, NumpyModel) else "joblib"

    def predict(self, X: np.ndarray) -> list[float]:
        with np.errstate(all="ignore"):
            predictions: np.ndarray = self._predict(X)
        bad = np.flatnonzero(~np.isfinite(predictions))
        if bad.size:  # finite inputs far outside the training range can overflow (exp of 1e300)
            raise DataValidationError(
                f"{bad.size} row(s) give no finite prediction; inputs far outside the training "
                "range (see GET /model for each feature's min and max)",
                [Problem(None, "prediction is not finite", int(i)) for i in bad[:MAX_PROBLEMS]],
            )
        return predictions.tolist()  # type: ignore[no-any-return]

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
