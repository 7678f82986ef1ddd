"""Replies Lambda could not return: its synchronous response limit (6 MB) would make an invoke
fail (API Gateway 502, a Lambda Error that rolls a canary back). Explanations of a big batch are
capped (MAX_EXPLAIN_ROWS) before any work; any other reply too large is a 413, never a 502."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import predict_handler
from sklambda import api
from sklambda.manifest import Manifest
from sklambda.model import LoadedModel
from sklambda.numpy_form import NumpyModel
from tests.helpers import FakeLambdaContext, load_event

pytestmark = pytest.mark.unit

RECORD = json.loads(load_event("predict")["body"])


def call(event: dict[str, Any], context: FakeLambdaContext) -> tuple[int, dict[str, Any]]:
    reply = predict_handler.lambda_handler(event, context)
    return reply["statusCode"], json.loads(reply["body"])


def predict_event(body: Any) -> dict[str, Any]:
    event = load_event("predict")
    event["body"] = json.dumps(body)
    return event


def v2_event(rows: int, parameters: dict[str, Any]) -> dict[str, Any]:
    event = load_event("v2_infer")
    body = json.loads(event["body"])
    for tensor in body["inputs"]:
        tensor["shape"] = [rows]
        tensor["data"] = [tensor["data"][0]] * rows
    event["body"] = json.dumps({**body, "parameters": parameters})
    return event


@pytest.fixture
def house(trained_dir: Path, manifest: Manifest, loaded: LoadedModel) -> Iterator[LoadedModel]:
    """The house-prices model in its numpy form (it explains; the pickle of a linear model does
    not), served in place of `loaded` (whose fixture resets the holder after)."""
    model = LoadedModel(manifest, NumpyModel.load(trained_dir / "model.npz"))
    predict_handler.holder.use(model)
    yield model


@pytest.fixture
def explain_at_most_2(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = predict_handler.settings.__class__(bucket="b", model_name="", max_explain_rows=2)
    monkeypatch.setattr(predict_handler.holder, "settings", settings)


def test_the_default_cap_on_explained_rows_is_1000() -> None:
    assert predict_handler.settings.__class__().max_explain_rows == 1_000


@pytest.mark.parametrize("form", ["body", "v2"])
def test_explaining_more_rows_than_max_explain_rows_is_a_413_before_any_work(
    loaded: LoadedModel,
    lambda_context: FakeLambdaContext,
    explain_at_most_2: None,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
) -> None:
    # GIVEN MAX_EXPLAIN_ROWS=2, and a model that must not be asked anything
    def never(*args: Any) -> Any:
        raise AssertionError("computed before the cap was checked")

    monkeypatch.setattr(LoadedModel, "answer", never)
    monkeypatch.setattr(LoadedModel, "explain", never)
    # WHEN 3 rows ask for explanations
    if form == "body":
        event = predict_event({"instances": [RECORD] * 3, "explain": True})
    else:
        event = v2_event(3, {"explain": True})
    status, reply = call(event, lambda_context)
    # THEN a 413 in the one error shape says how many rows may be explained
    assert status == 413, reply
    assert reply["error"]["code"] == "payload_too_large"
    assert "MAX_EXPLAIN_ROWS" in reply["error"]["message"]
    assert "at most 2 rows" in reply["error"]["message"]


def test_the_cap_is_only_on_explained_rows(
    house: LoadedModel, lambda_context: FakeLambdaContext, explain_at_most_2: None
) -> None:
    for body in ({"instances": [RECORD] * 3}, {"instances": [RECORD] * 2, "explain": True}):
        status, reply = call(predict_event(body), lambda_context)
        assert status == 200, reply


def test_a_reply_over_lambdas_response_limit_is_a_413_saying_to_send_fewer_rows(
    loaded: LoadedModel, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a response limit that a 50-row reply passes and a 500-row one does not
    monkeypatch.setattr(api, "MAX_REPLY_BYTES", 4_000)
    status, reply = call(predict_event({"instances": [RECORD] * 50}), lambda_context)
    assert status == 200, reply
    # WHEN the reply would be larger, THEN a 413 (not an invoke error: a 502), in the one shape
    status, reply = call(predict_event({"instances": [RECORD] * 500}), lambda_context)
    assert status == 413, reply
    assert reply["error"]["code"] == "payload_too_large"
    assert "send fewer rows" in reply["error"]["message"]


@pytest.mark.parametrize(
    "text", ['{"a": 1}', "plain", 'q"uo\\te', '{"name": "caf\u00e9 \U0001f600"}', "x\n"]
)
def test_a_replys_size_is_counted_as_lambda_returns_it_inside_the_proxy_response(
    text: str,
) -> None:
    # the body is a JSON string in the invoke's response: quotes and backslashes are escaped
    # again, and the runtime's json.dumps writes non-ASCII as \\u escapes
    assert api.reply_bytes(text) == len(json.dumps(text)) - 2
