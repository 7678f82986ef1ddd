"""Champion/challenger retraining: train on new data, gate on the same holdout, promote safely.

Every run leaves a record at models/<name>/runs/<run-id>.json, whatever happens. The challenger
is always published (for audit); the alias moves only if the challenger passes the gate, and
only with a conditional write on the alias as it was when the run started, so a concurrent run
or a manual promotion in the meantime is never overwritten.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sklambda.artifact import train_artifact
from sklambda.data import Table, prepare
from sklambda.errors import (
    AliasConflictError,
    DataValidationError,
    RegistryError,
    RequestError,
    RuntimeMismatchError,
    SklambdaError,
)
from sklambda.manifest import Manifest, check_runtime, open_verified, served_artifact
from sklambda.settings import DEFAULT_ALIAS, RetrainSettings
from sklambda.store import AliasRecord, ModelStore
from sklambda.training import higher_is_better, regression_metrics

Log = Callable[..., None]


@dataclass(frozen=True)
class RetrainRequest:
    model: str
    alias: str = DEFAULT_ALIAS
    trigger: str = "manual"
    dataset_key: str | None = None
    tolerance: float = 0.01
    # An absolute bar the challenger must also meet (r2 at least / error metrics at most).
    floor: float | None = None


@dataclass
class RunRecord:
    run_id: str
    request: RetrainRequest
    status: str = "running"  # running | promoted | rejected | failed
    reason: str = ""
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    data: dict[str, Any] = field(default_factory=dict)
    champion: dict[str, Any] = field(default_factory=dict)
    challenger: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    durations_ms: dict[str, float] = field(default_factory=dict)
    error: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.request.model,
            "alias": self.request.alias,
            "trigger": self.request.trigger,
            "dataset_key": self.request.dataset_key,
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": self.data,
            "champion": self.champion,
            "challenger": self.challenger,
            "gate": self.gate,
            "durations_ms": {k: round(v, 1) for k, v in self.durations_ms.items()},
            "error": self.error,
        }


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


MIN_HOLDOUT_ROWS = 5


def gate(
    metric: str,
    challenger: float,
    champion: float | None,
    *,
    tolerance: float,
    floor: float | None,
    holdout_rows: int,
) -> tuple[bool, str]:
    """Pass if the holdout has at least MIN_HOLDOUT_ROWS rows, the challenger is not worse than
    the champion by more than `tolerance` (absolute for r2, relative for error metrics) and it
    meets the optional floor."""
    if holdout_rows < MIN_HOLDOUT_ROWS:  # the hashed split's size varies; 1-4 rows mean nothing
        return False, (
            f"holdout has {holdout_rows} rows, fewer than {MIN_HOLDOUT_ROWS}: too few to "
            "compare models (add data or raise holdout_fraction)"
        )
    up = higher_is_better(metric)
    if floor is not None and (challenger < floor if up else challenger > floor):
        return False, f"{metric} {challenger:.4f} misses the floor {floor:.4f}"
    if champion is None:
        return True, "no champion score to compare with"
    ok = challenger >= champion - tolerance if up else challenger <= champion * (1 + tolerance)
    verdict = "not worse than" if ok else "worse than"
    return ok, (
        f"challenger {metric} {challenger:.4f} is {verdict} champion {champion:.4f} "
        f"(tolerance {tolerance:g})"
    )


class Retrainer:
    """Runs one retrain against a store; `log(phase, **fields)` gets one call per phase."""

    def __init__(
        self,
        store: ModelStore,
        log: Log | None = None,
        before_promote: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.log = log or (lambda _phase, **_fields: None)
        self.before_promote = before_promote  # test hook: line up concurrent runs

    def run(self, request: RetrainRequest, run_id: str | None = None) -> RunRecord:
        record = RunRecord(run_id or new_run_id(), request)
        key = self.store.run_key(request.model, record.run_id)
        self.store.put_json(key, record.as_dict())  # a crash still leaves a "running" record
        try:
            self._run(record)
        except SklambdaError as exc:
            self._fail(record, exc.code, exc.one_line())
        except Exception as exc:  # anything else: recorded, never a half-done promotion
            self._fail(record, type(exc).__name__, str(exc))
        self.store.put_json(key, record.as_dict())
        self.log("done", status=record.status, reason=record.reason, run_id=record.run_id)
        return record

    def _fail(self, record: RunRecord, code: str, message: str) -> None:
        record.status, record.reason = "failed", message
        record.error = {"code": code, "message": message}
        self.log("failed", error=message, code=code)

    def _timed(self, record: RunRecord, phase: str, started: float, **fields: Any) -> float:
        now = time.perf_counter()
        record.durations_ms[phase] = (now - started) * 1000
        self.log(phase, duration_ms=round(record.durations_ms[phase], 1), **fields)
        return now

    def _run(self, record: RunRecord) -> None:
        req = record.request
        t = time.perf_counter()
        seen = self.store.alias(req.model, req.alias)
        if seen is None:
            raise RegistryError(
                f"{req.model} has no alias {req.alias!r}: promote a first version "
                "by hand; retraining reuses the champion's config",
                "no_champion",
            )
        champion = self.store.manifest(req.model, seen.version)
        config = champion.training_config()
        record.champion = {"version": champion.version}
        t = self._timed(record, "resolve", t, champion=champion.version)

        table = self.store.dataset(req.model, req.dataset_key)
        record.data = {"source": table.source, "sha256": table.sha256, "rows": table.rows}
        dataset = prepare(config, table)
        t = self._timed(record, "validate", t, rows=table.rows, sha256=table.sha256)

        with tempfile.TemporaryDirectory() as tmp:
            trained = train_artifact(
                config, dataset, Path(tmp) / req.model, parent_version=champion.version
            )
            result = trained.result
            record.challenger = {"metrics": result.metrics}
            t = self._timed(record, "train", t, holdout=result.metrics["holdout"])

            test_rows = result.holdout_rows
            champion_holdout = self._score_champion(champion, table, test_rows, dataset.y)
            record.champion["holdout"] = champion_holdout
            t = self._timed(record, "score_champion", t, holdout=champion_holdout)

            challenger = self.store.publish(trained.folder)
        record.challenger["version"] = challenger.version
        t = self._timed(record, "publish", t, challenger=challenger.version)

        metric = config.evaluation.primary_metric
        floor = req.floor if req.floor is not None else config.evaluation.promotion_floor
        record.gate = {"metric": metric, "tolerance": req.tolerance, "floor": floor}
        passed, record.reason = gate(
            metric,
            result.metrics["holdout"][metric],
            champion_holdout.get(metric),
            tolerance=req.tolerance,
            floor=floor,
            holdout_rows=len(test_rows),
        )
        if not passed:
            record.status = "rejected"
            return
        self._promote(record, challenger, seen)
        self._timed(record, "promote", t, version=challenger.version)

    def _score_champion(
        self, champion: Manifest, table: Table, test: np.ndarray, y: np.ndarray
    ) -> dict[str, float]:
        """The champion's metrics on the challenger's holdout rows, encoded with its own schema,
        from the artifact the predict function serves (model.npz when there is one).

        A champion trained before the hashed holdout was fitted on every row, so it would be
        scored on rows it has seen: its recorded holdout metrics are used instead. {} when it
        cannot score the rows (new categories, or a pickle written by other library versions,
        which the predict function would refuse): the gate then falls back to the floor.
        """
        if "rows" not in champion.metrics:
            self.log("score_champion", warning="fitted on every row; using its recorded holdout")
            return dict(champion.metrics["holdout"])
        info = served_artifact(champion)
        if info.format == "joblib":
            try:
                check_runtime(champion)
            except RuntimeMismatchError as exc:
                self.log("score_champion", warning=str(exc))
                return {}
        with tempfile.TemporaryDirectory() as tmp:
            model = open_verified(self.store.fetch(champion, Path(tmp), info=info))
        rows = [int(i) for i in test]
        columns = {
            name: [table.columns[name][i] for i in rows]
            for name in champion.feature_schema.names
            if name in table.columns
        }
        try:
            X = champion.feature_schema.encode_columns(columns, len(rows), table.text)
        except DataValidationError as exc:
            self.log("score_champion", warning=f"champion cannot score the new data: {exc}")
            return {}
        return regression_metrics(y[test], model.predict(X))

    def _promote(self, record: RunRecord, challenger: Manifest, seen: AliasRecord) -> None:
        if self.before_promote:
            self.before_promote()
        try:
            self.store.promote(
                challenger.name, challenger.version, record.request.alias, expected=seen
            )
        except AliasConflictError as exc:
            record.status = "rejected"
            record.reason = f"{record.reason}; but {exc.message}"
            return
        record.status = "promoted"


def request_from_event(event: Mapping[str, Any], settings: RetrainSettings) -> RetrainRequest:
    """EventBridge schedule, S3 "Object Created" under datasets/<model>/, or a manual event
    such as {"dataset_key": "datasets/house-prices/2026-11.csv"}."""
    detail = event.get("detail") or {}
    dataset_key = event.get("dataset_key")
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        trigger = "schedule"
    elif event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        trigger = "s3"
        dataset_key = None  # a new file joins the dataset: retrain on all of datasets/<model>/
        new_key = (detail.get("object") or {}).get("key", "")
        if not new_key.startswith(f"datasets/{settings.model}/"):
            raise RequestError(f"{new_key!r} is not under datasets/{settings.model}/")
    else:
        trigger = "manual"
    return RetrainRequest(
        model=event.get("model") or settings.model,
        alias=settings.alias,
        trigger=trigger,
        dataset_key=dataset_key,
        tolerance=settings.tolerance,
        floor=settings.floor,
    )
