"""Turn a prediction request (any supported JSON format) into one numpy matrix and predict."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sklambda.artifact import Manifest
from sklambda.errors import DataValidationError, Problem, RequestError
from sklambda.numpy_model import NumpyModel
from sklambda.schema import MAX_PROBLEMS, FeatureSchema

FORMATS_HELP = (
    "send one record {feature: value, ...}, {'instances': [records or lists in schema order]}, "
    "{'dataframe_split': {'columns': [...], 'data': [[...]]}} or {'dataframe_records': [...]}"
)


@dataclass(frozen=True)
class Batch:
    """A decoded request: the encoded matrix, and whether it was a single bare record."""

    X: np.ndarray
    single: bool
    warnings: list[str] = field(default_factory=list)


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
        from sklambda.fastpath import compile_fast  # imports scikit-learn: pickles only

        fast = compile_fast(self.model)
        if fast is not None:
            probe = self.probe_rows()
            try:
                agrees = np.allclose(fast(probe), self.model.predict(probe), rtol=1e-9, atol=0)
            except (ValueError, TypeError, IndexError):
                agrees = False
            if agrees:
                self._predict, self.fast = fast, True

    @property
    def format(self) -> str:
        """What is served: "npz" (numpy arrays, no scikit-learn) or "joblib" (the pickle)."""
        return "npz" if isinstance(self.model, NumpyModel) else "joblib"

    def decode(self, body: Any, max_rows: int) -> Batch:
        """Decode any supported request body; raise RequestError / DataValidationError."""
        return decode_request(self.schema, body, max_rows)

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
        booleans, every category code, and a missing value where a feature is optional."""
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
            if not f.required:
                values.append(float("nan"))
            columns.append(values)
        rows = max(len(v) for v in columns)
        return np.array([[v[i % len(v)] for v in columns] for i in range(rows)], dtype=np.float64)


def decode_request(schema: FeatureSchema, body: Any, max_rows: int) -> Batch:
    if not isinstance(body, Mapping):
        raise RequestError(f"expected a JSON object; {FORMATS_HELP}")
    if "instances" in body:
        rows = _list_of(body["instances"], "instances")
        return _batch(schema, rows, max_rows, "instances")
    if "dataframe_records" in body:
        rows = _list_of(body["dataframe_records"], "dataframe_records")
        return _batch(schema, rows, max_rows, "dataframe_records", records_only=True)
    if "dataframe_split" in body:
        return _dataframe_split(schema, body["dataframe_split"], max_rows)
    if not set(body) & set(schema.names):
        raise RequestError(f"unknown request format (no known feature or key); {FORMATS_HELP}")
    X = schema.encode_records([body])
    return Batch(X, True, _extra_keys([body], schema) + schema.out_of_range(X))


def _batch(
    schema: FeatureSchema, rows: list[Any], max_rows: int, key: str, records_only: bool = False
) -> Batch:
    _check_size(len(rows), max_rows)
    if not rows:
        raise RequestError(f"'{key}' is empty")
    # JSON objects arrive as dicts; one C-level pass spares 10,000 ABC isinstance calls.
    if set(map(type, rows)) == {dict} or all(isinstance(r, Mapping) for r in rows):
        X = schema.encode_records(rows)
        return Batch(X, False, _extra_keys(rows, schema) + schema.out_of_range(X))
    if not records_only and all(isinstance(r, list) for r in rows):
        X = schema.encode_rows(rows)
        return Batch(X, False, schema.out_of_range(X))
    expected = "objects" if records_only else "all objects or all arrays"
    raise DataValidationError(
        f"'{key}' must hold {expected}",
        [
            Problem(key, f"row is a {type(r).__name__}", i)
            for i, r in enumerate(rows)
            if not isinstance(r, (Mapping, list))
        ][:10]
        or [Problem(key, "objects and arrays are mixed")],
    )


def _dataframe_split(schema: FeatureSchema, split: Any, max_rows: int) -> Batch:
    if not isinstance(split, Mapping) or not isinstance(split.get("columns"), list):
        raise RequestError(
            "'dataframe_split' needs 'columns' (a list) and 'data' (a list of lists)"
        )
    columns: list[Any] = split["columns"]
    if not all(isinstance(name, str) for name in columns):
        raise RequestError("'dataframe_split.columns' must be a list of strings (feature names)")
    data = _list_of(split.get("data"), "dataframe_split.data")
    _check_size(len(data), max_rows)
    if not data:
        raise RequestError("'dataframe_split.data' is empty")
    bad = [
        Problem("dataframe_split.data", f"expected {len(columns)} values", i)
        for i, r in enumerate(data)
        if not isinstance(r, list) or len(r) != len(columns)
    ]
    if bad:
        raise DataValidationError("rows do not match 'columns'", bad[:10])
    cols = {
        name: list(values) for name, values in zip(columns, zip(*data, strict=True), strict=True)
    }
    X = schema.encode_columns(cols, len(data))
    extra = sorted(set(cols) - set(schema.names))
    warnings = [f"ignored unknown fields: {', '.join(extra)}"] if extra else []
    return Batch(X, False, warnings + schema.out_of_range(X))


def _list_of(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be a list")
    return value


def _check_size(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise RequestError(
            f"{rows} rows is more than the limit of {max_rows} per request",
            413,
            "payload_too_large",
        )


def _extra_keys(records: Sequence[Mapping[str, Any]], schema: FeatureSchema) -> list[str]:
    known = set(schema.names)
    extra = set().union(*(r.keys() for r in records[:100])) - known
    return [f"ignored unknown fields: {', '.join(sorted(map(str, extra)))}"] if extra else []
