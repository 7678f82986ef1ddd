"""Prediction capture with an in-process stand-in for Firehose: sampling, the monitor's record,
personal data removed before anything leaves, drops counted, and the predict handler's hook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

import predict_handler
from sklambda import smoke
from sklambda.capture import (
    HASH_PREFIX,
    MAX_BATCH_RECORDS,
    MAX_ROWS_PER_REQUEST,
    Capture,
    _chunks,
    decode_rows,
)
from sklambda.errors import ConfigError
from sklambda.model import LoadedModel
from sklambda.monitor import version_drift
from sklambda.schema import Feature, FeatureSchema
from sklambda.settings import ServingSettings
from tests.helpers import ROOT, load_event
from tests.unit.test_predict_handler import call, emitted_metrics, with_body

pytestmark = pytest.mark.unit

SMOKE_EVENTS = ROOT / "functions" / "pre_traffic" / "smoke_events.json"
RECORD = json.loads(load_event("predict")["body"])


class FakeFirehose:
    """Keeps what was put; `error` makes every put fail; `gate` holds a put until set."""

    def __init__(self, error: Exception | None = None, gate: threading.Event | None = None):
        self.error = error
        self.gate = gate
        self.batches: list[list[bytes]] = []
        self.started = threading.Event()

    def put_record_batch(
        self, *, DeliveryStreamName: str, Records: Sequence[Mapping[str, bytes]]
    ) -> Mapping[str, Any]:
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        self.batches.append([r["Data"] for r in Records])
        return {"FailedPutCount": 0}

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(data) for batch in self.batches for data in batch]


class FakeSecrets:
    def __init__(self, value: str | None) -> None:
        self.value = value

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        if self.value is None:
            raise RuntimeError("AccessDenied")
        return {"SecretString": self.value}


def _settings(**fields: Any) -> ServingSettings:
    defaults = {"capture_stream": "capture-stream", "capture_sample_rate": 1.0}
    return ServingSettings(**{**defaults, "capture_flush_ms": 0, **fields})


def _capture(firehose: FakeFirehose, **kw: Any) -> Capture:
    settings = kw.pop("settings", None) or _settings()
    return Capture(settings, lambda: firehose, **kw)  # type: ignore[arg-type, return-value]


def _rows(model: LoadedModel, records: list[dict[str, Any]]) -> np.ndarray:
    return model.schema.encode_records(records)


def test_a_sampled_request_is_sent_as_one_monitor_record_per_row(loaded):
    # GIVEN capture of every request
    firehose = FakeFirehose()
    capture = _capture(firehose)
    X = _rows(loaded, [RECORD, {**RECORD, "lotsize": 9000}])
    predictions = loaded.predict(X)
    # WHEN a request is observed and the invocation ends
    capture.observe(loaded, X, predictions, "req-1")
    assert capture.flush() == 0
    assert capture.wait_idle(10)
    # THEN each row is one JSON line in the record the monitor reads
    records = firehose.records()
    assert [(r["request_id"], r["row"]) for r in records] == [("req-1", 0), ("req-1", 1)]
    assert records[0]["model_version"] == loaded.manifest.version
    assert [r["prediction"] for r in records] == predictions
    assert records[0]["time"].endswith("Z") and "shadow" not in records[0]
    assert records[0]["features"] == {
        **RECORD,
        "lotsize": 5850.0,
        **{k: v == "yes" for k, v in RECORD.items() if v in ("yes", "no")},
    }
    assert all(data.endswith(b"\n") for batch in firehose.batches for data in batch)
    # ...which the monitor takes without a single invalid value
    drift = version_drift(
        loaded.manifest.profile,
        loaded.schema,
        [r["features"] for r in records],
        [r["prediction"] for r in records],
        min_rows=1,
    )
    assert {name: f["invalid"] for name, f in drift["features"].items()} == dict.fromkeys(
        loaded.schema.names, 0
    )


@pytest.mark.parametrize(
    ("stream", "rate", "draw", "sent"),
    [
        ("s", 0.3, 0.5, False),  # the draw misses
        ("s", 0.6, 0.5, True),
        ("s", 0.0, 0.0, False),  # capture off
        ("", 1.0, 0.0, False),  # no stream
    ],
)
def test_only_a_sampled_share_of_requests_is_captured(loaded, stream, rate, draw, sent):
    firehose = FakeFirehose()
    settings = ServingSettings(capture_stream=stream, capture_sample_rate=rate)
    capture = _capture(firehose, settings=settings, draw=lambda: draw)
    X = _rows(loaded, [RECORD])
    capture.observe(loaded, X, loaded.predict(X), "r")
    capture.flush()
    assert capture.wait_idle(10)
    assert bool(firehose.batches) is sent


def test_a_big_request_captures_its_first_rows_only(loaded):
    firehose = FakeFirehose()
    capture = _capture(firehose)
    X = _rows(loaded, [RECORD] * (MAX_ROWS_PER_REQUEST + 50))
    capture.observe(loaded, X, loaded.predict(X), "big")
    capture.flush()
    assert capture.wait_idle(10)
    assert len(firehose.records()) == MAX_ROWS_PER_REQUEST


def test_excluded_features_are_dropped_and_hashed_ones_keyed_with_the_secret(loaded):
    # GIVEN lotsize excluded and bedrooms hashed, keyed by a Secrets Manager secret
    firehose = FakeFirehose()
    settings = _settings(
        capture_exclude="lotsize",
        capture_hash="bedrooms, garagepl",
        capture_hash_key_secret="arn:secret",
    )
    capture = _capture(firehose, settings=settings, secrets_factory=lambda: FakeSecrets("k3y"))
    X = _rows(loaded, [RECORD])
    capture.observe(loaded, X, loaded.predict(X), "r")
    capture.flush()
    assert capture.wait_idle(10)
    (record,) = firehose.records()
    # THEN lotsize never left, bedrooms is HMAC-SHA256 of its JSON text under the key
    features = record["features"]
    assert "lotsize" not in features
    expected = hmac.new(b"k3y", b"3", hashlib.sha256).hexdigest()
    assert features["bedrooms"] == HASH_PREFIX + expected
    assert features["garagepl"].startswith(HASH_PREFIX) and features["stories"] == 2
    assert b"5850" not in firehose.batches[0][0]


@pytest.mark.parametrize(
    "private",
    [
        {"capture_exclude": "Lotsize"},  # a case mismatch
        {"capture_hash": "bedrooms, postcode"},  # a typo, or a feature a retrain renamed
    ],
)
def test_a_private_name_the_model_does_not_have_refuses_its_records(loaded, private, caplog):
    # GIVEN an exclude/hash setting naming a feature the served model does not have
    firehose = FakeFirehose()
    capture = _capture(firehose, settings=_settings(**private))
    X = _rows(loaded, [RECORD, RECORD])
    # WHEN two requests are captured
    for request_id in ("a", "b"):
        capture.observe(loaded, X, loaded.predict(X), request_id)
        capture.flush()
        assert capture.wait_idle(10)
    # THEN nothing left (never a value in clear), the rows are counted as refused
    assert firehose.batches == []
    assert capture.flush() == 2 and capture.last_refused == 2
    # ...and the error is logged once for the model version
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and loaded.manifest.version in errors[0].getMessage()


def test_records_name_the_features_withheld_from_them(loaded):
    firehose = FakeFirehose()
    capture = _capture(
        firehose, settings=_settings(capture_exclude="lotsize", capture_hash="driveway")
    )
    X = _rows(loaded, [RECORD])
    capture.observe(loaded, X, loaded.predict(X), "r")
    capture.flush()
    assert capture.wait_idle(10)
    (record,) = firehose.records()
    assert record["withheld"] == {"lotsize": "excluded", "driveway": "hashed"}
    capture = _capture(firehose := FakeFirehose())
    capture.observe(loaded, X, loaded.predict(X), "r")
    capture.flush()
    assert capture.wait_idle(10) and "withheld" not in firehose.records()[0]


def test_without_a_secret_the_stream_name_keys_the_hash(loaded):
    firehose = FakeFirehose()
    capture = _capture(firehose, settings=_settings(capture_hash="bedrooms"))
    X = _rows(loaded, [RECORD])
    capture.observe(loaded, X, loaded.predict(X), "r")
    capture.flush()
    assert capture.wait_idle(10)
    expected = hmac.new(b"capture-stream", b"3", hashlib.sha256).hexdigest()
    assert firehose.records()[0]["features"]["bedrooms"] == HASH_PREFIX + expected


def test_an_unreadable_hash_key_drops_the_records_and_never_sends_them_in_clear(loaded):
    firehose = FakeFirehose()
    settings = _settings(capture_hash="bedrooms", capture_hash_key_secret="arn:secret")
    capture = _capture(firehose, settings=settings, secrets_factory=lambda: FakeSecrets(None))
    X = _rows(loaded, [RECORD, RECORD])
    capture.observe(loaded, X, loaded.predict(X), "r")
    capture.flush()
    assert capture.wait_idle(10)
    assert firehose.batches == []
    assert capture.flush() == 2
    assert "AccessDenied" in (capture.last_error or "")


def test_a_failed_put_is_counted_and_no_put_is_tried_during_the_back_off(loaded):
    # GIVEN a stream that refuses every put, and a clock the test moves
    firehose = FakeFirehose(error=ConnectionRefusedError("refused"))
    now = [100.0]
    capture = _capture(firehose, clock=lambda: now[0])
    X = _rows(loaded, [RECORD])
    prediction = loaded.predict(X)
    # WHEN a first request is captured, THEN its put fails in the background
    capture.observe(loaded, X, prediction, "a")
    dropped = capture.flush()  # 0, or 1 if the put failed already
    assert capture.wait_idle(10) and firehose.started.is_set()
    # WHEN a second request comes during the back-off, THEN it is dropped at once
    firehose.started.clear()
    capture.observe(loaded, X, prediction, "b")
    dropped += capture.flush()
    assert dropped == 2  # both rows, counted for the CaptureDropped metric
    assert capture.wait_idle(10) and not firehose.started.is_set()
    # WHEN the back-off has passed, THEN a put is tried again
    now[0] += 2.0
    capture.observe(loaded, X, prediction, "c")
    capture.flush()
    assert capture.wait_idle(10) and firehose.started.is_set()


def test_flush_waits_for_the_put_only_once_the_stream_has_answered(loaded):
    # GIVEN a stream whose first put is held by the test
    gate = threading.Event()
    firehose = FakeFirehose(gate=gate)
    capture = _capture(firehose, settings=_settings(capture_flush_ms=60_000))
    X = _rows(loaded, [RECORD])
    prediction = loaded.predict(X)
    # WHEN the first request ends, THEN flush returns with the put still held (never waited)
    capture.observe(loaded, X, prediction, "a")
    capture.flush()
    assert firehose.started.wait(10) and firehose.batches == []
    gate.set()
    assert capture.wait_idle(10) and len(firehose.batches) == 1
    # WHEN the stream has answered, THEN flush returns only once the put is done
    capture.observe(loaded, X, prediction, "b")
    capture.flush()
    assert len(firehose.batches) == 2


class StubShadow:
    """A shadow model with another encoding (two features) that predicts 2 x lotsize."""

    def __init__(self, fail: bool = False) -> None:
        self.manifest = type("M", (), {"version": "shadow-v2"})()
        self.schema = FeatureSchema((Feature("lotsize", "number"), Feature("bedrooms", "integer")))
        self.fail = fail

    def predict(self, X: np.ndarray) -> list[float]:
        if self.fail:
            raise ValueError("cannot score")
        return (X[:, 0] * 2).tolist()


@pytest.mark.parametrize("fail", [False, True])
def test_the_shadow_scores_the_same_rows_in_its_own_encoding(loaded, fail):
    firehose = FakeFirehose()
    capture = _capture(firehose, shadow=lambda: StubShadow(fail))
    X = _rows(loaded, [RECORD, {**RECORD, "lotsize": 7000}])
    predictions = loaded.predict(X)
    capture.observe(loaded, X, predictions, "r")
    capture.flush()
    assert capture.wait_idle(10)
    records = firehose.records()
    assert [r["prediction"] for r in records] == predictions  # the champion's, untouched
    if fail:  # a shadow that cannot score leaves the records without a shadow field
        assert all("shadow" not in r for r in records)
        return
    assert [r["shadow"] for r in records] == [
        {"model_version": "shadow-v2", "prediction": 11700.0},
        {"model_version": "shadow-v2", "prediction": 14000.0},
    ]


def test_rows_decode_to_the_values_a_request_gave():
    schema = FeatureSchema(
        (
            Feature("n", "number", required=False),
            Feature("i", "integer"),
            Feature("b", "boolean"),
            Feature("c", "category", categories=("x", "y"), required=False),
        )
    )
    records = [
        {"n": 1.5, "i": 3, "b": True, "c": "y"},
        {"n": None, "i": -1, "b": False, "c": None},
    ]
    assert decode_rows(schema, schema.encode_records(records)) == records


def test_records_are_put_in_batches_within_firehose_limits():
    lines = [b"x" * 10] * (MAX_BATCH_RECORDS + 1)
    assert [len(c) for c in _chunks(lines)] == [MAX_BATCH_RECORDS, 1]
    big = [b"x" * (3 * 1024 * 1024), b"y" * (2 * 1024 * 1024)]
    assert [len(c) for c in _chunks(big)] == [1, 1]


def test_capture_settings_are_read_from_the_environment():
    settings = ServingSettings.from_env(
        {
            "CAPTURE_STREAM": "s",
            "CAPTURE_SAMPLE_RATE": "0.05",
            "CAPTURE_EXCLUDE_FEATURES": "a, b,,",
            "CAPTURE_HASH_FEATURES": "c",
        }
    )
    assert (settings.capture_stream, settings.capture_sample_rate) == ("s", 0.05)
    assert (settings.capture_exclude, settings.capture_hash) == (("a", "b"), ("c",))
    with pytest.raises(ConfigError):
        ServingSettings.from_env({"CAPTURE_SAMPLE_RATE": "1.5"})


# --- the predict handler ---------------------------------------------------------------------


@pytest.fixture
def handler_capture(monkeypatch):
    def use(firehose: FakeFirehose) -> Capture:
        capture = _capture(firehose)
        monkeypatch.setattr(predict_handler, "capture", capture)
        return capture

    return use


def test_predict_and_infer_requests_are_captured_with_the_api_request_id(
    loaded, lambda_context, handler_capture
):
    firehose = FakeFirehose()
    capture = handler_capture(firehose)
    status, body, _ = call(load_event("predict"), lambda_context)
    assert status == 200
    v2_status, v2_body, _ = call(load_event("v2_infer"), lambda_context)
    assert v2_status == 200
    assert capture.wait_idle(10)
    records = firehose.records()
    request_id = load_event("predict")["requestContext"]["requestId"]
    assert (records[0]["request_id"], records[0]["prediction"]) == (
        request_id,
        body["predictions"][0],
    )
    assert [r["prediction"] for r in records[1:]] == v2_body["outputs"][0]["data"]


def test_the_smoke_tests_requests_are_never_captured(loaded, lambda_context, handler_capture):
    # GIVEN capture of every request
    firehose = FakeFirehose()
    capture = handler_capture(firehose)
    # WHEN the PreTraffic smoke test runs its cases through the handler
    events = smoke.load_bundle(SMOKE_EVENTS)
    verdict = smoke.run(lambda e: predict_handler.lambda_handler(e, lambda_context), events)
    assert verdict.passed, verdict.reasons
    # THEN none of its predictions reaches the stream; the same event unmarked does
    assert capture.wait_idle(10) and firehose.batches == []
    status, _, _ = call(events["predict"], lambda_context)
    assert status == 200 and capture.wait_idle(10) and len(firehose.records()) == 1


def test_a_rejected_request_is_not_captured(loaded, lambda_context, handler_capture):
    firehose = FakeFirehose()
    capture = handler_capture(firehose)
    status, _, _ = call(load_event("predict_missing_feature"), lambda_context)
    assert status == 422
    assert capture.wait_idle(10) and firehose.batches == []


def test_dropped_rows_are_counted_in_the_capture_dropped_metric(
    loaded, lambda_context, handler_capture, capsys
):
    capture = handler_capture(FakeFirehose(error=TimeoutError("read timeout")))
    first, _, _ = call(with_body("predict", RECORD), lambda_context)
    assert capture.wait_idle(10)
    second, _, _ = call(with_body("predict", RECORD), lambda_context)
    assert (first, second) == (200, 200)
    # the first row when its put has failed (this request or the next), the second at once
    assert sum(emitted_metrics(capsys.readouterr().out)["CaptureDropped"]) == 2
