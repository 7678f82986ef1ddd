"""The smoke test a new predict function version passes before it takes any traffic.

A fixed list of the API events in events/ (CASES) is sent to the version, and each reply is
judged by its status and shape: a prediction is a finite number, one per record sent, next to the
model that made it; a health check is ready and names the model; a bad request is the expected
4xx in the one error shape. Every reply that names a model must name the one /health named.

CodeDeploy's PreTraffic hook (functions/pre_traffic) runs it through `run_hook` and reports the
verdict, Succeeded or Failed, with PutLifecycleEventHookExecutionStatus: a failed verdict stops
the deploy before the alias moves. Clients are passed in: an `Invoker` (event in, the function's
API Gateway proxy reply out: `lambda_invoker` in production, the handler in-process in tests) and
a CodeDeploy client.

Each event is sent marked as a smoke request (`mark`: a requestContext field, which API Gateway
sets itself and no client can forge or strip): the predict function answers it as any other but
never captures it (nor shadow-scores it), so the fixed smoke requests stay out of the monitor's
data.

The events' bodies carry the features of the bundled model (EVENTS_MODEL). A stack serving
another model skips the cases whose body names features (`model_bound`) and says so; the
others (health, manifest, malformed JSON, wrong content type) hold for any model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient

Invoker = Callable[[dict[str, Any]], dict[str, Any]]
Kind = Literal["health", "model", "prediction", "error"]

EVENTS_MODEL = "house-prices"  # whose features the events' bodies carry (events/generate.py)
SMOKE_CONTEXT_KEY = "sklambdaSmoke"  # requestContext[...] = true on every event `run` sends


def mark(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an API event marked as a smoke request."""
    context = event.get("requestContext")
    return {
        **event,
        "requestContext": {
            **(context if isinstance(context, dict) else {}),
            SMOKE_CONTEXT_KEY: True,
        },
    }


def is_smoke(event: Mapping[str, Any]) -> bool:
    """Whether an API event was sent by the smoke test (`mark`)."""
    context = event.get("requestContext")
    return isinstance(context, dict) and context.get(SMOKE_CONTEXT_KEY) is True


@dataclass(frozen=True)
class Case:
    """events/<event>.json must be answered with `status`, in the shape `kind` describes."""

    event: str
    status: int
    kind: Kind
    model_bound: bool = False  # the body names EVENTS_MODEL's features


# Health first: it names the served model, and its invoke is the version's cold start.
CASES: tuple[Case, ...] = (
    Case("health", 200, "health"),
    Case("model_info", 200, "model"),
    Case("predict", 200, "prediction", model_bound=True),
    Case("predict_batch", 200, "prediction", model_bound=True),
    Case("predict_wrong_type", 422, "error", model_bound=True),
    Case("predict_missing_feature", 422, "error", model_bound=True),
    Case("predict_malformed_json", 400, "error"),
    Case("predict_wrong_content_type", 415, "error"),
)


class InvokeError(Exception):
    """The version could not be invoked, or failed (an unhandled error, a timeout)."""


@dataclass(frozen=True)
class CaseResult:
    event: str
    passed: bool
    status: int | None = None
    reason: str = ""  # what was wrong, or why the case was skipped
    skipped: bool = False


@dataclass(frozen=True)
class Verdict:
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return bool(self.results) and all(r.passed for r in self.results)

    @property
    def reasons(self) -> list[str]:
        """One line per failed case: the event and what was wrong with the reply."""
        return [f"{r.event}: {r.reason}" for r in self.results if not r.passed]

    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": self.reasons,
            "cases": [
                {"event": r.event, "status": r.status, "passed": r.passed, "skipped": r.skipped}
                | ({"reason": r.reason} if r.reason else {})
                for r in self.results
            ],
        }


def run(
    invoke: Invoker, events: Mapping[str, dict[str, Any]], cases: Sequence[Case] = CASES
) -> Verdict:
    """Send each case's event through `invoke` and judge the reply; every case runs, so the
    verdict lists every problem at once."""
    results: list[CaseResult] = []
    served: dict[str, str] | None = None  # the model /health named
    for case in cases:
        event = events.get(case.event)
        if event is None:
            results.append(CaseResult(case.event, False, reason="the event is not bundled"))
            continue
        if case.model_bound and served and served["name"] != EVENTS_MODEL:
            reason = f"skipped: its body is for {EVENTS_MODEL}, the version serves {served['name']}"
            results.append(CaseResult(case.event, True, reason=reason, skipped=True))
            continue
        try:
            reply = invoke(mark(event))
        except InvokeError as exc:
            results.append(CaseResult(case.event, False, reason=f"invoke failed: {exc}"))
            continue
        status, problem, model = judge(case, event, reply)
        if problem is None and model is not None:
            if case.kind == "health":
                served = model
            elif served is not None and model != served:
                problem = f"answered by model {model}, /health named {served}"
        results.append(CaseResult(case.event, problem is None, status, problem or ""))
    return Verdict(tuple(results))


def judge(
    case: Case, event: Mapping[str, Any], reply: Any
) -> tuple[int | None, str | None, dict[str, str] | None]:
    """(status, what is wrong or None, the model the reply names or None)."""
    if not isinstance(reply, dict) or not isinstance(reply.get("statusCode"), int):
        return None, f"not an API Gateway proxy reply: {str(reply)[:200]}", None
    status: int = reply["statusCode"]
    text = reply.get("body")
    if status != case.status:
        return status, f"status {status}, expected {case.status}: {str(text)[:200]}", None
    try:
        body = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return status, f"the body is not a JSON object: {str(text)[:200]}", None
    return (status, *_shape_problem(case, event, body))


def _shape_problem(
    case: Case, event: Mapping[str, Any], body: Mapping[str, Any]
) -> tuple[str | None, dict[str, str] | None]:
    """What is wrong with a JSON reply of the expected status, and the model it names."""
    if case.kind == "error":
        return _error_problem(case.status, body), None
    if case.kind == "model":
        model = _model_block(body)
        return (None if model else f"no model name and version: {str(body)[:200]}"), model
    model = _model_block(body.get("model"))
    if model is None:
        return f"no model block with name and version: {str(body)[:200]}", None
    if case.kind == "health":
        ready = body.get("status") == "ready"
        return (None if ready else f"not ready: {str(body)[:200]}"), model
    return _prediction_problem(event, body), model


def _model_block(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    name, version = value.get("name"), value.get("version")
    if not (isinstance(name, str) and name and isinstance(version, str) and version):
        return None
    return {"name": name, "version": version}


def _records(event: Mapping[str, Any]) -> int:
    """How many records a JSON request body carries (one record, or `instances`)."""
    body = json.loads(event.get("body") or "null")
    if isinstance(body, dict) and isinstance(body.get("instances"), list):
        return len(body["instances"])
    return 1


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _prediction_problem(event: Mapping[str, Any], body: Mapping[str, Any]) -> str | None:
    predictions = body.get("predictions")
    expected = _records(event)
    if not isinstance(predictions, list) or len(predictions) != expected:
        return f"expected {expected} prediction(s), got {str(predictions)[:200]}"
    if not all(_finite(p) for p in predictions):
        return f"a prediction is not a finite number: {str(predictions)[:200]}"
    return None


def _error_problem(status: int, body: Mapping[str, Any]) -> str | None:
    error = body.get("error")
    if not isinstance(error, dict) or not error.get("code") or not error.get("message"):
        return f"not the error shape (error.code, error.message): {str(body)[:200]}"
    details = error.get("details")
    if status == 422 and not (
        isinstance(details, list)
        and details
        and all(isinstance(d, dict) and d.get("field") for d in details)
    ):
        return f"a 422 must name each offending field: {str(error)[:200]}"
    return None


# ---------------------------------------------------------------- the events it sends


def bundle(events_dir: Path, cases: Sequence[Case] = CASES) -> dict[str, dict[str, Any]]:
    """The cases' events read from events/, as the hook function ships them: `sam build` copies
    only the function's own folder, so events/ is not there at run time."""
    return {
        case.event: json.loads((events_dir / f"{case.event}.json").read_text(encoding="utf-8"))
        for case in cases
    }


def bundle_json(events_dir: Path, cases: Sequence[Case] = CASES) -> str:
    """The bundle as functions/pre_traffic/smoke_events.json holds it, byte for byte."""
    return json.dumps(bundle(events_dir, cases), indent=2, sort_keys=True) + "\n"


def load_bundle(path: Path) -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return events


# ---------------------------------------------------------------- CodeDeploy's hook


@dataclass(frozen=True)
class HookEvent:
    """What CodeDeploy sends a lifecycle hook, and must be given back with the status."""

    deployment_id: str
    execution_id: str

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> HookEvent:
        deployment_id = event.get("DeploymentId")
        execution_id = event.get("LifecycleEventHookExecutionId")
        if not (isinstance(deployment_id, str) and deployment_id):
            raise ValueError("not a CodeDeploy lifecycle hook event: no DeploymentId")
        if not (isinstance(execution_id, str) and execution_id):
            raise ValueError(
                "not a CodeDeploy lifecycle hook event: no LifecycleEventHookExecutionId"
            )
        return cls(deployment_id, execution_id)


def run_hook(
    event: Mapping[str, Any],
    invoke: Invoker,
    codedeploy: CodeDeployClient,
    events: Mapping[str, dict[str, Any]],
    cases: Sequence[Case] = CASES,
) -> Verdict:
    """Run the smoke test and report its verdict to CodeDeploy: Succeeded lets traffic shift to
    the new version, Failed stops the deploy and leaves the alias where it was. A verdict is
    reported whatever goes wrong in between; without one CodeDeploy would wait an hour."""
    hook = HookEvent.parse(event)
    try:
        verdict = run(invoke, events, cases)
    except Exception as exc:  # a bug here must fail the deploy, not leave it waiting
        verdict = Verdict((CaseResult("smoke test", False, reason=f"{type(exc).__name__}: {exc}"),))
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=hook.deployment_id,
        lifecycleEventHookExecutionId=hook.execution_id,
        status="Succeeded" if verdict.passed else "Failed",
    )
    return verdict


def lambda_invoker(client: LambdaClient, function: str) -> Invoker:
    """Invoke `function` (the version's ARN) synchronously with an event; its reply. A function
    error (an unhandled exception, a timeout) or an empty target raises InvokeError."""

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        if not function:
            raise InvokeError("no function version to test (TARGET_FUNCTION_VERSION is empty)")
        try:
            response = client.invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps(event).encode(),
            )
            payload = response["Payload"].read()
        except (BotoCoreError, ClientError) as exc:  # throttled, denied, timed out...
            raise InvokeError(str(exc)) from exc
        if response.get("FunctionError"):
            raise InvokeError(f"{response['FunctionError']}: {payload[:300]!r}")
        try:
            reply = json.loads(payload)
        except ValueError as exc:
            raise InvokeError(f"the reply is not JSON: {payload[:300]!r}") from exc
        if not isinstance(reply, dict):
            raise InvokeError(f"the reply is not an object: {payload[:300]!r}")
        return reply

    return invoke
