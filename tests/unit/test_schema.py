"""Feature schema: every kind of value is encoded or refused with the field and row named."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sklambda.errors import DataValidationError
from sklambda.schema import Feature, FeatureSchema

pytestmark = pytest.mark.unit

SCHEMA = FeatureSchema(
    (
        Feature("area", "number", transform="log", min=10.0, max=100.0),
        Feature("rooms", "integer", min=1.0, max=5.0),
        Feature("garden", "boolean"),
        Feature("city", "category", categories=("a", "b")),
        Feature("age", "number", required=False),
    )
)
GOOD = {"area": 50, "rooms": 3, "garden": "yes", "city": "b", "age": 7.5}


def test_good_record_encodes_in_schema_order():
    X = SCHEMA.encode_records([GOOD])
    assert X.tolist() == [[50.0, 3.0, 1.0, 1.0, 7.5]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, 1.0),
        (False, 0.0),
        ("yes", 1.0),
        ("No", 0.0),
        ("true", 1.0),
        (1, 1.0),
        (0, 0.0),
        ("1", 1.0),
        ("0", 0.0),
    ],
)
def test_booleans_accept_common_spellings(value, expected):
    assert SCHEMA.encode_records([{**GOOD, "garden": value}])[0, 2] == expected


def test_optional_feature_may_be_null_or_absent():
    X = SCHEMA.encode_records(
        [{**GOOD, "age": None}, {k: v for k, v in GOOD.items() if k != "age"}]
    )
    assert math.isnan(X[0, 4])
    assert math.isnan(X[1, 4])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("area", "big", "expected a number"),
        ("area", True, "expected a number"),
        ("area", -5, "greater than 0"),
        ("area", float("nan"), "finite"),
        ("area", float("inf"), "finite"),
        ("rooms", 2.5, "integer"),
        ("garden", "maybe", "boolean"),
        ("city", "c", "unknown category"),
        ("city", 3, "string category"),
        ("rooms", None, "required"),
        ("rooms", [1], "expected a number"),
        ("city", {"x": 1}, "string category"),
    ],
)
def test_bad_value_is_reported_with_field_and_row(field, value, message):
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_records([GOOD, {**GOOD, field: value}])
    problem = err.value.details[0]
    assert (problem.field, problem.row) == (field, 1)
    assert message in problem.message


def test_missing_feature_is_reported_per_row():
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_records([{k: v for k, v in GOOD.items() if k != "rooms"}])
    assert err.value.details[0].as_dict() == {
        "field": "rooms",
        "message": "missing feature",
        "row": 0,
    }


def test_every_bad_value_is_reported_not_only_the_first():
    with pytest.raises(DataValidationError) as err:
        SCHEMA.encode_records([{**GOOD, "rooms": "x", "city": "zz"}, {**GOOD, "area": 0}])
    assert {(p.field, p.row) for p in err.value.details} == {("rooms", 0), ("city", 0), ("area", 1)}


def test_rows_in_schema_order_match_records():
    row = [GOOD[name] for name in SCHEMA.names]
    np.testing.assert_array_equal(SCHEMA.encode_rows([row]), SCHEMA.encode_records([GOOD]))


def test_row_of_wrong_length_is_refused():
    with pytest.raises(DataValidationError, match="schema"):
        SCHEMA.encode_rows([[1, 2]])


def test_csv_text_is_parsed_with_missing_markers():
    columns = {"area": ["50"], "rooms": [" 3 "], "garden": ["yes"], "city": ["a"], "age": ["NA"]}
    X = SCHEMA.encode_columns(columns, 1, text=True)
    assert X[0, :4].tolist() == [50.0, 3.0, 1.0, 0.0]
    assert math.isnan(X[0, 4])


def test_out_of_range_values_are_flagged():
    X = SCHEMA.encode_records([{**GOOD, "rooms": 9}])
    assert SCHEMA.out_of_range(X) == [
        "rooms: 1 value(s) outside the training range [1, 5] (rows 0)"
    ]


def test_schema_round_trips_through_dicts():
    assert FeatureSchema.from_list(SCHEMA.as_list()) == SCHEMA


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "c", "yes", "no", "1", "x"]),
    st.lists(st.integers(), max_size=1),
)


@given(
    st.lists(
        st.fixed_dictionaries(dict.fromkeys(SCHEMA.names, json_values)), min_size=1, max_size=5
    )
)
def test_fast_path_agrees_with_value_by_value_conversion(records):
    """Whatever the input, the vectorised path and the precise path give the same answer."""
    expected: list[list[float]] = []
    valid = True
    for record in records:
        row = []
        for f in SCHEMA.features:
            try:
                row.append(f.convert(record[f.name], text=False))
            except ValueError:
                valid = False
        expected.append(row)
    if valid:
        np.testing.assert_array_equal(SCHEMA.encode_records(records), np.array(expected))
    else:
        with pytest.raises(DataValidationError):
            SCHEMA.encode_records(records)
