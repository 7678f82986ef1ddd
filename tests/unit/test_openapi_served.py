"""The OpenAPI document as served: one document for /openapi.json and /swagger, its `servers`
where the request came in (read from the event), an example for every request format, and no
component the API never uses (model preloaded unless a test resets it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import predict_handler
from sklambda import openapi
from tests.helpers import load_event

pytestmark = pytest.mark.unit


def rest_event(route: str, requested: str) -> dict[str, Any]:
    """A REST API event for GET `route`, as the client requested `requested`."""
    event = load_event("health")
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = route
    event["requestContext"]["path"] = requested
    return event


def http_event(route: str, stage: str) -> dict[str, Any]:
    """An HTTP API event (payload 2.0) for GET `route` on `stage`."""
    event = load_event("http_health")
    raw = route if stage == "$default" else f"/{stage}{route}"
    event["rawPath"] = event["requestContext"]["http"]["path"] = raw
    event["routeKey"] = event["requestContext"]["routeKey"] = f"GET {route}"
    event["requestContext"]["stage"] = stage
    return event


def served(event: dict[str, Any], context: Any) -> dict[str, Any]:
    reply = predict_handler.lambda_handler(event, context)
    assert reply["statusCode"] == 200, reply["body"][:300]
    if event.get("version") == "2.0":
        content_type = reply["headers"]["Content-Type"]
    else:
        content_type = reply["multiValueHeaders"]["Content-Type"][0]
    if content_type == "text/html":
        return embedded_spec(reply["body"])
    document: dict[str, Any] = json.loads(reply["body"])
    return document


def embedded_spec(html: str) -> dict[str, Any]:
    """The document Swagger UI is given (`spec: {...}` in the page's script)."""
    start = html.index("spec: ") + len("spec: ")
    spec, _ = json.JSONDecoder().raw_decode(html, start)
    return dict(spec)


@pytest.mark.parametrize(
    ("requested", "route", "url"),
    [
        ("/dev/openapi.json", "/openapi.json", "/dev"),  # execute-api URL of stage dev
        ("/prod/swagger", "/swagger", "/prod"),
        ("/openapi.json", "/openapi.json", "/"),  # make serve, sam local, a custom domain's root
        ("/api/v1/swagger", "/swagger", "/api/v1"),  # a custom domain's base path mapping
        ("", "/swagger", "/"),
        ("/elsewhere", "/swagger", "/"),
    ],
)
def test_server_url_is_the_requested_path_before_the_route(requested, route, url):
    assert openapi.server_url(requested, route) == url


@pytest.mark.parametrize("route", ["/openapi.json", "/swagger"])
@pytest.mark.parametrize(
    ("event", "url"),
    [
        (lambda route: rest_event(route, f"/dev{route}"), "/dev"),
        (lambda route: rest_event(route, route), "/"),
        (lambda route: http_event(route, "prod"), "/prod"),
        (lambda route: http_event(route, "$default"), "/"),
    ],
    ids=["rest-stage", "rest-local", "http-stage", "http-default"],
)
def test_servers_are_where_the_request_came_in(loaded, lambda_context, route, event, url):
    assert served(event(route), lambda_context)["servers"] == [{"url": url}]


@pytest.mark.parametrize("with_model", [True, False])
def test_the_page_and_openapi_json_serve_one_document(loaded, lambda_context, with_model):
    if not with_model:
        predict_handler.holder.reset()
    page = served(rest_event("/swagger", "/dev/swagger"), lambda_context)
    document = served(rest_event("/openapi.json", "/dev/openapi.json"), lambda_context)
    assert page == document


def referenced(node: Any) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref} if isinstance(ref, str) else set()
        return found.union(*(referenced(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(referenced(v) for v in node))
    return set()


@pytest.mark.parametrize("with_model", [True, False])
def test_every_component_schema_is_used(loaded, lambda_context, with_model):
    if not with_model:
        predict_handler.holder.reset()
    document = served(rest_event("/openapi.json", "/openapi.json"), lambda_context)
    schemas = document["components"]["schemas"]
    # Walk from the paths: a schema is used when a path refers to it, or a used schema does.
    used: set[str] = set()
    pending = {r for r in referenced(document["paths"]) if r.startswith("#/components/schemas/")}
    while pending:
        used |= pending
        pending = {
            r
            for ref in pending
            for r in referenced(schemas[ref.rsplit("/", 1)[1]])
            if r.startswith("#/components/schemas/")
        } - used
    unused = {f"#/components/schemas/{name}" for name in schemas} - used
    assert not unused, f"schemas the API never returns or takes: {sorted(unused)}"
    for never in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        assert never not in schemas
    assert "422" not in document["paths"]["/model"]["get"]["responses"]  # it never answers 422
    assert set(document["components"]["securitySchemes"]) == {"apiKey"}


def test_the_ui_has_an_example_for_every_request_format(loaded, lambda_context):
    document = served(rest_event("/openapi.json", "/openapi.json"), lambda_context)
    for path in ("/predict", "/invocations"):
        content = document["paths"][path]["post"]["requestBody"]["content"]
        assert set(content["application/json"]["examples"]) == {
            "record",
            "instances",  # records
            "rows",  # lists in schema order
            "dataframe_split",
            "dataframe_records",
            "intervals",  # a record with its prediction interval
        } | ({"explain"} if loaded.explainable else set())  # each feature's contribution
        assert set(content["text/csv"]["examples"]) == {"header", "no_header"}
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert infer["application/json"]["examples"]


def test_every_csv_and_v2_example_is_answered(loaded, lambda_context):
    document = served(rest_event("/openapi.json", "/openapi.json"), lambda_context)
    csv = document["paths"]["/predict"]["post"]["requestBody"]["content"]["text/csv"]
    for name, example in csv["examples"].items():
        event = load_event("predict_csv")
        event["body"] = example["value"]
        reply = predict_handler.lambda_handler(event, lambda_context)
        assert reply["statusCode"] == 200, (name, reply["body"])
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]
    for name, example in infer["application/json"]["examples"].items():
        event = load_event("v2_infer")
        event["body"] = json.dumps(example["value"])
        reply = predict_handler.lambda_handler(event, lambda_context)
        assert reply["statusCode"] == 200, (name, reply["body"])


def test_behind_an_http_api_keyed_routes_take_a_bearer_jwt(loaded, lambda_context):
    document = served(http_event("/openapi.json", "dev"), lambda_context)
    assert document["components"]["securitySchemes"] == {
        "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    assert document["paths"]["/predict"]["post"]["security"] == [{"bearerAuth": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    rest = served(rest_event("/openapi.json", "/dev/openapi.json"), lambda_context)
    assert rest["paths"]["/predict"]["post"]["security"] == [{"apiKey": []}]
