"""Predict handler with every file in events/ and every error class (model preloaded)."""

import base64
import json

import numpy as np
import pytest

import predict_handler
from tests.helpers import EVENTS, load_event

pytestmark = pytest.mark.unit


def call(event, context):
    reply = predict_handler.lambda_handler(event, context)
    return reply["statusCode"], json.loads(reply["body"]), reply


def with_body(name, body, **headers):
    event = load_event(name)
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    event["headers"].update(headers)
    return event


RECORD = json.loads(load_event("predict")["body"])


def test_every_event_file_gets_a_json_reply_and_never_a_5xx(loaded, lambda_context):
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if path.name == "env.json" or "httpMethod" not in event:
            continue
        if event["headers"].get("Accept") == "text/csv":  # asks for CSV: one prediction a line
            reply = predict_handler.lambda_handler(event, lambda_context)
            assert reply["statusCode"] == 200, path.name
            assert reply["multiValueHeaders"]["Content-Type"] == ["text/csv"]
            assert all(float(line) > 0 for line in reply["body"].splitlines())
            continue
        status, body, reply = call(event, lambda_context)
        assert status < 500, path.name
        assert reply["multiValueHeaders"]["Content-Type"] == ["application/json"]
        assert body


def test_single_record_returns_prediction_and_target(loaded, lambda_context):
    status, body, _ = call(load_event("predict"), lambda_context)
    assert status == 200
    expected = loaded.model.predict(loaded.schema.encode_records([RECORD]))[0]
    assert body["predictions"] == [pytest.approx(expected)]
    assert body["price"] == body["predictions"][0]
    assert body["model"] == {"name": "house-prices", "version": loaded.manifest.version}
    assert 30_000 < body["price"] < 100_000


@pytest.mark.parametrize(
    "name", ["predict_batch", "predict_batch_lists", "predict_mlflow", "predict_mlflow_records"]
)
def test_batch_formats_agree(loaded, lambda_context, name):
    status, body, _ = call(load_event(name), lambda_context)
    _, reference, _ = call(load_event("predict_batch"), lambda_context)
    assert status == 200
    assert len(body["predictions"]) == 2
    assert body["predictions"] == reference["predictions"]
    assert "price" not in body


def test_missing_feature_returns_422_naming_field_and_row(loaded, lambda_context):
    status, body, _ = call(load_event("predict_missing_feature"), lambda_context)
    assert status == 422
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"] == [
        {"field": "bathrms", "message": "missing feature", "row": 0}
    ]


def test_wrong_type_returns_422_for_each_field(loaded, lambda_context):
    status, body, _ = call(load_event("predict_wrong_type"), lambda_context)
    assert status == 422
    assert {d["field"] for d in body["error"]["details"]} == {"lotsize", "airco"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_return_422(loaded, lambda_context, literal):
    raw = json.dumps(RECORD).replace("5850", literal)
    status, body, _ = call(with_body("predict", raw), lambda_context)
    assert status == 422
    assert body["error"]["details"][0]["field"] == "lotsize"


def test_unknown_category_value_returns_422(loaded, lambda_context):
    status, body, _ = call(with_body("predict", {**RECORD, "prefarea": "perhaps"}), lambda_context)
    assert status == 422
    assert body["error"]["details"][0]["field"] == "prefarea"


def test_malformed_json_returns_400(loaded, lambda_context):
    status, body, _ = call(load_event("predict_malformed_json"), lambda_context)
    assert status == 400
    assert body["error"]["code"] == "bad_request"
    assert "malformed JSON" in body["error"]["message"]


@pytest.mark.parametrize(
    "body", [{"foo": 1}, [1, 2], "3", {"instances": "x"}, {"dataframe_split": {"data": []}}, ""]
)
def test_unknown_request_format_returns_400(loaded, lambda_context, body):
    raw = json.dumps(body) if body != "" else ""
    status, reply, _ = call(with_body("predict", raw), lambda_context)
    assert status == 400, reply


def test_wrong_content_type_returns_415(loaded, lambda_context):
    status, body, _ = call(load_event("predict_wrong_content_type"), lambda_context)
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"


def test_too_many_rows_returns_413(loaded, lambda_context, monkeypatch):
    monkeypatch.setattr(
        predict_handler.holder,
        "settings",
        predict_handler.settings.__class__(bucket="b", model_name="m", max_rows=3),
    )
    status, body, _ = call(with_body("predict", {"instances": [RECORD] * 4}), lambda_context)
    assert status == 413
    assert "limit of 3" in body["error"]["message"]


def test_too_many_bytes_returns_413(loaded, lambda_context, monkeypatch):
    monkeypatch.setattr(
        predict_handler.holder,
        "settings",
        predict_handler.settings.__class__(bucket="b", model_name="m", max_body_bytes=100),
    )
    status, _, _ = call(load_event("predict_batch"), lambda_context)
    assert status == 413


def test_base64_body_is_decoded(loaded, lambda_context):
    event = load_event("predict")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert call(event, lambda_context)[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        base64.b64encode(b"\xff\xfe not json").decode(),  # binary, not UTF-8
        "not base64 at all!",
        base64.b64encode(b"").decode() + "=",
    ],
)
def test_undecodable_base64_body_returns_400(loaded, lambda_context, body):
    event = load_event("predict")
    event["body"], event["isBase64Encoded"] = body, True
    status, reply, _ = call(event, lambda_context)
    assert status == 400, reply
    assert reply["error"]["code"] == "bad_request"


def test_out_of_range_input_is_flagged_in_warnings(loaded, lambda_context):
    status, body, _ = call(with_body("predict", {**RECORD, "lotsize": 90_000}), lambda_context)
    assert status == 200
    assert any("lotsize" in w for w in body["warnings"])


def test_model_info_returns_manifest_without_internal_keys(loaded, lambda_context):
    status, body, _ = call(load_event("model_info"), lambda_context)
    assert status == 200
    assert body["version"] == loaded.manifest.version
    assert "config" not in body and "source" not in body["data"]
    # the reference profile (training quantiles, a few KB) is the drift monitor's, not a client's
    assert "profile" not in body and loaded.manifest.profile is not None
    assert [f["name"] for f in body["features"]][:2] == ["lotsize", "bedrooms"]


def test_health_reports_ready(loaded, lambda_context):
    status, body, _ = call(load_event("health"), lambda_context)
    assert (status, body["status"]) == (200, "ready")


def test_unknown_route_returns_404_in_the_error_shape(loaded, lambda_context):
    event = load_event("health")
    event["path"] = event["resource"] = "/nope"
    status, body, _ = call(event, lambda_context)
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_openapi_document_describes_predict(loaded, lambda_context):
    event = load_event("health")
    event["path"] = event["resource"] = "/openapi.json"
    status, body, _ = call(event, lambda_context)
    assert status == 200
    assert {"/predict", "/model", "/health"} <= set(body["paths"])
    assert "422" in body["paths"]["/predict"]["post"]["responses"]


def test_without_configuration_the_api_answers_503_with_retry_after(lambda_context):
    predict_handler.holder.reset()
    status, body, reply = call(load_event("predict"), lambda_context)
    assert status == 503
    assert reply["multiValueHeaders"]["Retry-After"] == ["5"]
    assert body["error"]["code"] in ("not_configured", "model_unavailable")


def test_unexpected_error_is_500_without_stack_trace(loaded, lambda_context, monkeypatch):
    def boom(_X):
        raise ZeroDivisionError("secret internals")

    monkeypatch.setattr(loaded, "answer", boom)
    status, body, _ = call(load_event("predict"), lambda_context)
    assert status == 500
    assert "secret" not in json.dumps(body) and "Traceback" not in json.dumps(body)


def test_predictions_are_float_list_for_large_batch(loaded, lambda_context):
    rows = [RECORD] * 1000
    status, body, _ = call(with_body("predict", {"instances": rows}), lambda_context)
    assert status == 200
    assert np.allclose(body["predictions"], body["predictions"][0])


def emitted_metrics(output: str) -> dict[str, list[float]]:
    """Metric values from the CloudWatch EMF lines Powertools prints."""
    found: dict[str, list[float]] = {}
    for line in output.splitlines():
        if line.startswith('{"_aws"'):
            doc = json.loads(line)
            for spec in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found.setdefault(spec["Name"], []).extend(doc[spec["Name"]])
    return found


def test_rows_and_rejected_requests_are_counted_in_metrics(loaded, lambda_context, capsys):
    call(load_event("predict_batch"), lambda_context)
    call(load_event("predict_missing_feature"), lambda_context)
    found = emitted_metrics(capsys.readouterr().out)
    assert found["PredictedRows"] == [
        len(json.loads(load_event("predict_batch")["body"])["instances"])
    ]
    assert found["ClientErrors"] == [1.0]
    assert "ServerErrors" not in found


def sam_generated_event(method: str, path: str, body: str | None = None) -> dict:
    """An event made by SAM CLI's own generator (`sam local generate-event apigateway
    aws-proxy`), not by this repo: base64 body, no Content-Type, proxy resource."""
    import os
    import subprocess
    import sys

    args = ["local", "generate-event", "apigateway", "aws-proxy", "--method", method]
    args += ["--path", path] + (["--body", body] if body is not None else [])
    out = subprocess.run(
        [sys.executable, "-m", "samcli", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    )
    return json.loads(out.stdout)


def test_events_generated_by_sam_cli_are_answered(loaded, lambda_context):
    status, body, _ = call(
        sam_generated_event("POST", "predict", json.dumps(RECORD)), lambda_context
    )
    assert status == 200, body
    assert body["price"] == pytest.approx(
        loaded.model.predict(loaded.schema.encode_records([RECORD]))[0]
    )
    status, body, _ = call(sam_generated_event("POST", "predict", "{not json"), lambda_context)
    assert status == 400, body
    status, body, _ = call(sam_generated_event("GET", "health"), lambda_context)
    assert status == 200 and body["status"] == "ready"


def record_json(**overrides: str) -> str:
    """The valid record as JSON text, with some values replaced by raw JSON literals."""
    return (
        "{"
        + ", ".join(f'"{k}": {overrides.get(k, json.dumps(v))}' for k, v in RECORD.items())
        + "".join(f', "{k}": {v}' for k, v in overrides.items() if k not in RECORD)
        + "}"
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ("[" * 1100 + "]" * 1100, 400, None),  # deeper than orjson's limit: stdlib recursion
        ('{"lotsize": ' + "[" * 1100 + "]" * 1100 + "}", 400, None),
        (record_json(lotsize="9" * 400), 422, "lotsize"),  # an integer beyond float64
        (record_json(bedrooms="-" + "9" * 400), 422, "bedrooms"),
        (record_json(lotsize="9" * 5000), 400, None),  # beyond Python's int parsing limit
        (record_json(lotsize=json.dumps("x" * 1_000_000)), 422, "lotsize"),
    ],
    ids=["deep-array", "deep-value", "huge-int", "huge-negative", "5000-digits", "1MB-string"],
)
def test_hostile_json_gets_a_4xx_naming_the_problem(loaded, lambda_context, body, status, field):
    code, reply, raw = call(with_body("predict", body), lambda_context)
    assert code == status, reply
    assert len(raw["body"]) < 2_000  # a 1 MB value is not echoed back
    if field:
        assert [d["field"] for d in reply["error"]["details"]] == [field]


def test_huge_integer_in_a_list_row_is_422(loaded, lambda_context):
    row = ", ".join(json.dumps(v) for v in RECORD.values()).replace("5850", "9" * 400, 1)
    code, reply, _ = call(with_body("predict", '{"instances": [[' + row + "]]}"), lambda_context)
    assert code == 422, reply


def test_unknown_key_with_a_lone_surrogate_is_warned_about_not_a_500(loaded, lambda_context):
    code, reply, _ = call(with_body("predict", record_json(**{"\\ud800": "1"})), lambda_context)
    assert code == 200, reply
    assert any("ignored unknown fields" in w for w in reply["warnings"])


def test_openapi_declares_the_api_key_where_api_gateway_checks_it(loaded, lambda_context):
    _, doc, _ = call(load_event("model_info") | {"path": "/openapi.json"}, lambda_context)
    assert doc["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert doc["paths"]["/predict"]["post"]["security"] == [{"apiKey": []}]
    assert doc["paths"]["/model"]["get"]["security"] == [{"apiKey": []}]
    assert "security" not in doc["paths"]["/health"]["get"]
    assert "503" in doc["paths"]["/health"]["get"]["responses"]


def test_inputs_that_overflow_the_prediction_get_422_not_null(loaded, lambda_context):
    code, reply, _ = call(with_body("predict", record_json(bedrooms="1e300")), lambda_context)
    assert code == 422, reply
    assert reply["error"]["details"][0]["row"] == 0


@pytest.mark.parametrize(
    "body",
    [
        record_json(driveway="[" * 1000 + "1" + "]" * 1000),  # within orjson's depth limit
        '{"dataframe_split": {"columns": [' + "[" * 1000 + "1" + "]" * 1000 + '], "data": [[1]]}}',
    ],
    ids=["nested-value", "nested-column-name"],
)
def test_nesting_within_the_parser_limit_is_a_4xx(loaded, lambda_context, body):
    code, reply, _ = call(with_body("predict", body), lambda_context)
    assert 400 <= code < 500, reply


# --- the OpenAPI document (served by ApiDocsFunction when EnableApiDocs is true) ---------------


def document(context, event_name="health"):
    event = load_event(event_name)
    event["path"] = event["resource"] = "/openapi.json"
    status, doc, _ = call(event, context)
    assert status == 200
    return doc


def body_validator(doc):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({**doc, "$ref": "#/components/schemas/PredictBody"})


def test_openapi_describes_the_served_models_request_body(loaded, lambda_context):
    doc = document(lambda_context)
    body = doc["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True  # no null body: the API answers 400 to one
    record = doc["components"]["schemas"]["Record"]
    assert list(record["properties"]) == loaded.schema.names
    assert record["properties"]["prefarea"]["anyOf"][0] == {"type": "boolean"}
    assert loaded.manifest.version in doc["info"]["description"]
    check = body_validator(doc)
    for name in ("predict", "predict_batch", "predict_batch_lists", "predict_mlflow"):
        assert check.is_valid(json.loads(load_event(name)["body"])), name
    for invalid in (None, {}, {"dataframe_records": [{}]}, {**RECORD, "bedrooms": "three"}):
        assert not check.is_valid(invalid), invalid
    for example in body["content"]["application/json"]["examples"].values():
        status, reply, _ = call(with_body("predict", example["value"]), lambda_context)
        assert status == 200 and check.is_valid(example["value"]), reply


def test_openapi_gives_api_gateways_403_and_the_manifest_a_schema(loaded, lambda_context):
    from jsonschema import Draft202012Validator

    doc = document(lambda_context)
    for path, method in (("/predict", "post"), ("/model", "get")):
        forbidden = doc["paths"][path][method]["responses"]["403"]["content"]["application/json"]
        schema = {**doc, **forbidden["schema"]}
        assert Draft202012Validator(schema).is_valid({"message": "Forbidden"})
        assert not Draft202012Validator(schema).is_valid("Forbidden")
    ok = doc["paths"]["/model"]["get"]["responses"]["200"]["content"]["application/json"]
    status, manifest, _ = call(load_event("model_info"), lambda_context)
    assert status == 200
    Draft202012Validator({**doc, **ok["schema"]}).validate(manifest)


def test_without_a_model_the_document_is_the_static_one(lambda_context):
    predict_handler.holder.reset()
    doc = document(lambda_context)
    assert doc["paths"]["/predict"]["post"]["requestBody"]["required"] is True
    assert "Record" not in doc["components"]["schemas"]


def test_swagger_ui_shows_the_served_models_document(loaded, lambda_context):
    event = load_event("health")
    event["path"] = event["resource"] = "/swagger"
    reply = predict_handler.lambda_handler(event, lambda_context)
    assert reply["statusCode"] == 200
    assert reply["multiValueHeaders"]["Content-Type"] == ["text/html"]
    html = reply["body"]
    assert "SwaggerUIBundle" in html and "PredictBody" in html and "lotsize" in html
    assert "https://" not in html.split("<script>")[0]  # script and styles inline, no CDN


def test_both_documents_are_valid_openapi(loaded, lambda_context):
    from openapi_spec_validator import validate

    validate(document(lambda_context))  # made for the served model
    predict_handler.holder.reset()
    validate(document(lambda_context))  # the static one, without a model


# Runs in a fresh interpreter: the cold start of a container that only answers predictions.
COLD_PREDICTION = """
import json, sys
from pathlib import Path
import joblib
import predict_handler
from sklambda.manifest import read_manifest
from sklambda.model import LoadedModel
from tests.helpers import FakeLambdaContext, load_event
folder = Path(sys.argv[1])
predict_handler.holder.use(LoadedModel(read_manifest(folder), joblib.load(folder / "model.joblib")))
reply = predict_handler.lambda_handler(load_event("predict"), FakeLambdaContext())
print(json.dumps({"status": reply["statusCode"], "modules": sorted(sys.modules)}))
"""


def test_a_cold_prediction_imports_none_of_the_openapi_models_only_the_docs_do(trained_dir):
    # GIVEN a fresh process (Powertools' OpenAPI models and Swagger UI: ~0.1 s to import)
    # WHEN it imports the handler and answers POST /predict
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    path = os.pathsep.join(str(ROOT / p) for p in ("layers/ml", "functions/predict", "."))
    done = subprocess.run(
        [sys.executable, "-c", COLD_PREDICTION, str(trained_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    reply = json.loads(done.stdout.splitlines()[-1])
    # THEN it answered without importing them (GET /openapi.json and /swagger import them)
    assert reply["status"] == 200
    docs_only = ("aws_lambda_powertools.event_handler.openapi.models", "swagger_ui")
    assert [m for m in reply["modules"] if m.endswith(docs_only)] == []
