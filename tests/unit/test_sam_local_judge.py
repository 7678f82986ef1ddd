"""`make sam-local-test` judges the replies to events/ (tools/sam_local/check.py `judge`): the real
handler's replies pass, and a reply that is wrong in any way the check promises to see fails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import predict_handler
from sklambda.manifest import Manifest
from sklambda.model import LoadedModel
from sklambda.numpy_form import NumpyModel
from tests.helpers import FakeLambdaContext, load_event
from tools.sam_local import check

pytestmark = [pytest.mark.unit, pytest.mark.tooling]


@pytest.fixture
def loaded(trained_dir: Path, manifest: Manifest) -> Iterator[LoadedModel]:
    """The model as the predict function serves it: its numpy form (explanations included)."""
    model = LoadedModel(manifest, NumpyModel.load(trained_dir / "model.npz"))
    predict_handler.holder.use(model)
    yield model
    predict_handler.holder.reset()
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True


def answered(name: str) -> tuple[str | None, int, str]:
    event = load_event(name)
    reply = predict_handler.lambda_handler(event, FakeLambdaContext())
    return event.get("body"), reply["statusCode"], reply["body"]


@pytest.mark.parametrize("name", sorted(check.EXPECTED))
def test_every_expected_reply_of_the_handler_passes(loaded: LoadedModel, name: str) -> None:
    body, status, reply = answered(name)
    assert check.judge(name, body, status, reply, loaded.manifest.version) is None


def changed(reply: str, **update: Any) -> str:
    return json.dumps({**json.loads(reply), **update})


def test_health_and_the_manifest_must_name_the_served_version(loaded: LoadedModel) -> None:
    version = loaded.manifest.version
    body, status, reply = answered("health")
    model = json.loads(reply)["model"]
    other = changed(reply, model={**model, "version": "20000101T000000Z-00000000"})
    assert "expected version" in (check.judge("health", body, status, other, version) or "")
    assert check.judge("health", body, status, changed(reply, status="loading"), version)
    assert check.judge("health", body, status, changed(reply, model=None), version)
    body, status, reply = answered("model_info")
    assert check.judge("model_info", body, status, changed(reply, version="x"), version)
    assert check.judge("model_info", body, status, changed(reply, name=""), version)


def test_an_error_must_be_in_the_one_shape_and_a_422_name_its_fields(loaded: LoadedModel) -> None:
    version = loaded.manifest.version
    body, status, reply = answered("predict_missing_feature")
    error = json.loads(reply)["error"]
    nameless = changed(reply, error={**error, "details": [{"message": "?"}]})
    assert check.judge("predict_missing_feature", body, status, nameless, version)
    bare = changed(reply, error={**error, "details": []})
    assert check.judge("predict_missing_feature", body, status, bare, version)
    body, status, reply = answered("predict_malformed_json")
    assert check.judge("predict_malformed_json", body, status, '{"message": "bad"}', version)
    assert check.judge("predict_malformed_json", body, 500, reply, version)
