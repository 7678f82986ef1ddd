"""Champion/challenger retraining: train on new data, gate on the same holdout, promote safely.

Every run leaves a record at models/<name>/runs/<run-id>.json, whatever happens, with one status:
  promoted   the challenger passed the gate and the alias now points at it
  rejected   the challenger was published (for audit) but did not pass the gate
  held       the champion collapsed on the new data (broken labels, or a changed world): nothing
             is promoted and a person decides (`promote` or `rollback` by hand)
  unchanged  the data and config are the champion's own: nothing was trained or published
  shadowed   the challenger passed the gate and the shadow alias (SHADOW_ALIAS) now points at
             it; the alias is untouched until a person promotes it
  failed     an error; the alias is untouched
The alias moves only with a conditional write on the alias as it was when the run started, so a
concurrent run or a manual promotion in the meantime is never overwritten.

Models are compared on holdout rows none of them was fitted on. A champion whose manifest says
final_fit "all_rows" (and one written before the hashed holdout, which the manifest reads as
such) has seen every row of its data, so no holdout row is new to it: it is compared by the
holdout metrics recorded when it was trained, and the run record says so (champion.scored_on).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sklambda.artifact import train_artifact
from sklambda.classes import Label
from sklambda.config import TASK_METRICS
from sklambda.data import Table, prepare
from sklambda.errors import (
    AliasConflictError,
    DataValidationError,
    RegistryError,
    RequestError,
    RuntimeMismatchError,
    SignatureError,
    SklambdaError,
)
from sklambda.manifest import Manifest, check_runtime, open_verified, served_artifact
from sklambda.names import validate_name
from sklambda.settings import DEFAULT_ALIAS, RetrainSettings
from sklambda.signing import Signer, Verifier
from sklambda.store import AliasRecord, ModelStore
from sklambda.training import evaluate, higher_is_better, shortfall

Log = Callable[..., None]


@dataclass(frozen=True)
class RetrainRequest:
    model: str
    alias: str = DEFAULT_ALIAS
    trigger: str = "manual"
    dataset_key: str | None = None
    tolerance: float = 0.01
    # None: the model config's own (evaluation.promotion_floor / baseline_margin).
    floor: float | None = None
    baseline_margin: float | None = None
    # A winner moves this alias instead of `alias` (scored on live traffic, promoted by hand).
    shadow_alias: str | None = None


@dataclass
class RunRecord:
    run_id: str
    request: RetrainRequest
    status: str = "running"  # running | promoted | shadowed | rejected | held | unchanged | failed
    reason: str = ""
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    data: dict[str, Any] = field(default_factory=dict)
    champion: dict[str, Any] = field(default_factory=dict)
    challenger: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
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
            "history": self.history,
            "durations_ms": {k: round(v, 1) for k, v in self.durations_ms.items()},
            "error": self.error,
        }


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


MIN_HOLDOUT_ROWS = 5
# How many versions of the alias history are scored on the new holdout (the ratchet's memory).
HISTORY_SCORED = 20


@dataclass(frozen=True)
class GatePolicy:
    """What a challenger must clear, on the primary metric in its direction ("higher" or
    "lower" is better; "": the metric's own). Tolerances are absolute where higher is better
    (r2, accuracy, ...), relative where lower is (rmse, log loss, ...)."""

    metric: str
    tolerance: float
    floor: float | None
    baseline_margin: float
    collapse_tolerance: float
    direction: str = ""

    @property
    def higher(self) -> bool:
        return self.direction == "higher" if self.direction else higher_is_better(self.metric)

    def shortfall(self, score: float, reference: float) -> float:
        """How much worse `score` is than `reference` (sklambda.training.shortfall)."""
        return shortfall(self.metric, score, reference, self.higher)

    @property
    def trivial_model(self) -> str:
        """What the trivial baseline predicts, in words."""
        if self.metric in TASK_METRICS["classification"]:
            return "the training class shares"
        return "the training mean"


@dataclass(frozen=True)
class Scores:
    """The primary metric of each model, on the same holdout rows (rows none was fitted on)."""

    holdout_rows: int
    challenger: float
    baseline: float
    champion: float | None = None  # the champion on the new holdout
    champion_recorded: float | None = None  # the champion's own holdout, when it was trained
    best: tuple[str, float] | None = None  # the best version of the alias history, and its score


def gate(policy: GatePolicy, scores: Scores) -> tuple[str, str]:
    """("promote" | "rejected" | "held", why). In order: enough holdout rows; the champion has
    not collapsed; the challenger beats the trivial baseline by the margin, reaches the floor,
    and is within the tolerance of the best model in the alias history (not just of the champion:
    a run of small losses cannot add up to more than one tolerance)."""
    m = policy.metric
    if scores.holdout_rows < MIN_HOLDOUT_ROWS:  # the hashed split's size varies; 1-4 rows: noise
        return "rejected", (
            f"holdout has {scores.holdout_rows} rows, fewer than {MIN_HOLDOUT_ROWS}: too few to "
            "compare models (add data or raise holdout_fraction)"
        )
    if scores.champion is not None and scores.champion_recorded is not None:
        drop = policy.shortfall(scores.champion, scores.champion_recorded)
        if drop > policy.collapse_tolerance:
            return "held", (
                f"the champion scores {m} {scores.champion:.4f} on the new data against "
                f"{scores.champion_recorded:.4f} when it was trained (worse by {drop:.4g}, more "
                f"than {policy.collapse_tolerance:g}): broken labels or a changed world; nothing "
                "promoted, a person decides (promote or rollback by hand)"
            )
    gain = -policy.shortfall(scores.challenger, scores.baseline)
    if gain < policy.baseline_margin:
        return "rejected", (
            f"challenger {m} {scores.challenger:.4f} does not beat the baseline "
            f"({policy.trivial_model}) {scores.baseline:.4f} by the margin "
            f"{policy.baseline_margin:g}"
        )
    floor = policy.floor
    if floor is not None and policy.shortfall(scores.challenger, floor) > 0:
        return "rejected", f"{m} {scores.challenger:.4f} misses the floor {floor:.4f}"
    if scores.best is None:
        return "promote", "no champion score to compare with"
    version, best = scores.best
    ok = policy.shortfall(scores.challenger, best) <= policy.tolerance
    verdict = "not worse than" if ok else "worse than"
    return ("promote" if ok else "rejected"), (
        f"challenger {m} {scores.challenger:.4f} is {verdict} the best of the alias history "
        f"({version}: {best:.4f}, tolerance {policy.tolerance:g})"
    )


class Retrainer:
    """Runs one retrain against a store; `log(phase, **fields)` gets one call per phase.

    `signer` signs the challenger it publishes; `verifier` checks the champion and every
    version of the alias history before any of their artifacts is fetched and scored, as the
    predict function would (a pickle is code)."""

    def __init__(
        self,
        store: ModelStore,
        log: Log | None = None,
        before_promote: Callable[[], None] | None = None,
        signer: Signer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.store = store
        self.log = log or (lambda _phase, **_fields: None)
        self.before_promote = before_promote  # test hook: line up concurrent runs
        self.signer = signer
        self.verifier = verifier

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
        champion = self.store.manifest(req.model, seen.version, self.verifier)
        config = champion.training_config()
        record.champion = {"version": champion.version}
        t = self._timed(record, "resolve", t, champion=champion.version)

        table = self.store.dataset(req.model, req.dataset_key)
        record.data = {"source": table.source, "sha256": table.sha256, "rows": table.rows}
        if table.sha256 == champion.data.sha256:  # the config is the champion's by construction
            record.status = "unchanged"
            record.reason = (
                f"the data (sha256 {table.sha256[:12]}…) and config are champion "
                f"{champion.version}'s own: nothing to train"
            )
            return
        dataset = prepare(config, table)
        t = self._timed(record, "validate", t, rows=table.rows, sha256=table.sha256)

        with tempfile.TemporaryDirectory() as tmp:
            trained = train_artifact(
                config, dataset, Path(tmp) / req.model, parent_version=champion.version
            )
            result = trained.result
            record.challenger = {
                "metrics": result.metrics,
                "final_fit": config.evaluation.final_fit,
                # Rendering report.html needs matplotlib, kept out of the Lambda layer.
                "report": "none: the retrain function cannot render one (no matplotlib in the "
                "Lambda layer); `python -m training train` with this config renders one",
            }
            t = self._timed(record, "train", t, holdout=result.metrics["holdout"])

            test_rows = result.holdout_rows
            scored = self._score_history(
                seen, champion, table, test_rows, dataset.y, classes=result.classes
            )
            record.champion["holdout"] = scored.get(champion.version, {})
            record.champion.update(_how_scored(champion, record.champion["holdout"], test_rows))
            record.history = [{"version": v, "holdout": h} for v, h in scored.items()]
            t = self._timed(record, "score_champion", t, holdout=record.champion["holdout"])

            challenger = self.store.publish(trained.folder, self.signer)
        record.challenger["version"] = challenger.version
        t = self._timed(record, "publish", t, challenger=challenger.version)

        ev = config.evaluation
        policy = GatePolicy(
            metric=ev.primary_metric,
            tolerance=req.tolerance,
            floor=req.floor if req.floor is not None else ev.promotion_floor,
            baseline_margin=(
                req.baseline_margin if req.baseline_margin is not None else ev.baseline_margin
            ),
            collapse_tolerance=ev.collapse_tolerance,
            direction=ev.direction,
        )
        record.gate = asdict(policy)
        m = policy.metric
        history = [(version, metrics[m]) for version, metrics in scored.items() if m in metrics]
        pick = max if policy.higher else min
        best = pick(history, key=lambda pair: pair[1]) if history else None
        # The score the champion had when trained, to see whether it collapsed on the new data;
        # not for an all_rows champion, whose score here is that recorded one.
        own_holdout = champion.final_fit == "train_split"
        recorded = champion.metrics["holdout"].get(m) if own_holdout else None
        decision, record.reason = gate(
            policy,
            Scores(
                holdout_rows=len(test_rows),
                challenger=result.metrics["holdout"][m],
                baseline=result.metrics["baseline"][m],
                champion=record.champion["holdout"].get(m),
                champion_recorded=recorded,
                best=best,
            ),
        )
        record.gate["decision"] = decision
        if decision != "promote":
            record.status = decision
            return
        self._promote(record, challenger, seen)
        self._timed(record, "promote", t, version=challenger.version)

    def _score_history(
        self,
        seen: AliasRecord,
        champion: Manifest,
        table: Table,
        test: np.ndarray,
        y: np.ndarray,
        *,
        classes: list[Label],
    ) -> dict[str, dict[str, float]]:
        """Metrics of the champion and the earlier versions of the alias history on the
        challenger's holdout rows, champion first; a version that cannot score is left out."""
        scored = {champion.version: self._score_champion(champion, table, test, y, classes)}
        for version in seen.history[:HISTORY_SCORED]:
            if version in scored:
                continue
            try:
                manifest = self.store.manifest(champion.name, version, self.verifier)
            except (RegistryError, SignatureError) as exc:
                self.log("score_champion", warning=f"history version {version}: {exc.message}")
                continue
            if manifest.final_fit == "all_rows":
                continue  # fitted on every row: it would be scored on rows it has seen
            scored[version] = self._score_champion(manifest, table, test, y, classes)
        return {version: metrics for version, metrics in scored.items() if metrics}

    def _score_champion(
        self,
        champion: Manifest,
        table: Table,
        test: np.ndarray,
        y: np.ndarray,
        classes: list[Label],
    ) -> dict[str, float]:
        """The champion's metrics on the challenger's holdout rows, encoded with its own schema,
        from the artifact the predict function serves (model.npz when there is one).

        A champion fitted on every row (final_fit "all_rows", or trained before the hashed
        holdout) would be scored on rows it has seen: its recorded holdout metrics are used
        instead. {} when it cannot score the rows (new categories under the "reject" policy, a
        classifier whose classes are not the new data's, or a pickle written by other library
        versions, which the predict function would refuse): the gate then falls back to the
        floor.
        """
        if champion.final_fit == "all_rows":
            self.log("score_champion", warning="fitted on every row; using its recorded holdout")
            return dict(champion.metrics["holdout"])
        known = champion.classes.labels if champion.classes else []
        if known != classes:
            self.log(
                "score_champion",
                warning=f"{champion.version} knows the classes {known}, the data have {classes}",
            )
            return {}
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
        unknown: list[str] = []  # as served: its own unknown_categories policy applies
        try:
            X = champion.feature_schema.encode_columns(columns, len(rows), table.text, unknown)
        except DataValidationError as exc:
            self.log("score_champion", warning=f"champion cannot score the new data: {exc}")
            return {}
        for warning in unknown:
            self.log("score_champion", warning=warning)
        return evaluate(champion.training_config(), model, X, y[test], classes)

    def _promote(self, record: RunRecord, challenger: Manifest, seen: AliasRecord) -> None:
        if self.before_promote:
            self.before_promote()
        shadow = record.request.shadow_alias
        try:
            if shadow:
                self.store.promote(challenger.name, challenger.version, shadow)
            else:
                self.store.promote(
                    challenger.name, challenger.version, record.request.alias, expected=seen
                )
        except AliasConflictError as exc:
            record.status = "rejected"
            record.reason = f"{record.reason}; but {exc.message}"
            return
        if shadow:
            record.status = "shadowed"
            record.reason = (
                f"{record.reason}; published to the shadow alias {shadow!r}, "
                f"{record.request.alias!r} unchanged"
            )
            return
        record.status = "promoted"


def _how_scored(champion: Manifest, holdout: dict[str, float], test: np.ndarray) -> dict[str, str]:
    """champion.scored_on in the run record (recorded_holdout, new_holdout or none), and why."""
    if champion.final_fit == "all_rows":
        return {
            "scored_on": "recorded_holdout",
            "scoring": "its holdout metrics recorded when it was trained: final_fit all_rows, it "
            "was fitted on every row of its data, so no holdout row is new to it",
        }
    if holdout:
        return {
            "scored_on": "new_holdout",
            "scoring": f"this run's {len(test)} holdout rows, which neither model was fitted on",
        }
    return {"scored_on": "none", "scoring": "it could not score the new data (see the log)"}


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
    # An event is input: its names are checked before a run record's key is built from them.
    model = validate_name("model name", event.get("model") or settings.model)
    return RetrainRequest(
        model=model,
        alias=validate_name("alias", settings.alias),
        trigger=trigger,
        dataset_key=None if dataset_key is None else validate_name("dataset key", dataset_key),
        tolerance=settings.tolerance,
        floor=settings.floor,
        baseline_margin=settings.baseline_margin,
        shadow_alias=validate_name("alias", shadow) if (shadow := settings.shadow_alias) else None,
    )
