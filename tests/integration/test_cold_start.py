"""Cold start of the predict function against a moto S3 server over HTTP."""

import json

import boto3
import pytest

import predict_handler
from sklambda.serving import ModelHolder
from sklambda.settings import ServingSettings
from sklambda.store import ModelStore
from tests.helpers import cold_predict, load_event

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def make_holder(s3_endpoint, bucket, tmp_path, monkeypatch):
    """A fresh ModelHolder wired into the handler, as on a new Lambda container."""

    def make(refresh_seconds=0.0, clock=None, **extra):
        settings = ServingSettings(
            bucket=bucket,
            model_name="house-prices",
            refresh_seconds=refresh_seconds,
            cache_dir=tmp_path / "cache",
            **extra,
        )
        holder = ModelHolder(
            settings,
            lambda: ModelStore(boto3.client("s3", endpoint_url=s3_endpoint), bucket),
            on_load=predict_handler._on_load,
            on_refresh_error=predict_handler._on_refresh_error,
            clock=clock or Clock(),
        )
        monkeypatch.setattr(predict_handler, "holder", holder)
        return holder

    return make


def predict(context):
    reply = predict_handler.lambda_handler(load_event("predict"), context)
    return reply["statusCode"], json.loads(reply["body"]), reply


def test_cold_start_loads_the_live_model_and_logs_each_phase(
    make_holder, store, trained_dir, lambda_context, caplog
):
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    make_holder()
    status, body, _ = predict(lambda_context)
    assert status == 200
    assert body["model"]["version"] == manifest.version
    (record,) = [r for r in caplog.records if r.getMessage() == "model loaded"]
    for phase in ("resolve_ms", "fetch_ms", "verify_ms", "load_ms", "warmup_ms", "total_ms"):
        assert getattr(record, phase) >= 0
    assert record.model_version == manifest.version


def test_missing_alias_answers_503_then_recovers_once_promoted(
    make_holder, store, trained_dir, lambda_context
):
    manifest = store.publish(trained_dir)
    clock = Clock()
    make_holder(clock=clock)
    status, body, reply = predict(lambda_context)
    assert status == 503
    assert body["error"]["code"] == "alias_not_found"
    assert reply["multiValueHeaders"]["Retry-After"] == ["1"]  # the first back-off
    store.promote(manifest.name, manifest.version)
    clock.now += 1.0
    assert predict(lambda_context)[0] == 200  # the failure was not cached


def test_failed_loads_back_off_and_answer_503_without_touching_s3(
    make_holder, store, trained_dir, lambda_context
):
    clock = Clock()
    calls = []
    holder = make_holder(clock=clock)
    factory = holder.store_factory
    holder.store_factory = lambda: calls.append(1) or factory()
    waits = []
    for _ in range(4):  # fail, back off 1 s, fail, back off 2 s, ...
        status, body, reply = predict(lambda_context)
        assert status == 503
        waits.append(reply["multiValueHeaders"]["Retry-After"][0])
        assert predict(lambda_context)[0] == 503  # within the back-off: no S3 call
        clock.now += float(waits[-1])
    assert waits == ["1", "2", "4", "8"]
    assert len(calls) == 4
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    assert predict(lambda_context)[0] == 200


@pytest.mark.parametrize(
    ("model_format", "file"), [("auto", "model.npz"), ("joblib", "model.joblib")]
)
def test_tampered_artifact_answers_503(
    make_holder, store, s3, bucket, trained_dir, lambda_context, model_format, file
):
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    key = store.version_prefix(manifest.name, manifest.version) + file
    s3.put_object(Bucket=bucket, Key=key, Body=b"cos(x) is not a pickle you want to load")
    make_holder(model_format=model_format)
    status, body, _ = predict(lambda_context)
    assert status == 503
    assert body["error"]["code"] == "integrity_error"


def test_version_skew_is_refused(make_holder, store, artifact_dir, lambda_context):
    path = artifact_dir / "manifest.json"
    raw = json.loads(path.read_text())
    raw["runtime"]["scikit-learn"] = "1.3.2"
    path.write_text(json.dumps(raw))
    manifest = store.publish(artifact_dir)
    store.promote(manifest.name, manifest.version)
    make_holder(model_format="joblib")
    status, body, _ = predict(lambda_context)
    assert status == 503
    assert body["error"]["code"] == "runtime_mismatch"
    assert "scikit-learn 1.3.2" in body["error"]["message"]


def test_numpy_form_is_served_across_library_versions(
    make_holder, store, artifact_dir, lambda_context
):
    """model.npz holds arrays, not pickled objects: other library versions read it the same."""
    path = artifact_dir / "manifest.json"
    raw = json.loads(path.read_text())
    raw["runtime"]["scikit-learn"] = "1.3.2"
    path.write_text(json.dumps(raw))
    manifest = store.publish(artifact_dir)
    store.promote(manifest.name, manifest.version)
    holder = make_holder()
    assert predict(lambda_context)[0] == 200
    assert holder.loaded is not None and holder.loaded.format == "npz"


def test_cold_start_with_the_numpy_form_imports_no_scikit_learn(
    store, trained_dir, s3_endpoint, bucket, tmp_path
):
    """A fresh interpreter: import the handler and answer a prediction; sklearn stays unloaded."""
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    result = cold_predict(bucket, "house-prices", "predict", tmp_path / "cache")
    assert result["heavy"] == []


def test_pinned_version_is_served_whatever_the_alias(
    make_holder, store, trained_dir, lambda_context
):
    manifest = store.publish(trained_dir)
    make_holder(version=manifest.version)
    assert predict(lambda_context)[1]["model"]["version"] == manifest.version


def test_health_gives_a_coarse_reason_and_no_internals(make_holder, bucket, lambda_context):
    """/health is open to anyone: a reason code, never a bucket, key, URL or exception text."""
    make_holder()
    reply = predict_handler.lambda_handler(load_event("health"), lambda_context)
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 503
    assert body == {"status": "unavailable", "reason": "alias_not_found"}
    assert bucket not in reply["body"]
    keyed = predict_handler.lambda_handler(load_event("model_info"), lambda_context)
    assert "no alias 'live'" in json.loads(keyed["body"])["error"]["message"]  # behind the key


# --- SnapStart runtime hooks ---------------------------------------------------------------


def test_snapstart_hooks_are_registered_with_the_runtime():
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    assert predict_handler._before_snapshot in [entry[0] for entry in get_before_snapshot()]
    assert predict_handler._after_restore in [entry[0] for entry in get_after_restore()]


def test_snapshot_holds_the_model_and_restore_honours_a_later_promotion(
    make_holder, store, trained_dir, tmp_path, house_config, house_dataset, lambda_context
):
    from sklambda.artifact import train_artifact

    first = store.publish(trained_dir)
    store.promote(first.name, first.version)
    holder = make_holder(refresh_seconds=300.0)  # the refresh interval alone would wait 5 min
    predict_handler._before_snapshot()
    assert holder.loaded is not None and holder.loaded.manifest.version == first.version

    second = store.publish(train_artifact(house_config, house_dataset, tmp_path / "newer").folder)
    store.promote(second.name, second.version)  # promoted after the snapshot was taken
    predict_handler._after_restore()
    status, body, _ = predict(lambda_context)
    assert status == 200 and body["model"]["version"] == second.version


def test_restore_keeps_the_snapshot_model_when_the_alias_cannot_be_read(
    make_holder, store, s3, bucket, trained_dir, lambda_context
):
    first = store.publish(trained_dir)
    store.promote(first.name, first.version)
    holder = make_holder(refresh_seconds=300.0)
    predict_handler._before_snapshot()
    s3.put_object(Bucket=bucket, Key=store.alias_key("house-prices", "live"), Body=b"not json")
    predict_handler._after_restore()
    assert holder.loaded is not None and holder.loaded.manifest.version == first.version
    assert predict(lambda_context)[0] == 200


def test_snapshot_without_a_model_still_serves_once_one_is_promoted(
    make_holder, store, trained_dir, lambda_context
):
    holder = make_holder()
    predict_handler._before_snapshot()  # no alias yet: reported, not raised
    assert holder.loaded is None
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    predict_handler._after_restore()
    assert predict(lambda_context)[0] == 200


def test_each_restore_gets_its_own_random_state():
    import random

    import numpy as np

    from sklambda.serving import reseed_random

    random.seed(7)
    np.random.seed(7)  # as if restored from a snapshot taken in this state
    snapshot = (random.random(), np.random.random())
    random.seed(7)
    np.random.seed(7)
    reseed_random()
    assert (random.random(), np.random.random()) != snapshot


def test_restore_hook_does_no_io_and_the_snapshot_replays_no_metric(
    make_holder, store, trained_dir, lambda_context, capsys
):
    """Restore hooks must finish within 10 s: the alias check waits for the first request."""
    manifest = store.publish(trained_dir)
    store.promote(manifest.name, manifest.version)
    holder = make_holder(refresh_seconds=0.0)  # 0: no periodic check, but a restore still checks
    predict_handler._before_snapshot()
    capsys.readouterr()
    calls = []
    real_factory = holder.store_factory
    holder.store_factory = lambda: calls.append(1) or real_factory()
    predict_handler._after_restore()
    assert calls == []
    assert predict(lambda_context)[0] == 200
    assert calls == [1]  # the first request re-checked the alias
    emitted = capsys.readouterr().out
    assert "ModelLoadTime" not in emitted  # the snapshot's load is not counted again
