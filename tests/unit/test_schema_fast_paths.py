"""The schema's fast paths (records gathered in one pass over the rows, lists flattened, columns
validated whole) give what the value-by-value path gives: the same matrix for valid input, the
same errors (fields, rows, messages, true counts) for invalid input. The data: a generated wide
table (tests/generated_tables.py), sent as JSON (records, lists, MLflow's dataframe_split) or CSV
the way a client would."""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import orjson
import pytest

from sklambda.config import FeatureConfig
from sklambda.errors import DataValidationError, Problem, ProblemLog
from sklambda.request_formats import decode_csv, decode_request, parse_csv
from sklambda.schema import MISSING, Feature, FeatureSchema, fit_schema
from tests.generated_tables import TRUE_FEATURES, wide_housing_table

pytestmark = pytest.mark.unit

TABLE = wide_housing_table(rows=300, seed=5)
TRANSFORMS = {name: transform for name, _, transform in TRUE_FEATURES}
CONFIGS = [
    FeatureConfig(
        name=name, type=e.kind, transform=TRANSFORMS.get(name, "none"), required=e.required
    )
    for name, e in TABLE.expected.items()
    if e.decision == "feature"
]


def _fitted() -> tuple[FeatureSchema, np.ndarray]:
    log = ProblemLog()
    schema, matrix = fit_schema(
        CONFIGS, TABLE.columns, TABLE.rows, text=True, unknown="reject", problems=log
    )
    assert not log
    return schema, matrix


SCHEMA, TRAINING = _fitted()


def _json_value(feature: Feature, cell: str) -> Any:
    if cell == "":
        return None
    if feature.type == "integer":
        return int(cell)
    if feature.type == "number":
        return float(cell)
    return cell  # booleans as the table writes them (yes/no, true/false), categories


def _records() -> list[dict[str, Any]]:
    """The table's rows as a client sends them, parsed as the function parses a body (one str
    object per distinct key, shared by every record)."""
    rows = [
        {f.name: _json_value(f, TABLE.columns[f.name][i]) for f in SCHEMA.features}
        for i in range(TABLE.rows)
    ]
    parsed: list[dict[str, Any]] = orjson.loads(json.dumps(rows))
    return parsed


def _value_by_value(schema: FeatureSchema, records: list[dict[str, Any]]) -> Any:
    """The precise path alone: Feature.convert on each value, feature by feature and then row
    by row (the order the schema reports problems in); the matrix, or the error."""
    log = ProblemLog()
    out = np.empty((len(records), len(schema.features)))
    for j, feature in enumerate(schema.features):
        for i, record in enumerate(records):
            try:
                out[i, j] = feature.convert(record.get(feature.name, MISSING), text=False)
            except ValueError as exc:
                log.add(Problem(feature.name, str(exc), i))
    return log.error() if log else out


def _as_error(exc: DataValidationError) -> tuple[str, list[dict[str, Any]], dict[Any, int]]:
    return exc.message, [d.as_dict() for d in exc.details], exc.counts


def test_records_encode_as_the_training_csv_did():
    records = _records()
    X = SCHEMA.encode_records(records)
    np.testing.assert_array_equal(X, TRAINING)  # NaN (an empty optional cell) equals NaN
    np.testing.assert_array_equal(X, _value_by_value(SCHEMA, records))


def test_records_parsed_by_the_json_module_encode_the_same():
    records = json.loads(json.dumps(_records()))
    np.testing.assert_array_equal(SCHEMA.encode_records(records), TRAINING)


def test_records_in_any_key_order_with_extra_keys_encode_the_same():
    rng = random.Random(3)
    records = []
    for i, record in enumerate(_records()):
        items = [*record.items(), (f"note_{i % 3}", "ignored")]
        rng.shuffle(items)
        records.append(dict(items))
    np.testing.assert_array_equal(SCHEMA.encode_records(records), TRAINING)


def test_lists_in_schema_order_encode_as_the_training_csv_did():
    rows = [[record[name] for name in SCHEMA.names] for record in _records()]
    np.testing.assert_array_equal(SCHEMA.encode_rows(rows), TRAINING)


def _features_of(kind: str) -> list[Feature]:
    return [f for f in SCHEMA.features if f.type == kind]


def _log_features() -> list[Feature]:
    return [f for f in SCHEMA.features if f.transform == "log"]


def _required(kind: str) -> list[Feature]:
    return [f for f in _features_of(kind) if f.required]


# Each kind of bad value, with the features it is bad for.
BAD_VALUES: dict[str, tuple[Any, Any]] = {
    "string in a number": (lambda: _features_of("number"), "12a"),
    "numeric string in an integer": (lambda: _features_of("integer"), "3"),
    "boolean in an integer": (lambda: _features_of("integer"), True),
    "fraction in an integer": (lambda: _features_of("integer"), 2.5),
    "non-finite number": (lambda: _features_of("number"), float("inf")),
    "NaN in a number": (lambda: _features_of("number"), float("nan")),
    "integer beyond float64": (lambda: _features_of("integer"), 10**400),
    "zero under a log": (_log_features, 0),
    "unknown category": (lambda: _features_of("category"), "Zz"),
    "number in a category": (lambda: _features_of("category"), 3),
    "array in a category": (lambda: _features_of("category"), ["a"]),
    "object in a boolean": (lambda: _features_of("boolean"), {"x": 1}),
    "unknown boolean": (lambda: _features_of("boolean"), "maybe"),
    "null in a required integer": (lambda: _required("integer"), None),
}


def _corrupted(kind: str, seed: int, count: int = 12) -> list[dict[str, Any]]:
    """The table's records with `count` cells set to one kind of bad value (seeded)."""
    rng = random.Random(seed)
    pick, value = BAD_VALUES[kind]
    features = pick()
    assert features, kind
    records = _records()
    for _ in range(count):
        records[rng.randrange(len(records))][rng.choice(features).name] = value
    return records


@pytest.mark.parametrize("kind", sorted(BAD_VALUES))
def test_bad_records_give_the_errors_of_the_value_by_value_path(kind):
    records = _corrupted(kind, seed=len(kind))
    expected = _value_by_value(SCHEMA, records)
    assert isinstance(expected, DataValidationError)
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_records(records)
    assert _as_error(err.value) == _as_error(expected)


@pytest.mark.parametrize("kind", sorted(BAD_VALUES))
def test_bad_lists_give_the_errors_of_the_value_by_value_path(kind):
    records = _corrupted(kind, seed=len(kind) + 1)
    rows = [[record[name] for name in SCHEMA.names] for record in records]
    expected = _value_by_value(SCHEMA, records)
    assert isinstance(expected, DataValidationError)
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_rows(rows)
    assert _as_error(err.value) == _as_error(expected)


@pytest.mark.parametrize("row", [0, 1, 150, 299])
def test_a_record_without_a_feature_is_named_whichever_row_it_is(row):
    records = _records()
    required = _required("integer")[0].name
    optional = next(f.name for f in SCHEMA.features if not f.required)
    del records[row][required]
    del records[row][optional]  # absent and optional: missing, no problem
    expected = _value_by_value(SCHEMA, records)
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_records(records)
    assert _as_error(err.value) == _as_error(expected)
    assert [(d.field, d.row, d.message) for d in err.value.details] == [
        (required, row, "missing feature")
    ]


def test_an_optional_feature_absent_from_the_first_record_only_is_missing_there():
    records = _records()
    optional = next(f for f in SCHEMA.features if not f.required)
    del records[0][optional.name]
    X = SCHEMA.encode_records(records)
    j = SCHEMA.names.index(optional.name)
    assert np.isnan(X[0, j])
    np.testing.assert_array_equal(np.delete(X, 0, axis=0), np.delete(TRAINING, 0, axis=0))


def test_rows_that_are_not_lists_of_the_schema_width_are_named():
    rows: list[Any] = [[record[name] for name in SCHEMA.names] for record in _records()]
    rows[3] = rows[3][:-1]
    rows[7] = dict(zip(SCHEMA.names, rows[7], strict=True))
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_rows(rows)
    width = len(SCHEMA.names)
    assert [(d.row, d.message.split(", got ")[1]) for d in err.value.details] == [
        (3, str(width - 1)),
        (7, "object"),
    ]
    assert err.value.message == "2 row(s) do not match the feature schema"


@pytest.mark.parametrize(
    ("feature", "values", "expected"),
    [
        (Feature("x", "boolean"), ["yes", "no", True], [1.0, 0.0, 1.0]),
        (Feature("x", "integer"), [3, 10, 0], [3.0, 10.0, 0.0]),
        (Feature("x", "category", categories=("ab", "cd")), ["cd", "ab", "cd"], [1.0, 0.0, 1.0]),
    ],
)
def test_a_schema_of_one_feature_encodes_records_and_lists(feature, values, expected):
    schema = FeatureSchema((feature,))
    records = [{"x": v} for v in values]
    assert schema.encode_records(records)[:, 0].tolist() == expected
    assert schema.encode_rows([[v] for v in values])[:, 0].tolist() == expected


def test_a_csv_body_of_the_table_encodes_as_training_did():
    batch = decode_csv(SCHEMA, parse_csv(TABLE.csv_bytes()), max_rows=TABLE.rows)
    np.testing.assert_array_equal(batch.X, TRAINING)


def test_a_dataframe_split_in_another_column_order_encodes_as_records_do():
    records = _records()
    columns = [*reversed(SCHEMA.names), "note"]
    data = [[record[name] for name in columns[:-1]] + ["ignored"] for record in records]
    body = {"dataframe_split": {"columns": columns, "data": data}}
    batch = decode_request(SCHEMA, body, max_rows=TABLE.rows)
    np.testing.assert_array_equal(batch.X, TRAINING)
    assert batch.warnings[0] == "ignored unknown fields: note"
