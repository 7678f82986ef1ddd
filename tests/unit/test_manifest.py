"""Artifact and manifest: fields serving relies on, runtime checks, verification before load."""

import json

import numpy as np
import pytest

from sklambda.errors import IntegrityError, RuntimeMismatchError
from sklambda.manifest import (
    Manifest,
    check_runtime,
    open_verified,
    read_manifest,
    runtime_versions,
    verify_file,
)

pytestmark = pytest.mark.unit


def test_manifest_has_the_fields_serving_relies_on(trained_dir):
    raw = json.loads((trained_dir / "manifest.json").read_text())
    assert {
        "name",
        "version",
        "created_at",
        "artifact",
        "runtime",
        "task",
        "target",
        "features",
        "metrics",
        "data",
        "estimator",
        "config",
        "parent_version",
    } <= raw.keys()
    assert raw["artifact"]["format"] == "joblib"
    assert raw["runtime"] == runtime_versions()
    assert raw["data"]["rows"] == 546
    lotsize = next(f for f in raw["features"] if f["name"] == "lotsize")
    assert (lotsize["min"], lotsize["max"], lotsize["transform"]) == (1650.0, 16200.0, "log")
    assert raw["metrics"]["cv"]["r2"]["mean"] >= 0.66


def test_manifest_config_retrains_the_same_model(manifest, house_config):
    assert manifest.training_config() == house_config


def test_runtime_skew_is_refused(manifest):
    skewed = manifest.model_copy(update={"runtime": {**manifest.runtime, "scikit-learn": "0.24.2"}})
    with pytest.raises(RuntimeMismatchError, match=r"scikit-learn 0.24.2 \(this runtime has"):
        check_runtime(skewed)
    check_runtime(manifest)


@pytest.mark.parametrize("numpy_form", [False, True], ids=["joblib", "npz"])
def test_tampered_model_is_refused_before_load(artifact_dir, numpy_form):
    manifest = read_manifest(artifact_dir)
    info = manifest.numpy_artifact if numpy_form else manifest.artifact
    assert info is not None
    path = artifact_dir / info.key
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(IntegrityError, match="does not match manifest"):
        verify_file(path, manifest, info)


@pytest.mark.parametrize("model_format", ["auto", "joblib"])
def test_verified_model_loads_and_predicts_alike(
    trained_dir, manifest, house_dataset, model_format
):
    from sklambda.manifest import served_artifact

    info = served_artifact(manifest, model_format)
    assert info.format == ("npz" if model_format == "auto" else "joblib")
    model = open_verified(verify_file(trained_dir / info.key, manifest, info))
    pickled = open_verified(verify_file(trained_dir / "model.joblib", manifest))
    X = house_dataset.X[:50]
    np.testing.assert_allclose(model.predict(X), pickled.predict(X), rtol=1e-9)


def test_corrupt_manifest_is_an_integrity_error():
    with pytest.raises(IntegrityError, match="not a valid manifest"):
        Manifest.from_json(b'{"name": 1}')
