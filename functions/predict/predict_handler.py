"""Predict API: Powertools resolver, routes and observability over the sklambda core."""

import functools
import json
import pathlib
import warnings
from typing import TYPE_CHECKING, Annotated, Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi import swagger_ui
from aws_lambda_powertools.event_handler.openapi.models import APIKey
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import api, openapi
from sklambda.errors import SklambdaError
from sklambda.model import LoadedModel
from sklambda.serving import ModelHolder, health
from sklambda.settings import ServingSettings
from sklambda.store import SERVING_S3_CONFIG, ModelStore

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

# GET /model and /health publish no metrics by design; Powertools would warn on each empty flush.
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
# One description for /openapi.json and /swagger, with the API key API Gateway checks.
OPENAPI: dict[str, Any] = {
    "title": "sklambda predict API",
    "version": "1.0.0",
    "security_schemes": {"apiKey": APIKey.model_validate({"name": "x-api-key", "in": "header"})},
}
KEYED: list[dict[str, list[str]]] = [{"apiKey": []}]
app.configure_openapi(**OPENAPI)
# Swagger UI is our own route (below): it shows the document made for the served model.
SWAGGER_UI = pathlib.Path(swagger_ui.__file__).parent  # Powertools' copy: no CDN, nothing fetched

settings = ServingSettings.from_env()


def _store() -> ModelStore:
    return ModelStore(boto3.client("s3", config=SERVING_S3_CONFIG), settings.bucket)


def _kms() -> "KMSClient":
    # GetPublicKey is on the cold-start path too: the same short timeouts and single retry.
    return boto3.client("kms", config=SERVING_S3_CONFIG)


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


holder = ModelHolder(
    settings, _store, on_load=_on_load, on_refresh_error=_on_refresh_error, kms_factory=_kms
)


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
    return Response(status, "application/json", api.dump_json(payload), headers)


PREDICT_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {
        "description": "predictions (CSV, one per line, when Accept asks for text/csv)",
        "content": {
            "application/json": {"model": api.PredictResponse},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    400: _error("malformed JSON or CSV, or unknown format"),
    403: FORBIDDEN,
    413: _error("too many rows or bytes"),
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
    reply = api.predict(holder, event.headers, body_bytes)
    metrics.add_metric(name="PredictedRows", unit=MetricUnit.Count, value=len(reply["predictions"]))
    if api.wants_csv(event.headers):
        return Response(200, "text/csv", api.csv_reply(reply["predictions"]))
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
        413: _error("too many rows or bytes"),
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
    reply = api.infer(holder, name, event.headers, body_bytes)
    rows = reply["outputs"][0]["shape"][0]
    metrics.add_metric(name="PredictedRows", unit=MetricUnit.Count, value=rows)
    return _json(200, reply)


@functools.cache
def _static_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(app.get_openapi_json_schema())
    return document


def _document() -> dict[str, Any]:
    """The OpenAPI document; POST /predict's body as the served model takes it when a model
    loads, else (no model: every POST /predict is a 503) the static description."""
    try:
        served = holder.get()
    except SklambdaError:
        return openapi.without_model(_static_document())
    label = f"{served.manifest.name} {served.manifest.version}"
    return openapi.for_model(
        _static_document(),
        served.schema,
        settings.max_rows,
        label,
        api.EXAMPLE_RECORD,
        schema_name=served.manifest.name,
    )


# Served by ApiDocsFunction (template.yaml), and only when EnableApiDocs is true.
@app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
def openapi_document() -> Response[str]:
    return _json(200, _document())


@functools.cache
def _swagger_assets() -> tuple[str, str]:
    """Swagger UI's script and style sheet (1.7 MB), read once per container."""
    return (
        (SWAGGER_UI / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (SWAGGER_UI / "swagger-ui.min.css").read_text(encoding="utf-8"),
    )


@app.get("/swagger", summary="Swagger UI", include_in_schema=False)
def swagger() -> Response[str]:
    document = {**_document(), "servers": [{"url": app._get_base_path() or "/"}]}
    html = swagger_ui.generate_swagger_html(
        api.dump_json(document).replace("</", "<\\/"),  # no "</script>" inside the script
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
        logger.warning("request failed", extra={"code": exc.code, "error": exc.message})
    return _json(exc.status, api.error_body(exc), api.error_headers(exc))


@app.not_found
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


def _before_snapshot() -> None:
    holder.before_snapshot()
    # The load is logged; its metric is dropped, or every restored environment would replay it.
    metrics.clear_metrics()


def _after_restore() -> None:
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
    holder.start_invocation(context.get_remaining_time_in_millis() / 1000)
    return app.resolve(event, context)
