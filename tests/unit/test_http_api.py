"""The predict handler behind an HTTP API (payload 2.0) as behind a REST API (payload 1.0): one
set of routes; anything that is neither gets a 400 in the one error shape (model preloaded)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import predict_handler
from tests.helpers import EVENTS, load_event

pytestmark = pytest.mark.unit

HTTP_EVENTS = sorted(
    path.stem
    for path in EVENTS.glob("*.json")
    if path.name != "env.json" and json.loads(path.read_text()).get("version") == "2.0"
)


def call(event: Any, context: Any) -> tuple[int, Any, dict[str, Any]]:
    reply = predict_handler.lambda_handler(event, context)
    return reply["statusCode"], json.loads(reply["body"]), reply


def test_events_dir_has_http_api_events_for_predict_health_and_a_bad_request() -> None:
    assert {"http_predict", "http_health", "http_predict_malformed_json"} <= set(HTTP_EVENTS)
    event = load_event("http_predict")
    # As API Gateway sends payload 2.0: no httpMethod, the stage in rawPath, lower-case headers.
    assert "httpMethod" not in event and event["routeKey"] == "POST /predict"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/dev/predict"
    assert all(name == name.lower() for name in event["headers"])


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_every_http_api_event_gets_a_json_reply_and_never_a_5xx(loaded, lambda_context, name):
    status, body, reply = call(load_event(name), lambda_context)
    assert status < 500, body
    assert reply["headers"]["Content-Type"] == "application/json"  # payload 2.0: one value each
    assert "multiValueHeaders" not in reply


def test_an_http_api_predict_answers_as_the_rest_api_predict(loaded, lambda_context):
    status, body, _ = call(load_event("http_predict"), lambda_context)
    rest_status, rest_body, _ = call(load_event("predict"), lambda_context)
    assert status == rest_status == 200
    assert body == rest_body
    assert body["price"] == pytest.approx(body["predictions"][0])


def test_an_http_api_health_check_is_ready(loaded, lambda_context):
    status, body, _ = call(load_event("http_health"), lambda_context)
    assert status == 200 and body["status"] == "ready"


def test_http_api_malformed_json_returns_400_in_the_error_shape(loaded, lambda_context):
    status, body, _ = call(load_event("http_predict_malformed_json"), lambda_context)
    assert status == 400
    assert body["error"]["code"] == "bad_request" and "malformed JSON" in body["error"]["message"]


def test_http_api_csv_reply_on_accept(loaded, lambda_context):
    event = load_event("http_predict")
    event["headers"]["accept"] = "text/csv"
    reply = predict_handler.lambda_handler(event, lambda_context)
    assert reply["statusCode"] == 200 and reply["headers"]["Content-Type"] == "text/csv"
    assert float(reply["body"].strip()) > 0


def test_http_api_unknown_route_returns_404_in_the_error_shape(loaded, lambda_context):
    event = load_event("http_health")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/dev/nowhere"
    status, body, _ = call(event, lambda_context)
    assert status == 404
    assert body["error"] == {
        "code": "not_found",
        "message": "no route GET /nowhere",
        "details": [],
    }


def test_http_api_on_the_default_stage_routes_without_a_prefix(loaded, lambda_context):
    event = load_event("http_health")
    event["requestContext"]["stage"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/health"
    status, body, _ = call(event, lambda_context)
    assert status == 200 and body["status"] == "ready"


def _not_api_events() -> list[Any]:
    health = load_event("http_health")
    no_http = {**health, "requestContext": {"stage": "dev"}}
    rest = load_event("health")
    return [
        {},
        [],
        "GET /health",
        None,
        {"version": "2.0"},  # a v2 version without the rest of the shape
        no_http,
        {**rest, "path": None},
        {k: v for k, v in rest.items() if k != "httpMethod"},
        load_event("retrain_schedule"),  # an EventBridge event
        load_event("retrain_s3_object_created"),
    ]


@pytest.mark.parametrize("event", _not_api_events())
def test_an_event_of_unknown_shape_gets_400_in_the_error_shape(loaded, lambda_context, event):
    status, body, reply = call(event, lambda_context)
    assert status == 400
    assert reply["headers"] == {"Content-Type": "application/json"}
    assert body["error"]["code"] == "unknown_event"
    assert "payload 1.0" in body["error"]["message"] and "payload 2.0" in body["error"]["message"]
    assert body["error"]["details"] == []
