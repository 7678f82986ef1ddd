"""Regenerates events/*.json: real API Gateway REST (v1 proxy) and HTTP API (payload 2.0)
events, one per scenario.

Run from the repo root: .venv/bin/python events/generate.py. Shapes follow `sam local generate-event
apigateway aws-proxy` and the events API Gateway sends (REST API, Lambda proxy integration).
"""

import json
from pathlib import Path

from sklambda.api import EXAMPLE_RECORD  # layers/ml is on the venv's path

RECORD = EXAMPLE_RECORD
SECOND = {
    "lotsize": 6650,
    "bedrooms": 3,
    "bathrms": 1,
    "stories": 2,
    "driveway": "yes",
    "recroom": "yes",
    "fullbase": "no",
    "gashw": "no",
    "airco": "no",
    "garagepl": 0,
    "prefarea": "no",
}
NAMES = list(RECORD)
# The bundled classifier (training/configs/penguins.toml; PredictFunction with MODEL_NAME
# penguins): a Gentoo, and an Adelie whose bill length and sex were not recorded (missing values
# are modelled, not refused).
PENGUIN = {
    "island": "Biscoe",
    "bill_length_mm": 48.6,
    "bill_depth_mm": 16.0,
    "flipper_length_mm": 230,
    "body_mass_g": 5800,
    "sex": "male",
}
PENGUIN_MISSING = {
    "island": "Torgersen",
    "bill_length_mm": None,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181,
    "body_mass_g": 3750,
    "sex": None,
}


def csv_text(records, columns=None):
    """CSV rows of `records`; with a header row of `columns` when given (else schema order)."""
    lines = [",".join(columns)] if columns else []
    for record in records:
        lines.append(",".join(str(record.get(c, "")) for c in (columns or NAMES)))
    return "\n".join(lines) + "\n"


# A header in another order than the schema's, with a column the model does not know.
CSV_COLUMNS = [
    "prefarea",
    "lotsize",
    "note",
    *[n for n in NAMES if n not in ("prefarea", "lotsize")],
]


def event(
    method,
    path,
    body=None,
    *,
    content_type="application/json",
    request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    accept="application/json",
    resource=None,
    path_parameters=None,
):
    headers = {
        "Accept": accept,
        "CloudFront-Forwarded-Proto": "https",
        "CloudFront-Viewer-Country": "CA",
        "Host": "1234567890.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "curl/8.5.0",
        "Via": "2.0 08f323deadbeefa7af34d5feb414ce27.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Id": "cDehVQoZnx43VYQb9j2-nvCh-9z396Uhbp027Y2JvkCPNLmGJHqlaA==",
        "X-Amzn-Trace-Id": "Root=1-674358f6-3f1a2b3c4d5e6f7a8b9c0d1e",
        "X-Forwarded-For": "203.0.113.7, 130.176.1.25",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    }
    if method == "POST":
        headers["x-api-key"] = "local-api-key-0123456789"
        if content_type:
            headers["Content-Type"] = content_type
    elif path == "/model" or path.startswith("/v2/models/"):
        headers["x-api-key"] = "local-api-key-0123456789"
    return {
        "body": body,
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "isBase64Encoded": False,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "1234567890",
            "domainName": "1234567890.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "1234567890",
            "extendedRequestId": "BQGojGkBoAMFcZw=",
            "httpMethod": method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "apiKey": headers.get("x-api-key"),
                "apiKeyId": "abcd1234ef" if "x-api-key" in headers else None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": "203.0.113.7",
                "user": None,
                "userAgent": "curl/8.5.0",
                "userArn": None,
            },
            "path": f"/dev{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTime": "24/Nov/2026:16:30:00 +0000",
            "requestTimeEpoch": 1795537800000,
            "resourceId": "abc123",
            "resourcePath": resource or path,
            "stage": "dev",
        },
    }


def http_event(method, path, body=None, *, content_type="application/json"):
    """The event an HTTP API (payload format 2.0) sends, stage dev: lower-case headers, one
    string per header, the stage in rawPath, the JWT authorizer's claims on keyed routes."""
    headers = {
        "accept": "application/json",
        "content-length": str(len(body.encode())) if body else "0",
        "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "user-agent": "curl/8.5.0",
        "x-amzn-trace-id": "Root=1-674358f6-3f1a2b3c4d5e6f7a8b9c0d1e",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    keyed = path not in ("/health", "/ping", "/v2/health/ready")
    if keyed:
        headers["authorization"] = "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"
    if method == "POST" and content_type:
        headers["content-type"] = content_type
    context = {
        "accountId": "123456789012",
        "apiId": "abcdef1234",
        "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abcdef1234",
        "http": {
            "method": method,
            "path": f"/dev{path}",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "curl/8.5.0",
        },
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": f"{method} {path}",
        "stage": "dev",
        "time": "24/Nov/2026:16:30:00 +0000",
        "timeEpoch": 1795537800000,
    }
    if keyed:
        context["authorizer"] = {
            "jwt": {
                "claims": {"iss": "https://issuer.example.com/", "sub": "client-1"},
                "scopes": None,
            }
        }
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": f"/dev{path}",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


def v2_tensor(name, records):
    """Datatype and data of one feature as GET /v2/models/{name} describes it: BOOL for the
    yes/no features, FP64 for lotsize (a number), INT64 for the counts."""
    values = [r[name] for r in records]
    if isinstance(values[0], str):
        return {"datatype": "BOOL", "data": [v == "yes" for v in values]}
    if name == "lotsize":
        return {"datatype": "FP64", "data": [float(v) for v in values]}
    return {"datatype": "INT64", "data": values}


def v2_event(method, model, body=None):
    """An Open Inference Protocol route: /v2/models/{name}, or .../infer with a body."""
    if body is None:
        return event(
            method,
            f"/v2/models/{model}",
            resource="/v2/models/{name}",
            path_parameters={"name": model},
        )
    return event(
        method,
        f"/v2/models/{model}/infer",
        json.dumps(body),
        resource="/v2/models/{name}/infer",
        path_parameters={"name": model},
    )


events = {
    "predict": event("POST", "/predict", json.dumps(RECORD)),
    "predict_batch": event("POST", "/predict", json.dumps({"instances": [RECORD, SECOND]})),
    "predict_batch_lists": event(
        "POST",
        "/predict",
        json.dumps({"instances": [[RECORD[n] for n in NAMES], [SECOND[n] for n in NAMES]]}),
    ),
    "predict_mlflow": event(
        "POST",
        "/predict",
        json.dumps(
            {
                "dataframe_split": {
                    "columns": NAMES,
                    "data": [[RECORD[n] for n in NAMES], [SECOND[n] for n in NAMES]],
                }
            }
        ),
    ),
    "predict_mlflow_records": event(
        "POST", "/predict", json.dumps({"dataframe_records": [RECORD, SECOND]})
    ),
    "predict_missing_feature": event(
        "POST", "/predict", json.dumps({k: v for k, v in RECORD.items() if k != "bathrms"})
    ),
    "predict_wrong_type": event(
        "POST", "/predict", json.dumps({**RECORD, "lotsize": "large", "airco": "maybe"})
    ),
    "predict_malformed_json": event("POST", "/predict", '{"lotsize": 5850, "bedrooms": '),
    "predict_wrong_content_type": event(
        "POST",
        "/predict",
        "lotsize=5850&bedrooms=3",
        content_type="application/x-www-form-urlencoded",
    ),
    "predict_csv": event(
        "POST",
        "/predict",
        csv_text([{**RECORD, "note": "corner lot"}, SECOND], CSV_COLUMNS),
        content_type="text/csv",
    ),
    "predict_csv_no_header": event(
        "POST", "/predict", csv_text([RECORD, SECOND]), content_type="text/csv", accept="text/csv"
    ),
    "predict_csv_wrong_type": event(
        "POST",
        "/predict",
        csv_text([RECORD, {**SECOND, "lotsize": "large"}], NAMES),
        content_type="text/csv",
    ),
    "invocations": event("POST", "/invocations", json.dumps({"instances": [RECORD, SECOND]})),
    "invocations_csv": event(
        "POST",
        "/invocations",
        csv_text([RECORD, SECOND]),
        content_type="text/csv",
        accept="text/csv",
    ),
    "model_info": event("GET", "/model"),
    "health": event("GET", "/health"),
    "ping": event("GET", "/ping"),
    # The Open Inference Protocol (KServe V2): the request forms of its required_api.md.
    "v2_ready": event("GET", "/v2/health/ready"),
    "v2_model_metadata": v2_event("GET", "house-prices"),
    "v2_infer": v2_event(
        "POST",
        "house-prices",
        {
            "id": "42",
            "inputs": [
                {"name": name, "shape": [2], **v2_tensor(name, [RECORD, SECOND])} for name in NAMES
            ],
        },
    ),
    "v2_infer_matrix": v2_event(
        "POST",
        "house-prices",
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, len(NAMES)],
                    "datatype": "BYTES",
                    "data": [[str(r[n]) for n in NAMES] for r in (RECORD, SECOND)],
                }
            ]
        },
    ),
    "v2_infer_unknown_model": v2_event(
        "POST",
        "no-such-model",
        {"inputs": [{"name": "lotsize", "shape": [1], "datatype": "FP64", "data": [5850]}]},
    ),
    # A prediction with its 90% conformal interval ("intervals": true: the model's default).
    "predict_intervals": event("POST", "/predict", json.dumps({**RECORD, "intervals": 0.9})),
    # Each feature's contribution to the prediction, and the base value they add up from.
    "predict_explain": event("POST", "/predict", json.dumps({**RECORD, "explain": True})),
    # The classifier: its labels, with each class's probability.
    "penguins_predict": event("POST", "/predict", json.dumps(PENGUIN)),
    "penguins_predict_batch": event(
        "POST", "/predict", json.dumps({"instances": [PENGUIN, PENGUIN_MISSING]})
    ),
    # Explained per class (softmax scores): the missing bill length and sex have their share.
    "penguins_predict_explain": event(
        "POST",
        "/predict",
        json.dumps({"instances": [PENGUIN, PENGUIN_MISSING], "explain": True}),
    ),
    # The same function behind an HTTP API (template parameter ApiType=HTTP): payload 2.0.
    "http_predict": http_event("POST", "/predict", json.dumps(RECORD)),
    "http_health": http_event("GET", "/health"),
    "http_predict_malformed_json": http_event("POST", "/predict", '{"lotsize": 5850, "bedrooms": '),
}
for name, ev in events.items():
    Path(f"events/{name}.json").write_text(json.dumps(ev, indent=2) + "\n")
# events/env.json (the functions' environment for sam local invoke -n) is kept by hand.
