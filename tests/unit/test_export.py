"""The lean predict path gives the pipeline's own answers, or is not used."""

import numpy as np
import pytest

from sklambda.config import parse_config
from sklambda.data import parse_csv, prepare
from sklambda.export import compile_fast
from sklambda.manifest import Manifest
from sklambda.model import LoadedModel
from sklambda.training import build_pipeline
from tests.helpers import UNSEEN_CSV

pytestmark = pytest.mark.unit

KINDS = [
    "linear_regression",
    "ridge",
    "gradient_boosting",
    "random_forest",
    "hist_gradient_boosting",
]


def fitted(kind, target_transform="log"):
    config = parse_config(
        {
            "name": "rents",
            "target": {"name": "rent", "transform": target_transform},
            "features": [
                {"name": "size", "type": "number", "transform": "log"},
                {"name": "kind", "type": "category"},
                {"name": "floor", "type": "integer", "required": False},
            ],
            "estimator": {
                "kind": kind,
                "params": {"n_estimators": 10}
                if "forest" in kind or kind == "gradient_boosting"
                else {},
            },
        }
    )
    data = prepare(config, parse_csv(UNSEEN_CSV.encode(), "rents.csv"))
    return build_pipeline(config, data.schema).fit(data.X, data.y), data


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("target_transform", ["log", "none"])
def test_fast_path_matches_the_pipeline_including_missing_and_unknown_codes(kind, target_transform):
    model, data = fitted(kind, target_transform)
    fast = compile_fast(model)
    assert fast is not None
    X = np.vstack(
        [data.X, [[40.0, 1.0, np.nan], [55.0, 9.0, 2.0]]]
    )  # a missing value, an unknown code
    np.testing.assert_allclose(fast(X), model.predict(X), rtol=1e-9)


def test_unrecognised_model_gets_no_fast_path():
    from sklearn.dummy import DummyRegressor

    assert compile_fast(DummyRegressor().fit([[1.0]], [1.0])) is None


def test_default_model_is_served_by_the_fast_path(trained_dir, manifest: Manifest):
    import joblib

    assert LoadedModel(manifest, joblib.load(trained_dir / "model.joblib")).fast


def test_fast_path_is_refused_when_it_would_disagree(trained_dir, manifest, monkeypatch):
    import joblib

    from sklambda import export

    model = joblib.load(trained_dir / "model.joblib")
    monkeypatch.setattr(export, "compile_fast", lambda _m: lambda X: model.predict(X) + 1.0)
    loaded = LoadedModel(manifest, model)
    assert not loaded.fast
    X = loaded.probe_rows()
    assert loaded.predict(X) == model.predict(X).tolist()


# --- model.npz: the numpy form, served without scikit-learn ---------------------------------


@pytest.mark.parametrize("kind", ["linear_regression", "ridge"])
@pytest.mark.parametrize("target_transform", ["log", "none"])
def test_numpy_form_round_trips_through_a_file(tmp_path, kind, target_transform):
    from sklambda.export import export
    from sklambda.numpy_form import NumpyModel

    model, data = fitted(kind, target_transform)
    exported = export(model)
    assert exported is not None and exported[1] is None
    exported[0].save(tmp_path / "model.npz")
    loaded = NumpyModel.load(tmp_path / "model.npz")
    X = np.vstack([data.X, [[40.0, 1.0, np.nan], [55.0, 9.0, 2.0]]])
    np.testing.assert_allclose(loaded.predict(X), model.predict(X), rtol=1e-9)


def test_trees_get_no_numpy_form_and_train_still_writes_the_pickle(tmp_path):
    from sklambda.artifact import train_artifact
    from sklambda.config import parse_config

    config = parse_config(
        {
            "name": "rents",
            "target": {"name": "rent"},
            "features": [{"name": "size", "type": "number"}, {"name": "kind", "type": "category"}],
            "estimator": {"kind": "random_forest", "params": {"n_estimators": 5}},
            "evaluation": {"cv_folds": 2, "min_rows": 5},
        }
    )
    data = prepare(config, parse_csv(UNSEEN_CSV.encode(), "rents.csv"))
    manifest = train_artifact(config, data, tmp_path / "rf").manifest
    assert manifest.numpy_artifact is None
    assert sorted(p.name for p in (tmp_path / "rf").iterdir()) == ["manifest.json", "model.joblib"]


def test_default_model_ships_a_verified_numpy_form(trained_dir, manifest):
    from sklambda.manifest import sha256_file

    assert manifest.numpy_artifact is not None
    assert sha256_file(trained_dir / "model.npz") == manifest.numpy_artifact.sha256


def test_numpy_form_refuses_other_layouts_and_pickled_objects(tmp_path):
    from sklambda.errors import IntegrityError
    from sklambda.numpy_form import FORMAT, NumpyModel

    future = tmp_path / "future.npz"
    np.savez(future, format=np.array(FORMAT + 1), inverse=np.array(""), blocks=np.array(0))
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.array([{"a": 1}], dtype=object))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    for path in (future, pickled, garbage):
        with pytest.raises(IntegrityError, match="not a usable numpy model"):
            NumpyModel.load(path)
