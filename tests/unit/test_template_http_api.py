"""template.yaml, ApiType HTTP: an HTTP API (payload 2.0) with the REST API's routes, keyed ones
behind a JWT authorizer; nothing of it exists under the default (REST)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_template import DOCS, RES, TEMPLATE, TPL, api_events, props, translate

pytestmark = pytest.mark.unit

JWT = {"JwtIssuer": "https://issuer.example.com/", "JwtAudience": "sklambda"}
HTTP_CONDITIONS = {"HttpApiSelected", "HttpApiDocs"}


@pytest.fixture(scope="module")
def http() -> dict[str, Any]:
    return translate(ApiType="HTTP", **JWT)["Resources"]


@pytest.fixture(scope="module")
def rest() -> dict[str, Any]:
    return translate()["Resources"]


def operations(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> operation, taking each Fn::If's true branch (ApiDocsEnabled)."""
    found = {}
    for path, written in body["paths"].items():
        item = written
        if set(written) == {"Fn::If"}:
            assert written["Fn::If"][0] == "ApiDocsEnabled"
            item = written["Fn::If"][1]
        for method, operation in item.items():
            found[(method.upper(), path)] = operation
    return found


def test_api_type_is_rest_by_default_and_http_needs_jwt_settings() -> None:
    parameter = TPL["Parameters"]["ApiType"]
    assert parameter["AllowedValues"] == ["REST", "HTTP"] and parameter["Default"] == "REST"
    assert TPL["Conditions"]["HttpApiSelected"] == {"Fn::Equals": [{"Ref": "ApiType"}, "HTTP"]}
    rule = TPL["Rules"]["HttpApiNeedsJwtSettings"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ApiType"}, "HTTP"]}
    asserted = {a["Assert"]["Fn::Not"][0]["Fn::Equals"][0]["Ref"] for a in rule["Assertions"]}
    assert asserted == {"JwtIssuer", "JwtAudience"}


def test_under_rest_every_http_api_resource_is_conditional(rest: dict[str, Any]) -> None:
    http_resources = {
        name: resource
        for name, resource in rest.items()
        if resource["Type"].startswith("AWS::ApiGatewayV2::") or name.startswith("HttpApi")
    }
    assert {"HttpApi", "HttpApiPredictPermission", "HttpApiDocsPermission"} <= set(http_resources)
    assert all(r.get("Condition") in HTTP_CONDITIONS for r in http_resources.values())
    assert TPL["Conditions"]["HttpApiDocs"] == {
        "Fn::And": [{"Condition": "HttpApiSelected"}, {"Condition": "ApiDocsEnabled"}]
    }


def test_http_api_has_the_rest_apis_routes_and_keys_them_with_jwt(http: dict[str, Any]) -> None:
    assert http["HttpApi"]["Type"] == "AWS::ApiGatewayV2::Api"
    body = http["HttpApi"]["Properties"]["Body"]
    ops = operations(body)
    rest = api_events()
    assert set(ops) == set(rest)
    for route, operation in ops.items():
        keyed = rest[route]["Auth"]["ApiKeyRequired"]
        assert operation.get("security") == ([{"jwt": []}] if keyed else None), route
    scheme = body["components"]["securitySchemes"]["jwt"]["x-amazon-apigateway-authorizer"]
    assert scheme["type"] == "jwt"
    assert scheme["identitySource"] == "$request.header.Authorization"
    assert scheme["jwtConfiguration"] == {
        "issuer": {"Ref": "JwtIssuer"},
        "audience": [{"Ref": "JwtAudience"}],
    }


def test_http_api_sends_payload_2_to_the_functions_that_serve_each_route(
    http: dict[str, Any],
) -> None:
    body = http["HttpApi"]["Properties"]["Body"]
    for route, operation in operations(body).items():
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", route
        assert integration["payloadFormatVersion"] == "2.0", route
        # PredictFunction through its live alias (as the REST API calls it); the docs function.
        expected = (
            {"Fn::GetAtt": ["ApiDocsFunction", "Arn"]}
            if route in DOCS
            else {"Ref": "PredictFunctionAliaslive"}
        )
        assert integration["uri"] == expected, route


def test_sam_local_reads_the_templates_routes() -> None:
    # `sam local start-api` parses every API in the template (it evaluates no Condition), the
    # HTTP API's document included: a $ref'd integration or a jwt authorizer written in that
    # document made it exit. Its own route reader must see the REST API's routes, each once.
    from samcli.lib.providers.api_provider import ApiProvider
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(
        str(TEMPLATE), global_parameter_overrides={"AWS::Region": "us-east-1"}
    )
    routes = [(m, r.path) for r in ApiProvider(stacks).api.routes for m in r.methods]
    assert sorted(routes) == sorted(api_events())


def test_http_api_may_invoke_only_its_functions_and_logs_each_request(
    http: dict[str, Any],
) -> None:
    for name, function in (
        ("HttpApiPredictPermission", {"Ref": "PredictFunctionAliaslive"}),
        ("HttpApiDocsPermission", {"Ref": "ApiDocsFunction"}),
    ):
        permission = http[name]["Properties"]
        assert permission["FunctionName"] == function
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert "${HttpApi}/*" in permission["SourceArn"]["Fn::Sub"]
    stage = next(r for r in http.values() if r["Type"] == "AWS::ApiGatewayV2::Stage")
    assert stage["Properties"]["StageName"] == {"Ref": "Stage"}
    log = stage["Properties"]["AccessLogSettings"]
    assert log["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert '"status":"$context.status"' in log["Format"]
    settings = stage["Properties"]["RouteSettings"]
    open_routes = {
        f"{m} {p}"
        for (m, p), e in api_events("PredictFunction").items()
        if not e["Auth"]["ApiKeyRequired"]
    }
    assert set(settings) == open_routes
    assert all(s["ThrottlingRateLimit"] == {"Ref": "OpenRouteRateLimit"} for s in settings.values())


def test_the_api_url_output_follows_the_api_type() -> None:
    url = TPL["Outputs"]["ApiUrl"]["Value"]["Fn::If"]
    assert url[0] == "HttpApiSelected"
    assert "${HttpApi}" in url[1]["Fn::Sub"] and "${Api}" in url[2]["Fn::Sub"]
    assert "${Api}" in TPL["Outputs"]["RestApiUrl"]["Value"]["Fn::Sub"]
    assert RES["HttpApi"]["Condition"] == "HttpApiSelected"
    assert props("HttpApi")["StageName"] == {"Ref": "Stage"}
