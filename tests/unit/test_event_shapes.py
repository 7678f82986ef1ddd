"""Event shapes the predict handler is given: an event that is not a well-formed API Gateway
proxy event is the 400 `unknown_event` answer, never an exception out of lambda_handler (a
Lambda Error) nor a 500; an HTTP API event's path loses its stage only when it carries it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import predict_handler
from sklambda.model import LoadedModel
from tests.helpers import FakeLambdaContext, load_event

pytestmark = pytest.mark.unit


def call(event: dict[str, Any], context: FakeLambdaContext) -> tuple[int, Any]:
    reply = predict_handler.lambda_handler(event, context)
    try:
        return reply["statusCode"], json.loads(reply["body"])
    except ValueError:
        return reply["statusCode"], reply["body"]


def _http(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    event = load_event("http_predict")
    change(event)
    return event


def _rest(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    event = load_event("predict")
    change(event)
    return event


MALFORMED = {
    "http without requestContext.stage": _http(lambda e: e["requestContext"].pop("stage")),
    "http stage not text": _http(lambda e: e["requestContext"].update(stage=5)),
    "http header not text": _http(lambda e: e["headers"].update({"content-type": 5})),
    "http headers a list": _http(lambda e: e.update(headers=[])),
    "http body an object": _http(lambda e: e.update(body={"a": 1})),
    "rest requestContext text": _rest(lambda e: e.update(requestContext="x")),
    "rest header not text": _rest(lambda e: e["headers"].update({"accept": 5})),
    "rest body an object": _rest(lambda e: e.update(body={"a": 1})),
    "rest query a list": _rest(lambda e: e.update(queryStringParameters=["a"])),
    "rest requestContext.path not text": _rest(lambda e: e["requestContext"].update(path=5)),
    "rest requestContext.http text": _rest(lambda e: e["requestContext"].update(http="x")),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_proxy_event_is_the_400_unknown_event_answer(
    loaded: LoadedModel, lambda_context: FakeLambdaContext, name: str
) -> None:
    status, reply = call(MALFORMED[name], lambda_context)
    assert status == 400, reply
    assert reply["error"]["code"] == "unknown_event"


def _at(event: dict[str, Any], path: str, method: str = "POST") -> dict[str, Any]:
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    return event


@pytest.mark.parametrize(
    ("path", "method"),
    [("/dev/predict", "POST"), ("/predict", "POST"), ("/dev/swagger", "GET"), ("/swagger", "GET")]
    + [("/devices/predict", "POST")],
)
def test_an_http_api_path_loses_the_stage_only_when_it_carries_it(
    loaded: LoadedModel, lambda_context: FakeLambdaContext, path: str, method: str
) -> None:
    # GIVEN an HTTP API event of stage "dev": on the execute-api URL its rawPath starts with
    # /dev/; behind a custom domain (an API mapping) it does not
    event = _at(load_event("http_predict"), path, method)
    if method == "GET":
        event["body"] = None
    # WHEN it is handled
    status, reply = call(event, lambda_context)
    # THEN the route is found either way (Powertools alone cuts len("/dev") characters off:
    # /predict became "dict", /swagger "gger"); /devices/predict is no route of stage dev
    if path == "/devices/predict":
        assert status == 404 and "/devices/predict" in reply["error"]["message"]
    else:
        assert status == 200, reply


def test_the_swagger_servers_follow_the_path_the_client_used(
    loaded: LoadedModel, lambda_context: FakeLambdaContext
) -> None:
    for path, server in (("/dev/openapi.json", "/dev"), ("/openapi.json", "/")):
        event = _at(load_event("http_predict"), path, "GET")
        event["body"] = None
        status, document = call(event, lambda_context)
        assert status == 200, document
        assert document["servers"] == [{"url": server}]
