"""Prediction intervals through the predict API: the `intervals` option (JSON body, query string,
V2 parameters), the reply's shape, CSV, OpenAPI, and every refusal as a 400 in the one shape."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import predict_handler
from sklambda import openapi
from sklambda.conformal import GRID
from sklambda.manifest import Manifest, open_verified, read_manifest, verify_file
from sklambda.model import LoadedModel
from tests.helpers import ROOT, load_event

pytestmark = pytest.mark.unit

RECORD = json.loads(load_event("predict")["body"])
SECOND = json.loads(load_event("predict_batch")["body"])["instances"][1]


def call(event: dict[str, Any], context: Any) -> tuple[int, Any]:
    reply = predict_handler.lambda_handler(event, context)
    try:
        return reply["statusCode"], json.loads(reply["body"])
    except ValueError:
        return reply["statusCode"], reply["body"]


def predict_event(body: Any, query: dict[str, str] | None = None, **headers: str) -> dict[str, Any]:
    event = load_event("predict")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    event["headers"].update(headers)
    return event


@pytest.fixture
def served_as(loaded: LoadedModel) -> Iterator[Any]:
    """Serve another model in place of the `loaded` one for one test."""

    def use(model: LoadedModel) -> LoadedModel:
        predict_handler.holder.use(model)
        return model

    yield use


# --- replies ---------------------------------------------------------------------------------


def test_a_record_asking_for_intervals_gets_one_around_its_prediction(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    # GIVEN the bundled house-prices model (a log target) and the events' record
    status, body = call(load_event("predict_intervals"), lambda_context)
    # THEN one [low, high] on the price scale, asymmetric: p/low == high/p
    assert status == 200, body
    (low, high), price = body["intervals"][0], body["price"]
    assert len(body["intervals"]) == 1 and body["interval_coverage"] == 0.9
    assert low < price < high
    assert price / low == pytest.approx(high / price)
    assert price - low < high - price
    half_width = loaded.manifest.intervals.level(0.9).half_width  # type: ignore[union-attr]
    assert math.log(high / price) == pytest.approx(half_width)
    assert "warnings" not in body  # the option is not taken for an unknown feature


def test_true_asks_for_the_configured_default(loaded: LoadedModel, lambda_context: Any) -> None:
    status, body = call(predict_event({**RECORD, "intervals": True}), lambda_context)
    assert status == 200 and body["interval_coverage"] == 0.9


@pytest.mark.parametrize("form", ["instances", "dataframe_records"])
def test_a_batch_gets_one_interval_per_row_wider_for_a_higher_coverage(
    loaded: LoadedModel, lambda_context: Any, form: str
) -> None:
    widths = {}
    for coverage in (0.5, 0.95):
        body = {form: [RECORD, SECOND], "intervals": coverage}
        status, reply = call(predict_event(body), lambda_context)
        assert status == 200, reply
        assert len(reply["intervals"]) == 2
        for (low, high), p in zip(reply["intervals"], reply["predictions"], strict=True):
            assert low < p < high
        widths[coverage] = [high - low for low, high in reply["intervals"]]
    assert all(a < b for a, b in zip(widths[0.5], widths[0.95], strict=True))


def test_no_option_no_intervals(loaded: LoadedModel, lambda_context: Any) -> None:
    for body in (RECORD, {**RECORD, "intervals": False}):
        status, reply = call(predict_event(body), lambda_context)
        assert status == 200 and "intervals" not in reply and "interval_coverage" not in reply


def test_the_query_string_asks_for_json_and_csv_bodies_and_the_body_wins(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    status, reply = call(predict_event(RECORD, {"intervals": "0.8"}), lambda_context)
    assert status == 200 and reply["interval_coverage"] == 0.8
    both = predict_event({**RECORD, "intervals": 0.95}, {"intervals": "0.8"})
    assert call(both, lambda_context)[1]["interval_coverage"] == 0.95
    csv = load_event("predict_csv_no_header")
    csv["queryStringParameters"] = {"intervals": "true"}
    status, text = call(csv, lambda_context)
    assert status == 200
    lines = [[float(v) for v in line.split(",")] for line in text.splitlines()]
    assert len(lines) == 2 and all(low < p < high for p, low, high in lines)


def test_v2_infer_asks_by_parameters_and_gets_an_intervals_tensor(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    event = load_event("v2_infer")
    event["body"] = json.dumps({**json.loads(event["body"]), "parameters": {"intervals": 0.9}})
    status, reply = call(event, lambda_context)
    assert status == 200, reply
    predictions, intervals = reply["outputs"]
    assert intervals["name"] == "intervals" and intervals["datatype"] == "FP64"
    assert intervals["shape"] == [2, 2] and intervals["parameters"] == {"coverage": 0.9}
    low, high = intervals["data"][:2]
    assert low < predictions["data"][0] < high


def test_the_numpy_form_answers_intervals_without_importing_scikit_learn(
    trained_dir: Path,
) -> None:
    body = json.dumps({"instances": [RECORD], "intervals": 0.9})
    script = f"""
import json, sys
from pathlib import Path
from sklambda.api import predict
from sklambda.manifest import open_verified, read_manifest, verify_file
from sklambda.model import LoadedModel
from sklambda.serving import ModelHolder
from sklambda.settings import ServingSettings
folder = Path({str(trained_dir)!r})
manifest = read_manifest(folder)
info = manifest.numpy_artifact
model = LoadedModel(manifest, open_verified(verify_file(folder / info.key, manifest, info)))
holder = ModelHolder(ServingSettings(), lambda: None)
holder.use(model)
reply = predict(holder, {{}}, {body!r})
print(json.dumps({{"sklearn": "sklearn" in sys.modules, "reply": reply}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["sklearn"] is False
    ((low, high),) = result["reply"]["intervals"]
    assert low < result["reply"]["predictions"][0] < high


# --- refusals --------------------------------------------------------------------------------


def _error(reply: Any) -> tuple[str, str]:
    return reply["error"]["code"], reply["error"]["message"]


@pytest.mark.parametrize("value", ["lots", "0.9", None, 1.5, 0, [0.9], {"coverage": 0.9}])
def test_an_intervals_value_that_is_not_a_coverage_is_a_400(
    loaded: LoadedModel, lambda_context: Any, value: Any
) -> None:
    status, reply = call(predict_event({**RECORD, "intervals": value}), lambda_context)
    assert status == 400
    assert _error(reply)[0] == "invalid_intervals"


def test_a_huge_integer_coverage_is_a_400_in_the_body_and_in_v2_parameters(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    # GIVEN `intervals` as an integer too large for a float (valid JSON; math.isfinite overflows)
    huge = "1" + "0" * 400
    rest = predict_event(json.dumps(RECORD)[:-1] + f', "intervals": {huge}}}')
    v2 = load_event("v2_infer")
    v2["body"] = v2["body"].rstrip()[:-1] + f', "parameters": {{"intervals": {huge}}}}}'
    for event in (rest, v2):
        # WHEN it is sent, THEN a 400 in the one error shape, not a 500
        status, reply = call(event, lambda_context)
        assert status == 400, reply
        assert _error(reply)[0] == "invalid_intervals"


@pytest.mark.parametrize("text", ["0.9_0", " 0.9", "1e-1", "nan", "TRUE", ""])
def test_query_text_outside_the_one_grammar_is_a_400(
    loaded: LoadedModel, lambda_context: Any, text: str
) -> None:
    status, reply = call(predict_event(RECORD, {"intervals": text}), lambda_context)
    assert status == 400, reply
    assert _error(reply)[0] == "invalid_intervals"
    assert repr(text) in _error(reply)[1]


def test_a_coverage_the_model_has_not_is_a_400_listing_the_ones_it_has(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    status, reply = call(predict_event(RECORD, {"intervals": "0.93"}), lambda_context)
    code, message = _error(reply)
    assert status == 400 and code == "invalid_intervals"
    assert ", ".join(f"{c:g}" for c in GRID) in message


def test_a_model_trained_before_intervals_says_so_in_a_400(
    loaded: LoadedModel, served_as: Any, lambda_context: Any
) -> None:
    older: Manifest = loaded.manifest.model_copy(update={"intervals": None})
    served_as(LoadedModel(older, loaded.model))
    status, reply = call(predict_event({**RECORD, "intervals": True}), lambda_context)
    code, message = _error(reply)
    assert status == 400 and code == "intervals_unavailable"
    assert "no interval data" in message and "retrain" in message
    assert call(predict_event(RECORD), lambda_context)[0] == 200  # asked for none: as before


def test_a_classifier_asked_for_intervals_answers_a_400(
    served_as: Any, lambda_context: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from sklambda.artifact import train_artifact
    from sklambda.data import parse_csv, prepare
    from tests.helpers import churn_config, churn_csv

    config = churn_config()
    data = prepare(config, parse_csv(churn_csv().encode(), "churn.csv"))
    folder = train_artifact(config, data, tmp_path_factory.mktemp("c") / "churn").folder
    manifest = read_manifest(folder)
    served_as(LoadedModel(manifest, open_verified(verify_file(folder / "model.joblib", manifest))))
    body = {"tenure": 12.0, "plan": "basic", "calls": 2, "paperless": "yes", "intervals": 0.9}
    status, reply = call(predict_event(body), lambda_context)
    code, message = _error(reply)
    assert status == 400 and code == "intervals_unavailable"
    assert "intervals are for regression models" in message


# --- OpenAPI ---------------------------------------------------------------------------------


def test_the_served_document_describes_the_option_and_the_reply(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    event = load_event("predict")
    event.update(httpMethod="GET", path="/openapi.json", resource="/openapi.json", body=None)
    status, document = call(event, lambda_context)
    assert status == 200
    post = document["paths"]["/predict"]["post"]
    (parameter,) = [p for p in post["parameters"] if p["name"] == "intervals"]
    assert parameter["in"] == "query"
    assert parameter["schema"]["enum"] == ["true", "false", *(f"{c:g}" for c in GRID)]
    example = post["requestBody"]["content"]["application/json"]["examples"]["intervals"]
    assert example["value"]["intervals"] == 0.9
    reply = document["components"]["schemas"]["PredictResponse"]["properties"]
    assert reply["intervals"]["examples"] and "interval_coverage" in reply
    validator = Draft202012Validator(
        {**document["components"]["schemas"]["PredictBody"], "components": document["components"]}
    )
    assert validator.is_valid(example["value"])
    assert validator.is_valid({"instances": [RECORD], "intervals": True})
    assert not validator.is_valid({**RECORD, "intervals": 0.93})
    assert not validator.is_valid({"instances": [RECORD], "intervals": "yes"})


def test_a_model_without_intervals_documents_only_false() -> None:
    forms = {"anyOf": [{"allOf": []}, {"type": "object"}]}
    body = openapi.with_option(forms, "intervals", openapi.interval_option([]))
    validator = Draft202012Validator(body)
    assert validator.is_valid({"intervals": False})
    assert not validator.is_valid({"intervals": True})
    assert openapi.interval_parameter([])["schema"]["enum"] == ["false"]


@pytest.mark.tooling
def test_sam_local_check_judges_the_intervals_events_reply(
    loaded: LoadedModel, lambda_context: Any
) -> None:
    from tools.sam_local import check

    event = load_event("predict_intervals")
    reply = predict_handler.lambda_handler(event, lambda_context)
    version = loaded.manifest.version
    judged = check.judge("predict_intervals", event["body"], 200, reply["body"], version)
    assert judged is None, judged
    without = json.dumps({**json.loads(reply["body"]), "intervals": [[1.0, 2.0]]})
    assert check.judge("predict_intervals", event["body"], 200, without, version)


@pytest.mark.tooling
def test_the_demo_line_shows_the_first_interval() -> None:
    from tools.local.demo import answer

    reply = {
        "predictions": [68693.2],
        "intervals": [[49640.4, 95058.1]],
        "interval_coverage": 0.9,
        "model": {"name": "house-prices", "version": "v1"},
    }
    line = answer("/predict", 200, reply)
    assert "predictions [68,693 in [49,640, 95,058] (90% interval)]" in line
