"""The OpenAPI document of the predict API, made exact for the model being served.

What POST /predict accepts depends on the model: its features, their types, categories and which
may be missing. The static document (Powertools, from the pydantic models in sklambda.api) can
only say "an object"; `for_model` puts the served model's feature schema into it, so that every
body the document calls valid is one the API answers (and Swagger UI shows the real features).

The JSON Schema below restates, for JSON bodies, what sklambda.request_formats and
sklambda.schema accept (a test holds the two together):

- a record is an object with every required feature; other keys are ignored (with a warning);
  a value may be null only where the feature is not required;
- number and integer: a finite JSON number (an integer may be written 2.0), > 0 under a log
  transform; boolean: true/false, 0/1, or yes/no, true/false, y/n, 1/0 as a string in any case,
  blanks around it ignored; category: one of the learned strings, exactly (any string when the
  model predicts unknown categories as missing: unknown_categories = "warn");
- one bare record; {"instances": [...]} with 1..max_rows records, or lists of values in schema
  order; {"dataframe_records": [...]} with 1..max_rows records; {"dataframe_split": {"columns",
  "data"}} (documented with the columns in schema order; the API also takes any order).
  Which form a body is goes by its keys, in that precedence: instances, dataframe_records,
  dataframe_split, else a record.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sklambda.errors import DataValidationError
from sklambda.schema import Feature, FeatureSchema

FORMAT_KEYS = ("instances", "dataframe_records", "dataframe_split")
# The finite range of a value: float64's largest value for a JSON float; for a JSON integer the
# largest float() converts (rounding to that float) rather than refusing (OverflowError: 422).
FLOAT_MAX = 1.7976931348623157e308
INT_MAX = 2**1024 - 2**970 - 1
# Blanks str.strip() removes and every JSON Schema regex engine agrees on.
_BLANK = "[ \\t\\n\\r\\f\\v]*"
_BOOLEAN_WORDS = ("yes", "no", "true", "false", "y", "n")


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


BOOLEAN_PATTERN = f"^{_BLANK}({'|'.join(map(_any_case, _BOOLEAN_WORDS))}|1|0){_BLANK}$"
PREDICT_PATH = "/predict"
PREDICT_PATHS = (PREDICT_PATH, "/invocations")
V2_PATHS = (
    "/v2/models/{name}",
    "/v2/models/{name}/infer",
)  # SageMaker's and MLflow's route: the same API


def value_schema(feature: Feature) -> dict[str, Any]:
    """One feature's JSON value."""
    schema: dict[str, Any]
    if feature.type == "category":
        schema = {"type": "string", "enum": list(feature.categories)}
        # A model configured with unknown_categories = "warn" predicts any other string as
        # missing (with a warning). getattr: manifests, and Features, from before the policy.
        if getattr(feature, "unknown", "reject") == "warn":
            schema = {
                "type": "string",
                "examples": list(feature.categories),
                "description": "known: " + ", ".join(feature.categories) + "; any other string "
                "is predicted as missing, with a warning",
            }
    elif feature.type == "boolean":
        schema = {
            "anyOf": [
                {"type": "boolean"},
                {"type": "number", "enum": [0, 1]},
                {"type": "string", "pattern": BOOLEAN_PATTERN},
            ]
        }
    else:
        largest = INT_MAX if feature.type == "integer" else FLOAT_MAX
        schema = {"type": feature.type, "minimum": -largest, "maximum": largest}
        if feature.transform == "log":  # its log is taken: > 0
            del schema["minimum"]
            schema["exclusiveMinimum"] = 0
    if feature.min is not None and feature.max is not None:
        schema["description"] = f"training range [{feature.min:g}, {feature.max:g}]"
    if not feature.required:
        schema = {"anyOf": [schema, {"type": "null"}], "description": "may be null (missing)"}
    return schema


def record_schema(schema: FeatureSchema) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: value_schema(f) for f in schema.features},
        "additionalProperties": True,  # ignored, with a warning in the reply
    }
    required = [f.name for f in schema.features if f.required]
    if required:
        record["required"] = required
    return record


def row_schema(schema: FeatureSchema) -> dict[str, Any]:
    n = len(schema.features)
    return {
        "type": "array",
        "prefixItems": [value_schema(f) for f in schema.features],
        "items": False,
        "minItems": n,
        "maxItems": n,
        "description": f"values in schema order: {', '.join(schema.names)}",
    }


def _without(*keys: str) -> dict[str, Any]:
    """The body has none of `keys` (which would make it another request format)."""
    return {"not": {"anyOf": [{"required": [k]} for k in keys]}}


def request_schema(schema: FeatureSchema, max_rows: int) -> dict[str, Any]:
    """The JSON Schema of a POST /predict body for a model with this feature schema."""
    record = {"$ref": "#/components/schemas/Record"}
    row = {"$ref": "#/components/schemas/Row"}

    def rows(items: dict[str, Any]) -> dict[str, Any]:
        return {"type": "array", "items": items, "minItems": 1, "maxItems": max_rows}

    single: dict[str, Any] = {
        "title": "One record",
        "allOf": [record, _without(*FORMAT_KEYS)],
    }
    if not any(f.required for f in schema.features):  # a record must name a feature at least
        single["allOf"].append({"anyOf": [{"required": [name]} for name in schema.names]})
    return {
        "anyOf": [
            single,
            {
                "title": "instances (TF Serving / KServe V1)",
                "type": "object",
                "required": ["instances"],
                "properties": {"instances": {"anyOf": [rows(record), rows(row)]}},
            },
            {
                "title": "dataframe_records (MLflow)",
                "type": "object",
                "required": ["dataframe_records"],
                "properties": {"dataframe_records": rows(record)},
                **_without("instances"),
            },
            {
                "title": "dataframe_split (MLflow)",
                "type": "object",
                "required": ["dataframe_split"],
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "required": ["columns", "data"],
                        "properties": {
                            "columns": {"const": schema.names},
                            "data": rows(row),
                        },
                    }
                },
                **_without("instances", "dataframe_records"),
            },
        ]
    }


def cell_pattern(feature: Feature) -> str:
    """A regular expression of CSV cells the API takes for `feature` (a plain subset: no
    quotes, exponents or blanks, a few digits, so every cell it matches is valid)."""
    if feature.type == "category":
        levels = [re.escape(c) for c in feature.categories if c and not re.search(r'[,"\r\n]', c)]
        if feature.unknown == "warn":  # any other word: predicted as missing, with a warning
            levels.append("x[a-z0-9]{0,8}")
        pattern = "|".join(levels) or "(?!)"
    elif feature.type == "boolean":
        pattern = "|".join(("yes", "no", "true", "false", "y", "n", "1", "0"))
    else:
        fraction = "" if feature.type == "integer" else "(\\.[0-9]{1,3})?"
        pattern = (
            f"[1-9][0-9]{{0,5}}{fraction}"
            if feature.transform == "log"
            else f"-?[0-9]{{1,6}}{fraction}"
        )
    return f"({pattern})?" if not feature.required else f"({pattern})"


def csv_schema(schema: FeatureSchema, max_rows: int) -> dict[str, Any]:
    """The text/csv body: rows of values in schema order, after an optional header row."""
    row = ",".join(cell_pattern(f) for f in schema.features)
    header = ",".join(map(re.escape, schema.names))
    newline = "\\r?\\n"
    return {
        "type": "string",
        # Rows repeat without a bound here (a bounded repeat of 10,000 is too much for the
        # regex engines of generators); maxRows is in the description, and more get a 413.
        "pattern": f"^({header}{newline})?({row}{newline})*{row}({newline})?$",
        "description": f"1 to {max_rows:,} CSV rows, with a header row (columns by name, any "
        "order; others are ignored with a warning) or without one (values in schema order: "
        + ", ".join(schema.names)
        + ")",
    }


def example_record(schema: FeatureSchema, preferred: Mapping[str, Any]) -> dict[str, Any]:
    """`preferred` when it is a valid record of exactly this model's features, else a record
    of typical values: the middle of each training range, the first category."""
    if set(preferred) == set(schema.names):
        try:
            schema.encode_records([preferred])
        except DataValidationError:
            pass
        else:
            return {name: preferred[name] for name in schema.names}
    record: dict[str, Any] = {}
    for f in schema.features:
        if f.type == "category":
            record[f.name] = f.categories[0] if f.categories else None
        elif f.type == "boolean":
            record[f.name] = "yes"
        else:
            middle = (f.min + f.max) / 2 if f.min is not None and f.max is not None else 1.0
            if f.transform == "log" and middle <= 0:
                middle = 1.0
            record[f.name] = round(middle) if f.type == "integer" else middle
    return record


def examples(record: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    """The request examples of the document, one per form, from one record."""
    row = [record[name] for name in names]
    forms = {
        "record": ("one record (the reply also carries {target: value})", dict(record)),
        "instances": ("a batch of records", {"instances": [dict(record), dict(record)]}),
        "rows": ("a batch of rows in schema order", {"instances": [row]}),
        "dataframe_split": (
            "MLflow split orientation",
            {"dataframe_split": {"columns": names, "data": [row]}},
        ),
        "dataframe_records": ("MLflow records orientation", {"dataframe_records": [record]}),
    }
    return {key: {"summary": summary, "value": value} for key, (summary, value) in forms.items()}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def without_model(document: dict[str, Any]) -> dict[str, Any]:
    """The static document, when no model is loaded (every POST /predict is then a 503)."""
    out = copy.deepcopy(document)
    for path in PREDICT_PATHS:
        if path not in out["paths"]:
            continue
        body = out["paths"][path]["post"]["requestBody"]
        body["required"] = True
        body["content"]["text/csv"] = {"schema": {"type": "string"}}
    return out


def for_model(
    document: dict[str, Any],
    schema: FeatureSchema,
    max_rows: int,
    model: str,
    preferred_example: Mapping[str, Any],
    *,
    schema_name: str | None = None,
    intervals: Sequence[float] | None = None,
    explainable: bool = True,
) -> dict[str, Any]:
    """A copy of `document` whose POST /predict body is exactly what this model accepts, with
    examples this model answers; `schema_name` (the model's name) is the one name the V2 routes'
    {name} takes; `intervals`, the coverage levels the model has (none: it has no intervals),
    documents the `intervals` option (interval_option, interval_parameter)."""
    out = copy.deepcopy(document)
    components = out.setdefault("components", {}).setdefault("schemas", {})
    components["Record"] = record_schema(schema)
    components["Row"] = row_schema(schema)
    components["PredictBody"] = request_schema(schema, max_rows)
    if intervals is not None:
        components["PredictBody"] = with_option(
            components["PredictBody"], "intervals", interval_option(intervals)
        )
    components["PredictBody"] = with_option(components["PredictBody"], "explain", EXPLAIN_OPTION)
    components["CsvBody"] = csv_schema(schema, max_rows)
    record = example_record(schema, preferred_example)
    row = ",".join(_cell(record[name]) for name in schema.names)
    for path in PREDICT_PATHS:
        if path not in out["paths"]:
            continue
        body = out["paths"][path]["post"]["requestBody"]
        body["required"] = True
        for media in body["content"].values():
            media["schema"] = {"$ref": "#/components/schemas/PredictBody"}
            media["examples"] = examples(record, schema.names)
            if explainable:  # else asking is a 409 (a version without explanation data)
                media["examples"]["explain"] = {
                    "summary": "one record, with each feature's contribution to its prediction",
                    "value": {**record, "explain": True},
                }
            if intervals:
                level = 0.9 if 0.9 in intervals else intervals[-1]
                media["examples"]["intervals"] = {
                    "summary": f"one record, with its {level:.0%} prediction interval",
                    "value": {**record, "intervals": level},
                }
        if intervals is not None:
            parameters = out["paths"][path]["post"].setdefault("parameters", [])
            parameters.append(interval_parameter(intervals))
        out["paths"][path]["post"].setdefault("parameters", []).append(EXPLAIN_PARAMETER)
        body["content"]["text/csv"] = {
            "schema": {"$ref": "#/components/schemas/CsvBody"},
            "examples": {
                "header": {
                    "summary": "CSV with a header row",
                    "value": ",".join(schema.names) + "\n" + row + "\n",
                },
                "no_header": {"summary": "CSV in schema order (SageMaker)", "value": row + "\n"},
            },
        }
    for path in (
        V2_PATHS if schema_name else ()
    ):  # the one model name these routes answer for (others: 404)
        for operation in out["paths"].get(path, {}).values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "name":
                    parameter["schema"] = {"type": "string", "enum": [schema_name]}
    info = out.setdefault("info", {})
    served = f"Request bodies are described for the model being served: {model}."
    info["description"] = "\n\n".join(filter(None, [info.get("description"), served]))
    return out


# The `explain` option (sklambda.explain): a JSON boolean in any body form, or the query string.
EXPLAIN_OPTION: dict[str, Any] = {
    "type": "boolean",
    "description": "true: the reply's `explanations` give, per row, each feature's "
    "contribution to the prediction and the base value they add up from, on the model's scale",
}
EXPLAIN_PARAMETER: dict[str, Any] = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "string", "enum": ["true", "false"]},
    "description": "explanations in the reply (also for CSV bodies; JSON replies only): "
    "exactly `true` or `false` (sklambda.options); the JSON body's `explain` wins",
}


def with_option(body: dict[str, Any], name: str, option: dict[str, Any]) -> dict[str, Any]:
    """A request schema (request_schema) whose every form may carry the option `name` at its
    top level."""
    out = copy.deepcopy(body)
    for form in out["anyOf"]:
        if "allOf" in form:
            form["allOf"].append({"properties": {name: option}})
        else:
            form.setdefault("properties", {})[name] = option
    return out


def interval_option(levels: Sequence[float]) -> dict[str, Any]:
    """The `intervals` option's JSON value: true (the model's default coverage), false, or one
    of its levels; for a model without intervals (a classifier, or trained before them), only
    false."""
    if not levels:
        return {"const": False, "description": "this model has no prediction intervals"}
    return {
        "anyOf": [{"type": "boolean"}, {"type": "number", "enum": list(levels)}],
        "description": "prediction intervals in the reply: true for the model's default "
        "coverage, or one of its levels (GET /model: intervals.levels)",
    }


def interval_parameter(levels: Sequence[float]) -> dict[str, Any]:
    """The `intervals` query parameter of POST /predict (also for CSV bodies)."""
    words = ["true", "false", *(f"{c:g}" for c in levels)] if levels else ["false"]
    return {
        "name": "intervals",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": words},
        "description": "prediction intervals in the reply (regression): exactly `true` (the "
        "model's default coverage), `false`, or a level written as a decimal such as 0.9 "
        "(sklambda.options); the JSON body's `intervals` wins",
    }


def server_url(requested_path: str, route_path: str) -> str:
    """The base URL path a client used, for the document's `servers`: the part of the path it
    requested (the event's requestContext path) before the route's own path. "/dev" on an
    execute-api URL of stage dev, "/" locally (no stage in the URL) or on a custom domain
    mapped at its root."""
    if route_path and requested_path.endswith(route_path):
        prefix = requested_path[: len(requested_path) - len(route_path)].rstrip("/")
        if prefix.startswith("/"):
            return prefix
    return "/"


_REF = "#/components/"


def _refs(node: Any) -> set[str]:
    """Every local reference ("schemas/Record", ...) in a part of a document."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(_REF):
                found.add(ref[len(_REF) :])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def only_used_components(document: dict[str, Any]) -> dict[str, Any]:
    """`document` without the components nothing in it refers to (Powertools adds
    HTTPValidationError, ValidationError and ResponseValidationError, which this API never
    answers; a model's document replaces the generic request body). Security schemes stay
    when a `security` requirement names them."""
    components: dict[str, Any] = document.get("components") or {}
    rest = {key: value for key, value in document.items() if key != "components"}
    used: set[str] = set()
    pending = _refs(rest)
    while pending:
        used |= pending
        kind_name = (ref.split("/", 1) for ref in pending)
        pending = {
            ref
            for kind, name in kind_name
            for ref in _refs(components.get(kind, {}).get(name))
            if ref not in used
        }
    schemes = {name for requirement in _security_requirements(document) for name in requirement}
    kept: dict[str, Any] = {}
    for kind, members in components.items():
        keep = {
            name: value
            for name, value in members.items()
            if f"{kind}/{name}" in used or (kind == "securitySchemes" and name in schemes)
        }
        if keep:
            kept[kind] = keep
    return {**rest, "components": kept} if kept else rest


def _security_requirements(document: dict[str, Any]) -> list[dict[str, Any]]:
    requirements = list(document.get("security") or [])
    for item in (document.get("paths") or {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                requirements.extend(operation.get("security") or [])
    return requirements


# What Powertools documents for its own request validation, which no route here uses (each is
# parsed by sklambda.api): a 422 of this schema on every operation, never answered.
POWERTOOLS_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


def without_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` without the responses that point at Powertools' validation error
    (the components they used go with only_used_components)."""
    out = copy.deepcopy(document)
    for item in (out.get("paths") or {}).values():
        for operation in item.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if not isinstance(responses, dict):
                continue
            for status, response in list(responses.items()):
                if POWERTOOLS_VALIDATION_ERROR in _refs_text(response):
                    del responses[status]
    return out


def _refs_text(node: Any) -> set[str]:
    return {_REF + ref for ref in _refs(node)}


BEARER_SCHEME = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def with_bearer_auth(document: dict[str, Any], api_key_scheme: str = "apiKey") -> dict[str, Any]:
    """A copy of `document` for the HTTP API (template ApiType HTTP): its keyed routes take a
    JWT (Authorization: Bearer), not the REST API's x-api-key."""
    out = copy.deepcopy(document)
    schemes = out.get("components", {}).get("securitySchemes", {})
    if schemes.pop(api_key_scheme, None) is None:
        return out
    schemes["bearerAuth"] = dict(BEARER_SCHEME)
    for item in (out.get("paths") or {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("security"):
                operation["security"] = [
                    {
                        ("bearerAuth" if name == api_key_scheme else name): scopes
                        for name, scopes in requirement.items()
                    }
                    for requirement in operation["security"]
                ]
    return out
