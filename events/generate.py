"""Regenerates events/*.json: real API Gateway REST (v1 proxy) events, one per scenario.

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
}
for name, ev in events.items():
    Path(f"events/{name}.json").write_text(json.dumps(ev, indent=2) + "\n")
# events/env.json (the functions' environment for sam local invoke -n) is kept by hand.
