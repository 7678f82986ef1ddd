"""The Open Inference Protocol (KServe V2, also Triton's and MLServer's) over the served model.

Model metadata (one input tensor per feature; one output, the predictions, and for a classifier
a second, each class's probability), and inference requests: named input
tensors (one per feature, shape [n] or [n, 1]) or one 2-D tensor of the features in schema order
(shape [n, features]; BYTES or FP64). Values are validated and encoded column-wise by the feature
schema (BYTES elements as text, as a CSV cell is read), so a tensor is checked exactly as a JSON
record or a CSV row is; errors keep the API's one shape and name rows 0-based.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sklambda.errors import DataValidationError, Problem, ProblemLog, RequestError, SklambdaError
from sklambda.explain import Explanation
from sklambda.model import Answer, LoadedModel
from sklambda.request_formats import Batch, check_size
from sklambda.schema import FeatureSchema

PLATFORM = "sklearn"
OUTPUT = "predictions"
PROBABILITIES = "probabilities"  # a classifier's second output: shape [n, classes], FP64
CONTRIBUTIONS, BASE = "contributions", "base"  # explanations, asked by parameters {"explain": true}
INTERVALS = "intervals"  # asked by parameters {"intervals": 0.9}: a regressor's, shape [n, 2]
DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "category": "BYTES"}
HELP = (
    "send {'inputs': [{'name': <feature>, 'shape': [n], 'datatype': ..., 'data': [...]}, ...]} "
    "(one tensor per feature) or one tensor of shape [n, features] in schema order"
)


def check_name(name: str, served: str) -> None:
    """404 in the API's error shape for a model this endpoint does not serve."""
    if name != served:
        raise SklambdaError(
            f"no model named {name[:100]!r}; this endpoint serves {served!r}",
            status=404,
            code="model_not_found",
        )


def metadata(model: LoadedModel) -> dict[str, Any]:
    """$metadata_model_response: a tensor per feature (-1: any number of rows), and the
    outputs (_outputs)."""
    return {
        "name": model.manifest.name,
        "versions": [model.manifest.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": f.name, "datatype": DATATYPES.get(f.type, "BYTES"), "shape": [-1]}
            for f in model.schema.features
        ],
        "outputs": _outputs(model),
    }


def _label_type(model: LoadedModel) -> str:
    """A classifier's labels as a tensor: INT64 when they are integers, else BYTES."""
    return "INT64" if all(isinstance(c, int) for c in model.classes) else "BYTES"


def _outputs(model: LoadedModel) -> list[dict[str, Any]]:
    """The predictions (FP64, or a classifier's labels), and a classifier's probabilities
    (one column per class, in the order of GET /model's classes.labels)."""
    if not model.classes:
        return [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}]
    return [
        {"name": OUTPUT, "datatype": _label_type(model), "shape": [-1]},
        {"name": PROBABILITIES, "datatype": "FP64", "shape": [-1, len(model.classes)]},
    ]


def infer_reply(
    model: LoadedModel, answer: Answer, request_id: str | None, warnings: list[str]
) -> dict[str, Any]:
    """$inference_response: the predictions as one FP64 tensor of shape [n]; a classifier's
    labels (INT64 or BYTES) of shape [n], and its probabilities as FP64 of shape [n, classes],
    row-major."""
    predictions = answer.predictions
    reply: dict[str, Any] = {
        "model_name": model.manifest.name,
        "model_version": model.manifest.version,
    }
    if request_id is not None:
        reply["id"] = request_id
    if warnings:
        reply["parameters"] = {"warnings": "; ".join(warnings)}
    if answer.probabilities is None:
        reply["outputs"] = [
            {"name": OUTPUT, "datatype": "FP64", "shape": [len(predictions)], "data": predictions}
        ]
        return reply
    proba = answer.probabilities
    reply["outputs"] = [
        {
            "name": OUTPUT,
            "datatype": _label_type(model),
            "shape": [len(predictions)],
            "data": predictions,
        },
        {
            "name": PROBABILITIES,
            "datatype": "FP64",
            "shape": list(proba.shape),
            "data": proba.ravel().tolist(),
        },
    ]
    return reply


def explanation_outputs(explanation: Explanation) -> list[dict[str, Any]]:
    """Explanations (asked by parameters {"explain": true}) as two FP64 output tensors:
    `contributions`, shape [n, features] (a regressor's; a binary classifier's for its positive
    class) or [n, classes, features] (multiclass), and `base`, shape [1] or [classes]. Features
    in the order of the model's inputs, classes in that of `probabilities`; the parameters say
    which, and the scale they add up on (base + the row's contributions)."""
    base, contributions = explanation.shown()
    parameters: dict[str, Any] = {
        "scale": explanation.scale,
        "features": ",".join(explanation.features),
    }
    if explanation.shown_class is not None:
        parameters["class"] = explanation.shown_class
    elif explanation.multiclass:
        parameters["classes"] = ",".join(str(c) for c in explanation.columns)
    return [
        {
            "name": CONTRIBUTIONS,
            "datatype": "FP64",
            "shape": list(contributions.shape),
            "data": contributions.ravel().tolist(),
            "parameters": parameters,
        },
        {
            "name": BASE,
            "datatype": "FP64",
            "shape": list(base.shape),
            "data": base.tolist(),
            "parameters": parameters,
        },
    ]


def request_id(body: Any) -> str | None:
    value = body.get("id") if isinstance(body, Mapping) else None
    return value if isinstance(value, str) else None


def parameters(body: Any) -> Any:
    """The request's `parameters`, where its options are (sklambda.options.option); a
    malformed one is decode_infer's 400."""
    return body.get("parameters") if isinstance(body, Mapping) else None


def interval_output(bounds: list[list[float]], coverage: float) -> dict[str, Any]:
    """A regressor's prediction intervals as an output tensor: FP64 of shape [n, 2] (low,
    high per row, row-major), its coverage in the tensor's parameters."""
    return {
        "name": INTERVALS,
        "datatype": "FP64",
        "shape": [len(bounds), 2],
        "data": [value for pair in bounds for value in pair],
        "parameters": {"coverage": coverage},
    }


def decode_infer(schema: FeatureSchema, body: Any, max_rows: int) -> Batch:
    """An $inference_request -> a Batch (400 for a malformed request, 422 for bad values)."""
    _check_request(body)
    inputs = [_tensor(t, i) for i, t in enumerate(body["inputs"])]
    if not inputs:
        raise RequestError(f"'inputs' is empty; {HELP}")
    names = schema.names
    if len(inputs) == 1 and inputs[0][0] not in names and len(inputs[0][1]) == 2:
        return _matrix(schema, inputs[0], max_rows)
    rows: int | None = None
    columns: dict[str, tuple[list[Any], bool]] = {}
    for name, shape, datatype, data in inputs:
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise RequestError(f"input {name!r}: shape {shape} is neither [n] nor [n, 1]")
        if rows is not None and shape[0] != rows:
            raise RequestError(f"input {name!r} has {shape[0]} rows; another has {rows}")
        if name in columns:
            raise RequestError(f"input {name!r} is given twice")
        rows = shape[0]
        columns[name] = (data, datatype == "BYTES")
    assert rows is not None
    check_size(rows, max_rows)
    if rows == 0:
        raise RequestError("the inputs have no rows")
    extra = [name for name in columns if name not in names]
    warnings = [f"ignored unknown inputs: {', '.join(extra)}"] if extra else []
    log = ProblemLog()
    matrix = np.empty((rows, len(names)), dtype=np.float64)
    for j, feature in enumerate(schema.features):
        if feature.name not in columns:
            log.add(Problem(feature.name, "missing input tensor"))
            continue
        data, text = columns[feature.name]
        matrix[:, j] = feature.encode(data, text, log, warnings)
    if log:
        raise log.error()
    return Batch(matrix, False, warnings + schema.out_of_range(matrix))


def _check_request(body: Any) -> None:
    if not isinstance(body, Mapping) or not isinstance(body.get("inputs"), list):
        raise RequestError(f"expected an object with 'inputs'; {HELP}")
    if body.get("id") is not None and not isinstance(body["id"], str):
        raise RequestError("'id' must be a string")
    parameters = body.get("parameters")
    if parameters is not None and (
        not isinstance(parameters, Mapping)
        or not all(isinstance(v, (str, int, float)) for v in parameters.values())
    ):
        raise RequestError("'parameters' must be an object of strings, numbers and booleans")


def _matrix(
    schema: FeatureSchema, tensor: tuple[str, list[int], str, list[Any]], max_rows: int
) -> Batch:
    name, shape, datatype, data = tensor
    rows, width = shape
    if width != len(schema.features):
        raise RequestError(
            f"input {name!r}: shape {shape}; a 2-D input needs {len(schema.features)} columns, "
            f"the features in schema order ({', '.join(schema.names)})"
        )
    if datatype not in ("BYTES", "FP64"):
        raise RequestError(f"input {name!r}: a 2-D input is BYTES or FP64, not {datatype}")
    check_size(rows, max_rows)
    if rows == 0:
        raise RequestError("the inputs have no rows")
    columns = {f: data[j::width] for j, f in enumerate(schema.names)}
    warnings: list[str] = []
    X = schema.encode_columns(columns, rows, text=datatype == "BYTES", warnings=warnings)
    return Batch(X, False, warnings + schema.out_of_range(X))


def _tensor(raw: Any, index: int) -> tuple[str, list[int], str, list[Any]]:
    """(name, shape, datatype, flat data) of one $request_input, checked for consistency."""
    if not isinstance(raw, Mapping):
        raise RequestError(f"inputs[{index}] must be an object with name, shape, datatype, data")
    name, shape, datatype = raw.get("name"), raw.get("shape"), raw.get("datatype")
    if not isinstance(name, str):
        raise RequestError(f"inputs[{index}]: 'name' must be a string")
    if not isinstance(datatype, str):
        raise RequestError(f"input {name!r}: 'datatype' must be a string")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise RequestError(f"input {name!r}: 'shape' must be a list of non-negative integers")
    data = raw.get("data")
    if not isinstance(data, list):
        raise RequestError(f"input {name!r}: 'data' must be a list")
    flat = _flatten(data, name, len(shape) == 2)
    if len(flat) != math.prod(shape):
        raise DataValidationError(
            f"input {name!r}: shape {shape} needs {math.prod(shape)} values, got {len(flat)}",
            [Problem(name, f"expected {math.prod(shape)} values, got {len(flat)}")],
        )
    return name, shape, datatype, flat


def _flatten(data: list[Any], name: str, nested: bool) -> list[Any]:
    """Row-major elements of a tensor given flat or, for a 2-D tensor (`nested`), as rows of
    values ("natural" form); lists nested deeper than the shape are refused."""
    lists = [isinstance(v, list) for v in data]
    if not any(lists):
        return data
    if not nested or not all(lists):
        raise RequestError(f"input {name!r}: 'data' is nested otherwise than its shape")
    flat = [value for row in data for value in row]
    if any(isinstance(value, list) for value in flat):
        raise RequestError(f"input {name!r}: 'data' is nested deeper than its shape")
    return flat
