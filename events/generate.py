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


def event(
    method,
    path,
    body=None,
    content_type="application/json",
    request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
):
    headers = {
        "Accept": "application/json",
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
    elif path == "/model":
        headers["x-api-key"] = "local-api-key-0123456789"
    return {
        "body": body,
        "resource": path,
        "path": path,
        "httpMethod": method,
        "isBase64Encoded": False,
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
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
            "resourcePath": path,
            "stage": "dev",
        },
    }


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
    "model_info": event("GET", "/model"),
    "health": event("GET", "/health"),
}
for name, ev in events.items():
    Path(f"events/{name}.json").write_text(json.dumps(ev, indent=2) + "\n")
Path("events/env.json").write_text(
    json.dumps(
        {
            "PredictFunction": {
                "MODEL_BUCKET": "local-models",
                "MODEL_NAME": "house-prices",
                "MODEL_ALIAS": "live",
                "MODEL_REFRESH_SECONDS": "300",
                "POWERTOOLS_METRICS_NAMESPACE": "SklambdaLocal",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            "RetrainFunction": {
                "MODEL_BUCKET": "local-models",
                "MODEL_NAME": "house-prices",
                "MODEL_ALIAS": "live",
                "POWERTOOLS_METRICS_NAMESPACE": "SklambdaLocal",
            },
        },
        indent=2,
    )
    + "\n"
)
