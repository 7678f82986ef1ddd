"""sklambda.openapi: the request schema it documents for a model is what the API accepts.

Bodies are drawn around the edges (each form, missing and extra keys, nulls, wrong types,
boolean spellings, categories, sizes); for each, JSON Schema validation against the documented
schema must agree with sklambda.request_formats.decode_request."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sklambda import api, openapi
from sklambda.errors import SklambdaError
from sklambda.request_formats import decode_request
from sklambda.schema import Feature, FeatureSchema

pytestmark = pytest.mark.unit

SCHEMA = FeatureSchema(
    (
        Feature("size", "number", transform="log", min=10.0, max=500.0),
        Feature("rooms", "integer", min=1.0, max=8.0),
        Feature("garden", "boolean"),
        Feature("kind", "category", categories=("flat", "house")),
        Feature("floor", "integer", required=False, min=0.0, max=20.0),
    )
)
MAX_ROWS = 5
GOOD = {"size": 50.0, "rooms": 3, "garden": "yes", "kind": "flat", "floor": 2}


def validator(schema: FeatureSchema = SCHEMA) -> Draft202012Validator:
    document = {
        "components": {
            "schemas": {
                "Record": openapi.record_schema(schema),
                "Row": openapi.row_schema(schema),
            }
        },
        **openapi.request_schema(schema, MAX_ROWS),
    }
    return Draft202012Validator(document)


VALIDATOR = validator()


def accepted(body: Any, schema: FeatureSchema = SCHEMA) -> bool:
    try:
        decode_request(schema, body, MAX_ROWS)
    except SklambdaError:
        return False
    return True


def assert_agrees(body: Any) -> None:
    documented = VALIDATOR.is_valid(body)
    assert documented == accepted(body), (documented, json.dumps(body, default=str)[:300])


# --- values ----------------------------------------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        ["yes", "No", " TRUE ", "y", "N", "1", "0", "maybe", "", "flat", "house", "Flat", "3"]
    ),
    st.just([]),
    st.just({}),
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record = dict(GOOD)
    changed = draw(st.lists(st.sampled_from(SCHEMA.names), max_size=3, unique=True))
    for name in changed if draw(st.booleans()) else []:  # half of them as good as GOOD
        if draw(st.booleans()):
            del record[name]
        else:
            record[name] = draw(VALUES)
    if draw(st.booleans()):
        record[draw(st.sampled_from(["extra", "note"]))] = draw(VALUES)
    return record


@st.composite
def rows(draw: st.DrawFn) -> list[Any]:
    row = [GOOD[name] for name in SCHEMA.names]
    changed = draw(st.lists(st.integers(0, len(row) - 1), max_size=2, unique=True))
    for i in changed if draw(st.booleans()) else []:
        row[i] = draw(VALUES)
    if draw(st.integers(0, 5)) == 0:
        row = row[:-1] if draw(st.booleans()) else [*row, 1]
    return row


def batches(items: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(items, min_size=0, max_size=MAX_ROWS + 1)


BODIES = st.one_of(
    records(),
    st.builds(lambda r: {"instances": r}, batches(st.one_of(records(), rows()))),
    st.builds(lambda r: {"instances": r}, batches(rows())),
    st.builds(lambda r: {"dataframe_records": r}, batches(records())),
    st.builds(
        lambda data: {"dataframe_split": {"columns": SCHEMA.names, "data": data}},
        batches(rows()),
    ),
    st.builds(lambda r, k, v: {**r, k: v}, records(), st.sampled_from(openapi.FORMAT_KEYS), VALUES),
    VALUES,
)


@settings(max_examples=400, deadline=None)
@given(BODIES)
def test_the_documented_schema_accepts_exactly_what_the_api_accepts(body: Any) -> None:
    assert_agrees(body)


@pytest.mark.parametrize(
    "body",
    [
        GOOD,
        {**GOOD, "floor": None},
        {k: v for k, v in GOOD.items() if k != "floor"},
        {**GOOD, "garden": True},
        {**GOOD, "garden": 1.0},
        {**GOOD, "garden": "\tNo \n"},
        {**GOOD, "rooms": 3.0},
        {"instances": [[GOOD[n] for n in SCHEMA.names]]},
        {"dataframe_records": [GOOD], "dataframe_split": "ignored"},
        {"instances": [GOOD], "dataframe_records": "ignored"},
        {"dataframe_split": {"columns": SCHEMA.names, "data": [[GOOD[n] for n in SCHEMA.names]]}},
        {**GOOD, "size": 1e308},
        {**GOOD, "rooms": openapi.INT_MAX},  # rounds to the largest float: still converted
    ],
)
def test_bodies_the_api_takes_are_documented_valid(body: Any) -> None:
    assert accepted(body)
    assert VALIDATOR.is_valid(body)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"dataframe_records": [{}]},
        {**GOOD, "size": 0},
        {**GOOD, "size": -1.0},
        {**GOOD, "rooms": 2.5},
        {**GOOD, "rooms": openapi.INT_MAX + 1},  # float() overflows
        {**GOOD, "rooms": None},
        {**GOOD, "kind": "castle"},
        {**GOOD, "garden": "maybe"},
        {**GOOD, "garden": 2},
        {**GOOD, "instances": 1},
        {"instances": []},
        {"instances": [GOOD] * (MAX_ROWS + 1)},
        {"instances": [GOOD, [GOOD[n] for n in SCHEMA.names]]},
        {"dataframe_records": [[GOOD[n] for n in SCHEMA.names]]},
        {"dataframe_split": {"columns": SCHEMA.names, "data": [[1]]}},
    ],
)
def test_bodies_the_api_refuses_are_documented_invalid(body: Any) -> None:
    assert not accepted(body)
    assert not VALIDATOR.is_valid(body)


def test_a_model_without_required_features_still_needs_one_in_a_record() -> None:
    optional = FeatureSchema((Feature("a", "number", required=False),))
    check = validator(optional)
    for body in ({}, {"b": 1}, {"a": None}, {"a": 1.5}):
        assert check.is_valid(body) == accepted(body, optional), body


def test_a_category_that_warns_takes_any_string() -> None:
    if "unknown" not in Feature.__dataclass_fields__:
        pytest.skip("this Feature has no unknown-category policy")
    lenient = FeatureSchema(
        (Feature("kind", "category", categories=("flat", "house"), unknown="warn"),)
    )
    check = validator(lenient)
    for body in ({"kind": "flat"}, {"kind": "castle"}, {"kind": 3}, {"kind": None}, {}):
        assert check.is_valid(body) == accepted(body, lenient), body


def test_for_model_replaces_the_body_with_the_model_schema_and_examples() -> None:
    static = {
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/predict": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
                }
            }
        },
    }
    before = copy.deepcopy(static)
    document = openapi.for_model(static, SCHEMA, MAX_ROWS, "rents v1", api.EXAMPLE_RECORD)
    assert static == before  # a copy: the cached static document is never changed
    body = document["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True
    media = body["content"]["application/json"]
    assert media["schema"] == {"$ref": "#/components/schemas/PredictBody"}
    assert set(document["components"]["schemas"]) >= {"Record", "Row", "PredictBody"}
    assert "rents v1" in document["info"]["description"]
    # EXAMPLE_RECORD is the house-prices model's: for another model the examples are made from
    # its own schema, and every one is accepted.
    for example in media["examples"].values():
        assert accepted(example["value"]), example
        assert VALIDATOR.is_valid(example["value"]), example
    assert openapi.without_model(static)["paths"]["/predict"]["post"]["requestBody"]["required"]


def test_the_house_prices_example_is_kept_for_the_house_prices_model(manifest: Any) -> None:
    schema = manifest.feature_schema
    record = openapi.example_record(schema, api.EXAMPLE_RECORD)
    assert record == api.EXAMPLE_RECORD
