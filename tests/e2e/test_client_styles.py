"""Clients as they come, over HTTP through the local runner (the template's API, the predict
function under the Lambda RIE, the model from a moto S3): CSV bodies with and without a header,
CSV replies, and SageMaker's (and `mlflow models serve`'s) routes, /invocations and /ping."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from tests.helpers import Served, load_event

API_KEY = "e2e-clients-key"
TIMEOUT = 60

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def url(serve_template: Callable[..., AbstractContextManager[Served]]) -> Iterator[str]:
    with serve_template(API_KEY, concurrency=2) as (api, _):
        yield api.url


def send(url: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, str, str]:
    """(status, content type, body text)."""
    request = urllib.request.Request(url + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def event_request(name: str) -> tuple[str, bytes, dict[str, str]]:
    event = load_event(name)
    headers = {k: v for k, v in event["headers"].items() if k in ("Content-Type", "Accept")}
    return event["path"], event["body"].encode(), {**headers, "x-api-key": API_KEY}


def reference(url: str) -> list[float]:
    path, body, headers = event_request("predict_batch")
    status, _, text = send(url, path, body, headers)
    assert status == 200, text
    predictions: list[float] = json.loads(text)["predictions"]
    return predictions


def test_csv_with_a_header_gets_json_like_the_records(url: str) -> None:
    status, content_type, text = send(url, *event_request("predict_csv"))
    assert status == 200, text
    assert content_type == "application/json"
    reply = json.loads(text)
    assert reply["predictions"] == reference(url)
    assert reply["warnings"] == ["ignored unknown columns: note"]


@pytest.mark.parametrize("name", ["predict_csv_no_header", "invocations_csv"])
def test_sagemaker_style_csv_gets_one_prediction_per_line(url: str, name: str) -> None:
    status, content_type, text = send(url, *event_request(name))
    assert status == 200, text
    assert content_type == "text/csv"
    assert [float(line) for line in text.splitlines()] == reference(url)


def test_invocations_takes_json_as_predict_does(url: str) -> None:
    status, _, text = send(url, *event_request("invocations"))
    assert status == 200, text
    assert json.loads(text)["predictions"] == reference(url)


def test_csv_errors_have_the_json_shape_and_rows(url: str) -> None:
    status, content_type, text = send(url, *event_request("predict_csv_wrong_type"))
    assert status == 422
    assert content_type == "application/json"
    assert [(d["field"], d["row"]) for d in json.loads(text)["error"]["details"]] == [
        ("lotsize", 1)
    ]


def test_ping_is_open_and_invocations_needs_the_key(url: str) -> None:
    status, _, text = send(url, "/ping", None, {})
    assert status == 200
    assert json.loads(text)["status"] == "ready"
    path, body, headers = event_request("invocations")
    status, _, _ = send(url, path, body, {"Content-Type": headers["Content-Type"]})
    assert status == 403


# --- the Open Inference Protocol (KServe V2) --------------------------------------------------


@pytest.mark.parametrize("name", ["v2_infer", "v2_infer_matrix"])
def test_v2_infer_answers_one_fp64_output_tensor(url: str, name: str) -> None:
    status, _, text = send(url, *event_request(name))
    assert status == 200, text
    reply = json.loads(text)
    (output,) = reply["outputs"]
    assert output["name"] == "predictions" and output["datatype"] == "FP64"
    assert output["shape"] == [2]
    assert output["data"] == reference(url)
    assert reply.get("id") == json.loads(load_event(name)["body"]).get("id")


def test_v2_metadata_ready_and_unknown_model(url: str) -> None:
    status, _, text = send(url, "/v2/models/house-prices", None, {"x-api-key": API_KEY})
    assert status == 200, text
    metadata = json.loads(text)
    assert [t["name"] for t in metadata["inputs"]] == list(
        json.loads(load_event("predict")["body"])
    )
    status, _, text = send(url, "/v2/health/ready", None, {})  # open, like /health
    assert (status, json.loads(text)) == (200, {"ready": True})
    status, _, text = send(url, *event_request("v2_infer_unknown_model"))
    assert status == 404
    assert json.loads(text)["error"]["code"] == "model_not_found"
    status, _, _ = send(url, "/v2/models/house-prices", None, {})
    assert status == 403
