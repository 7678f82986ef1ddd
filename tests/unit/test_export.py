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

# These feed the pipeline an unknown category code on purpose, to pin what it does with one.
DELIBERATE_UNKNOWN_CODE = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")

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


@DELIBERATE_UNKNOWN_CODE
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


@DELIBERATE_UNKNOWN_CODE
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


# --- missing levels and indicators (format 2) -------------------------------------------------


@pytest.mark.parametrize("kind", ["linear_regression", "ridge"])
@pytest.mark.parametrize("heating_missing", [True, False])
@pytest.mark.parametrize("policy", ["reject", "warn"])
def test_optional_features_and_categories_still_ship_an_agreeing_numpy_form(
    tmp_path, kind, heating_missing, policy
):
    from sklambda.artifact import train_artifact
    from sklambda.numpy_form import NumpyModel
    from tests.helpers import rents_config, rents_csv

    config = rents_config(estimator={"kind": kind, "params": {}}, unknown_categories=policy)
    data = prepare(config, parse_csv(rents_csv(heating_missing=heating_missing).encode(), "r"))
    trained = train_artifact(config, data, tmp_path / "rents")
    assert trained.manifest.numpy_artifact is not None
    served = NumpyModel.load(tmp_path / "rents" / "model.npz")
    X = np.vstack([data.X, LoadedModel(trained.manifest, served).probe_rows()])
    everything_missing = X[:1].copy()
    for j, f in enumerate(data.schema.features):
        if not f.required or (f.type == "category" and policy == "warn"):
            everything_missing[0, j] = np.nan
    X = np.vstack([X, everything_missing])
    np.testing.assert_allclose(served.predict(X), trained.result.model.predict(X), rtol=1e-9)


def test_a_format_1_file_is_read_exactly_as_it_was_written(trained_dir):
    """Format 1 (no missing levels, no indicators) is a subset of format 2: a live champion's
    model.npz keeps being served after an upgrade, with the same predictions."""
    import joblib

    from sklambda.numpy_form import NumpyModel

    current = NumpyModel.load(trained_dir / "model.npz").arrays()
    v1 = {k: v for k, v in current.items() if not k.endswith(".kind")}
    v1["format"] = np.array(1)
    model = joblib.load(trained_dir / "model.joblib")
    X = LoadedModel(read_manifest_of(trained_dir), model).probe_rows()
    np.testing.assert_allclose(NumpyModel.from_arrays(v1).predict(X), model.predict(X), rtol=1e-9)


def read_manifest_of(folder):
    from sklambda.manifest import read_manifest

    return read_manifest(folder)


def test_the_numpy_form_of_a_missing_level_or_indicator_is_format_2(tmp_path):
    """An older server reads format 1 only: it refuses these files instead of reading a missing
    level as all zeros."""
    from sklambda.export import export
    from sklambda.numpy_form import FORMAT

    model, _ = fitted("linear_regression")  # floor is optional: an indicator block
    exported = export(model)
    assert exported is not None
    arrays = exported[0].arrays()
    assert FORMAT == 2 and int(arrays["format"]) == 2
    assert "indicator" in {str(v) for k, v in arrays.items() if k.endswith(".kind")}
