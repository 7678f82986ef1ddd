"""The batch steps of `make sam-local-test` (tools/sam_local/check.py's invoke_batch) end to end on
a moto S3, BatchPredictFunction's handler in process where CI runs `sam local invoke`: the events
from events/, the input seeded for them, and the replies judged as CI judges them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import batch_predict_handler
import pytest

from sklambda.settings import BatchSettings
from sklambda.store import ModelStore
from tools.sam_local import check

pytestmark = [pytest.mark.integration, pytest.mark.tooling]


@pytest.fixture
def env(
    store: ModelStore,
    trained_dir: Path,
    bucket: str,
    s3_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> check.Env:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    settings = BatchSettings(bucket=bucket, model_name="house-prices", cache_dir=tmp_path / "c")
    monkeypatch.setattr(batch_predict_handler, "settings", settings)
    monkeypatch.setattr(batch_predict_handler, "_holders", {})
    monkeypatch.setattr(check, "STATE", tmp_path / "state")  # the re-pinned event goes here
    return check.Env({}, s3_endpoint, bucket, manifest.version)


def in_process(function: str, event: Path) -> dict[str, Any]:
    """What `sam local invoke` prints: the handler's reply, or Lambda's error object."""
    assert function == "BatchPredictFunction"
    try:
        reply = batch_predict_handler.handle(json.loads(event.read_text()))
    except Exception as exc:  # noqa: BLE001 - Lambda turns any exception into this reply
        return {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    return dict(json.loads(json.dumps(reply, default=str)))


def test_the_batch_steps_pass_against_the_handler(env: check.Env, s3: Any) -> None:
    calls: list[str] = []

    def invoke(function: str, event: Path) -> dict[str, Any]:
        calls.append(event.name)
        return in_process(function, event)

    timings: dict[str, float] = {}
    check.invoke_batch(env, invoke, timings)
    assert calls == [f"{check.BATCH_RESOLVE}.json", f"{check.BATCH_ITEMS}.json"]
    assert len(timings) == 2
    written = s3.list_objects_v2(Bucket=env.bucket, Prefix="batch/example-job/")["Contents"]
    assert sorted(o["Key"].split("/")[2] for o in written) == ["out", "rejected"]


def test_without_the_seeded_input_the_check_fails(
    env: check.Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check, "seed_batch_input", lambda s3, bucket, event: str(event["key"]))
    with pytest.raises(check.CheckFailed, match="NoSuchKey"):
        check.invoke_batch(env, in_process, {})
