"""The HTTP contract of the predict API: pydantic models (for OpenAPI) and the request logic.

Request bodies are parsed here rather than by a generic validator so that the checks run in the
order a client expects (415 content type, 413 size, 400 JSON, 503 model, 413 rows, 422 values)
and so a 10,000-row batch is validated column-wise in numpy instead of object by object.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from sklambda.errors import ModelUnavailableError, RequestError, SklambdaError
from sklambda.request_formats import decode_request
from sklambda.serving import RETRY_AFTER_SECONDS, ModelHolder

JSON_TYPES = ("application/json",)


# --- models (OpenAPI documentation of the contract) -----------------------------------------


class ErrorDetail(BaseModel):
    field: str | None = Field(description="the offending feature or key")
    message: str
    row: int | None = Field(default=None, description="0-based row in the request")


class ErrorInfo(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(BaseModel):
    """Every error the function answers, whatever the status, has this shape."""

    error: ErrorInfo


class GatewayError(BaseModel):
    """An error API Gateway answers itself, before the function (403 without the API key)."""

    message: str = Field(examples=["Forbidden"])


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    """Predictions in request order; a single bare record also gets `{<target>: value}`."""

    model_config = ConfigDict(extra="allow")
    predictions: list[float]
    model: ModelRef
    warnings: list[str] = Field(default=[], description="e.g. inputs outside the training range")


class FeatureInfo(BaseModel):
    name: str
    type: str = Field(examples=["number"], description="number, integer, boolean or category")
    transform: str = "none"
    required: bool = True
    categories: list[str] = []
    min: float | None = Field(default=None, description="training minimum (numbers)")
    max: float | None = Field(default=None, description="training maximum (numbers)")


class ServingInfo(BaseModel):
    format: str = Field(examples=["npz"], description="npz (numpy arrays) or joblib (pickle)")
    alias: str
    pinned_version: str | None


class ModelInfo(BaseModel):
    """GET /model: the served model's manifest, less what only training needs, and how it is
    served. Features are in schema order (the order of `instances` given as lists)."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    features: list[FeatureInfo]
    serving: ServingInfo


# The request forms, as the static document describes them. The document served at
# /openapi.json replaces them with the served model's exact schema (sklambda.openapi).
MAX_ROWS_DOCUMENTED = 10_000  # the default MAX_BATCH_ROWS
Record = dict[str, Any]
Records = Annotated[list[Record], Field(min_length=1, max_length=MAX_ROWS_DOCUMENTED)]
Rows = Annotated[list[list[Any]], Field(min_length=1, max_length=MAX_ROWS_DOCUMENTED)]


class DataframeSplitBody(BaseModel):
    columns: list[str] = Field(min_length=1, description="feature names")
    data: Rows


class InstancesRequest(BaseModel):
    """TF Serving / KServe V1: records, or lists of values in schema order."""

    instances: Records | Rows


class DataframeSplitRequest(BaseModel):
    """MLflow's pandas 'split' orientation."""

    dataframe_split: DataframeSplitBody


class DataframeRecordsRequest(BaseModel):
    """MLflow's pandas 'records' orientation."""

    dataframe_records: Records


PredictRequest = InstancesRequest | DataframeSplitRequest | DataframeRecordsRequest | Record

# One house of the bundled data: the OpenAPI examples, and events/generate.py's predict events.
EXAMPLE_RECORD = {
    "lotsize": 5850,
    "bedrooms": 3,
    "bathrms": 1,
    "stories": 2,
    "driveway": "yes",
    "recroom": "no",
    "fullbase": "yes",
    "gashw": "no",
    "airco": "no",
    "garagepl": 1,
    "prefarea": "no",
}
PREDICT_EXAMPLES: dict[str, Any] = {
    "record": {
        "summary": "one record (the reply also carries {target: value})",
        "value": EXAMPLE_RECORD,
    },
    "instances": {
        "summary": "a batch of records",
        "value": {"instances": [EXAMPLE_RECORD, EXAMPLE_RECORD]},
    },
    "rows": {
        "summary": "a batch of rows in schema order",
        "value": {"instances": [list(EXAMPLE_RECORD.values())]},
    },
    "dataframe_split": {
        "summary": "MLflow split orientation",
        "value": {
            "dataframe_split": {
                "columns": list(EXAMPLE_RECORD),
                "data": [list(EXAMPLE_RECORD.values())],
            }
        },
    },
    "dataframe_records": {
        "summary": "MLflow records orientation",
        "value": {"dataframe_records": [EXAMPLE_RECORD]},
    },
}


class HealthResponse(BaseModel):
    status: str = Field(examples=["ready"])
    reason: str | None = None
    model: ModelRef | None = None


# --- logic ---------------------------------------------------------------------------------


def predict(
    holder: ModelHolder, headers: Mapping[str, str], body: str | bytes | None
) -> dict[str, Any]:
    """Validate and answer one POST /predict; raises SklambdaError with the right status."""
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise RequestError(
            f"content type {content_type!r} is not supported; send application/json",
            415,
            "unsupported_media_type",
        )
    if not body:
        raise RequestError("the request body is empty; send a JSON object")
    limit = holder.settings.max_body_bytes
    if len(body) > limit:
        raise RequestError(
            f"the body is {len(body):,} bytes, more than the limit of {limit:,}",
            413,
            "payload_too_large",
        )
    payload = parse_json(body)
    model = holder.get()
    batch = decode_request(model.schema, payload, holder.settings.max_rows)
    predictions = model.predict(batch.X)
    reply: dict[str, Any] = {
        "predictions": predictions,
        "model": {"name": model.manifest.name, "version": model.manifest.version},
    }
    if batch.single:
        reply[model.manifest.target.name] = predictions[0]
    if batch.warnings:
        reply["warnings"] = batch.warnings
    return reply


def request_body(body: str | None, base64_encoded: bool) -> str | bytes | None:
    """The body as API Gateway delivered it. Not Powertools' decoded_body: that decodes a base64
    body as UTF-8 text and raises (a 500) when a client sends binary garbage."""
    if not body or not base64_encoded:
        return body or None
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise RequestError("the body is marked base64-encoded but is not valid base64") from None


def parse_json(body: str | bytes) -> Any:
    """orjson for speed; the standard library for what orjson refuses, so NaN and Infinity
    reach the schema (422 naming the field) and real syntax errors get a line and column."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise RequestError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except UnicodeDecodeError:  # a binary (base64-encoded) body that is not UTF-8
        raise RequestError("malformed JSON: the body is not UTF-8 text") from None
    except RecursionError:  # orjson stops at depth 1024; the stdlib recurses until it fails
        raise RequestError("malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise RequestError(f"malformed JSON: {exc}") from None


def dump_json(payload: Any) -> str:
    try:
        return orjson.dumps(payload).decode()
    except TypeError:  # orjson refuses lone surrogates (e.g. echoed in a warning); escape them
        return json.dumps(payload)


def model_info(holder: ModelHolder) -> dict[str, Any]:
    """The served manifest, minus what only training needs."""
    model = holder.get()
    info = model.manifest.model_dump(mode="json", exclude={"config"})
    for artifact in (info["artifact"], info["numpy_artifact"] or {}):
        artifact.pop("key", None)
    info["data"].pop("source", None)
    info["serving"] = {
        "format": model.format,
        "alias": holder.settings.alias,
        "pinned_version": holder.settings.version or None,
    }
    return info


def error_body(exc: SklambdaError) -> dict[str, Any]:
    return {
        "error": {
            "code": exc.code,
            "message": exc.message,
            "details": [p.as_dict() for p in exc.details],
        }
    }


def error_headers(exc: SklambdaError) -> dict[str, str]:
    if exc.status != 503:
        return {}
    wait = exc.retry_after if isinstance(exc, ModelUnavailableError) else None
    return {"Retry-After": str(max(1, math.ceil(wait)) if wait else RETRY_AFTER_SECONDS)}
