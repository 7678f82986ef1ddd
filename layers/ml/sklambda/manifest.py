"""The manifest: the contract between training and serving. Read it, verify an artifact's bytes
against it, and only then open the artifact (a pickle is code).

Serving imports this module on a cold start, so scikit-learn, scipy and joblib are imported only
inside the functions that need them (serving a pickle). Writing artifacts is sklambda.artifact.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sklambda.classes import Label, positive_index
from sklambda.config import ModelConfig, TargetConfig, Task
from sklambda.conformal import IntervalInfo
from sklambda.errors import (
    IntegrityError,
    ModelUnavailableError,
    RuntimeMismatchError,
    first_validation_error,
)
from sklambda.names import MODEL_FILE, NUMPY_FILE, ArtifactKey, ModelName, Sha256, Version
from sklambda.numpy_form import NumpyModel
from sklambda.profile import ReferenceProfile
from sklambda.schema import FeatureSchema

MANIFEST_FILE = "manifest.json"
# Only these must match between training and serving: they define how the pickle is read.
PINNED_LIBRARIES = ("scikit-learn", "numpy")


class ArtifactInfo(BaseModel):
    # key and sha256 become an S3 key and a cache file name: only the two files training
    # writes, and a real sha256 (sklambda.names), never a path.
    model_config = ConfigDict(frozen=True)
    key: ArtifactKey = MODEL_FILE
    sha256: Sha256
    bytes: int = Field(ge=0)
    format: Literal["joblib", "npz"] = "joblib"

    @model_validator(mode="after")
    def _key_fits_format(self) -> ArtifactInfo:
        if self.key != {"joblib": MODEL_FILE, "npz": NUMPY_FILE}[self.format]:
            raise ValueError(f"a {self.format} artifact cannot be {self.key}")
        return self


class DataInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    source: str
    sha256: str
    rows: int


class ClassInfo(BaseModel):
    """A classifier's classes: the labels in the order of its probability columns (sorted, as
    scikit-learn's classes_), how many of the rows it was fitted on have each, and the binary
    decision rule (threshold None: the most probable label)."""

    model_config = ConfigDict(frozen=True)
    labels: list[Label] = Field(min_length=2)
    counts: list[int]
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    positive: Label | None = None  # the class the threshold is for (binary tasks)

    @model_validator(mode="after")
    def _consistent(self) -> ClassInfo:
        if len(self.counts) != len(self.labels):
            raise ValueError("classes: one count per label")
        if len(set(map(str, self.labels))) != len(self.labels):
            raise ValueError("classes: labels must be distinct")
        if self.threshold is not None and len(self.labels) != 2:
            raise ValueError("classes: a threshold is for a binary task")
        return self

    @property
    def positive_index(self) -> int:
        return positive_index(self.labels, self.positive)

    @property
    def shares(self) -> list[float]:
        total = sum(self.counts) or 1
        return [count / total for count in self.counts]


class Manifest(BaseModel):
    """Everything serving needs to know about a model version, and how it was made."""

    model_config = ConfigDict(frozen=True)
    schema_version: int = 1
    name: ModelName
    version: Version
    created_at: str
    artifact: ArtifactInfo
    # The same model as numpy arrays (linear pipelines only): served without scikit-learn.
    numpy_artifact: ArtifactInfo | None = None
    runtime: dict[str, str]
    task: Task = "regression"
    # A classifier's labels, their training counts and its decision rule; None for regression.
    classes: ClassInfo | None = None
    target: TargetConfig
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    data: DataInfo
    estimator: dict[str, Any]
    config: dict[str, Any]
    parent_version: Version | None = None
    # What the served model was fitted on (config evaluation.final_fit): "train_split", so its
    # holdout rows are rows it has not seen, or "all_rows", so a retrain cannot score it on any
    # holdout and compares it by its recorded holdout metrics (sklambda.retrain).
    final_fit: Literal["train_split", "all_rows"]
    # What the training rows and the predictions on them looked like (sklambda.profile): the
    # drift monitor's reference. None in manifests written before it.
    profile: ReferenceProfile | None = None
    # A regressor's conformal prediction intervals: half-widths per coverage level and the
    # coverage measured on the holdout (sklambda.conformal). None for a classifier, and in
    # manifests written before them (a request for intervals is then refused, saying so).
    intervals: IntervalInfo | None = None

    @model_validator(mode="before")
    @classmethod
    def _final_fit_of_older_manifests(cls, raw: Any) -> Any:
        """Manifests written before the field: fitted on the training split when their metrics
        count "rows" (the hashed holdout's era), on every row when they do not (before it)."""
        if isinstance(raw, dict) and "final_fit" not in raw:
            metrics = raw.get("metrics")
            fitted_on_split = isinstance(metrics, dict) and "rows" in metrics
            raw = {**raw, "final_fit": "train_split" if fitted_on_split else "all_rows"}
        return raw

    @model_validator(mode="after")
    def _formats(self) -> Manifest:
        # Each slot holds its own kind: "numpy_artifact" pointing at the pickle would make the
        # no-pickle path load one.
        if self.artifact.format != "joblib":
            raise ValueError("artifact must be the joblib pickle")
        if self.numpy_artifact is not None and self.numpy_artifact.format != "npz":
            raise ValueError("numpy_artifact must be the npz file")
        if (self.task == "classification") != (self.classes is not None):
            raise ValueError("a classifier's manifest has classes, a regressor's none")
        return self

    @property
    def artifacts(self) -> list[ArtifactInfo]:
        return [self.artifact] + ([self.numpy_artifact] if self.numpy_artifact else [])

    @property
    def feature_schema(self) -> FeatureSchema:
        return FeatureSchema.from_list(self.features)

    def training_config(self) -> ModelConfig:
        return ModelConfig.model_validate(self.config)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, raw: str | bytes, origin: str = "manifest") -> Manifest:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise IntegrityError(
                f"{origin} is not a valid manifest ({first_validation_error(exc)})"
            ) from None


def runtime_versions() -> dict[str, str]:
    import joblib
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


def check_runtime(manifest: Manifest) -> None:
    """Refuse a model whose pickle was written by other scikit-learn/numpy versions."""
    here = runtime_versions()
    skew = [
        f"{lib} {manifest.runtime.get(lib, '?')} (this runtime has {here[lib]})"
        for lib in PINNED_LIBRARIES
        if manifest.runtime.get(lib) != here[lib]
    ]
    if skew:
        raise RuntimeMismatchError(
            f"model {manifest.name} {manifest.version} was trained with " + ", ".join(skew)
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_FILE
    try:
        return Manifest.from_json(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise IntegrityError(f"no {MANIFEST_FILE} in {folder}") from None


@dataclass(frozen=True)
class VerifiedFile:
    """An artifact file whose sha256 matched its manifest. Only verify_file makes one, and
    open_verified takes nothing else: a file cannot be opened unverified, and its sha256 is
    computed once per load."""

    path: Path
    info: ArtifactInfo


def verify_file(path: Path, manifest: Manifest, info: ArtifactInfo | None = None) -> VerifiedFile:
    info = info or manifest.artifact
    actual = sha256_file(path)
    if actual != info.sha256:
        raise IntegrityError(
            f"{path.name} sha256 {actual[:12]}… does not match manifest "
            f"{info.sha256[:12]}… for {manifest.name} {manifest.version}; refusing it"
        )
    return VerifiedFile(path, info)


def served_artifact(manifest: Manifest, model_format: str = "auto") -> ArtifactInfo:
    """What a server loads: model.npz when the manifest has one (unless "joblib"), else the
    pickle; with "npz", model.npz or nothing (a pickle is code, and "npz" means none, ever)."""
    if model_format in ("auto", "npz") and manifest.numpy_artifact is not None:
        return manifest.numpy_artifact
    if model_format == "npz":
        raise ModelUnavailableError(
            f"model {manifest.name} {manifest.version} has no numpy form (model.npz) and "
            "MODEL_FORMAT is npz: its pickle is never loaded",
            "pickle_refused",
        )
    return manifest.artifact


def open_verified(verified: VerifiedFile) -> Any:
    """The numpy form as a NumpyModel (no code runs), or the pickle with joblib (importing
    scikit-learn)."""
    if verified.info.format == "npz":
        return NumpyModel.load(verified.path)
    import joblib

    return joblib.load(verified.path)
