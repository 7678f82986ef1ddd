"""Prediction capture: a sampled share of requests, one JSON line per predicted row, sent to a
Kinesis Data Firehose delivery stream that writes them under capture/<model>/ for the drift
monitor (the record sklambda.monitor reads):

    {"request_id": "...", "row": 0, "time": "2026-11-29T19:30:00.123Z",
     "model_version": "20261129T...", "features": {"lotsize": 5850, ...}, "prediction": 51000.0,
     "shadow": {"model_version": "...", "prediction": 50500.0},      (shadow: when one is loaded)
     "withheld": {"phone": "excluded", "postcode": "hashed"}}       (withheld: when any is)

"withheld" names the features capture left out or hashed, so the monitor does not read them as
missing or unknown (drift) values.

Features are the values the model was given (decoded from the encoded rows, so every request
format captures alike): numbers, true/false, category names, null for missing.

Capture never fails or slows a prediction. On the request path: one random draw and, for a
sampled request, a copy of its first MAX_ROWS_PER_REQUEST encoded rows (`observe`). Building the
records, removing personal data, scoring the shadow model and PutRecordBatch (tight timeouts, no
retry) happen in one background thread. The end of an invocation (`flush`) wakes it and waits
for the put at most CAPTURE_FLUSH_MS, and only while the stream answered its last put: a stream
that refuses or hangs is never waited for (its records are dropped and counted, and no put is
tried during a back-off). A put still running when Lambda freezes the environment finishes when
it thaws. Anything that goes wrong drops records; `flush` returns how many rows were dropped since
the last flush, for the CaptureDropped metric.

Personal data: features named in CAPTURE_EXCLUDE_FEATURES are dropped and those in
CAPTURE_HASH_FEATURES replaced by HMAC-SHA256 of the value before a record leaves the function.
The key is a Secrets Manager secret (CAPTURE_HASH_KEY_SECRET, read once per container off the
request path): without the key, a hash of a guessable value (a postcode, a birth date) cannot be
reversed by trying every candidate, and records can still be joined and counted by the hashed
value. Without a secret the stream's name is the key: the same joins, but the name is no secret,
so low-entropy values can be recovered by anyone who reads the capture; use it for identifiers
with many possible values only. If the key cannot be read, records are dropped, never sent in
clear.

Privacy fails closed: every name in CAPTURE_EXCLUDE_FEATURES and CAPTURE_HASH_FEATURES must be a
feature of the model whose rows are captured (exactly, case included). A name that is not (a
typo, `Lotsize`, a feature renamed by a retrain) would let the value it meant to protect out in
clear, so that model's records are not sent at all: they are counted (`refused`, the
CaptureRefused metric, besides CaptureDropped) and an error is logged once per model version.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from botocore.config import Config

from sklambda.model import LoadedModel
from sklambda.schema import FeatureSchema
from sklambda.settings import ServingSettings

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# A put is off the request path, but a hung one holds the sender (and its records) up: short
# timeouts, one attempt. Firehose itself retries delivery to S3 for up to a day.
CAPTURE_CONFIG = Config(
    connect_timeout=0.2,
    read_timeout=0.5,
    retries={"mode": "standard", "total_max_attempts": 1},
)
MAX_ROWS_PER_REQUEST = 100  # a sampled 10,000-row request captures its first 100 rows
MAX_PENDING_ROWS = 5_000  # rows waiting for the sender; more are dropped (counted)
MAX_BATCH_RECORDS = 500  # PutRecordBatch's limits: 500 records, 4 MiB
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1_000 * 1024  # Firehose's limit for one record
# After the n-th failed put in a row, no put for min(CAP, BASE * 2**(n-1)) seconds.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
HASH_PREFIX = "hmac-sha256:"

logger = logging.getLogger(__name__)


class FirehoseClient(Protocol):
    """The one call capture makes (boto3's firehose client)."""

    def put_record_batch(
        self, *, DeliveryStreamName: str, Records: Sequence[Mapping[str, bytes]]
    ) -> Mapping[str, Any]: ...


def decode_rows(schema: FeatureSchema, rows: np.ndarray) -> list[dict[str, Any]]:
    """Encoded rows back to the values a request gave (None for missing; an unknown category
    predicted as missing is None too)."""
    out: list[dict[str, Any]] = [{} for _ in range(rows.shape[0])]
    for j, feature in enumerate(schema.features):
        for record, value in zip(out, rows[:, j].tolist(), strict=True):
            if math.isnan(value):
                record[feature.name] = None
            elif feature.type == "category":
                record[feature.name] = feature.categories[int(value)]
            elif feature.type == "boolean":
                record[feature.name] = bool(value)
            elif feature.type == "integer":
                record[feature.name] = int(value)
            else:
                record[feature.name] = value
    return out


def _same_encoding(a: FeatureSchema, b: FeatureSchema) -> bool:
    """Whether rows encoded for one schema mean the same to the other (training ranges aside)."""
    return [(f.name, f.type, f.categories) for f in a.features] == [
        (f.name, f.type, f.categories) for f in b.features
    ]


@dataclass(frozen=True)
class _Pending:
    """A sampled request, as the request path hands it to the sender."""

    model: LoadedModel
    rows: np.ndarray
    predictions: list[Any]
    request_id: str
    time: str


class Capture:
    """The capture of one predict function: `observe` on the request path, `flush` at the end
    of the invocation; everything else in a background thread."""

    def __init__(
        self,
        settings: ServingSettings,
        firehose_factory: Callable[[], FirehoseClient],
        *,
        secrets_factory: Callable[[], SecretsManagerClient] | None = None,
        shadow: Callable[[], LoadedModel | None] | None = None,
        draw: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._firehose_factory = firehose_factory
        self._secrets_factory = secrets_factory
        self._shadow = shadow
        self._draw = draw
        self._clock = clock
        self._client: FirehoseClient | None = None
        self._key: bytes | None = None
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._dropped = 0  # rows, since the last flush
        self._refused = 0  # of which: refused for a private name the model does not have
        self._refused_versions: set[str] = set()  # logged once each
        self.last_refused = 0  # rows refused, as of the last flush
        self._healthy = False  # the stream answered the last put
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: str | None = None
        self.sent = 0  # rows the stream accepted, for the life of the container

    @property
    def enabled(self) -> bool:
        return bool(self.settings.capture_stream) and self.settings.capture_sample_rate > 0

    def observe(
        self, model: LoadedModel, rows: np.ndarray, predictions: Sequence[Any], request_id: str
    ) -> None:
        """On the request path, once the reply is computed: a sampled request's rows are kept
        for the sender. Never raises."""
        try:
            if not self.enabled or self._draw() >= self.settings.capture_sample_rate:
                return
            n = min(len(predictions), MAX_ROWS_PER_REQUEST)
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            with self._lock:
                if self._clock() < self._retry_at or self._queued_rows + n > MAX_PENDING_ROWS:
                    self._dropped += n
                    return
                pending = _Pending(
                    model, np.array(rows[:n]), list(predictions[:n]), request_id, now
                )
                self._queue.append(pending)
                self._queued_rows += n
                self._idle.clear()
        except Exception as exc:  # capture never fails a prediction
            self.last_error = f"{type(exc).__name__}: {exc}"

    def flush(self) -> int:
        """At the end of an invocation: send what was observed, waiting for the put at most
        CAPTURE_FLUSH_MS and only while the stream answers. The rows dropped since the last
        flush (sampled but not sent, for whatever reason)."""
        try:
            with self._lock:
                queued = bool(self._queue)
                if queued:
                    self._start()
                    self._wake.notify()
                wait = queued and self._healthy
            if wait and self.settings.capture_flush_ms > 0:
                self._idle.wait(self.settings.capture_flush_ms / 1000)
        except Exception as exc:  # no thread to be had: the rows wait for the next flush
            self.last_error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            self.last_refused, self._refused = self._refused, 0
        return dropped

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until everything observed was sent or dropped (tests, benchmarks)."""
        with self._lock:
            if self._queue:
                self._start()
                self._wake.notify()
        return self._idle.wait(timeout)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._idle.set()
                    self._wake.wait()
                batch = list(self._queue)
                self._queue.clear()
                self._queued_rows = 0
            self._send(batch)

    # --- the sender thread ---------------------------------------------------------------

    def _send(self, batch: list[_Pending]) -> None:
        rows = sum(len(p.predictions) for p in batch)
        sent = 0
        try:
            lines: list[bytes] = []
            for pending in batch:
                if self._private_names_known(pending):
                    lines.extend(self._lines(pending))
            if self._client is None:
                self._client = self._firehose_factory()
            for chunk in _chunks(lines):
                response = self._client.put_record_batch(
                    DeliveryStreamName=self.settings.capture_stream,
                    Records=[{"Data": line} for line in chunk],
                )
                sent += len(chunk) - int(response.get("FailedPutCount", 0) or 0)
        except Exception as exc:  # refused, timed out, no key: drop and back off
            self._count(rows - sent, sent, f"{type(exc).__name__}: {exc}")
            return
        self._count(rows - sent, sent, None)

    def _count(self, dropped: int, sent: int, error: str | None) -> None:
        with self._lock:
            self._dropped += dropped
            self.sent += sent
            self._healthy = error is None
            if error is None:
                self._failures, self._retry_at = 0, 0.0
                return
            self.last_error = error
            self._failures += 1
            delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (self._failures - 1))
            self._retry_at = self._clock() + delay

    def _private_names_known(self, pending: _Pending) -> bool:
        """Whether every excluded/hashed name is a feature of the model; if not, the rows are
        refused (counted as dropped and refused; an error logged once per model version)."""
        names = set(pending.model.schema.names)
        private = (*self.settings.capture_exclude, *self.settings.capture_hash)
        unknown = sorted({name for name in private if name not in names})
        if not unknown:
            return True
        version = pending.model.manifest.version
        with self._lock:
            self._refused += len(pending.predictions)
            first = version not in self._refused_versions
            self._refused_versions.add(version)
        if first:
            logger.error(
                "capture refused for model version %s: CAPTURE_EXCLUDE_FEATURES/"
                "CAPTURE_HASH_FEATURES name %s, not features of the model (names are exact, "
                "case included); no record of it is sent until the settings are fixed",
                version,
                ", ".join(unknown),
            )
        return False

    def _lines(self, pending: _Pending) -> Iterator[bytes]:
        model = pending.model
        values = decode_rows(model.schema, pending.rows)
        shadow = self._shadow_predictions(pending, values)
        for row, (features, prediction) in enumerate(zip(values, pending.predictions, strict=True)):
            record: dict[str, Any] = {
                "request_id": pending.request_id,
                "row": row,
                "time": pending.time,
                "model_version": model.manifest.version,
                "features": self._private(features),
                "prediction": prediction,
            }
            withheld = self._withheld(features)
            if withheld:
                record["withheld"] = withheld
            if shadow is not None:
                record["shadow"] = {"model_version": shadow[0], "prediction": shadow[1][row]}
            line = json.dumps(record, separators=(",", ":"), allow_nan=False).encode() + b"\n"
            if len(line) <= MAX_RECORD_BYTES:  # a bigger one is not sent: counted as dropped
                yield line

    def _shadow_predictions(
        self, pending: _Pending, values: list[dict[str, Any]]
    ) -> tuple[str, list[Any]] | None:
        """The shadow model's predictions for the same rows; None without one (or when it
        cannot score them: the reply was never at stake)."""
        shadow = self._shadow() if self._shadow else None
        if shadow is None or shadow.manifest.version == pending.model.manifest.version:
            return None
        try:
            if _same_encoding(shadow.schema, pending.model.schema):
                rows = pending.rows
            else:
                rows = shadow.schema.encode_records(values)
            return shadow.manifest.version, shadow.predict(rows)
        except Exception as exc:
            self.last_error = f"shadow {shadow.manifest.version}: {type(exc).__name__}: {exc}"
            return None

    def _private(self, features: dict[str, Any]) -> dict[str, Any]:
        excluded, hashed = self.settings.capture_exclude, self.settings.capture_hash
        out: dict[str, Any] = {}
        for name, value in features.items():
            if name in excluded:
                continue
            hide = name in hashed and value is not None
            out[name] = HASH_PREFIX + keyed_hash(self._hash_key(), value) if hide else value
        return out

    def _withheld(self, features: Mapping[str, Any]) -> dict[str, str]:
        excluded, hashed = self.settings.capture_exclude, self.settings.capture_hash
        out = {name: "hashed" for name in features if name in hashed}
        out.update({name: "excluded" for name in features if name in excluded})
        return out

    def _hash_key(self) -> bytes:
        if self._key is None:
            secret = self.settings.capture_hash_key_secret
            if secret:
                if self._secrets_factory is None:
                    raise RuntimeError("CAPTURE_HASH_KEY_SECRET is set but no Secrets Manager")
                value = self._secrets_factory().get_secret_value(SecretId=secret)
                key = value.get("SecretString", "").encode() or value.get("SecretBinary", b"")
                if not key:
                    raise RuntimeError(f"the secret {secret} is empty")
                self._key = key
            else:
                self._key = self.settings.capture_stream.encode()
        return self._key


def keyed_hash(key: bytes, value: Any) -> str:
    """HMAC-SHA256 of a value's JSON text (so 1 and "1" differ), hex."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _chunks(lines: list[bytes]) -> Iterator[list[bytes]]:
    """PutRecordBatch-sized groups: at most 500 records and 4 MiB each."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and (len(chunk) == MAX_BATCH_RECORDS or size + len(line) > MAX_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield chunk
