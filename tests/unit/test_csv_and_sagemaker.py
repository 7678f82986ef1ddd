"""CSV request bodies (with and without a header row, CSV replies) and the SageMaker-compatible
routes (POST /invocations, GET /ping), through the predict handler with the model preloaded."""

import json

import pytest

import predict_handler
from tests.helpers import load_event

pytestmark = pytest.mark.unit

RECORD = json.loads(load_event("predict")["body"])
NAMES = list(RECORD)


def invoke(event, context):
    return predict_handler.lambda_handler(event, context)


def csv_event(text, path="/predict", accept="application/json"):
    event = load_event("predict")
    event["path"] = event["resource"] = path
    event["body"] = text
    event["headers"].update({"Content-Type": "text/csv", "Accept": accept})
    return event


def row(record, names=NAMES):
    return ",".join(str(record[n]) for n in names)


def json_predictions(event, context):
    reply = invoke(event, context)
    assert reply["statusCode"] == 200, reply["body"]
    return json.loads(reply["body"])


def test_csv_with_a_header_in_any_order_predicts_as_json_records(loaded, lambda_context):
    # GIVEN the columns by name, in reverse order, with a column the model does not know
    names = [*reversed(NAMES), "note"]
    text = ",".join(names) + "\n" + row({**RECORD, "note": "x"}, names) + "\n"
    # WHEN it is sent as text/csv
    body = json_predictions(csv_event(text), lambda_context)
    # THEN the prediction is the JSON record's, and the extra column is warned about
    reference = json_predictions(load_event("predict"), lambda_context)
    assert body["predictions"] == reference["predictions"]
    assert body["warnings"] == ["ignored unknown columns: note"]
    assert "price" not in body  # CSV is always a batch


def test_csv_without_a_header_is_read_in_schema_order(loaded, lambda_context):
    body = json_predictions(csv_event(row(RECORD) + "\r\n" + row(RECORD)), lambda_context)
    reference = json_predictions(load_event("predict"), lambda_context)
    assert body["predictions"] == reference["predictions"] * 2


def test_accept_text_csv_gets_one_prediction_per_line(loaded, lambda_context):
    reply = invoke(csv_event(row(RECORD) + "\n", accept="text/csv"), lambda_context)
    reference = json_predictions(load_event("predict"), lambda_context)
    assert reply["statusCode"] == 200
    assert reply["multiValueHeaders"]["Content-Type"] == ["text/csv"]
    assert reply["body"] == f"{reference['predictions'][0]!r}\n"


def test_json_body_with_accept_text_csv_gets_csv(loaded, lambda_context):
    event = load_event("predict_batch")
    event["headers"]["Accept"] = "text/csv, application/json;q=0.5"
    reply = invoke(event, lambda_context)
    assert reply["multiValueHeaders"]["Content-Type"] == ["text/csv"]
    assert len(reply["body"].splitlines()) == 2


@pytest.mark.parametrize("accept", ["*/*", "application/json, text/csv", ""])
def test_json_is_the_default_reply(loaded, lambda_context, accept):
    reply = invoke(csv_event(row(RECORD), accept=accept), lambda_context)
    assert reply["multiValueHeaders"]["Content-Type"] == ["application/json"]


def test_csv_bad_values_get_422_with_0_based_rows_and_the_json_error_shape(loaded, lambda_context):
    text = ",".join(NAMES) + "\n" + row(RECORD) + "\n" + row({**RECORD, "lotsize": "large"})
    reply = invoke(csv_event(text, accept="text/csv"), lambda_context)
    assert reply["statusCode"] == 422
    assert reply["multiValueHeaders"]["Content-Type"] == ["application/json"]
    error = json.loads(reply["body"])["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {"field": "lotsize", "message": "expected a number, got 'large'", "row": 1}
    ]


def test_csv_row_of_the_wrong_width_is_422_naming_the_row(loaded, lambda_context):
    reply = invoke(csv_event(row(RECORD) + "\n1,2,3\n"), lambda_context)
    assert reply["statusCode"] == 422
    (detail,) = json.loads(reply["body"])["error"]["details"]
    assert detail["row"] == 1 and "expected 11 values, got 3" in detail["message"]


def test_csv_header_without_a_required_column_is_422(loaded, lambda_context):
    names = [n for n in NAMES if n != "bathrms"]
    reply = invoke(csv_event(",".join(names) + "\n" + row(RECORD, names)), lambda_context)
    assert reply["statusCode"] == 422
    details = json.loads(reply["body"])["error"]["details"]
    assert details == [{"field": "bathrms", "message": "missing column"}]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("\n\n", "no rows"),
        (",".join(NAMES) + "\n", "a header and no rows"),
        ('"5850,3\n', "malformed CSV"),
    ],
)
def test_csv_without_rows_is_400(loaded, lambda_context, body, message):
    reply = invoke(csv_event(body), lambda_context)
    assert reply["statusCode"] == 400, reply["body"]
    assert message in json.loads(reply["body"])["error"]["message"]


def test_csv_that_is_not_utf8_is_400(loaded, lambda_context):
    import base64

    event = csv_event(base64.b64encode(b"\xff\xfe1,2").decode())
    event["isBase64Encoded"] = True
    reply = invoke(event, lambda_context)
    assert reply["statusCode"] == 400
    assert "not UTF-8" in json.loads(reply["body"])["error"]["message"]


def test_csv_with_more_rows_than_the_limit_is_413(loaded, lambda_context, monkeypatch):
    monkeypatch.setattr(
        predict_handler.holder,
        "settings",
        predict_handler.holder.settings.model_copy(update={"max_rows": 2}),
    )
    reply = invoke(csv_event("\n".join([row(RECORD)] * 3)), lambda_context)
    assert reply["statusCode"] == 413


def test_invocations_answers_as_predict(loaded, lambda_context):
    body = json_predictions(load_event("invocations"), lambda_context)
    reference = json_predictions(load_event("predict_batch"), lambda_context)
    assert body == reference


def test_invocations_csv_event_answers_csv_as_sagemaker_does(loaded, lambda_context):
    reply = invoke(load_event("invocations_csv"), lambda_context)
    reference = json_predictions(load_event("predict_batch"), lambda_context)
    assert reply["multiValueHeaders"]["Content-Type"] == ["text/csv"]
    assert [float(p) for p in reply["body"].splitlines()] == reference["predictions"]


def test_ping_answers_as_health(loaded, lambda_context):
    ping = invoke(load_event("ping"), lambda_context)
    health = invoke(load_event("health"), lambda_context)
    assert ping["statusCode"] == health["statusCode"] == 200
    assert ping["body"] == health["body"]


def test_ping_without_a_model_is_503_with_a_reason_only(lambda_context):
    reply = invoke(load_event("ping"), lambda_context)
    assert reply["statusCode"] == 503
    assert set(json.loads(reply["body"])) <= {"status", "reason", "model"}


def test_the_document_describes_csv_and_the_sagemaker_routes(loaded, lambda_context):
    event = load_event("health")
    event["path"] = event["resource"] = "/openapi.json"
    document = json.loads(invoke(event, lambda_context)["body"])
    for path in ("/predict", "/invocations"):
        post = document["paths"][path]["post"]
        assert set(post["requestBody"]["content"]) == {"application/json", "text/csv"}
        assert "text/csv" in post["responses"]["200"]["content"]
        assert post["security"] == [{"apiKey": []}]
    assert "security" not in document["paths"]["/ping"]["get"]
