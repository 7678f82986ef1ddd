"""Missing values are modelled, not hidden: a missing category is its own level, a missing number
is imputed and flagged, the manifest says how, and an unknown category follows the config's
policy (reject: 422; warn: treated as missing, with a warning in the reply)."""

import json
import warnings

import numpy as np
import pytest

from sklambda.data import parse_csv, prepare
from sklambda.errors import ConfigError, DataValidationError
from sklambda.training import fit_pipeline
from tests.helpers import rents_config, rents_csv

pytestmark = pytest.mark.unit


def dataset(config=None, **csv_options):
    config = config or rents_config()
    return config, prepare(config, parse_csv(rents_csv(**csv_options).encode(), "rents.csv"))


def encode(data, **values):
    """One encoded row: a typical flat, with `values` (None: missing) changed."""
    record = {"size": 60, "kind": "flat", "heating": "electric", "floor": 2, "garden": "no"}
    record.update(values)
    return data.schema.encode_records([record])


# --- categories --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["linear_regression", "ridge"])
def test_a_missing_category_is_its_own_level_not_the_reference_level(kind):
    config, data = dataset(rents_config(estimator={"kind": kind, "params": {}}))
    model = fit_pipeline(config, data.schema, data.X, data.y)
    missing = model.predict(encode(data, heating=None))[0]
    reference = model.predict(encode(data, heating="electric"))[0]  # the first level
    # The data say a missing heating costs 300 against electric: learned, not hidden.
    assert missing - reference == pytest.approx(-300, abs=15)


def test_a_missing_level_never_seen_in_training_predicts_the_training_mix_of_levels():
    """No row to learn a missing level from: a linear model predicts the average of the levels,
    weighted as in the training data, rather than the (arbitrary) reference level."""
    config, data = dataset(heating_missing=False)
    model = fit_pipeline(config, data.schema, data.X, data.y)
    j = data.schema.names.index("heating")
    levels = data.schema.features[j].categories
    share = [float(np.mean(data.X[:, j] == code)) for code in range(len(levels))]
    by_level = [model.predict(encode(data, heating=level))[0] for level in levels]
    missing = model.predict(encode(data, heating=None))[0]
    assert missing == pytest.approx(float(np.dot(share, by_level)), rel=1e-9)
    assert missing != pytest.approx(by_level[0], abs=1.0)


# --- numbers -----------------------------------------------------------------------------


def test_a_missing_number_is_imputed_and_flagged_by_an_indicator():
    config, data = dataset()
    model = fit_pipeline(config, data.schema, data.X, data.y)
    j = data.schema.names.index("floor")
    median = float(np.nanmedian(data.X[:, j]))
    missing = model.predict(encode(data, floor=None))[0]
    row = encode(data)
    row[0, j] = median  # the imputed value (may be 1.5: not a valid request)
    at_median = model.predict(row)[0]
    # A missing floor adds 200 in these data (against 25 a floor): only an indicator learns it.
    assert missing - at_median == pytest.approx(200 - 25 * median, abs=15)


def test_only_optional_features_get_a_missing_level_or_an_indicator():
    config, data = dataset()
    prep = fit_pipeline(config, data.schema, data.X, data.y).named_steps["prep"]
    width = prep.transform(data.X[:3]).shape[1]
    # size 1 + kind 2 (3 levels, one dropped) + heating 3 (3 levels + missing, one dropped)
    # + floor 1 + garden 1 + indicators for floor and garden 2
    assert width == 10


# --- the manifest ------------------------------------------------------------------------


def test_the_manifest_records_how_each_feature_handles_missing_values(tmp_path):
    from sklambda.artifact import train_artifact

    config, data = dataset()
    manifest = train_artifact(config, data, tmp_path / "rents").manifest
    features = {f["name"]: f for f in manifest.features}
    assert features["size"]["missing"] == "refused"
    assert features["kind"]["missing"] == "refused"
    assert features["heating"]["missing"] == "own_level"
    assert features["floor"]["missing"] == "median_and_indicator"
    assert features["garden"]["missing"] == "median_and_indicator"
    assert features["heating"]["missing_rows"] == 48  # every 5th of 240 rows
    assert features["floor"]["missing_rows"] == 40
    assert features["kind"]["unknown"] == features["heating"]["unknown"] == "reject"
    assert features["size"]["unknown"] is None
    saved = json.loads((tmp_path / "rents" / "manifest.json").read_text())
    assert saved["features"] == manifest.features


def test_a_manifest_from_before_missing_handling_still_reads():
    from sklambda.schema import Feature

    old = {"name": "kind", "type": "category", "required": True, "categories": ["a", "b"]}
    feature = Feature.from_dict(old)
    assert (feature.missing, feature.unknown) == ("refused", "reject")


# --- unknown categories --------------------------------------------------------------------


def test_unknown_categories_are_rejected_by_default():
    config, data = dataset()
    assert config.unknown_categories == "reject"
    with pytest.raises(DataValidationError, match="unknown category 'castle'"):
        data.schema.encode_records(
            [{"size": 60, "kind": "castle", "heating": "gas", "floor": 1, "garden": "no"}],
            warnings=[],
        )


def test_an_invalid_unknown_category_policy_is_refused():
    with pytest.raises(ConfigError, match="unknown_categories"):
        rents_config(unknown_categories="ignore")


@pytest.fixture
def warn_model(tmp_path):
    """A rents model whose config says unknown_categories = "warn", loaded as served."""
    from sklambda.artifact import train_artifact
    from sklambda.manifest import open_verified, verify_file
    from sklambda.model import LoadedModel

    config, data = dataset(rents_config(unknown_categories="warn"))
    manifest = train_artifact(config, data, tmp_path / "rents").manifest
    assert manifest.numpy_artifact is not None
    verified = verify_file(tmp_path / "rents" / "model.npz", manifest, manifest.numpy_artifact)
    return LoadedModel(manifest, open_verified(verified))


def test_with_warn_an_unknown_category_is_predicted_as_missing_with_a_warning(
    warn_model, lambda_context
):
    import predict_handler
    from tests.helpers import load_event

    record = {"size": 60, "kind": "castle", "heating": "solar", "floor": 2, "garden": "no"}
    as_missing = warn_model.schema.encode_records([{**record, "kind": "flat", "heating": "gas"}])
    for name in ("kind", "heating"):
        as_missing[0, warn_model.schema.names.index(name)] = np.nan
    event = load_event("predict")
    event["body"] = json.dumps({"instances": [record, {**record, "kind": "flat"}]})
    predict_handler.holder.use(warn_model)
    try:
        reply = predict_handler.lambda_handler(event, lambda_context)
    finally:
        predict_handler.holder.reset()
        predict_handler.metrics.clear_metrics()
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 200, body
    assert body["predictions"][0] == pytest.approx(warn_model.predict(as_missing)[0])
    assert body["warnings"] == [
        "kind: 1 unknown category value(s) treated as missing (rows 0): 'castle'",
        "heating: 2 unknown category value(s) treated as missing (rows 0, 1): 'solar'",
    ]


def test_with_warn_a_training_csv_with_an_unlisted_category_is_still_an_error():
    """The policy is for requests: a training table that breaks its own config is a data error."""
    config = rents_config(unknown_categories="warn")
    listed = [
        {**f.model_dump(), "categories": ["flat", "house"]} if f.name == "kind" else f.model_dump()
        for f in config.features
    ]
    config = rents_config(unknown_categories="warn", features=listed)
    with pytest.raises(DataValidationError, match="unknown category 'loft'"):
        prepare(config, parse_csv(rents_csv().encode(), "rents.csv"))


# --- no scikit-learn warning reaches the terminal -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "params"), [("linear_regression", {}), ("random_forest", {"n_estimators": 10})]
)
def test_training_and_serving_raise_no_scikit_learn_warning(tmp_path, kind, params):
    """Every run used to print 13 "Found unknown categories" warnings (missing categories)."""
    import joblib

    from sklambda.artifact import train_artifact
    from sklambda.manifest import read_manifest
    from sklambda.model import LoadedModel

    config, data = dataset(rents_config(estimator={"kind": kind, "params": params}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = train_artifact(config, data, tmp_path / "rents").folder
        loaded = LoadedModel(read_manifest(folder), joblib.load(folder / "model.joblib"))
        loaded.predict(loaded.probe_rows())
    assert [f"{w.filename}: {w.message}" for w in caught] == []
