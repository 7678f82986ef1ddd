"""The real predict function, as template.yaml and events/env.json describe it, behind the local
runner: real HTTP on 127.0.0.1, each function in its own process under the Lambda RIE, the model
published to a moto server and loaded (verified) on cold start."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Served, load_event
from tools.local.runner import LocalApi

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "e2e-key"
TIMEOUT = 60  # seconds per request: the first ones wait for cold starts on a busy 2-core box

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(serve_template: Callable[..., AbstractContextManager[Served]]) -> Iterator[Served]:
    with serve_template(API_KEY) as served:
        yield served


def send(
    url: str, path: str, body: bytes | None = None, content_type: str = "application/json"
) -> tuple[int, Any]:
    headers = {"x-api-key": API_KEY, "content-type": content_type}
    request = urllib.request.Request(url + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


EXPECTED = {
    "predict": 200,
    "predict_batch": 200,
    "predict_batch_lists": 200,
    "predict_mlflow": 200,
    "predict_mlflow_records": 200,
    "predict_missing_feature": 422,
    "predict_wrong_type": 422,
    "predict_malformed_json": 400,
    "predict_wrong_content_type": 415,
    "predict_csv": 200,
    "predict_csv_wrong_type": 422,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_predict_event_body_over_http(served: tuple[LocalApi, str], name: str) -> None:
    api, version = served
    event = load_event(name)
    content_type = {k.lower(): v for k, v in event["headers"].items()}["content-type"]
    status, reply = send(api.url, "/predict", event["body"].encode(), content_type)
    assert status == EXPECTED[name], reply
    if status == 200:
        assert reply["model"]["version"] == version
        assert all(30_000 < p < 200_000 for p in reply["predictions"])
    else:
        assert set(reply["error"]) >= {"code", "message"}


def test_model_health_and_the_api_key(served: tuple[LocalApi, str]) -> None:
    api, version = served
    assert send(api.url, "/model")[1]["version"] == version
    with urllib.request.urlopen(api.url + "/health", timeout=TIMEOUT) as reply:  # no key needed
        assert json.loads(reply.read())["status"] == "ready"
    keyless = urllib.request.Request(api.url + "/predict", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(keyless, timeout=TIMEOUT)
    assert refused.value.code == 403


def test_mixed_good_and_bad_requests_from_8_threads_never_get_a_5xx(
    served: tuple[LocalApi, str],
) -> None:
    api, _ = served
    record = json.loads(load_event("predict")["body"])
    _, single = send(api.url, "/predict", json.dumps(record).encode())
    bad_inputs: list[tuple[bytes, str, int]] = [
        (json.dumps({**record, "bedrooms": "three"}).encode(), "application/json", 422),
        (
            json.dumps({k: v for k, v in record.items() if k != "lotsize"}).encode(),
            "application/json",
            422,
        ),
        (b'{"lotsize": NaN}', "application/json", 422),
        (b"\xff\xfe not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b"lotsize=5850", "application/x-www-form-urlencoded", 415),
        (b"5850,3,1\n", "text/csv", 422),
        (json.dumps({"instances": [record] * 10_001}).encode(), "application/json", 413),
    ]
    good = (json.dumps(record).encode(), "application/json", 200)
    requests = [good if i % 3 == 0 else bad_inputs[i % len(bad_inputs)] for i in range(200)]

    def one(spec: tuple[bytes, str, int]) -> tuple[int, int, Any]:
        body, content_type, expected = spec
        status, reply = send(api.url, "/predict", body, content_type)
        return expected, status, reply

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, requests))
    statuses = Counter(status for _, status, _ in results)
    fives = [(e, r) for e, s, r in results if s >= 500]
    assert not fives, (statuses, fives[:3])
    for expected, status, reply in results:
        assert status == expected, reply
        if status == 200:
            assert reply["predictions"] == single["predictions"]
        else:
            assert "Traceback" not in json.dumps(reply)
