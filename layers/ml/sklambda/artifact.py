"""Writing a trained model: model.joblib (+ model.npz for linear pipelines) + manifest.json in
one folder, all or nothing. `train_artifact` is the one path from a dataset to that folder (the
CLI, retraining, local seeding, benchmarks and tests all use it). Reading the folder back is
sklambda.manifest.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sklambda.classes import decide, json_label, positive_index
from sklambda.config import ModelConfig
from sklambda.data import Dataset
from sklambda.manifest import (
    MANIFEST_FILE,
    ArtifactInfo,
    ClassInfo,
    DataInfo,
    Manifest,
    runtime_versions,
    sha256_file,
)
from sklambda.names import MODEL_FILE, NUMPY_FILE
from sklambda.numpy_form import NumpyModel
from sklambda.profile import reference_profile
from sklambda.training import Progress, TrainResult, train


@dataclass(frozen=True)
class TrainedArtifact:
    """A trained model written to `folder`, with what produced it."""

    folder: Path
    manifest: Manifest
    result: TrainResult


def train_artifact(
    config: ModelConfig,
    dataset: Dataset,
    out_dir: Path,
    parent_version: str | None = None,
    progress: Progress | None = None,
) -> TrainedArtifact:
    """Train and evaluate (sklambda.training.train), then write the artifact folder."""
    result = train(config, dataset, progress)
    manifest = write_artifact(out_dir, config, dataset, result, parent_version)
    return TrainedArtifact(out_dir, manifest, result)


def new_version(now: datetime | None = None) -> str:
    """Sortable and unique per training run: UTC time to the second plus 8 random hex digits
    (two runs on the same data in the same second still get distinct versions)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def write_artifact(
    out_dir: Path,
    config: ModelConfig,
    dataset: Dataset,
    result: TrainResult,
    parent_version: str | None = None,
) -> Manifest:
    """Write model.joblib + manifest.json into out_dir, all or nothing."""
    import joblib

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir.parent))
    try:
        model_path = staging / MODEL_FILE
        joblib.dump(result.model, model_path)
        sha = sha256_file(model_path)
        numpy_info = _write_numpy_form(
            staging / NUMPY_FILE, result.model, dataset, dataset.X[result.train_rows]
        )
        now = datetime.now(UTC)
        estimator = result.model.regressor_ if hasattr(result.model, "regressor_") else result.model
        step = estimator.named_steps["model"]
        fitted_X = dataset.X[result.train_rows]
        classes = _class_info(config, dataset, result)
        if classes is None:
            predicted = result.model.predict(fitted_X)
        else:  # the profile's prediction: the index of the decided class (profiled by label)
            proba = result.model.predict_proba(fitted_X)
            predicted = decide(proba, classes.threshold, classes.positive_index).astype(float)
        manifest = Manifest(
            name=config.name,
            version=new_version(now),
            created_at=now.isoformat(timespec="seconds"),
            artifact=ArtifactInfo(sha256=sha, bytes=model_path.stat().st_size),
            numpy_artifact=numpy_info,
            runtime=runtime_versions(),
            task=config.task,
            classes=classes,
            target=config.target,
            features=dataset.schema.as_list(),
            metrics={**result.metrics, "train_seconds": round(result.seconds, 3)},
            data=DataInfo(
                source=dataset.table.source, sha256=dataset.table.sha256, rows=dataset.table.rows
            ),
            estimator={
                "kind": config.estimator.kind,
                "class": f"{type(step).__module__}.{type(step).__name__}",
                "params": {k: _jsonable(v) for k, v in step.get_params().items()},
            },
            config=config.model_dump(mode="json"),
            parent_version=parent_version,
            final_fit=config.evaluation.final_fit,
            profile=reference_profile(
                dataset.schema, fitted_X, predicted, classes.labels if classes else None
            ),
            intervals=result.intervals,
        )
        (staging / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _class_info(config: ModelConfig, dataset: Dataset, result: TrainResult) -> ClassInfo | None:
    """A classifier's labels (its predict_proba columns), their counts in the rows the shipped
    model was fitted on, and the configured decision rule; None for regression."""
    if config.task != "classification":
        return None
    labels = [json_label(v) for v in result.model.classes_.tolist()]
    fitted = [json_label(v) for v in dataset.y[result.train_rows].tolist()]
    threshold = config.target.threshold
    positive = None
    if threshold is not None:
        positive = labels[positive_index(labels, config.target.positive)]
    return ClassInfo(
        labels=labels,
        counts=[fitted.count(label) for label in labels],
        threshold=threshold,
        positive=positive,
    )


def _write_numpy_form(
    path: Path, model: Any, dataset: Dataset, fitted: np.ndarray
) -> ArtifactInfo | None:
    """Write model.npz when the pipeline is linear and its numpy form, read back from the file,
    gives the pipeline's own predictions (a classifier's probabilities) on every training row,
    on unknown category codes, and on a row with every value missing that may be (a missing
    level learned or not, indicators). The file also holds the means of its columns over the
    rows the model was `fitted` on: explanations' reference row (sklambda.explain)."""
    from sklambda.export import agrees, export

    exported = export(model)
    if exported is None or exported[1] is not None:
        return None
    form = exported[0]
    replace(form, means=form.transform(fitted).mean(axis=0)).save(path)
    unseen, missing = dataset.X[:1].copy(), dataset.X[:1].copy()
    for j, feature in enumerate(dataset.schema.features):
        if feature.type == "category":
            unseen[0, j] = float(len(feature.categories))  # a code training never saw
        if feature.may_be_missing:
            missing[0, j] = np.nan
    probe = np.vstack([dataset.X, unseen, missing])
    loaded = NumpyModel.load(path)
    if loaded.link:
        same = agrees(loaded.predict_proba, model.predict_proba, probe)
    else:
        same = agrees(loaded.predict, model.predict, probe)
    if not same:
        path.unlink()
        return None
    return ArtifactInfo(
        key=NUMPY_FILE, sha256=sha256_file(path), bytes=path.stat().st_size, format="npz"
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
