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
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from sklambda import conformal, explain, open_inference
from sklambda.errors import ModelUnavailableError, RequestError, SklambdaError
from sklambda.model import LoadedModel
from sklambda.options import OPTIONS, option
from sklambda.request_formats import decode_csv, decode_request, parse_csv
from sklambda.serving import RETRY_AFTER_SECONDS, ModelHolder

JSON_TYPES = ("application/json",)
CSV_TYPES = ("text/csv",)


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


EXAMPLE_EXPLANATIONS = {  # the house-prices model's, for EXAMPLE_RECORD
    "scale": "log",
    "base": 11.0625,
    "contributions": [
        {
            "lotsize": 0.0600,
            "bedrooms": 0.0031,
            "bathrms": -0.0391,
            "stories": 0.0204,
            "driveway": 0.0214,
            "recroom": -0.0100,
            "fullbase": 0.0746,
            "gashw": -0.0096,
            "airco": -0.0481,
            "garagepl": 0.0117,
            "prefarea": -0.0295,
        }
    ],
}


class Explanations(BaseModel):
    """Asked by `"explain": true` (or `?explain=true`): per row, each feature's contribution
    to the prediction, such that base + the sum of a row's contributions is its prediction on
    the model's `scale`. A multiclass model gives the base and each row's contributions per
    class: {"base": {class: number}, "contributions": [{class: {feature: number}}]}."""

    model_config = ConfigDict(populate_by_name=True)
    scale: str = Field(
        examples=["log"],
        description="identity (the target's units), log (log of the target), logit (the "
        "log-odds of `class`), softmax (per class, scores whose softmax is the probabilities), "
        "probability (per class: random forests average their trees' probabilities)",
    )
    class_: str | int | None = Field(
        default=None,
        alias="class",
        description="a binary classifier's: the class the explanation is of (its positive one)",
    )
    base: float | dict[str, float] = Field(
        description="the prediction at the reference: the training means (linear models), the "
        "trees' root values (tree models); per class for a multiclass model"
    )
    contributions: list[dict[str, float]] | list[dict[str, dict[str, float]]] = Field(
        description="per row, each original feature's contribution (one-hot levels, "
        "missing-value indicators and log transforms summed back to their feature)"
    )


class PredictResponse(BaseModel):
    """Predictions in request order; a single bare record also gets `{<target>: value}`. A
    classifier's predictions are class labels (integers stay integers), with `probabilities`."""

    model_config = ConfigDict(extra="allow")
    predictions: list[float | int | str] = Field(
        description="numbers (regression) or class labels (classification)",
        examples=[[68693.2], ["Adelie", "Gentoo"]],
    )
    probabilities: list[dict[str, float]] = Field(
        default=[],
        description="classifiers only: per row, each class label's probability (they sum to "
        "1); the label predicted is the most probable one, or for a binary model with a "
        "decision threshold the positive class when its probability reaches the threshold "
        "(GET /model: classes)",
        examples=[[{"no": 0.12, "yes": 0.88}]],
    )
    intervals: list[list[float]] = Field(
        default=[],
        description='regression, when the request asks (`"intervals": 0.9` or `true` in the '
        "JSON body, `?intervals=0.9` in the query): per row [low, high] on the target's scale, "
        "a conformal interval meant to hold the true value with probability interval_coverage "
        "(asymmetric around the prediction for a log target). GET /model: intervals.levels "
        "lists the coverages a model has and each one's coverage measured on the holdout",
        examples=[[[49640.4, 95058.1]]],
    )
    interval_coverage: float | None = Field(
        default=None, description="the coverage of `intervals`", examples=[0.9]
    )
    explanations: Explanations | None = Field(
        default=None,
        description="when the request asks (`explain`): each feature's contribution per row",
        examples=[EXAMPLE_EXPLANATIONS],
    )
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


class TensorMetadata(BaseModel):
    name: str
    datatype: str = Field(examples=["FP64"], description="FP64, INT64, BOOL or BYTES")
    shape: list[int] = Field(examples=[[-1]], description="-1: any number of rows")


class V2ModelMetadata(BaseModel):
    """GET /v2/models/{name}: one input tensor per feature (schema order), one output (a
    classifier's: its labels, then `probabilities` of shape [-1, classes])."""

    name: str
    versions: list[str]
    platform: str = Field(examples=["sklearn"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


Scalar = float | str | bool  # a tensor element, or a parameter's value, as JSON gives it


class V2Tensor(BaseModel):
    name: str
    shape: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, max_length=2)
    datatype: str = Field(examples=["FP64"])
    data: list[Scalar | list[Scalar]] = Field(
        description="row-major: flat, or (a 2-D tensor) as rows of values"
    )


class V2InferRequest(BaseModel):
    """Named tensors, one per feature (shape [n] or [n, 1]), or one tensor of shape
    [n, features] with the features in schema order (BYTES or FP64)."""

    id: str | None = None
    parameters: dict[str, Scalar] | None = Field(
        default=None,
        description='request options: "intervals" (a coverage, or true), "explain" (true: '
        "the outputs add each feature's contributions and their base)",
        examples=[{"explain": True}],
    )
    inputs: list[V2Tensor] = Field(min_length=1)


class V2OutputTensor(BaseModel):
    name: str = Field(
        examples=["predictions"],
        description="predictions; a classifier adds probabilities, shape [n, classes]; a "
        "regressor asked for them, intervals, shape [n, 2]; asked for them (parameters "
        '{"explain": true}), explanations: contributions, shape [n, features] (multiclass: '
        "[n, classes, features]), and base, shape [1] (multiclass: [classes])",
    )
    shape: list[int]
    datatype: str = Field(
        examples=["FP64"], description="FP64; a classifier's labels INT64 or BYTES"
    )
    data: list[float | int | str]
    parameters: dict[str, Scalar] | None = Field(
        default=None,
        description='intervals (asked by the request\'s parameters {"intervals": 0.9}): '
        "shape [n, 2], low and high per row; here its coverage",
        examples=[{"coverage": 0.9}],
    )


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = Field(default=None, description="the request's id, when it gave one")
    parameters: dict[str, Scalar] | None = Field(default=None, description="warnings, if any")
    outputs: list[V2OutputTensor]


class V2Ready(BaseModel):
    ready: bool


V2_INFER_EXAMPLES: dict[str, Any] = {
    "named": {
        "summary": "one tensor per feature",
        "value": {
            "id": "42",
            "inputs": [
                {
                    "name": name,
                    "shape": [1],
                    "datatype": {bool: "BOOL", int: "INT64", float: "FP64"}.get(
                        type(value), "BYTES"
                    ),
                    "data": [value],
                }
                for name, value in EXAMPLE_RECORD.items()
            ],
        },
    },
    "matrix": {
        "summary": "one 2-D tensor, features in schema order",
        "value": {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, len(EXAMPLE_RECORD)],
                    "datatype": "BYTES",
                    "data": [[str(v) for v in EXAMPLE_RECORD.values()]],
                }
            ]
        },
    },
}


class HealthResponse(BaseModel):
    status: str = Field(examples=["ready"])
    reason: str | None = None
    model: ModelRef | None = None


# --- logic ---------------------------------------------------------------------------------


# Told of each answered request once its reply is computed (the model, its encoded rows, the
# predictions): prediction capture and the shadow model. It must never raise.
Scored = Callable[[LoadedModel, Any, list[Any]], None]


def predict(
    holder: ModelHolder,
    headers: Mapping[str, str],
    body: str | bytes | None,
    scored: Scored | None = None,
    query: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Validate and answer one POST /predict; raises SklambdaError with the right status.
    Request options (OPTIONS) come from the JSON body's top level, else the `query` string."""
    content_type = media_type(headers.get("content-type"))
    is_csv = content_type in CSV_TYPES
    if (
        content_type
        and not is_csv
        and content_type not in JSON_TYPES
        and not content_type.endswith("+json")
    ):
        raise RequestError(
            f"content type {content_type!r} is not supported; send application/json or text/csv",
            415,
            "unsupported_media_type",
        )
    body = _sized_body(holder, body, "a JSON object or CSV rows")
    if is_csv:
        rows = parse_csv(body)
        explaining = explain_asked(option("explain", None, "body", query), headers)
        model = holder.get()
        intervals = intervals_asked(model, option("intervals", None, "body", query))
        batch = decode_csv(model.schema, rows, holder.settings.max_rows)
    else:
        document = parse_json(body)
        explaining = explain_asked(option("explain", document, "body", query), headers)
        payload = without_options(document)
        model = holder.get()
        intervals = intervals_asked(model, option("intervals", document, "body", query))
        batch = decode_request(model.schema, payload, holder.settings.max_rows)
    if explaining:
        check_explained_rows(len(batch.X), holder.settings.max_explain_rows)
    answer = model.answer(batch.X)
    predictions = answer.predictions
    reply: dict[str, Any] = {"predictions": predictions}
    if answer.probabilities is not None:
        reply["probabilities"] = answer.probability_records()
    if intervals is not None:
        reply["intervals"] = intervals.bounds(predictions)
        reply["interval_coverage"] = intervals.coverage
    if explaining:
        reply["explanations"] = model.explain(batch.X).as_json()
    reply["model"] = {"name": model.manifest.name, "version": model.manifest.version}
    if batch.single:
        reply[model.manifest.target.name] = predictions[0]
    if batch.warnings:
        reply["warnings"] = batch.warnings
    if scored is not None:
        scored(model, batch.X, predictions)
    return reply


def without_options(payload: Any) -> Any:
    """The JSON body without its options (OPTIONS), for the rows to be read."""
    if isinstance(payload, Mapping) and any(k in payload for k in OPTIONS):
        return {k: v for k, v in payload.items() if k not in OPTIONS}
    return payload


def intervals_asked(model: LoadedModel, given: tuple[Any, str] | None) -> conformal.Asked | None:
    """The prediction intervals the `intervals` option (`given`: options.option) asks of the model
    (sklambda.conformal); None when it asks none."""
    if given is None:
        return None
    manifest = model.manifest
    return conformal.asked(
        manifest.intervals,
        *given,
        classifier=manifest.classes is not None,
        model=f"{manifest.name} {manifest.version}",
    )


def explain_asked(given: tuple[Any, str] | None, headers: Mapping[str, str]) -> bool:
    """Whether the `explain` option (`given`: sklambda.options.option) asks for explanations:
    `"explain": true` in a JSON body or V2 parameters (a JSON boolean), `?explain=true` in the
    query; 400 for any other value, 406 when the reply is to be CSV (no place for them)."""
    if given is None:
        return False
    asked = explain.requested(*given)
    if asked and wants_csv(headers):
        raise RequestError(
            "explanations come in JSON replies only; ask with Accept: application/json",
            406,
            "not_acceptable",
        )
    return asked


def check_explained_rows(rows: int, limit: int) -> None:
    """413 before any work when a request asks explanations of more rows than MAX_EXPLAIN_ROWS
    (settings: what fits in Lambda's response limit, MAX_REPLY_BYTES)."""
    if rows > limit:
        raise RequestError(
            f"explanations are given for at most {limit:,} rows per request (MAX_EXPLAIN_ROWS) "
            f"and this one has {rows:,}; send fewer rows, or ask without explain",
            413,
            "payload_too_large",
        )


# Lambda's limit on a synchronous invoke's response (6 MB, 6,291,456 bytes) is on the proxy
# response's JSON, the body one string in it; ENVELOPE_BYTES leaves room for the rest of it
# (statusCode, headers, isBase64Encoded). Over it, the invoke fails: API Gateway answers 502 and
# Lambda counts an Error (a canary rolls back); ours must be the one that says 413.
LAMBDA_RESPONSE_LIMIT = 6_291_456
ENVELOPE_BYTES = 16_384
MAX_REPLY_BYTES = LAMBDA_RESPONSE_LIMIT - ENVELOPE_BYTES


def reply_bytes(body: str) -> int:
    """The bytes `body` takes in the invoke's response, as the Python runtime writes it there
    (json.dumps: quotes and backslashes escaped again, non-ASCII as \\u escapes)."""
    if body.isascii() and body.isprintable():  # orjson's usual output: counted, not copied
        return len(body) + body.count('"') + body.count("\\")
    return len(json.dumps(body)) - 2


def sized_reply(body: str) -> str:
    """The reply's body, if Lambda can return it; else a 413 saying to send fewer rows (never
    an invoke error: a 502)."""
    size = reply_bytes(body)
    if size > MAX_REPLY_BYTES:
        raise RequestError(
            f"the reply would be {size:,} bytes, more than the {MAX_REPLY_BYTES:,} Lambda can "
            "return; send fewer rows (or ask for fewer options: explain, intervals)",
            413,
            "payload_too_large",
        )
    return body


def _sized_body(holder: ModelHolder, body: str | bytes | None, expected: str) -> str | bytes:
    """The body, if it is neither empty (400) nor over MAX_BODY_BYTES (413)."""
    if not body:
        raise RequestError(f"the request body is empty; send {expected}")
    limit = holder.settings.max_body_bytes
    if len(body) > limit:
        raise RequestError(
            f"the body is {len(body):,} bytes, more than the limit of {limit:,}",
            413,
            "payload_too_large",
        )
    return body


def infer(
    holder: ModelHolder,
    name: str,
    headers: Mapping[str, str],
    body: str | bytes | None,
    scored: Scored | None = None,
) -> dict[str, Any]:
    """Answer one POST /v2/models/{name}/infer (the Open Inference Protocol), with the checks
    of POST /predict in the same order, after the model's name (404)."""
    open_inference.check_name(name, _served_name(holder))
    content_type = media_type(headers.get("content-type"))
    if content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise RequestError(
            f"content type {content_type!r} is not supported; send application/json",
            415,
            "unsupported_media_type",
        )
    body = _sized_body(holder, body, "an inference request object")
    payload = parse_json(body)
    model = holder.get()
    parameters = open_inference.parameters(payload)
    intervals = intervals_asked(model, option("intervals", parameters, "parameters"))
    explaining = explain_asked(option("explain", parameters, "parameters"), {})
    batch = open_inference.decode_infer(model.schema, payload, holder.settings.max_rows)
    if explaining:
        check_explained_rows(len(batch.X), holder.settings.max_explain_rows)
    answer = model.answer(batch.X)
    predictions = answer.predictions
    reply = open_inference.infer_reply(
        model, answer, open_inference.request_id(payload), batch.warnings
    )
    if intervals is not None:
        bounds = intervals.bounds(predictions)
        reply["outputs"].append(open_inference.interval_output(bounds, intervals.coverage))
    if explaining:
        reply["outputs"] += open_inference.explanation_outputs(model.explain(batch.X))
    if scored is not None:
        scored(model, batch.X, predictions)
    return reply


def _served_name(holder: ModelHolder) -> str:
    """The model this function serves: its MODEL_NAME, known before any load (a 404 needs no
    model); the loaded one's when the setting is empty (a model handed to the holder)."""
    return holder.settings.model_name or holder.get().manifest.name


def model_metadata(holder: ModelHolder, name: str) -> dict[str, Any]:
    """GET /v2/models/{name}: the Open Inference Protocol's model metadata."""
    open_inference.check_name(name, _served_name(holder))
    return open_inference.metadata(holder.get())


def media_type(header: str | None) -> str:
    """A Content-Type header's media type, lower case, without parameters."""
    return (header or "").split(";")[0].strip().lower()


def wants_csv(headers: Mapping[str, str]) -> bool:
    """Whether the client asks for CSV: `Accept` names text/csv before any JSON type (SageMaker's
    clients send `Accept: text/csv`); JSON otherwise, whatever else it names."""
    for item in (headers.get("accept") or "").split(","):
        kind = media_type(item)
        if kind in CSV_TYPES:
            return True
        if kind in JSON_TYPES or kind.endswith("+json"):
            return False
    return False


def csv_reply(
    predictions: list[Any],
    probabilities: list[dict[str, float]] | None = None,
    intervals: list[list[float]] | None = None,
) -> str:
    """One prediction per line, as SageMaker's scikit-learn container answers text/csv; for a
    classifier the label, then each class's probability (the order of GET /model's
    classes.labels), no header. A label with a comma or quote is quoted as CSV quotes it.
    With intervals: the prediction, low, high."""
    if intervals:
        return "".join(
            f"{p!r},{low!r},{high!r}\n"
            for p, (low, high) in zip(predictions, intervals, strict=True)
        )
    if not probabilities:
        return "".join(f"{p!r}\n" for p in predictions)
    return "".join(
        ",".join([_csv_cell(label), *(repr(p) for p in row.values())]) + "\n"
        for label, row in zip(predictions, probabilities, strict=True)
    )


def _csv_cell(value: Any) -> str:
    text = str(value)
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def proxy_event(event: Any) -> tuple[str, dict[str, Any]] | None:
    """An API Gateway proxy event's payload version ("1.0": a REST API, or an HTTP API set to
    1.0, with httpMethod and path; "2.0": an HTTP API, with version, rawPath, requestContext.http
    and .stage) and the event to resolve; None for any other shape (a 400 `unknown_event`, not
    an exception out of the handler), checking what Powertools and the routes read unguarded.

    A 2.0 event's stage is taken off its path only when the path carries it: Powertools cuts
    len("/" + stage) characters off rawPath unchecked, and behind a custom domain (an API
    mapping) rawPath has no stage ("/predict" became "dict"); such an event is resolved as the
    $default stage's, whose paths are as they are."""
    if not isinstance(event, dict) or not _well_formed(event):
        return None
    context = event.get("requestContext") or {}
    http = context.get("http")
    if event.get("version") == "2.0":
        stage, path = context.get("stage"), event.get("rawPath")
        shaped = isinstance(http, dict) and isinstance(http.get("method"), str)
        if not (shaped and isinstance(stage, str) and isinstance(path, str)):
            return None
        if stage != "$default" and path != f"/{stage}" and not path.startswith(f"/{stage}/"):
            event = {**event, "requestContext": {**context, "stage": "$default"}}
        return "2.0", event
    if isinstance(event.get("httpMethod"), str) and isinstance(event.get("path"), str):
        return "1.0", event
    return None


def _well_formed(event: dict[str, Any]) -> bool:
    """Whether what every proxy event may carry is of the type the routes read: headers and
    query parameters text, the body text, requestContext an object (its path text, its http
    an object)."""
    context = event.get("requestContext")
    if not (context is None or isinstance(context, dict)):
        return False
    http = (context or {}).get("http")
    return (
        _text_map(event.get("headers"))
        and _text_map(event.get("queryStringParameters"))
        and _text(event.get("body"))
        and (http is None or isinstance(http, dict))
        and _text((context or {}).get("path"))
    )


def _text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _text_map(value: Any) -> bool:
    """None, or an object of text (headers, query parameters)."""
    return value is None or (
        isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    )


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
    info = model.manifest.model_dump(mode="json", exclude={"config", "profile"})
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
