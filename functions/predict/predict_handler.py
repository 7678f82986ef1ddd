"""Predict API: Powertools resolver, routes and observability over the sklambda core."""

import functools
import json
import pathlib
import warnings
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver, Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import api, clients, openapi, smoke
from sklambda.capture import CAPTURE_CONFIG, Capture
from sklambda.errors import RequestError, SklambdaError
from sklambda.model import LoadedModel
from sklambda.serving import ModelHolder, health
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore

# GET /model and /health publish no metrics by design; Powertools would warn on each empty flush.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# The routes, once. A REST API (payload 1.0) and an HTTP API (payload 2.0) each get a resolver
# that includes them (bottom of the module); lambda_handler picks one by the event's shape.
app = Router()  # type: ignore[no-untyped-call]  # Powertools' __init__ has no annotations
# One description for /openapi.json and /swagger. Its API key scheme (APIKey) and Swagger UI come
# from Powertools' OpenAPI models, about 0.1 s of pydantic classes to import: both are imported
# where the docs are made (_static_document, swagger), never on a prediction's cold start.
OPENAPI: dict[str, Any] = {"title": "sklambda predict API", "version": "1.0.0"}
KEYED: list[dict[str, list[str]]] = [{"apiKey": []}]

settings = ServingSettings.from_env()


def _store() -> ModelStore:
    return clients.serving_store(settings.bucket)  # S3: short timeouts, one retry


def _on_load(model: LoadedModel, timings: dict[str, float], reason: str) -> None:
    logger.info(
        "model loaded",
        extra={
            "model_version": model.manifest.version,
            "model_format": model.format,
            "reason": reason,
            **{k: round(v, 2) for k, v in timings.items()},
        },
    )
    metrics.add_metric(
        name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=timings["total_ms"]
    )


def _on_refresh_error(exc: Exception) -> None:
    logger.warning("model refresh failed; keeping the current model", extra={"error": str(exc)})


# The function version this container runs ("12"; "$LATEST" when unpublished), from the
# invocation's context: a deploy's canary alarms (template.yaml, PredictCanary*Alarm) watch the
# version being shifted to, so ServerErrors and ModelLoadFailures are also counted per version.
_running: dict[str, str] = {}


def _count_for_version(name: str) -> None:
    version = _running.get("version")
    if version is None:  # outside an invocation (SnapStart's snapshot): no version to name
        return
    dimensions = {"service": metrics.service or "", "function_version": version}
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=dimensions,
    ):
        pass


def _on_load_error(exc: Exception) -> None:
    _count_for_version("ModelLoadFailures")


holder = ModelHolder(
    settings,
    _store,
    on_load=_on_load,
    on_refresh_error=_on_refresh_error,
    on_load_error=_on_load_error,
    kms_factory=clients.serving_kms,  # GetPublicKey, when models are signed
    freeze_gc=True,  # the process's one holder: its model kept out of the collector's scans
)
# Prediction capture (CAPTURE_STREAM, CAPTURE_SAMPLE_RATE): clients made in its own thread.
capture = Capture(
    settings,
    lambda: clients.firehose(CAPTURE_CONFIG),
    secrets_factory=lambda: clients.secretsmanager(CAPTURE_CONFIG),
    shadow=holder.shadow,  # SHADOW_ALIAS: scores the captured rows too, after the reply
)


def _capture(model: LoadedModel, rows: Any, predictions: list[Any]) -> None:
    """Once a reply is computed: a sampled share goes to the capture stream (bounded; never
    fails the request); rows it could not send are counted."""
    event = app.current_event.raw_event
    if smoke.is_smoke(event):  # the PreTraffic hook's fixed requests: never captured
        return
    request = event.get("requestContext") or {}
    capture.observe(model, rows, predictions, str(request.get("requestId", "")))
    dropped = capture.flush()
    if dropped:
        metrics.add_metric(name="CaptureDropped", unit=MetricUnit.Count, value=dropped)
    if capture.last_refused:  # a private feature name the model does not have (fails closed)
        metrics.add_metric(name="CaptureRefused", unit=MetricUnit.Count, value=capture.last_refused)


def _error(description: str) -> OpenAPIResponse:
    return {
        "description": description,
        "content": {"application/json": {"model": api.ErrorResponse}},
    }


# The body as documented. The route runs without Powertools' validation, so nothing is injected
# and the parameter needs a default; the served document marks the body required all the same.
PredictBody = Annotated[api.PredictRequest, Body(openapi_examples=api.PREDICT_EXAMPLES)]
FORBIDDEN: OpenAPIResponse = {
    "description": "missing or wrong x-api-key (answered by API Gateway, in its own shape)",
    "content": {"application/json": {"model": api.GatewayError}},
}


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response[str]:
    # sized_reply: a 413 (raised in the route, so answered in the one error shape) for a reply
    # over Lambda's response limit, which would fail the invoke (a 502)
    return Response(status, "application/json", api.sized_reply(api.dump_json(payload)), headers)


PREDICT_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "predictions (CSV, one per line, when Accept asks for text/csv)",
        "content": {
            "application/json": {"model": api.PredictResponse},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    400: _error(
        "malformed JSON or CSV, or unknown format; or intervals the model does not have (a "
        "classifier, an older model, a coverage not in GET /model's intervals.levels)"
    ),
    403: FORBIDDEN,
    413: _error(
        "too many rows or bytes, explanations of more than MAX_EXPLAIN_ROWS rows, or a reply "
        "over Lambda's 6 MB response limit (send fewer rows)"
    ),
    406: _error("explanations asked for with Accept: text/csv (they come in JSON only)"),
    409: _error("explanations asked of a model version without explanation data (retrain it)"),
    415: _error("neither application/json nor text/csv"),
    422: _error(
        "values that do not fit the feature schema, or (far outside the training range) "
        "give no finite prediction"
    ),
    503: _error("model unavailable; retry after Retry-After seconds"),
}


def _predict() -> Response[str]:
    event = app.current_event
    body_bytes = api.request_body(event.body, bool(event.is_base64_encoded))
    query = event.query_string_parameters or {}
    reply = api.predict(holder, event.headers, body_bytes, _capture, query)
    metrics.add_metric(name="PredictedRows", unit=MetricUnit.Count, value=len(reply["predictions"]))
    if api.wants_csv(event.headers):
        csv = api.csv_reply(
            reply["predictions"], reply.get("probabilities"), reply.get("intervals")
        )
        return Response(200, "text/csv", api.sized_reply(csv))
    return _json(200, reply)


@app.post(
    "/predict",
    summary="Predict from one record, a batch, or CSV rows",
    # Parsed by sklambda.api (ordered checks, column-wise validation); the annotation documents it.
    enable_validation=False,
    security=KEYED,
    responses=PREDICT_RESPONSES,
)
@tracer.capture_method
def predict(body: PredictBody = None) -> Response[str]:  # type: ignore[assignment]
    return _predict()


@app.post(
    "/invocations",
    summary="SageMaker / MLflow scoring route: the same as POST /predict",
    enable_validation=False,
    security=KEYED,
    responses=PREDICT_RESPONSES,
)
@tracer.capture_method
def invocations(body: PredictBody = None) -> Response[str]:  # type: ignore[assignment]
    return _predict()


@app.get(
    "/model",
    summary="The served model's manifest",
    enable_validation=False,
    security=KEYED,
    responses={
        200: {
            "description": "the manifest: version, metrics, feature schema, runtime",
            "content": {"application/json": {"model": api.ModelInfo}},
        },
        403: FORBIDDEN,
        503: _error("model unavailable"),
    },
)
def model() -> Response[str]:
    return _json(200, api.model_info(holder))


HEALTH_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "ready, and which model",
        "content": {"application/json": {"model": api.HealthResponse}},
    },
    503: {
        "description": "not ready, and why",
        "content": {"application/json": {"model": api.HealthResponse}},
    },
}


@app.get(
    "/health",
    summary="Ready or not, and why",
    enable_validation=False,
    responses=HEALTH_RESPONSES,
)
def healthcheck() -> Response[str]:
    state = health(holder)
    return _json(200 if state["status"] == "ready" else 503, state)


@app.get(
    "/ping",
    summary="SageMaker's health check: the same as GET /health",
    enable_validation=False,
    responses=HEALTH_RESPONSES,
)
def ping() -> Response[str]:
    return healthcheck()


# --- the Open Inference Protocol (KServe V2, Triton, MLServer) -----------------------------


@app.get(
    "/v2/health/ready",
    summary="Open Inference Protocol: server ready",
    enable_validation=False,
    responses={
        200: {"description": "ready", "content": {"application/json": {"model": api.V2Ready}}},
        503: {
            "description": "not ready",
            "content": {"application/json": {"model": api.V2Ready}},
        },
    },
)
def v2_ready() -> Response[str]:
    ready = health(holder)["status"] == "ready"
    return _json(200 if ready else 503, {"ready": ready})


V2_NAME = "the served model's name (GET /model), e.g. house-prices"


@app.get(
    "/v2/models/<name>",
    summary="Open Inference Protocol: model metadata",
    enable_validation=False,
    security=KEYED,
    responses={
        200: {
            "description": "inputs (one tensor per feature) and outputs",
            "content": {"application/json": {"model": api.V2ModelMetadata}},
        },
        403: FORBIDDEN,
        404: _error("no model of that name is served here"),
        503: _error("model unavailable; retry after Retry-After seconds"),
    },
)
def v2_model(name: Annotated[str, Path(description=V2_NAME)]) -> Response[str]:
    return _json(200, api.model_metadata(holder, name))


V2InferBody = Annotated[api.V2InferRequest, Body(openapi_examples=api.V2_INFER_EXAMPLES)]


@app.post(
    "/v2/models/<name>/infer",
    summary="Open Inference Protocol: inference",
    enable_validation=False,
    security=KEYED,
    responses={
        200: {
            "description": "the predictions as one FP64 tensor of shape [n]",
            "content": {"application/json": {"model": api.V2InferResponse}},
        },
        400: _error("malformed JSON, or tensors that do not fit together"),
        403: FORBIDDEN,
        404: _error("no model of that name is served here"),
        409: _error("explanations asked of a model version without explanation data"),
        413: _error("too many rows or bytes, or rows explained, or a reply over 6 MB"),
        415: _error("not application/json"),
        422: _error("values that do not fit the feature schema"),
        503: _error("model unavailable; retry after Retry-After seconds"),
    },
)
@tracer.capture_method
def v2_infer(
    name: Annotated[str, Path(description=V2_NAME)],
    body: V2InferBody = None,  # type: ignore[assignment]
) -> Response[str]:
    event = app.current_event
    body_bytes = api.request_body(event.body, bool(event.is_base64_encoded))
    reply = api.infer(holder, name, event.headers, body_bytes, _capture)
    rows = reply["outputs"][0]["shape"][0]
    metrics.add_metric(name="PredictedRows", unit=MetricUnit.Count, value=rows)
    return _json(200, reply)


@functools.cache
def _static_document() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, SecurityScheme

    # The API key API Gateway checks (the KEYED routes).
    keyed: dict[str, SecurityScheme] = {
        "apiKey": APIKey.model_validate({"name": "x-api-key", "in": "header"})
    }
    schema = rest_app.get_openapi_json_schema(security_schemes=keyed)
    return openapi.without_validation_errors(json.loads(schema))


def _document() -> dict[str, Any]:
    """The OpenAPI document, ONE for /openapi.json and /swagger: POST /predict's body as the
    served model takes it when a model loads, else (no model: every POST /predict is a 503)
    the static description; only the components it uses; `servers` where this request came
    in (the stage on an execute-api URL, none locally), read from the event; on an HTTP API,
    keyed routes take a bearer JWT instead of x-api-key."""
    try:
        served = holder.get()
    except SklambdaError:
        document = openapi.without_model(_static_document())
    else:
        document = openapi.for_model(
            _static_document(),
            served.schema,
            settings.max_rows,
            f"{served.manifest.name} {served.manifest.version}",
            api.EXAMPLE_RECORD,
            schema_name=served.manifest.name,
            intervals=served.manifest.intervals.coverages if served.manifest.intervals else [],
            explainable=served.explainable,
        )
    event = app.current_event
    context = event.raw_event.get("requestContext") or {}
    requested = (context.get("http") or {}).get("path") or context.get("path") or ""
    document["servers"] = [{"url": openapi.server_url(requested, event.path)}]
    if event.raw_event.get("version") == "2.0":  # an HTTP API: a JWT authorizer, no API keys
        document = openapi.with_bearer_auth(document)
    return openapi.only_used_components(document)


# Served by ApiDocsFunction (template.yaml), and only when EnableApiDocs is true.
@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_document() -> Response[str]:
    return _json(200, _document())


@functools.cache
def _swagger_assets() -> tuple[str, str]:
    """Swagger UI's script and style sheet (1.7 MB), read once per container from Powertools'
    copy: no CDN, nothing fetched."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    folder = pathlib.Path(swagger_ui.__file__).parent
    return (
        (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
    )


@app.get("/swagger", summary="Swagger UI", include_in_schema=False)
def swagger() -> Response[str]:
    """Swagger UI is our own route: it shows the document made for the served model."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    html = swagger_ui.generate_swagger_html(
        api.dump_json(_document()).replace("</", "<\\/"),  # no "</script>" inside the script
        *_swagger_assets(),
        "",  # no base URL: the script and style sheet are inlined, as Powertools does
        None,
    )
    return Response(200, "text/html", html)


@app.exception_handler(SklambdaError)
def handle_domain_error(exc: SklambdaError) -> Response[str]:
    # Counted so an alarm can watch rejected requests and unavailable models.
    metrics.add_metric(
        name="ClientErrors" if exc.status < 500 else "ServerErrors", unit=MetricUnit.Count, value=1
    )
    if exc.status >= 500:
        _count_for_version("ServerErrors")
        logger.warning("request failed", extra={"code": exc.code, "error": exc.message})
    return _json(exc.status, api.error_body(exc), api.error_headers(exc))


@app.exception_handler(NotFoundError)
def handle_not_found(exc: NotFoundError) -> Response[str]:
    error = SklambdaError(
        f"no route {app.current_event.http_method} {app.current_event.path}",
        status=404,
        code="not_found",
    )
    return handle_domain_error(error)


@app.exception_handler(Exception)
def handle_unexpected(exc: Exception) -> Response[str]:
    logger.exception("unexpected error")
    error = SklambdaError("internal error; the request id is in the logs", code="internal_error")
    return handle_domain_error(error)


# One set of routes (and error handlers), two event payloads: ApiType REST (template) sends 1.0,
# HTTP sends 2.0. Included last, so every route and handler above is in both.
rest_app = APIGatewayRestResolver(enable_validation=True)
http_app = APIGatewayHttpResolver(enable_validation=True)
for _resolver in (rest_app, http_app):
    _resolver.configure_openapi(**OPENAPI)
    _resolver.include_router(app)


def _resolver_for(event: Any) -> tuple[ApiGatewayResolver, dict[str, Any]] | None:
    """The resolver for an API Gateway proxy event by its shape, and the event it resolves
    (api.proxy_event): payload 2.0 the HTTP API's, 1.0 the REST API's; None for anything else."""
    shaped = api.proxy_event(event)
    if shaped is None:
        return None
    version, event = shaped
    return (http_app if version == "2.0" else rest_app), event


def _unknown_event() -> dict[str, Any]:
    """A 400 in the one error shape, as a proxy response, for an event that is not one."""
    error = RequestError(
        "not an API Gateway proxy event: expected a REST API event (payload 1.0, httpMethod "
        "and path) or an HTTP API event (payload 2.0: version, rawPath, requestContext.http)",
        code="unknown_event",
    )
    metrics.add_metric(name="ClientErrors", unit=MetricUnit.Count, value=1)
    logger.warning("unknown event shape", extra={"code": error.code})
    return {
        "statusCode": error.status,
        "headers": {"Content-Type": "application/json"},
        "body": api.dump_json(api.error_body(error)),
        "isBase64Encoded": False,
    }


def _before_snapshot() -> None:
    holder.before_snapshot()
    # The load is logged; its metric is dropped, or every restored environment would replay it.
    metrics.clear_metrics()


def _after_restore() -> None:
    clients.clear()  # a restored environment makes its own: no snapshot-time connections
    holder.after_restore()


# SnapStart runtime hooks (EnableSnapStart in template.yaml). Lambda's Python runtime provides
# snapshot_restore_py; other runtimes (a local stand-in container) may not, and need no hooks.
try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # pragma: no cover - depends on the runtime
    pass
else:
    register_before_snapshot(_before_snapshot)
    register_after_restore(_after_restore)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _running["version"] = getattr(context, "function_version", "$LATEST")
    holder.start_invocation(context.get_remaining_time_in_millis() / 1000)
    found = _resolver_for(event)
    if found is None:
        return _unknown_event()
    resolver, event = found
    return resolver.resolve(event, context)
