"""Request formats of POST /predict: any supported body -> one encoded numpy matrix.

JSON: one record, `instances` (records, or lists in schema order: TF Serving / KServe V1),
MLflow's `dataframe_split` and `dataframe_records`. CSV (text/csv): with a header row (columns by
name, any order, others ignored with a warning) or without one (values in schema order, as
SageMaker sends them). Values are validated and encoded column-wise by the feature schema
(sklambda.schema; CSV cells as text, as training reads them); under the model's "warn" policy an
unknown category is predicted as missing and the batch's warnings say so. Errors name rows
0-based, in the request (a CSV header is not a row).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sklambda.errors import DataValidationError, Problem, RequestError
from sklambda.schema import MAX_PROBLEMS, FeatureSchema, row_columns

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
    unknown: list[str] = []
    X = schema.encode_records([body], unknown)
    return Batch(X, True, _extra_keys([body], schema) + unknown + schema.out_of_range(X))


def _batch(
    schema: FeatureSchema, rows: list[Any], max_rows: int, key: str, records_only: bool = False
) -> Batch:
    check_size(len(rows), max_rows)
    if not rows:
        raise RequestError(f"'{key}' is empty")
    # JSON objects arrive as dicts; one C-level pass spares 10,000 ABC isinstance calls.
    unknown: list[str] = []
    if set(map(type, rows)) == {dict} or all(isinstance(r, Mapping) for r in rows):
        X = schema.encode_records(rows, unknown)
        return Batch(X, False, _extra_keys(rows, schema) + unknown + schema.out_of_range(X))
    if not records_only and all(isinstance(r, list) for r in rows):
        X = schema.encode_rows(rows, unknown)
        return Batch(X, False, unknown + schema.out_of_range(X))
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
    check_size(len(data), max_rows)
    if not data:
        raise RequestError("'dataframe_split.data' is empty")
    bad = [
        Problem("dataframe_split.data", f"expected {len(columns)} values", i)
        for i, r in enumerate(data)
        if not isinstance(r, list) or len(r) != len(columns)
    ]
    if bad:
        raise DataValidationError("rows do not match 'columns'", bad[:10])
    cols = row_columns(data, columns)
    unknown: list[str] = []
    X = schema.encode_columns(cols, len(data), warnings=unknown)
    extra = sorted(set(cols) - set(schema.names))
    warnings = [f"ignored unknown fields: {', '.join(extra)}"] if extra else []
    return Batch(X, False, warnings + unknown + schema.out_of_range(X))


def parse_csv(body: str | bytes) -> list[list[str]]:
    """CSV text -> its rows of cells (blank lines skipped); 400 when it is not UTF-8 CSV."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RequestError("malformed CSV: the body is not UTF-8 text") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(body, newline=""), strict=True) if row]
    except csv.Error as exc:
        raise RequestError(f"malformed CSV: {exc}") from None
    if not rows:
        raise RequestError("the CSV body has no rows")
    return rows


def decode_csv(schema: FeatureSchema, rows: list[list[str]], max_rows: int) -> Batch:
    """Rows of CSV cells -> a Batch. The first row is a header when a cell of it is a feature
    name (no value a model takes is spelled like one of its features); else every row holds the
    features' values in schema order."""
    names = schema.names
    header = [cell.strip() for cell in rows[0]]
    has_header = bool(set(header) & set(names))
    data = rows[1:] if has_header else rows
    check_size(len(data), max_rows)
    if not data:
        raise RequestError("the CSV body has a header and no rows")
    columns = header if has_header else names
    bad = [
        Problem(None, f"expected {len(columns)} values, got {len(r)}", i)
        for i, r in enumerate(data)
        if len(r) != len(columns)
    ]
    if bad:
        where = "the header" if has_header else f"the schema ({', '.join(names)})"
        raise DataValidationError(
            f"{len(bad):,} CSV row(s) do not match {where}", bad[:MAX_PROBLEMS], {None: len(bad)}
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise RequestError(f"the CSV header repeats {', '.join(duplicated)}")
    cols = row_columns(data, columns)
    unknown: list[str] = []
    X = schema.encode_columns(cols, len(data), text=True, warnings=unknown)
    extra = [c for c in columns if c not in set(names)]
    warnings = [f"ignored unknown columns: {', '.join(extra)}"] if extra else []
    return Batch(X, False, warnings + unknown + schema.out_of_range(X))


def _list_of(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise RequestError(f"'{key}' must be a list")
    return value


def check_size(rows: int, max_rows: int) -> None:
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
