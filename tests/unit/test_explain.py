"""sklambda.explain: base + the sum of a row's contributions is the model's raw prediction, for
every estimator kind (regression, binary and multiclass classification; categories, missing
values and log transforms), on a generated table and on the bundled configs; contributions are
per original feature; a version without explanation data answers 409."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from sklambda.artifact import TrainedArtifact, train_artifact
from sklambda.config import ModelConfig, load_config, parse_config
from sklambda.data import parse_csv, prepare
from sklambda.errors import IntegrityError, RequestError
from sklambda.explain import (
    Explanation,
    ExplanationUnavailableError,
    explainer_for,
    owners,
    requested,
)
from sklambda.manifest import open_verified, read_manifest, verify_file
from sklambda.model import LoadedModel
from sklambda.numpy_form import NumpyModel
from sklambda.training import ESTIMATORS
from tests.generated_tables import TRUE_FEATURES, wide_housing_table
from tests.helpers import HOUSE_CONFIG, PENGUINS_CONFIG

pytestmark = pytest.mark.unit

# Small ensembles: the sums are exact whatever their size.
SMALL = {
    "random_forest": {"n_estimators": 25},
    "gradient_boosting": {"n_estimators": 40},
    "hist_gradient_boosting": {"max_iter": 40},
}
TABLE = wide_housing_table(rows=400, seed=7)
# Beside the true features: optional ones with missing cells (a number, an integer, a boolean:
# median + indicator; categories: a level of their own).
OPTIONAL = (
    ("lot_frontage", "number", "log"),
    ("garage_year", "integer", "none"),
    ("renovated", "boolean", "none"),
    ("fence", "category", "none"),
    ("garage_type", "category", "none"),
)
TARGETS = {"regression": "price", "binary": "dear", "multiclass": "band"}


def generated_csv() -> bytes:
    """The generated table's features, and the price as three targets: itself (regression, on
    the log scale), above the median or not (binary), its tercile (multiclass)."""
    names = [n for n, _, _ in TRUE_FEATURES + OPTIONAL]
    price = np.array([float(v) for v in TABLE.columns["price"]])
    cuts = np.quantile(price, [1 / 3, 1 / 2, 2 / 3])
    dear = np.where(price > cuts[1], "yes", "no")
    band = np.array(["low", "mid", "high"])[np.searchsorted(cuts[[0, 2]], price)]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*names, "price", "dear", "band"])
    for i in range(TABLE.rows):
        cells = [TABLE.columns[n][i] for n in names]
        writer.writerow([*cells, TABLE.columns["price"][i], dear[i], band[i]])
    return out.getvalue().encode()


GENERATED = generated_csv()


def generated_config(task: str, kind: str) -> ModelConfig:
    optional = {n for n, _, _ in OPTIONAL} | {"corner_lot"}
    return parse_config(
        {
            "name": f"generated-{task}",
            "task": "regression" if task == "regression" else "classification",
            "unknown_categories": "warn",  # every category may be missing: a NaN level
            "target": {
                "name": TARGETS[task],
                "transform": "log" if task == "regression" else "none",
            },
            "features": [
                {"name": n, "type": t, "transform": tr, "required": n not in optional}
                for n, t, tr in TRUE_FEATURES + OPTIONAL
            ],
            "estimator": {"kind": kind, "params": SMALL.get(kind, {})},
            "evaluation": {
                "cv_folds": 2,
                "primary_metric": "r2" if task == "regression" else "log_loss",
            },
        }
    )


def bundled_config(path: Path, kind: str) -> ModelConfig:
    config = load_config(path)
    estimator = config.estimator.model_copy(update={"kind": kind, "params": SMALL.get(kind, {})})
    evaluation = config.evaluation.model_copy(update={"cv_folds": 2})
    return config.model_copy(update={"estimator": estimator, "evaluation": evaluation})


def kinds(task: str) -> list[str]:
    return list(ESTIMATORS["regression" if task == "regression" else "classification"])


CASES = [("generated", task, kind) for task in TARGETS for kind in kinds(task)]
CASES += [("house_prices", "regression", kind) for kind in kinds("regression")]
CASES += [("penguins", "multiclass", kind) for kind in kinds("multiclass")]


@pytest.fixture(scope="module")
def train(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str, str], TrainedArtifact]:
    cache: dict[tuple[str, str, str], TrainedArtifact] = {}

    def trained(source: str, task: str, kind: str) -> TrainedArtifact:
        key = (source, task, kind)
        if key not in cache:
            if source == "generated":
                config, content = generated_config(task, kind), GENERATED
            else:
                config = bundled_config(
                    HOUSE_CONFIG if source == "house_prices" else PENGUINS_CONFIG, kind
                )
                content = Path(config.data.source).read_bytes()
            dataset = prepare(config, parse_csv(content, source))
            folder = tmp_path_factory.mktemp(kind) / config.name
            cache[key] = train_artifact(config, dataset, folder)
        return cache[key]

    return trained


def served(folder: Path) -> LoadedModel:
    """The model as the predict function serves it: the numpy form when there is one."""
    manifest = read_manifest(folder)
    info = manifest.numpy_artifact or manifest.artifact
    return LoadedModel(manifest, open_verified(verify_file(folder / info.key, manifest, info)))


def raw_prediction(pipeline: Any, X: np.ndarray, scale: str) -> np.ndarray:
    """What the explanation must add up to, from scikit-learn's own pipeline: (rows, columns)."""
    if scale in ("identity", "log"):
        predicted = pipeline.predict(X)
        return (np.log(predicted) if scale == "log" else predicted)[:, None]
    if scale == "probability":
        proba: np.ndarray = pipeline.predict_proba(X)
        return proba
    scores = pipeline.decision_function(X)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


@pytest.mark.parametrize(("source", "task", "kind"), CASES)
def test_base_plus_contributions_is_the_raw_prediction_for_every_estimator_kind(
    train: Callable[[str, str, str], TrainedArtifact], source: str, task: str, kind: str
) -> None:
    # GIVEN a trained model, served as the predict function serves it
    artifact = train(source, task, kind)
    model = served(artifact.folder)
    assert model.format == (
        "npz" if kind in ("linear_regression", "ridge", "logistic_regression") else "joblib"
    )
    # WHEN its training rows, and rows with every category level and missing values, are explained
    X = np.vstack([prepare_rows(artifact), model.probe_rows()])
    explanation = model.explain(X)
    # THEN base + contributions is scikit-learn's raw prediction, on the scale it names
    pipeline = joblib.load(artifact.folder / "model.joblib")
    expected = raw_prediction(pipeline, X, explanation.scale)
    np.testing.assert_allclose(explanation.raw(), expected, rtol=1e-9, atol=1e-9)
    assert explanation.contributions.shape == (
        len(X),
        len(model.schema.features),
        expected.shape[1],
    )
    assert explanation.features == tuple(model.schema.names)
    scales = {
        "regression": {"log"},
        "binary": {"logit", "probability"},
        "multiclass": {"softmax", "probability"},
    }
    assert explanation.scale in scales[task]
    assert (explanation.scale == "probability") == (
        kind == "random_forest" and task != "regression"
    )


def prepare_rows(artifact: TrainedArtifact) -> np.ndarray:
    """The encoded rows the model was trained on (every row of its source)."""
    config = artifact.manifest.training_config()
    generated = config.name.startswith("generated")
    source = GENERATED if generated else Path(config.data.source).read_bytes()
    return prepare(config, parse_csv(source, "rows")).X


def test_a_linear_contribution_moves_only_with_its_own_feature(
    train: Callable[[str, str, str], TrainedArtifact],
) -> None:
    # GIVEN the generated ridge model and one row
    model = served(train("generated", "regression", "ridge").folder)
    X = model.probe_rows()[:1]
    before = model.explain(X).contributions[0, :, 0]
    # WHEN one category changes level, and goes missing (its one-hot columns and missing level)
    fence = model.schema.names.index("fence")
    for value in (1.0, np.nan):
        changed = X.copy()
        changed[0, fence] = value
        after = model.explain(changed).contributions[0, :, 0]
        # THEN only that feature's contribution moves: expanded columns are summed back to it
        others = np.arange(len(before)) != fence
        np.testing.assert_allclose(after[others], before[others], rtol=0, atol=1e-12)
        assert after[fence] != before[fence]


def test_a_linear_model_explains_from_the_training_means_of_its_columns(
    train: Callable[[str, str, str], TrainedArtifact],
) -> None:
    artifact = train("house_prices", "regression", "linear_regression")
    form = NumpyModel.load(artifact.folder / "model.npz")
    assert form.means is not None
    fitted = prepare_rows(artifact)[artifact.result.train_rows]
    np.testing.assert_allclose(form.means, form.transform(fitted).mean(axis=0), rtol=1e-12)
    # the base is the prediction at the means: the mean of the training predictions on the
    # model's (log) scale, for least squares with an intercept
    explanation = served(artifact.folder).explain(fitted)
    assert explanation.base[0] == pytest.approx(explanation.raw()[:, 0].mean(), rel=1e-9)
    assert np.abs(explanation.contributions.sum(axis=0)).max() < 1e-8  # they centre on zero


def test_an_npz_without_training_means_answers_409_and_says_to_retrain(
    train: Callable[[str, str, str], TrainedArtifact], tmp_path: Path
) -> None:
    # GIVEN a model.npz written before the means were (the same arrays, without them)
    artifact = train("house_prices", "regression", "linear_regression")
    with np.load(artifact.folder / "model.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files if name != "means"}
    old = NumpyModel.from_arrays(arrays)
    assert old.means is None
    model = LoadedModel(read_manifest(artifact.folder), old)
    X = model.probe_rows()
    assert model.predict(X)  # it still predicts
    # WHEN it is asked to explain, THEN a 409 in the one error shape says what to do
    with pytest.raises(ExplanationUnavailableError) as caught:
        model.explain(X)
    assert (caught.value.status, caught.value.code) == (409, "explanations_unavailable")
    assert "no explanation data" in caught.value.message and "retrain" in caught.value.message
    # a linear pipeline served from its pickle has no means either
    pickled = LoadedModel(
        read_manifest(artifact.folder), joblib.load(artifact.folder / "model.joblib")
    )
    with pytest.raises(ExplanationUnavailableError):
        pickled.explain(X)


def test_training_means_that_do_not_fit_the_coefficients_are_refused(
    train: Callable[[str, str, str], TrainedArtifact], tmp_path: Path
) -> None:
    artifact = train("house_prices", "regression", "linear_regression")
    with np.load(artifact.folder / "model.npz", allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["means"] = arrays["means"][:-1]
    bad = tmp_path / "model.npz"
    np.savez(bad, **arrays)
    with pytest.raises(IntegrityError, match="training means"):
        NumpyModel.load(bad)
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_owners_map_each_expanded_column_back_to_its_feature(
    train: Callable[[str, str, str], TrainedArtifact],
) -> None:
    form = NumpyModel.load(train("generated", "regression", "ridge").folder / "model.npz")
    owned = owners(form.blocks)
    X = served(train("generated", "regression", "ridge").folder).probe_rows()
    assert owned.size == form.transform(X).shape[1]
    assert set(owned.tolist()) == set(range(X.shape[1]))  # every feature owns a column


# --- the reply's shape -------------------------------------------------------------------------


def explanation(columns: tuple[Any, ...], k: int, positive: int = 1) -> Explanation:
    contributions = np.arange(2 * 3 * k, dtype=float).reshape(2, 3, k)
    return Explanation(
        "x", np.arange(k, dtype=float), contributions, ("a", "b", "c"), columns, positive
    )


def test_a_regressors_explanation_is_one_base_and_a_record_per_row() -> None:
    out = explanation((), 1).as_json()
    assert out == {
        "scale": "x",
        "base": 0.0,
        "contributions": [{"a": 0.0, "b": 1.0, "c": 2.0}, {"a": 3.0, "b": 4.0, "c": 5.0}],
    }


@pytest.mark.parametrize(("positive", "label"), [(1, "yes"), (0, "no")])
def test_a_binary_explanation_is_of_the_positive_class_and_names_it(
    positive: int, label: str
) -> None:
    out = explanation(("no", "yes"), 2, positive).as_json()
    assert out["class"] == label
    assert out["base"] == float(positive)
    assert out["contributions"][1]["c"] == 5 * 2 + positive


def test_a_multiclass_explanation_gives_each_class_its_base_and_contributions() -> None:
    out = explanation((1, 2, 3), 3).as_json()
    assert out["base"] == {"1": 0.0, "2": 1.0, "3": 2.0}
    assert out["contributions"][0] == {
        "1": {"a": 0.0, "b": 3.0, "c": 6.0},
        "2": {"a": 1.0, "b": 4.0, "c": 7.0},
        "3": {"a": 2.0, "b": 5.0, "c": 8.0},
    }


@pytest.mark.parametrize(
    ("value", "where", "asked"),
    [(True, "body", True), (False, "body", False), ("true", "query", True)]
    + [("false", "query", False), (False, "parameters", False)],
)
def test_the_explain_option_takes_booleans(value: Any, where: str, asked: bool) -> None:
    assert requested(value, where) is asked


@pytest.mark.parametrize(
    ("value", "where"),
    [("true", "body"), (1, "body"), (None, "body"), ([True], "body"), ("maybe", "query")]
    + [("yes", "parameters"), (1, "parameters")]
    # the query grammar (sklambda.options) is the one `intervals` reads: no 1/0, no empty value
    + [(v, "query") for v in ("", "1", "0", "TRUE", " true", "0.9")],
)
def test_an_explain_option_that_is_not_a_boolean_is_a_400(value: Any, where: str) -> None:
    with pytest.raises(RequestError) as caught:
        requested(value, where)
    assert caught.value.status == 400
    assert "'explain'" in caught.value.message


def test_hist_gradient_boosting_inner_nodes_are_put_on_the_leaves_footing(
    train: Callable[[str, str, str], TrainedArtifact],
) -> None:
    # GIVEN a histogram gradient boosting regressor (squared error, no L2: a node's value is the
    # count-weighted mean of its children's), whose leaves are stored shrunk and inner nodes not
    model = served(train("house_prices", "regression", "hist_gradient_boosting").folder)
    estimator = model.model.regressor_.named_steps["model"]
    assert estimator.l2_regularization == 0
    # WHEN its trees are read for explanations
    forest = explainer_for(model.model, tuple(model.schema.names), ()).forest  # type: ignore[attr-defined]
    # THEN every inner node is the count-weighted mean of its children on one scale: a split's
    # change in value is what it changes in the prediction
    counts = np.concatenate(
        [p.nodes["count"] for iteration in estimator._predictors for p in iteration]
    ).astype(float)
    inner = np.flatnonzero(forest.internal)
    left, right = forest.left[inner], forest.right[inner]
    mean = counts[left] * forest.value[left, 0] + counts[right] * forest.value[right, 0]
    mean /= counts[left] + counts[right]
    # (a root is stored as 0: the baseline before it is the loss's optimum, so its children's
    # mean is 0 up to float32 gradient sums)
    np.testing.assert_allclose(forest.value[inner, 0], mean, rtol=1e-9, atol=1e-9)


def test_a_model_that_cannot_explain_is_asked_once_and_keeps_the_answer(
    train: Callable[[str, str, str], TrainedArtifact], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a loaded model whose explainer cannot be built (a pickle re-runs export() to try)
    artifact = train("house_prices", "regression", "linear_regression")
    model = LoadedModel(
        read_manifest(artifact.folder), joblib.load(artifact.folder / "model.joblib")
    )
    calls: list[int] = []

    def unavailable(*args: Any) -> Any:
        calls.append(1)
        raise ExplanationUnavailableError("no explanation data; retrain it")

    monkeypatch.setattr("sklambda.model.explainer_for", unavailable)
    # WHEN /openapi.json (explainable) and explain requests ask it again and again
    assert not model.explainable
    assert not model.explainable
    with pytest.raises(ExplanationUnavailableError):
        model.explain(model.probe_rows())
    # THEN the export is tried once per loaded model, and the 409 is the same every time
    assert len(calls) == 1
