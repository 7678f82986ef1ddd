"""What a deploy's canary alarms watch: failed model loads (ModelHolder.on_load_error) and 5xx
replies, counted per function version by the predict handler, in the dimensions the alarms in
template.yaml name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

import predict_handler
from sklambda.model import LoadedModel
from sklambda.serving import ModelHolder
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore
from tests.helpers import FakeLambdaContext, load_event

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unreachable_store() -> ModelStore:
    raise ConnectionError("S3 is unreachable")


def holder_with(errors: list[Exception], clock: Clock, **hooks: Any) -> ModelHolder:
    settings = ServingSettings(bucket="models", model_name="house-prices")
    return ModelHolder(
        settings, unreachable_store, clock=clock, on_load_error=errors.append, **hooks
    )


def test_each_failed_first_load_is_reported_once_and_back_off_answers_are_not() -> None:
    errors: list[Exception] = []
    clock = Clock()
    holder = holder_with(errors, clock)
    for _ in range(3):
        with pytest.raises(Exception, match="S3 is unreachable"):
            holder.get()
    assert [type(e) for e in errors] == [ConnectionError]  # the two others were backing off
    clock.now += 1.0  # the first back-off is over: a new attempt, a new failure
    with pytest.raises(Exception, match="S3 is unreachable"):
        holder.get()
    assert len(errors) == 2


def test_a_failed_refresh_keeps_the_model_and_is_not_a_load_failure(loaded: LoadedModel) -> None:
    errors: list[Exception] = []
    refresh_errors: list[Exception] = []
    holder = holder_with(errors, Clock(), on_refresh_error=refresh_errors.append)
    holder.use(loaded)
    holder._refresh(loaded)
    assert holder.get() is loaded
    assert errors == [] and len(refresh_errors) == 1


# --- the predict handler -------------------------------------------------------------------------


def emf_documents(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]


def counted(output: str, name: str) -> list[dict[str, str]]:
    """The dimensions of each EMF document that counts `name`."""
    found = []
    for doc in emf_documents(output):
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        if name in [m["Name"] for m in directive["Metrics"]]:
            found.append({d: doc[d] for d in directive["Dimensions"][0]})
    return found


@pytest.fixture
def unloadable(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """The predict handler on a container whose model cannot be loaded."""
    clock = Clock()
    holder = ModelHolder(
        ServingSettings(bucket="models", model_name="house-prices"),
        unreachable_store,
        clock=clock,
        on_load_error=predict_handler._on_load_error,
    )
    monkeypatch.setattr(predict_handler, "holder", holder)
    yield clock
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True


def test_a_failed_model_load_is_counted_for_the_version_that_runs(
    unloadable: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    context = FakeLambdaContext(function_version="7")
    reply = predict_handler.lambda_handler(load_event("predict"), context)
    assert reply["statusCode"] == 503
    reply = predict_handler.lambda_handler(load_event("predict"), context)  # backing off
    assert reply["statusCode"] == 503
    out = capsys.readouterr().out
    version_7 = {"service": "predict", "function_version": "7"}
    assert counted(out, "ModelLoadFailures") == [version_7]  # one load was tried
    assert counted(out, "ServerErrors").count(version_7) == 2  # two 503s were answered


def test_a_5xx_the_handler_answers_is_counted_for_its_version(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the new version")

    monkeypatch.setattr(predict_handler.api, "predict", broken)
    reply = predict_handler.lambda_handler(
        load_event("predict"), FakeLambdaContext(function_version="12")
    )
    assert reply["statusCode"] == 500  # handled: Lambda's own Errors metric never sees it
    out = capsys.readouterr().out
    assert {"service": "predict", "function_version": "12"} in counted(out, "ServerErrors")
    assert counted(out, "ModelLoadFailures") == []


def test_client_errors_and_good_requests_count_nothing_for_the_canary(
    loaded: LoadedModel, capsys: pytest.CaptureFixture[str]
) -> None:
    context = FakeLambdaContext(function_version="12")
    for name in ("predict", "predict_wrong_type", "health"):
        predict_handler.lambda_handler(load_event(name), context)
    out = capsys.readouterr().out
    assert counted(out, "ServerErrors") == []
    assert counted(out, "ModelLoadFailures") == []
