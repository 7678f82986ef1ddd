"""The drift monitor step of `make sam-local-test` (tools/sam_local/check.py's invoke_monitor) end
to end on a moto S3, MonitorFunction's handler in process where CI runs `sam local invoke`: the
capture seeded in moto's Firehose layout, the scheduled event from events/, and the reply and the
written drift.json judged as CI judges them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import monitor_handler
import pytest

from sklambda.settings import MonitorSettings
from sklambda.store import ModelStore
from tests.helpers import FakeLambdaContext
from tools.sam_local import check

pytestmark = [pytest.mark.integration, pytest.mark.tooling]


@pytest.fixture
def env(
    store: ModelStore, trained_dir: Path, bucket: str, s3_endpoint: str, monkeypatch: Any
) -> check.Env:
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    settings = MonitorSettings(bucket=bucket, model="house-prices")
    monkeypatch.setattr(monitor_handler, "settings", settings)
    return check.Env({}, s3_endpoint, bucket, manifest.version)


def in_process(function: str, event: Path) -> dict[str, Any]:
    """What `sam local invoke` prints: the handler's reply, or Lambda's error object."""
    assert function == "MonitorFunction"
    try:
        reply = monitor_handler.lambda_handler(json.loads(event.read_text()), FakeLambdaContext())
    except Exception as exc:  # noqa: BLE001 - Lambda turns any exception into this reply
        return {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    return dict(json.loads(json.dumps(reply, default=str)))


def test_the_monitor_step_passes_against_the_handler(env: check.Env, s3: Any) -> None:
    calls: list[str] = []

    def invoke(function: str, event: Path) -> dict[str, Any]:
        calls.append(event.name)
        return in_process(function, event)

    timings: dict[str, float] = {}
    check.invoke_monitor(env, invoke, timings)
    assert calls == [f"{check.MONITOR_EVENT}.json"]
    assert len(timings) == 1
    listed = s3.list_objects_v2(Bucket=env.bucket, Prefix="reports/house-prices/")["Contents"]
    written = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed)
    assert written == ["drift.html", "drift.json", "monitor-cursor.json"]


def test_without_the_seeded_capture_the_check_fails(
    env: check.Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check, "seed_capture", lambda s3, bucket, version, now: ("none", 546))
    with pytest.raises(check.CheckFailed, match="expected"):
        check.invoke_monitor(env, in_process, {})


def test_a_report_that_misses_the_shifted_feature_fails_the_check(
    env: check.Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The capture as seeded, but the lotsize left as sold: nothing drifts, and the check says so.
    monkeypatch.setattr(check, "MONITOR_SHIFT", {"lotsize": 1.0})
    with pytest.raises(check.CheckFailed, match="'drifted': \\[\\]"):
        check.invoke_monitor(env, in_process, {})
