"""The model artifacts (model.joblib, and model.npz for linear pipelines) and their manifest: the
contract between training and serving.

Serving imports this module on a cold start, so scikit-learn, scipy and joblib are imported only
inside the functions that need them (training, and serving a pickle).
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from sklambda.config import ModelConfig, TargetConfig
from sklambda.errors import IntegrityError, RuntimeMismatchError
from sklambda.numpy_model import NumpyModel
from sklambda.schema import FeatureSchema

if TYPE_CHECKING:  # training code: serving must not import sklearn.ensemble & co. on a cold start
    from sklambda.data import Dataset
    from sklambda.training import TrainResult

MODEL_FILE = "model.joblib"
NUMPY_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
# Only these must match between training and serving: they define how the pickle is read.
PINNED_LIBRARIES = ("scikit-learn", "numpy")


class ArtifactInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    key: str = MODEL_FILE
    sha256: str
    bytes: int
    format: Literal["joblib", "npz"] = "joblib"


class DataInfo(BaseModel):
    model_config = ConfigDict(frozen=True)
    source: str
    sha256: str
    rows: int


class Manifest(BaseModel):
    """Everything serving needs to know about a model version, and how it was made."""

    model_config = ConfigDict(frozen=True)
    schema_version: int = 1
    name: str
    version: str
    created_at: str
    artifact: ArtifactInfo
    # The same model as numpy arrays (linear pipelines only): served without scikit-learn.
    numpy_artifact: ArtifactInfo | None = None
    runtime: dict[str, str]
    task: Literal["regression"] = "regression"
    target: TargetConfig
    features: list[dict[str, Any]]
    metrics: dict[str, Any]
    data: DataInfo
    estimator: dict[str, Any]
    config: dict[str, Any]
    parent_version: str | None = None

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
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise IntegrityError(
                f"{origin} is not a valid manifest ({where}: {first['msg']})"
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
        numpy_info = _write_numpy_form(staging / NUMPY_FILE, result.model, dataset)
        now = datetime.now(UTC)
        estimator = result.model.regressor_ if hasattr(result.model, "regressor_") else result.model
        step = estimator.named_steps["model"]
        manifest = Manifest(
            name=config.name,
            version=new_version(now),
            created_at=now.isoformat(timespec="seconds"),
            artifact=ArtifactInfo(sha256=sha, bytes=model_path.stat().st_size),
            numpy_artifact=numpy_info,
            runtime=runtime_versions(),
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
        )
        (staging / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_numpy_form(path: Path, model: Any, dataset: Dataset) -> ArtifactInfo | None:
    """Write model.npz when the pipeline is linear and its numpy form, read back from the file,
    gives the pipeline's own predictions on every training row, on missing values where a
    feature allows them, and on unknown category codes."""
    from sklambda.fastpath import export

    exported = export(model)
    if exported is None or exported[1] is not None:
        return None
    exported[0].save(path)
    extra = dataset.X[:1].copy()
    for j, feature in enumerate(dataset.schema.features):
        if feature.type == "category":
            extra[0, j] = float(len(feature.categories))  # a code training never saw
        elif not feature.required:
            extra[0, j] = np.nan
    probe = np.vstack([dataset.X, extra])
    with np.errstate(all="ignore"):
        agrees = np.allclose(
            NumpyModel.load(path).predict(probe), model.predict(probe), rtol=1e-9, atol=0
        )
    if not agrees:
        path.unlink()
        return None
    return ArtifactInfo(
        key=NUMPY_FILE, sha256=sha256_file(path), bytes=path.stat().st_size, format="npz"
    )


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_FILE
    try:
        return Manifest.from_json(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise IntegrityError(f"no {MANIFEST_FILE} in {folder}") from None


def verify_file(path: Path, manifest: Manifest, info: ArtifactInfo | None = None) -> None:
    expected = (info or manifest.artifact).sha256
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(
            f"{path.name} sha256 {actual[:12]}… does not match manifest "
            f"{expected[:12]}… for {manifest.name} {manifest.version}; refusing it"
        )


def served_artifact(manifest: Manifest, model_format: str = "auto") -> ArtifactInfo:
    """What a server loads: model.npz when the manifest has one (unless "joblib"), else the
    pickle."""
    if model_format == "auto" and manifest.numpy_artifact is not None:
        return manifest.numpy_artifact
    return manifest.artifact


def load_verified(path: Path, manifest: Manifest, info: ArtifactInfo | None = None) -> Any:
    """Open an artifact file only after its sha256 matches the manifest (a pickle is code): the
    numpy form as a NumpyModel, the pickle with joblib (importing scikit-learn)."""
    info = info or manifest.artifact
    verify_file(path, manifest, info)
    if info.format == "npz":
        return NumpyModel.load(path)
    import joblib

    return joblib.load(path)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
