"""Explanations through the predict handler: `"explain": true` in every JSON request format,
`?explain=true` (also for CSV bodies), V2 infer's `parameters`, the events, and the errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import predict_handler
from sklambda.artifact import train_artifact
from sklambda.config import load_config
from sklambda.data import load_dataset
from sklambda.manifest import Manifest, read_manifest
from sklambda.model import LoadedModel
from sklambda.numpy_form import NumpyModel
from tests.helpers import PENGUINS_CONFIG, FakeLambdaContext, load_event

pytestmark = pytest.mark.unit

RECORD = json.loads(load_event("predict")["body"])
SECOND = json.loads(load_event("predict_batch")["body"])["instances"][1]
NAMES = list(RECORD)


def serve(model: LoadedModel) -> Iterator[LoadedModel]:
    predict_handler.holder.use(model)
    yield model
    predict_handler.holder.reset()
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True


@pytest.fixture
def house(trained_dir: Path, manifest: Manifest) -> Iterator[LoadedModel]:
    """The house-prices model as the predict function serves it: its numpy form."""
    yield from serve(LoadedModel(manifest, NumpyModel.load(trained_dir / "model.npz")))


@pytest.fixture(scope="module")
def penguins_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = load_config(PENGUINS_CONFIG)
    folder = tmp_path_factory.mktemp("penguins") / "penguins"
    return train_artifact(config, load_dataset(config), folder).folder


@pytest.fixture
def penguins(penguins_dir: Path) -> Iterator[LoadedModel]:
    manifest = read_manifest(penguins_dir)
    yield from serve(LoadedModel(manifest, NumpyModel.load(penguins_dir / "model.npz")))


def call(event: dict[str, Any], context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    reply = predict_handler.lambda_handler(event, context)
    return reply["statusCode"], json.loads(reply["body"])


def predict_event(body: Any, query: dict[str, str] | None = None, **headers: str) -> dict[str, Any]:
    event = load_event("predict")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["headers"].update(headers)
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    return event


def assert_adds_up(reply: dict[str, Any]) -> None:
    """base + each row's contributions is the log of its predicted price (a log target)."""
    explanations = reply["explanations"]
    assert explanations["scale"] == "log"
    rows = explanations["contributions"]
    assert len(rows) == len(reply["predictions"])
    for row, predicted in zip(rows, reply["predictions"], strict=True):
        assert list(row) == NAMES
        assert explanations["base"] + sum(row.values()) == pytest.approx(
            np.log(predicted), abs=1e-9
        )


ROW = [RECORD[n] for n in NAMES]
BODIES = {
    "record": {**RECORD, "explain": True},
    "instances": {"instances": [RECORD, SECOND], "explain": True},
    "instances as lists": {"instances": [ROW, ROW], "explain": True},
    "dataframe_split": {"dataframe_split": {"columns": NAMES, "data": [ROW]}, "explain": True},
    "dataframe_records": {"dataframe_records": [RECORD, SECOND], "explain": True},
}


@pytest.mark.parametrize("form", list(BODIES))
def test_every_json_request_format_can_ask_for_explanations(
    house: LoadedModel, lambda_context: FakeLambdaContext, form: str
) -> None:
    status, reply = call(predict_event(BODIES[form]), lambda_context)
    assert status == 200, reply
    assert_adds_up(reply)
    assert "warnings" not in reply  # the option is not taken for an unknown feature


def test_the_explain_event_explains_its_record(
    house: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    status, reply = call(load_event("predict_explain"), lambda_context)
    assert status == 200
    assert_adds_up(reply)
    assert reply["price"] == reply["predictions"][0]  # a single record keeps its target key


def test_the_query_string_asks_for_explanations_also_for_a_csv_body(
    house: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    csv = ",".join(NAMES) + "\n" + ",".join(map(str, ROW)) + "\n"
    event = predict_event(csv, {"explain": "true"}, **{"Content-Type": "text/csv"})
    status, reply = call(event, lambda_context)
    assert status == 200, reply
    assert_adds_up(reply)


def test_without_the_option_or_with_false_there_are_no_explanations(
    house: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    for event in (predict_event(RECORD), predict_event({**RECORD, "explain": False})):
        status, reply = call(event, lambda_context)
        assert status == 200 and "explanations" not in reply
    # the body's value wins over the query string's
    status, reply = call(
        predict_event({**RECORD, "explain": False}, {"explain": "true"}), lambda_context
    )
    assert status == 200 and "explanations" not in reply


@pytest.mark.parametrize(
    ("body", "query"),
    [({**RECORD, "explain": "yes"}, None), ({**RECORD, "explain": 1}, None)]
    + [(RECORD, {"explain": "maybe"}), ({"instances": [RECORD], "explain": None}, None)]
    + [(RECORD, {"explain": text}) for text in ("", "1", "0")],
)
def test_an_explain_option_that_is_not_a_boolean_is_a_400_in_the_one_error_shape(
    house: LoadedModel, lambda_context: FakeLambdaContext, body: Any, query: dict[str, str] | None
) -> None:
    status, reply = call(predict_event(body, query), lambda_context)
    assert status == 400
    assert reply["error"]["code"] == "bad_request"
    assert "'explain'" in reply["error"]["message"]


def test_explanations_asked_with_a_csv_reply_are_a_406(
    house: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    status, reply = call(
        predict_event({**RECORD, "explain": True}, Accept="text/csv"), lambda_context
    )
    assert status == 406
    assert reply["error"]["code"] == "not_acceptable"


def test_a_version_without_explanation_data_is_a_409_saying_to_retrain(
    loaded: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    # the `loaded` fixture serves the linear model's pickle: it has no training means
    status, reply = call(load_event("predict_explain"), lambda_context)
    assert status == 409
    assert reply["error"]["code"] == "explanations_unavailable"
    status, _ = call(load_event("predict"), lambda_context)
    assert status == 200  # predictions are unaffected


def test_v2_infer_explains_through_its_parameters(
    house: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("v2_infer")
    body = json.loads(event["body"])
    event["body"] = json.dumps({**body, "parameters": {"explain": True}})
    status, reply = call(event, lambda_context)
    assert status == 200, reply
    outputs = {o["name"]: o for o in reply["outputs"]}
    predictions = outputs["predictions"]["data"]
    contributions, base = outputs["contributions"], outputs["base"]
    assert contributions["shape"] == [len(predictions), len(NAMES)]
    assert base["shape"] == [1]
    assert contributions["parameters"]["scale"] == "log"
    assert contributions["parameters"]["features"].split(",") == NAMES
    matrix = np.array(contributions["data"]).reshape(contributions["shape"])
    np.testing.assert_allclose(base["data"][0] + matrix.sum(axis=1), np.log(predictions), atol=1e-9)
    event["body"] = json.dumps({**body, "parameters": {"explain": "yes"}})
    status, reply = call(event, lambda_context)
    assert status == 400 and "'explain'" in reply["error"]["message"]


def test_the_penguins_explain_event_explains_each_class(
    penguins: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    status, reply = call(load_event("penguins_predict_explain"), lambda_context)
    assert status == 200, reply
    explanations = reply["explanations"]
    assert explanations["scale"] == "softmax"
    labels = list(reply["probabilities"][0])
    assert list(explanations["base"]) == labels
    for row, proba in zip(explanations["contributions"], reply["probabilities"], strict=True):
        scores = np.array([explanations["base"][c] + sum(row[c].values()) for c in labels])
        softmax = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        np.testing.assert_allclose(softmax, [proba[c] for c in labels], rtol=1e-9)
        assert all(list(row[c]) == list(penguins.schema.names) for c in labels)


def test_the_served_document_has_an_explain_example_that_answers_with_explanations(
    house: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("health")
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = "/openapi.json"
    status, document = call(event, lambda_context)
    assert status == 200
    post = document["paths"]["/predict"]["post"]
    example = post["requestBody"]["content"]["application/json"]["examples"]["explain"]["value"]
    assert example["explain"] is True
    assert {"name": "explain", "in": "query"}.items() <= next(
        p for p in post["parameters"] if p["name"] == "explain"
    ).items()
    assert {"406", "409"} <= set(post["responses"])
    reply_schema = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply_schema  # PredictResponse, with its `explanations`
    explanations = document["components"]["schemas"]["Explanations"]
    assert {"scale", "base", "contributions", "class"} <= set(explanations["properties"])
    status, reply = call(predict_event(example), lambda_context)
    assert status == 200
    assert_adds_up(reply)


@pytest.mark.tooling
def test_sam_local_check_judges_the_explain_events_replies(
    house: LoadedModel, penguins_dir: Path, lambda_context: FakeLambdaContext
) -> None:
    from tools.sam_local import check

    event = load_event("predict_explain")
    reply = predict_handler.lambda_handler(event, lambda_context)
    version = house.manifest.version
    assert check.judge("predict_explain", event["body"], 200, reply["body"], version) is None
    unexplained = load_event("predict")
    plain = predict_handler.lambda_handler(unexplained, lambda_context)["body"]
    assert check.judge("predict_explain", event["body"], 200, plain, version)
    # the classifier's: softmax scores per class that give its probabilities
    predict_handler.holder.use(
        LoadedModel(read_manifest(penguins_dir), NumpyModel.load(penguins_dir / "model.npz"))
    )
    event = load_event("penguins_predict_explain")
    reply = predict_handler.lambda_handler(event, lambda_context)
    request = json.loads(event["body"])
    assert check.check_classifier_explanations(request, reply["body"]) is None
    tampered = json.loads(reply["body"])
    tampered["explanations"]["base"]["Gentoo"] += 1.0
    assert check.check_classifier_explanations(request, json.dumps(tampered))
