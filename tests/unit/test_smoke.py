"""The pre-traffic smoke test (sklambda.smoke): which replies pass, which fail the deploy and why,
what is reported to CodeDeploy, and the events the hook function ships."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

import predict_handler
from sklambda import smoke
from sklambda.model import LoadedModel
from tests.helpers import EVENTS, ROOT, FakeLambdaContext, load_event

pytestmark = pytest.mark.unit

EVENTS_BUNDLE = smoke.bundle(EVENTS)
HOOK_EVENT = load_event("pre_traffic_hook")
MODEL = {"name": "house-prices", "version": "20261129T181724Z-a5c78c69"}


def proxy(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
    }


def healthy_reply(event: dict[str, Any], model: dict[str, str] = MODEL) -> dict[str, Any]:
    """What a good version answers to each case's event."""
    path = event["path"]
    if path == "/health":
        return proxy(200, {"status": "ready", "model": model})
    if path == "/model":
        return proxy(200, {**model, "task": "regression"})
    headers = {k.lower(): v for k, v in event["headers"].items()}
    if headers.get("content-type") != "application/json":
        return proxy(415, {"error": {"code": "unsupported_media_type", "message": "json only"}})
    try:
        body = json.loads(event["body"])
    except ValueError:
        return proxy(400, {"error": {"code": "malformed_json", "message": "bad JSON"}})
    rows = body.get("instances", [body])
    if any(not isinstance(r.get("lotsize", ""), int | float) or "bathrms" not in r for r in rows):
        details = [{"field": "lotsize", "message": "not a number", "row": 0}]
        return proxy(
            422, {"error": {"code": "validation_error", "message": "bad", "details": details}}
        )
    return proxy(200, {"predictions": [61_000.0] * len(rows), "model": model})


def invoker(change: Callable[[str, dict[str, Any]], dict[str, Any] | None] | None = None):
    """A fake version: healthy_reply, unless `change(event name, reply)` gives another reply."""
    # Keyed by the event as sent: marked as a smoke request (a KeyError if it is not).
    names = {json.dumps(smoke.mark(e), sort_keys=True): n for n, e in EVENTS_BUNDLE.items()}
    sent: list[str] = []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        name = names[json.dumps(event, sort_keys=True)]
        sent.append(name)
        reply = healthy_reply(event)
        return (change(name, reply) if change else None) or reply

    invoke.sent = sent  # type: ignore[attr-defined]
    return invoke


def failed(verdict: smoke.Verdict) -> dict[str, str]:
    return {r.event: r.reason for r in verdict.results if not r.passed}


# --- the verdict ---------------------------------------------------------------------------------


def test_a_version_that_answers_every_case_as_expected_passes() -> None:
    invoke = invoker()
    verdict = smoke.run(invoke, EVENTS_BUNDLE)
    assert verdict.passed, verdict.reasons
    assert invoke.sent == [case.event for case in smoke.CASES]  # health first: the cold start
    assert verdict.reasons == []


def test_the_real_predict_handler_passes_the_smoke_test(loaded: LoadedModel) -> None:
    context = FakeLambdaContext()
    verdict = smoke.run(lambda e: predict_handler.lambda_handler(e, context), EVENTS_BUNDLE)
    assert verdict.passed, verdict.reasons
    assert [r.status for r in verdict.results] == [case.status for case in smoke.CASES]


@pytest.mark.parametrize(
    ("event", "body", "why"),
    [
        ("predict", {"predictions": [math.nan], "model": MODEL}, "not a finite number"),
        (
            "predict",
            '{"predictions": [Infinity], "model": ' + json.dumps(MODEL) + "}",
            "not a finite number",
        ),  # fmt: skip
        ("predict", {"predictions": ["61000"], "model": MODEL}, "not a finite number"),
        ("predict", {"predictions": [True], "model": MODEL}, "not a finite number"),
        ("predict_batch", {"predictions": [61_000.0], "model": MODEL}, "expected 2 prediction(s)"),
        ("predict", {"predictions": [61_000.0]}, "no model block"),
        (
            "predict",
            {"predictions": [61_000.0], "model": {"name": "house-prices"}},
            "no model block",
        ),
        ("health", {"status": "ready"}, "no model block"),
        ("health", {"status": "loading", "model": MODEL}, "not ready"),
        ("model_info", {"task": "regression"}, "no model name and version"),
        ("predict", "<html>oops</html>", "not a JSON object"),
    ],
)
def test_a_wrong_answer_fails_the_smoke_test_naming_the_event(
    event: str, body: Any, why: str
) -> None:
    verdict = smoke.run(
        invoker(lambda n, r: proxy(200, body) if n == event else None), EVENTS_BUNDLE
    )
    assert not verdict.passed
    assert list(failed(verdict)) == [event]
    assert why in failed(verdict)[event]
    assert verdict.reasons == [f"{event}: {failed(verdict)[event]}"]


@pytest.mark.parametrize(
    ("event", "reply"),
    [
        ("predict", proxy(500, {"error": {"code": "internal_error", "message": "see logs"}})),
        ("health", proxy(503, {"status": "unavailable", "reason": "alias_not_found"})),
        # a bad request accepted is as wrong as a good one refused
        ("predict_wrong_type", proxy(200, {"predictions": [1.0], "model": MODEL})),
        (
            "predict_malformed_json",
            proxy(500, {"error": {"code": "internal_error", "message": "x"}}),
        ),
    ],
)
def test_an_unexpected_status_fails_the_smoke_test(event: str, reply: dict[str, Any]) -> None:
    verdict = smoke.run(invoker(lambda n, r: reply if n == event else None), EVENTS_BUNDLE)
    assert event in failed(verdict)
    assert failed(verdict)[event].startswith(f"status {reply['statusCode']}, expected ")


@pytest.mark.parametrize(
    "error",
    [
        {"message": "no code"},
        {"code": "validation_error", "message": "no details"},
        {"code": "validation_error", "message": "m", "details": [{"message": "no field"}]},
    ],
)
def test_a_422_outside_the_one_error_shape_fails(error: dict[str, Any]) -> None:
    bad = proxy(422, {"error": error})
    verdict = smoke.run(
        invoker(lambda n, r: bad if n == "predict_wrong_type" else None), EVENTS_BUNDLE
    )
    assert list(failed(verdict)) == ["predict_wrong_type"]


def test_a_reply_from_another_model_than_health_named_fails() -> None:
    other = {"name": "house-prices", "version": "an-older-one"}
    verdict = smoke.run(
        invoker(lambda n, r: healthy_reply(EVENTS_BUNDLE[n], other) if n == "predict" else None),
        EVENTS_BUNDLE,
    )
    assert list(failed(verdict)) == ["predict"]
    assert "an-older-one" in failed(verdict)["predict"]


def test_an_invoke_that_fails_fails_its_case_and_the_others_still_run() -> None:
    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        if event["path"] == "/model":
            raise smoke.InvokeError("Unhandled: Task timed out after 30.00 seconds")
        return healthy_reply(event)

    verdict = smoke.run(invoke, EVENTS_BUNDLE)
    assert failed(verdict) == {
        "model_info": "invoke failed: Unhandled: Task timed out after 30.00 seconds"
    }
    assert len(verdict.results) == len(smoke.CASES)


def test_a_missing_event_fails_rather_than_passing_unchecked() -> None:
    events = {k: v for k, v in EVENTS_BUNDLE.items() if k != "predict"}
    assert failed(smoke.run(invoker(), events)) == {"predict": "the event is not bundled"}


def test_another_model_skips_the_cases_written_for_the_bundled_one_and_says_so() -> None:
    rents = {"name": "rents", "version": "20261201T000000Z-00000000"}
    invoke = invoker(lambda n, r: healthy_reply(EVENTS_BUNDLE[n], rents))
    verdict = smoke.run(invoke, EVENTS_BUNDLE)
    assert verdict.passed, verdict.reasons
    skipped = {r.event for r in verdict.results if r.skipped}
    assert skipped == {c.event for c in smoke.CASES if c.model_bound}
    assert set(invoke.sent) == {c.event for c in smoke.CASES if not c.model_bound}
    assert all("serves rents" in r.reason for r in verdict.results if r.skipped)


def test_no_cases_is_no_pass() -> None:
    assert not smoke.run(invoker(), EVENTS_BUNDLE, cases=()).passed


# --- CodeDeploy ----------------------------------------------------------------------------------


@pytest.fixture
def codedeploy() -> Iterator[tuple[Any, Stubber]]:
    """A real botocore CodeDeploy client with its calls stubbed: moto has no
    PutLifecycleEventHookExecutionStatus, and the stub still checks every parameter against
    CodeDeploy's API model. In production the call goes to CodeDeploy, which then lets the shift
    start (Succeeded) or stops the deploy and leaves the alias where it was (Failed)."""
    client = boto3.client("codedeploy", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_status(stubber: Stubber, status: str) -> None:
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": HOOK_EVENT["DeploymentId"],
            "lifecycleEventHookExecutionId": HOOK_EVENT["LifecycleEventHookExecutionId"],
            "status": status,
        },
    )


def test_the_hook_reports_succeeded_for_a_good_version(codedeploy: tuple[Any, Stubber]) -> None:
    client, stubber = codedeploy
    expect_status(stubber, "Succeeded")
    assert smoke.run_hook(HOOK_EVENT, invoker(), client, EVENTS_BUNDLE).passed


def test_the_hook_reports_failed_for_a_wrong_answer(codedeploy: tuple[Any, Stubber]) -> None:
    client, stubber = codedeploy
    expect_status(stubber, "Failed")
    nan = proxy(200, {"predictions": [math.nan], "model": MODEL})
    verdict = smoke.run_hook(
        HOOK_EVENT, invoker(lambda n, r: nan if n == "predict" else None), client, EVENTS_BUNDLE
    )
    assert not verdict.passed


def test_the_hook_reports_failed_when_the_smoke_test_itself_breaks(
    codedeploy: tuple[Any, Stubber],
) -> None:
    client, stubber = codedeploy
    expect_status(stubber, "Failed")  # not silence: CodeDeploy would wait an hour for a status

    def broken(event: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("a bug")

    verdict = smoke.run_hook(HOOK_EVENT, broken, client, EVENTS_BUNDLE)
    assert verdict.reasons == ["smoke test: KeyError: 'a bug'"]


@pytest.mark.parametrize("event", [{}, {"DeploymentId": "d-1"}, load_event("predict")])
def test_an_event_that_is_not_a_lifecycle_hook_is_refused_before_anything_runs(
    event: dict[str, Any], codedeploy: tuple[Any, Stubber]
) -> None:
    client, _ = codedeploy
    invoke = invoker()
    with pytest.raises(ValueError, match="not a CodeDeploy lifecycle hook event"):
        smoke.run_hook(event, invoke, client, EVENTS_BUNDLE)
    assert invoke.sent == []


# --- invoking a version --------------------------------------------------------------------------


VERSION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:sklambda-prod-PredictFunction:12"


def lambda_response(payload: bytes, function_error: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "StatusCode": 200,
        "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
        "ExecutedVersion": "12",
    }
    if function_error:
        response["FunctionError"] = function_error
    return response


def test_the_invoker_sends_the_event_to_the_version_and_returns_its_reply() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    event = EVENTS_BUNDLE["health"]
    reply = proxy(200, {"status": "ready", "model": MODEL})
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke",
            lambda_response(json.dumps(reply).encode()),
            {
                "FunctionName": VERSION_ARN,
                "InvocationType": "RequestResponse",
                "Payload": json.dumps(event).encode(),
            },
        )
        assert smoke.lambda_invoker(client, VERSION_ARN)(event) == reply


@pytest.mark.parametrize(
    ("response", "why"),
    [
        (lambda_response(b'{"errorMessage": "boom"}', "Unhandled"), "Unhandled"),
        (lambda_response(b"not json"), "not JSON"),
        (lambda_response(b"[1, 2]"), "not an object"),
    ],
)
def test_a_function_error_or_a_reply_that_is_not_an_object_is_an_invoke_error(
    response: dict[str, Any], why: str
) -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_response("invoke", response)
        with pytest.raises(smoke.InvokeError, match=why):
            smoke.lambda_invoker(client, VERSION_ARN)(EVENTS_BUNDLE["health"])


def test_a_refused_invoke_is_an_invoke_error() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("invoke", "AccessDeniedException", "not allowed", 403)
        with pytest.raises(smoke.InvokeError, match="AccessDenied"):
            smoke.lambda_invoker(client, VERSION_ARN)(EVENTS_BUNDLE["health"])


def test_an_empty_target_is_an_invoke_error_not_a_call() -> None:
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client), pytest.raises(smoke.InvokeError, match="TARGET_FUNCTION_VERSION"):
        smoke.lambda_invoker(client, "")(EVENTS_BUNDLE["health"])


# --- the events the hook ships -------------------------------------------------------------------


def test_the_hook_function_ships_exactly_the_cases_events_from_events_dir() -> None:
    shipped = ROOT / "functions" / "pre_traffic" / "smoke_events.json"
    assert shipped.read_text(encoding="utf-8") == smoke.bundle_json(EVENTS), (
        "functions/pre_traffic/smoke_events.json is out of date with events/ or "
        "sklambda.smoke.CASES: run `make -C functions/pre_traffic events`"
    )


def test_the_cases_are_api_events_of_the_one_documented_list() -> None:
    assert [c.event for c in smoke.CASES][0] == "health"
    for case in smoke.CASES:
        event = EVENTS_BUNDLE[case.event]
        assert "httpMethod" in event, case.event
        assert (case.status == 200) == (case.kind != "error"), case
    assert {c.status for c in smoke.CASES if c.kind == "error"} == {400, 415, 422}
    docs = (ROOT / "docs" / "deploys.md").read_text(encoding="utf-8")
    assert all(f"{c.event}.json" in docs for c in smoke.CASES)
