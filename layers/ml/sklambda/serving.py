"""Serving: the lazily loaded, verified, refreshable model of one predict function.

Import never touches S3 and never imports scikit-learn. The first request (or SnapStart's
before-snapshot hook) loads the model: resolve alias -> manifest -> its signature (attestation,
when signed or required: sklambda.signing) -> fetch + sha256 verify
(cached in /tmp by hash) -> the numpy form (model.npz, read without pickle) when the manifest
has one, else runtime check + joblib.load -> one warm-up prediction. Each phase is timed.

S3 may hang or refuse; serving must not. Every S3 call has short timeouts and one retry (the
store's client config); a load starts an S3 phase only while the invocation's deadline leaves
time for it. A failed load is retried after an exponential, capped back-off; until then requests
get 503 + Retry-After at once, without touching S3. In warm containers the alias is re-checked
every `refresh_seconds` in a background thread: requests keep being answered by the current
model with no added latency, and a new version is swapped in only once fully loaded.
"""

from __future__ import annotations

import gc
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sklambda.errors import ModelUnavailableError, SklambdaError
from sklambda.manifest import Manifest, check_runtime, open_verified, served_artifact
from sklambda.model import LoadedModel
from sklambda.settings import ServingSettings
from sklambda.signing import Verifier
from sklambda.store import ModelStore

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

RETRY_AFTER_SECONDS = 5
# After the n-th failed load or refresh in a row, wait min(BACKOFF_CAP, BACKOFF_BASE * 2**(n-1)).
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
# An S3 phase is started only with this much of the invocation left: a timed-out load must
# still leave time to answer 503 before Lambda's own timeout (which API Gateway turns into 502).
MIN_PHASE_SECONDS = 2.5


def keep_out_of_gc(replaced: bool) -> None:
    """Take every object alive now (modules, settings, the model and its arrays: they live as
    long as the container) out of the cyclic garbage collector's scans (gc.freeze). A request's
    JSON body makes tens of thousands of objects; the full collections they trigger (about one
    per ten 10,000-row requests) then walk only what requests left, not the whole heap (about
    95,000 objects once a model is served: ~0.1 s a walk). Refcounting still frees frozen
    objects; only cycles wait. When a model has `replaced` another, what was frozen is
    collected first, so the old model's cycles are freed rather than kept for good (one full
    collection per promotion, in the refresh thread). Process-wide: a ModelHolder calls it only
    with freeze_gc (the predict function's one holder)."""
    if replaced:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def reseed_random() -> None:
    """Fresh seeds from the OS for Python's and numpy's global generators."""
    random.seed()
    np.random.seed()  # the legacy global RandomState some scikit-learn code paths still use


LoadHook = Callable[[LoadedModel, dict[str, float], str], None]


@dataclass
class ModelHolder:
    """Holds the live model for the life of the container."""

    settings: ServingSettings
    store_factory: Callable[[], ModelStore]
    on_load: LoadHook | None = None
    on_refresh_error: Callable[[Exception], None] | None = None
    clock: Callable[[], float] = time.monotonic
    # Told of each failed first load (the container then answers 503): counted per function
    # version, it is what a deploy's canary alarm watches (ModelLoadFailures).
    on_load_error: Callable[[Exception], None] | None = None
    # Makes the KMS client that reads the signing key's public part, once per holder.
    kms_factory: Callable[[], KMSClient] | None = None
    # gc.freeze is process-wide: only a process with one holder, serving for its whole life,
    # may use it (the predict function turns it on). Several holders (the batch function's,
    # tests') would thaw each other's model on every reset or replace.
    freeze_gc: bool = False
    verifier: Verifier = field(init=False)
    _model: LoadedModel | None = field(default=None, init=False)
    _last_error: str | None = field(default=None, init=False)
    _checked_at: float = field(default=0.0, init=False)
    _recheck: bool = field(default=False, init=False)  # set by after_restore
    _failures: int = field(default=0, init=False)  # failed loads or refreshes in a row
    _retry_at: float = field(default=0.0, init=False)  # no S3 attempt before this clock time
    _deadline: float | None = field(default=None, init=False)  # this invocation's, perf_counter
    _refresher: threading.Thread | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    # SHADOW_ALIAS's model: loaded and re-checked in a thread of its own (see `shadow`).
    _shadow: LoadedModel | None = field(default=None, init=False)
    _shadow_next: float = field(default=0.0, init=False)  # clock time of the next check
    _shadow_failures: int = field(default=0, init=False)
    _shadow_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        # Built from the settings, not passed in: no holder can serve without the signature
        # rules its function is configured with.
        self.verifier = Verifier(
            self.settings.signing_key_id, self.settings.require_signed, self.kms_factory
        )

    @property
    def loaded(self) -> LoadedModel | None:
        return self._model

    @property
    def last_error(self) -> str | None:
        return self._last_error

    def start_invocation(self, remaining_seconds: float | None) -> None:
        """Take this invocation's deadline (Lambda's remaining time) for any load it starts."""
        self._deadline = (
            None if remaining_seconds is None else time.perf_counter() + remaining_seconds
        )

    def get(self) -> LoadedModel:
        """The model to serve now; loads it if needed. A due refresh runs in the background,
        except the first check after a SnapStart restore, which is made before answering."""
        model = self._model
        if model is None:
            return self._load_first()
        if self._recheck and not self.settings.version:
            self._refresh(model)
        elif self._refresh_due():
            self._start_refresh(model)
        return self._model or model

    def wait_for_refresh(self, timeout: float | None = None) -> None:
        """Block until a background refresh in progress has finished (tests, shutdown)."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join(timeout)

    @property
    def refreshing(self) -> bool:
        refresher = self._refresher
        return refresher is not None and refresher.is_alive()

    def use(self, model: LoadedModel) -> None:
        """Serve an already loaded model (tests, and SnapStart's before-snapshot hook)."""
        with self._lock:
            replaced, self._model = self._model is not None, model
            self._last_error = None
            self._checked_at = self.clock()
            self._keep_out_of_gc(replaced)

    def reset(self) -> None:
        """Forget the model (tests; SnapStart restore re-checks through `get`)."""
        with self._lock:
            self._model = None
            self._last_error = None
            self._checked_at = 0.0
            self._shadow, self._shadow_next = None, 0.0
            if self.freeze_gc:
                gc.unfreeze()  # what was frozen with the model can be collected again

    def _keep_out_of_gc(self, replaced: bool) -> None:
        if self.freeze_gc:
            keep_out_of_gc(replaced)

    def shadow(self) -> LoadedModel | None:
        """SHADOW_ALIAS's model, to score captured requests with after their reply (never to
        answer one). Never blocks, never raises: once the champion is loaded, the first call
        (and one every refresh_seconds, or after a back-off when a load failed) starts a load
        in a thread of its own; None until a load has succeeded. A failed load is reported as
        a failed refresh and keeps the shadow model it had."""
        if not self.settings.shadow_alias or self._model is None:
            return None
        if self.clock() >= self._shadow_next and self._shadow_lock.acquire(blocking=False):
            threading.Thread(target=self._load_shadow, name="shadow-load", daemon=True).start()
        return self._shadow

    def wait_for_shadow(self, timeout: float | None = None) -> None:
        """Block until a shadow load in progress has finished (tests)."""
        if self._shadow_lock.acquire(timeout=-1 if timeout is None else timeout):
            self._shadow_lock.release()

    def _load_shadow(self) -> None:
        alias = self.settings.shadow_alias
        try:
            store = self.store_factory()
            manifest = store.resolve(self.settings.model_name, alias, None, verifier=self.verifier)
            if self._shadow is None or manifest.version != self._shadow.manifest.version:
                self._shadow = self._load(store, manifest, "shadow", 0.0)
            self._shadow_failures = 0
            every = self.settings.refresh_seconds
            self._shadow_next = self.clock() + every if every > 0 else math.inf
        except Exception as exc:
            self._shadow_failures += 1
            wait = BACKOFF_BASE_SECONDS * 2.0 ** (self._shadow_failures - 1)
            self._shadow_next = self.clock() + min(BACKOFF_CAP_SECONDS, wait)
            if self.on_refresh_error:
                error = f"shadow alias {alias!r}: {type(exc).__name__}: {exc}"
                self.on_refresh_error(ModelUnavailableError(error, "shadow"))
        finally:
            self._shadow_lock.release()

    def before_snapshot(self) -> None:
        """SnapStart: load and warm the model so the snapshot holds it. A failure is reported
        and the snapshot is taken without a model: the first request loads it."""
        try:
            self.get()
        except ModelUnavailableError as exc:
            if self.on_refresh_error:
                self.on_refresh_error(exc)

    def after_restore(self) -> None:
        """SnapStart: a snapshot can be days old and is restored many times. Give each restored
        environment its own random state, and make the next request re-check the alias whatever
        MODEL_REFRESH_SECONDS says, so a promotion made since the snapshot is served from the
        first request (a failed check keeps the snapshot's model, like any refresh). The check
        is not made here: restore hooks must finish within Lambda's 10 s, and S3 may be slow."""
        reseed_random()
        self._recheck = True
        self._shadow_next = 0.0
        self._failures, self._retry_at = 0, 0.0  # a back-off from snapshot time means nothing now

    def _load_first(self) -> LoadedModel:
        with self._lock:
            if self._model is not None:
                return self._model
            if not self.settings.bucket or not self.settings.model_name:
                self._last_error = "MODEL_BUCKET and MODEL_NAME must be set"
                raise ModelUnavailableError(self._last_error, "not_configured")
            wait = self._retry_at - self.clock()
            if wait > 0:  # backing off: answer at once, without touching S3
                raise ModelUnavailableError(
                    f"model not loaded; the last attempt failed ({self._last_error}); "
                    f"next attempt in {wait:.1f} s",
                    retry_after=wait,
                )
            try:
                store = self.store_factory()
                started = time.perf_counter()
                manifest = self._resolve(store)
                resolve_ms = (time.perf_counter() - started) * 1000
                self._model = self._load(store, manifest, "cold_start", resolve_ms)
                self._keep_out_of_gc(replaced=False)
            except SklambdaError as exc:
                self._last_error = exc.message
                self._load_failed(exc)
                raise ModelUnavailableError(exc.message, exc.code, self._back_off()) from exc
            except Exception as exc:  # S3 unreachable, corrupt pickle...: 503 and retry later
                self._last_error = f"{type(exc).__name__}: {exc}"
                self._load_failed(exc)
                raise ModelUnavailableError(
                    f"model could not be loaded ({self._last_error})", retry_after=self._back_off()
                ) from exc
            self._last_error = None
            self._failures, self._retry_at = 0, 0.0
            self._checked_at = self.clock()
            return self._model

    def _load_failed(self, exc: Exception) -> None:
        if self.on_load_error:
            self.on_load_error(exc)

    def _back_off(self) -> float:
        """Count a failure; no new attempt for the returned number of seconds."""
        self._failures += 1
        delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** (self._failures - 1))
        self._retry_at = self.clock() + delay
        return delay

    def _check_time(self, phase: str) -> None:
        if self._deadline is not None and self._deadline - time.perf_counter() < MIN_PHASE_SECONDS:
            raise ModelUnavailableError(
                f"not enough of this invocation left to {phase} the model", "deadline"
            )

    def _refresh_due(self) -> bool:
        if self.settings.version:
            return False  # a pinned version never changes
        every = self.settings.refresh_seconds
        now = self.clock()
        if now < self._retry_at:
            return False
        return every > 0 and now - self._checked_at >= every

    def _start_refresh(self, current: LoadedModel) -> None:
        """Re-check the alias in a background thread; requests go on with `current`."""
        if not self._lock.acquire(blocking=False):
            return  # a load or refresh is already under way
        self._checked_at = self.clock()
        self._refresher = threading.Thread(
            target=self._refresh, args=(current, True), name="model-refresh", daemon=True
        )
        self._refresher.start()

    def _refresh(self, current: LoadedModel, locked: bool = False) -> None:
        """Re-check the alias; swap only after the new version is loaded and verified. A failure
        keeps the current model and backs off."""
        if not locked and not self._lock.acquire(blocking=False):
            return
        try:
            self._checked_at, self._recheck = self.clock(), False
            store = self.store_factory()
            started = time.perf_counter()
            manifest = self._resolve(store)
            if manifest.version != current.manifest.version:
                resolve_ms = (time.perf_counter() - started) * 1000
                self._model = self._load(store, manifest, "refresh", resolve_ms)
                self._keep_out_of_gc(replaced=True)
            self._failures, self._retry_at = 0, 0.0
        except Exception as exc:  # a failed refresh keeps the current model
            self._back_off()
            if self.on_refresh_error:
                self.on_refresh_error(exc)
        finally:
            self._lock.release()

    def _resolve(self, store: ModelStore) -> Manifest:
        self._check_time("resolve")
        return store.resolve(
            self.settings.model_name,
            self.settings.alias,
            self.settings.version or None,
            verifier=self.verifier,
        )

    def _load(
        self, store: ModelStore, manifest: Manifest, reason: str, resolve_ms: float
    ) -> LoadedModel:
        timings: dict[str, float] = {"resolve_ms": resolve_ms}
        t0 = time.perf_counter()
        info = served_artifact(manifest, self.settings.model_format)
        if info.format == "joblib":
            check_runtime(manifest)  # a pickle must be read by the versions that wrote it
        if reason != "shadow":  # the shadow loads in its own thread, never for a request
            self._check_time("download")
        verified = store.fetch(manifest, self.settings.cache_dir, timings, info)
        t1 = time.perf_counter()
        model = LoadedModel(manifest, open_verified(verified))
        t2 = time.perf_counter()
        model.predict(model.sample_row())
        t3 = time.perf_counter()
        timings.update(
            load_ms=(t2 - t1) * 1000, warmup_ms=(t3 - t2) * 1000, total_ms=(t3 - t0) * 1000
        )
        if self.on_load and reason != "shadow":  # ModelLoadTime is the champion's
            self.on_load(model, timings, reason)
        return model


def health(holder: ModelHolder) -> dict[str, Any]:
    """Ready or not, and why as a reason code only: the route is open, so no bucket, key, URL or
    exception text (those are in the logs and behind the API key on GET /model). Loads the model
    if it is not loaded yet."""
    try:
        model = holder.get()
    except ModelUnavailableError as exc:
        return {"status": "unavailable", "reason": exc.code}
    return {
        "status": "ready",
        "model": {"name": model.manifest.name, "version": model.manifest.version},
    }
