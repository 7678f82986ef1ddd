"""Classification end to end without S3: config, labels, metrics, training, the gate's direction,
the manifest, the numpy form (binary and multiclass) and the reply shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)

import predict_handler
from sklambda import open_inference
from sklambda.artifact import TrainedArtifact, train_artifact
from sklambda.batch import Item, out_header, score_rows
from sklambda.classes import read_labels
from sklambda.config import TargetConfig, parse_config
from sklambda.data import parse_csv, prepare
from sklambda.errors import ConfigError, DataValidationError, IntegrityError, ProblemLog
from sklambda.export import compile_fast, export
from sklambda.manifest import Manifest, open_verified, read_manifest, verify_file
from sklambda.model import LoadedModel
from sklambda.numpy_form import NumpyModel
from sklambda.retrain import GatePolicy, Scores, gate
from sklambda.training import build_pipeline, classification_metrics, confusion_matrix
from tests.helpers import PENGUINS_CSV, churn_config, churn_csv, load_event

pytestmark = pytest.mark.unit

# The numpy form is checked on unknown category codes on purpose.
DELIBERATE_UNKNOWN_CODE = pytest.mark.filterwarnings("ignore:Found unknown categories:UserWarning")


def penguins_config(**changes: Any) -> Any:
    raw: dict[str, Any] = {
        "name": "penguins",
        "task": "classification",
        "target": {"name": "species"},
        "features": [
            {"name": "island", "type": "category"},
            {"name": "bill_length_mm", "type": "number", "required": False},
            {"name": "bill_depth_mm", "type": "number", "required": False},
            {"name": "flipper_length_mm", "type": "number", "required": False},
            {"name": "body_mass_g", "type": "number", "transform": "log", "required": False},
            {"name": "sex", "type": "category", "required": False},
        ],
        "estimator": {"kind": "logistic_regression"},
        "evaluation": {"cv_folds": 3},
    }
    raw.update(changes)
    return parse_config(raw)


def churn_data(config: Any = None, **csv: Any) -> Any:
    config = config or churn_config()
    return prepare(config, parse_csv(churn_csv(**csv).encode(), "churn.csv"))


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> TrainedArtifact:
    config = churn_config()
    return train_artifact(config, churn_data(config), tmp_path_factory.mktemp("c") / "churn")


@pytest.fixture(scope="module")
def penguins(tmp_path_factory: pytest.TempPathFactory) -> TrainedArtifact:
    config = penguins_config()
    data = prepare(config, parse_csv(PENGUINS_CSV.read_bytes(), str(PENGUINS_CSV)))
    return train_artifact(config, data, tmp_path_factory.mktemp("p") / "penguins")


def served(folder: Path, model_format: str = "npz") -> LoadedModel:
    manifest = read_manifest(folder)
    info = manifest.numpy_artifact if model_format == "npz" else manifest.artifact
    assert info is not None
    return LoadedModel(manifest, open_verified(verify_file(folder / info.key, manifest, info)))


# --- config --------------------------------------------------------------------------------


def test_a_classification_config_defaults_to_log_loss_where_lower_is_better() -> None:
    config = churn_config()
    assert config.evaluation.primary_metric == "log_loss"
    assert config.evaluation.direction == "lower" and not config.higher_is_better
    assert parse_config({**_house_raw()}).evaluation.primary_metric == "r2"  # regression keeps r2


def _house_raw() -> dict[str, Any]:
    return {"name": "h", "target": {"name": "price"}, "features": [{"name": "size"}]}


@pytest.mark.parametrize(
    ("task", "kind"),
    [("classification", "linear_regression"), ("classification", "ridge")]
    + [("regression", "logistic_regression")],
)
def test_an_estimator_of_the_other_task_is_a_config_error(task: str, kind: str) -> None:
    raw = {**_house_raw(), "task": task, "estimator": {"kind": kind}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert f"estimator {kind!r} is for" in str(caught.value.details)


@pytest.mark.parametrize(
    ("task", "evaluation"),
    [
        ("classification", {"primary_metric": "r2"}),
        ("regression", {"primary_metric": "accuracy"}),
        ("classification", {"primary_metric": "accuracy", "direction": "lower"}),
        ("regression", {"primary_metric": "rmse", "direction": "higher"}),
    ],
)
def test_a_primary_metric_of_the_other_task_or_against_its_direction_is_a_config_error(
    task: str, evaluation: dict[str, str]
) -> None:
    kind = "logistic_regression" if task == "classification" else "ridge"
    raw = {**_house_raw(), "task": task, "estimator": {"kind": kind}, "evaluation": evaluation}
    with pytest.raises(ConfigError):
        parse_config(raw)


def test_a_threshold_is_refused_for_regression_and_for_three_classes() -> None:
    with pytest.raises(ConfigError, match="invalid config"):
        parse_config({**_house_raw(), "target": {"name": "price", "threshold": 0.3}})
    config = penguins_config(target={"name": "species", "threshold": 0.3})
    data = prepare(config, parse_csv(PENGUINS_CSV.read_bytes(), "penguins.csv"))
    with pytest.raises(ConfigError, match="threshold is for a binary task; species has 3"):
        train_artifact(config, data, Path("/nonexistent/never-written"))


# --- the bundled data ----------------------------------------------------------------------


def test_the_bundled_penguins_are_the_documented_copy_of_palmerpenguins_0_1_6() -> None:
    import hashlib

    digest = hashlib.sha256(PENGUINS_CSV.read_bytes()).hexdigest()
    assert digest == "f204db2c753b0937caac3cb35258562c14f073e4bbc76be24b4c51ce22767a93"
    data = prepare(penguins_config(), parse_csv(PENGUINS_CSV.read_bytes(), "penguins.csv"))
    labels, counts = np.unique(data.y, return_counts=True)
    assert dict(zip(labels.tolist(), counts.tolist(), strict=True)) == {
        "Adelie": 152,
        "Chinstrap": 68,
        "Gentoo": 124,
    }
    assert int(np.isnan(data.X).any(axis=1).sum()) == 11  # 2 unmeasured birds, 9 more sexless


# --- labels --------------------------------------------------------------------------------


def test_integer_labels_stay_integers_and_any_other_label_is_a_string() -> None:
    log = ProblemLog()
    assert read_labels("y", [" 1", "0", "-2"], log).tolist() == [1, 0, -2]
    assert read_labels("y", ["1", "yes", "2.0"], log).tolist() == ["1", "yes", "2.0"]
    assert not log


def test_a_missing_label_is_a_data_error_naming_its_line() -> None:
    text = churn_csv(rows=60).splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ",NA"
    with pytest.raises(DataValidationError) as caught:
        prepare(churn_config(), parse_csv(("\n".join(text) + "\n").encode(), "churn.csv"))
    detail = caught.value.details[0]
    assert (detail.field, detail.line) == ("churn", 6)
    assert "expected a class label" in detail.message


# --- metrics -------------------------------------------------------------------------------


def test_classification_metrics_are_scikit_learns_on_the_decided_labels() -> None:
    rng = np.random.default_rng(1)
    y = np.array(["a", "b", "c"] * 20, dtype=object)
    proba = rng.dirichlet([1, 1, 1], size=60)
    got = classification_metrics(y, proba, ["a", "b", "c"], TargetConfig(name="y"))
    predicted = np.array(["a", "b", "c"], dtype=object)[proba.argmax(axis=1)]
    assert got["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predicted))
    assert got["f1_macro"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    assert got["log_loss"] == pytest.approx(log_loss(y, proba))
    onehot = (y[:, None] == np.array(["a", "b", "c"])).astype(float)
    assert got["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    # binary: the Brier score of the positive class, as scikit-learn's
    yb = np.array([0, 1] * 30)
    pb = rng.uniform(size=60)
    binary = classification_metrics(
        yb, np.column_stack([1 - pb, pb]), [0, 1], TargetConfig(name="y")
    )
    assert binary["brier"] == pytest.approx(brier_score_loss(yb, pb))
    assert binary["roc_auc"] == pytest.approx(roc_auc_score(yb, pb))


def test_a_threshold_moves_the_decision_and_the_confusion_matrix() -> None:
    y = np.array(["no", "no", "yes", "yes"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.2, 0.8]])
    plain = TargetConfig(name="churn")
    low = TargetConfig(name="churn", threshold=0.25)
    assert confusion_matrix(y, proba, ["no", "yes"], plain) == [[2, 0], [1, 1]]
    assert confusion_matrix(y, proba, ["no", "yes"], low) == [[1, 1], [0, 2]]
    for_no = TargetConfig(name="churn", threshold=0.65, positive="no")
    assert confusion_matrix(y, proba, ["no", "yes"], for_no) == [[2, 0], [0, 2]]


def test_a_class_with_fewer_rows_than_cv_folds_is_a_data_error() -> None:
    config = churn_config(evaluation={"cv_folds": 3})
    text = churn_csv(rows=80, labels=("no", "no")).splitlines()
    text[3] = text[3].rsplit(",", 1)[0] + ",yes"
    table = parse_csv(("\n".join(text) + "\n").encode(), "churn.csv")
    with pytest.raises(DataValidationError, match=r"at least 3 rows .*'yes' \(1\)"):
        train_artifact(config, prepare(config, table), Path("/nonexistent/never-written"))


# --- training and the manifest -------------------------------------------------------------


def test_a_binary_classifier_records_classes_metrics_and_its_confusion_matrix(
    churn: TrainedArtifact,
) -> None:
    m, metrics = churn.manifest, churn.manifest.metrics
    assert m.task == "classification" and m.classes is not None
    assert m.classes.labels == ["no", "yes"]
    assert sum(m.classes.counts) == metrics["train_rows"]
    assert metrics["primary"] == "log_loss" and metrics["direction"] == "lower"
    assert set(metrics["holdout"]) == {
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "brier",
    }
    # the baseline predicts the training class shares: it ranks nobody (AUC 0.5)
    assert metrics["baseline"]["roc_auc"] == pytest.approx(0.5)
    assert metrics["holdout"]["log_loss"] < metrics["baseline"]["log_loss"]
    matrix = metrics["confusion_matrix"]["matrix"]
    assert sum(map(sum, matrix)) == metrics["holdout_rows"]
    assert m.numpy_artifact is not None  # logistic regression: served without scikit-learn


def test_a_classifier_manifest_round_trips_and_integer_labels_stay_integers(
    tmp_path: Path,
) -> None:
    config = churn_config(target={"name": "churn", "threshold": 0.3})
    data = churn_data(config, labels=(0, 1))
    manifest = train_artifact(config, data, tmp_path / "churn").manifest
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.classes is not None
    assert again.classes.labels == [0, 1] and again.classes.threshold == 0.3
    assert again.classes.positive == 1
    assert json.loads(manifest.to_json())["classes"]["labels"] == [0, 1]


def test_a_manifest_whose_task_and_classes_disagree_is_refused(churn: TrainedArtifact) -> None:
    raw = json.loads(churn.manifest.to_json())
    with pytest.raises(IntegrityError):
        Manifest.from_json(json.dumps({**raw, "classes": None}))
    three = {**raw["classes"], "labels": ["a", "b", "c"], "counts": [1, 1, 1], "threshold": 0.4}
    with pytest.raises(IntegrityError):
        Manifest.from_json(json.dumps({**raw, "classes": three}))


# --- the gate: the primary metric in its direction -----------------------------------------


def _gate(metric: str, challenger: float, best: float, baseline: float) -> str:
    policy = GatePolicy(metric, tolerance=0.01, floor=None, baseline_margin=0.05,
                        collapse_tolerance=0.25)  # fmt: skip
    scores = Scores(100, challenger, baseline, champion=best, best=("v1", best))
    return gate(policy, scores)[0]


def test_the_log_loss_gate_is_lower_is_better_and_relative() -> None:
    assert _gate("log_loss", 0.300, 0.298, baseline=0.69) == "promote"  # 0.7% worse
    assert _gate("log_loss", 0.310, 0.298, baseline=0.69) == "rejected"  # 4% worse
    assert _gate("log_loss", 0.66, 0.80, baseline=0.69) == "rejected"  # not 5% under the prior
    assert _gate("log_loss", 0.20, 0.30, baseline=0.69) == "promote"


def test_the_accuracy_gate_is_higher_is_better_and_absolute() -> None:
    assert _gate("accuracy", 0.905, 0.91, baseline=0.6) == "promote"
    assert _gate("accuracy", 0.89, 0.91, baseline=0.6) == "rejected"
    reason = gate(GatePolicy("accuracy", 0.01, None, 0.05, 0.25), Scores(100, 0.62, 0.6))[1]
    assert "the training class shares" in reason


# --- the numpy form ------------------------------------------------------------------------


def _probe(data: Any) -> np.ndarray:
    unknown, missing = data.X[:1].copy(), data.X[:1].copy()
    for j, feature in enumerate(data.schema.features):
        if feature.type == "category":
            unknown[0, j] = float(len(feature.categories) + 3)
        if feature.may_be_missing:
            missing[0, j] = np.nan
    return np.vstack([data.X, unknown, missing])


@DELIBERATE_UNKNOWN_CODE
@pytest.mark.parametrize("which", ["binary", "multiclass"])
def test_logistic_regression_numpy_form_gives_predict_proba_from_the_file(
    tmp_path: Path, which: str
) -> None:
    if which == "binary":
        config, data = churn_config(), churn_data()
    else:
        config = penguins_config()
        data = prepare(config, parse_csv(PENGUINS_CSV.read_bytes(), "penguins.csv"))
    model = build_pipeline(config, data.schema).fit(data.X, data.y)
    exported = export(model)
    assert exported is not None and exported[1] is None
    exported[0].save(tmp_path / "model.npz")
    loaded = NumpyModel.load(tmp_path / "model.npz")
    assert loaded.link == ("logistic" if which == "binary" else "softmax")
    X = _probe(data)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-9)
    with np.load(tmp_path / "model.npz") as npz:
        assert int(npz["format"]) == 3  # servers that read only format 2 refuse it


def test_a_regressors_numpy_form_is_still_written_as_format_2(tmp_path: Path) -> None:
    from tests.helpers import rents_config, rents_csv

    config = rents_config(estimator={"kind": "ridge"})
    data = prepare(config, parse_csv(rents_csv().encode(), "rents.csv"))
    exported = export(build_pipeline(config, data.schema).fit(data.X, data.y))
    assert exported is not None
    exported[0].save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as npz:
        assert int(npz["format"]) == 2 and "link" not in npz.files


@DELIBERATE_UNKNOWN_CODE
def test_a_tree_classifier_is_served_from_the_pickle_by_its_checked_fast_path(
    tmp_path: Path,
) -> None:
    config = churn_config(estimator={"kind": "random_forest", "params": {"n_estimators": 10}})
    folder = train_artifact(config, churn_data(config), tmp_path / "churn").folder
    assert read_manifest(folder).numpy_artifact is None
    model = served(folder, "joblib")
    assert model.format == "joblib" and model.fast
    pipeline = joblib.load(folder / "model.joblib")
    X = model.probe_rows()
    answer = model.answer(X)
    assert answer.probabilities is not None
    np.testing.assert_allclose(answer.probabilities, pipeline.predict_proba(X), rtol=1e-9)
    assert answer.predictions == pipeline.predict(X).tolist()
    fast = compile_fast(pipeline)
    assert fast is not None


# --- replies -------------------------------------------------------------------------------


@pytest.fixture
def serve() -> Iterator[Any]:
    def use(model: LoadedModel) -> LoadedModel:
        predict_handler.holder.use(model)
        return model

    yield use
    predict_handler.holder.reset()
    predict_handler.metrics.clear_metrics()
    cold_start.is_cold_start = True


def call(event: dict[str, Any], context: Any) -> tuple[int, Any]:
    reply = predict_handler.lambda_handler(event, context)
    body = reply["body"]
    try:
        return reply["statusCode"], json.loads(body)
    except ValueError:
        return reply["statusCode"], body


def predict_event(body: Any, accept: str = "application/json") -> dict[str, Any]:
    event = load_event("predict")
    event["body"] = json.dumps(body)
    event["headers"]["Accept"] = accept
    return event


# The events sam local invokes the classifier with (events/generate.py).
PENGUIN = json.loads(load_event("penguins_predict")["body"])
PENGUIN_MISSING = json.loads(load_event("penguins_predict_batch")["body"])["instances"][1]


def test_a_classifier_reply_has_labels_probabilities_and_the_target_for_one_record(
    penguins: TrainedArtifact, serve: Any, lambda_context: Any
) -> None:
    model = serve(served(penguins.folder))
    assert model.format == "npz"
    status, body = call(predict_event(PENGUIN), lambda_context)
    assert status == 200, body
    assert list(body)[:3] == ["predictions", "probabilities", "model"]
    assert body["predictions"] == ["Gentoo"] and body["species"] == "Gentoo"
    (probabilities,) = body["probabilities"]
    assert list(probabilities) == ["Adelie", "Chinstrap", "Gentoo"]
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert max(probabilities, key=probabilities.__getitem__) == "Gentoo"
    status, batch = call(predict_event({"instances": [PENGUIN, PENGUIN_MISSING]}), lambda_context)
    assert status == 200 and "species" not in batch
    assert batch["predictions"] == ["Gentoo", "Adelie"]  # bill length and sex missing


def test_integer_labels_stay_integers_in_json_and_the_threshold_decides(
    tmp_path: Path, serve: Any, lambda_context: Any
) -> None:
    config = churn_config(target={"name": "churn", "threshold": 0.05})
    folder = train_artifact(config, churn_data(config, labels=(0, 1)), tmp_path / "c").folder
    model = serve(served(folder))
    outputs = open_inference.metadata(model)["outputs"]
    assert [o["datatype"] for o in outputs] == ["INT64", "FP64"]  # V2: integer labels
    record = {"tenure": 40.0, "plan": "plus", "calls": 1, "paperless": "yes"}
    status, body = call(predict_event(record), lambda_context)
    assert status == 200, body
    (probabilities,) = body["probabilities"]
    assert list(probabilities) == ["0", "1"]  # JSON keys are text; the labels stay integers
    assert probabilities["1"] < 0.5 and probabilities["1"] >= 0.05
    assert body["predictions"] == [1] and body["churn"] == 1  # the low threshold says churn


def test_accept_text_csv_gets_the_label_then_each_class_probability(
    penguins: TrainedArtifact, serve: Any, lambda_context: Any
) -> None:
    serve(served(penguins.folder))
    status, text = call(
        predict_event({"instances": [PENGUIN, PENGUIN]}, "text/csv"), lambda_context
    )
    assert status == 200
    lines = text.splitlines()
    assert len(lines) == 2
    label, *probabilities = lines[0].split(",")
    assert label == "Gentoo" and len(probabilities) == 3
    assert sum(map(float, probabilities)) == pytest.approx(1.0)


def test_v2_infer_answers_labels_and_an_fp64_probability_tensor(
    penguins: TrainedArtifact, serve: Any, lambda_context: Any
) -> None:
    serve(served(penguins.folder))
    event = load_event("v2_infer")
    event["path"], event["pathParameters"] = "/v2/models/penguins/infer", {"name": "penguins"}
    inputs = [
        {"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64",
         "data": [v]}
        for k, v in PENGUIN.items()
    ]  # fmt: skip
    event["body"] = json.dumps({"inputs": inputs})
    status, body = call(event, lambda_context)
    assert status == 200, body
    labels, proba = body["outputs"]
    assert labels == {"name": "predictions", "datatype": "BYTES", "shape": [1], "data": ["Gentoo"]}
    assert proba["name"] == "probabilities" and proba["datatype"] == "FP64"
    assert proba["shape"] == [1, 3] and sum(proba["data"]) == pytest.approx(1.0)
    event = load_event("v2_model_metadata")
    event["path"], event["pathParameters"] = "/v2/models/penguins", {"name": "penguins"}
    status, metadata = call(event, lambda_context)
    assert metadata["outputs"][1] == {
        "name": "probabilities",
        "datatype": "FP64",
        "shape": [-1, 3],
    }


def test_get_model_names_the_classes_their_counts_and_the_decision_rule(
    churn: TrainedArtifact, serve: Any, lambda_context: Any
) -> None:
    serve(served(churn.folder))
    status, body = call(load_event("model_info"), lambda_context)
    assert status == 200
    assert body["task"] == "classification"
    assert body["classes"]["labels"] == ["no", "yes"]
    assert body["classes"]["threshold"] is None


def test_batch_out_rows_carry_each_class_probability(penguins: TrainedArtifact) -> None:
    model = served(penguins.folder)
    rows = [
        {k: "" if v is None else str(v) for k, v in r.items()} for r in (PENGUIN, PENGUIN_MISSING)
    ]
    scored, rejected = score_rows(model, [Item(i, r) for i, r in enumerate(rows)], "csv")
    assert not rejected
    assert out_header(model) == (
        "line",
        "prediction",
        "probability_Adelie",
        "probability_Chinstrap",
        "probability_Gentoo",
    )
    assert [row[:2] for row in scored] == [(2, "Gentoo"), (3, scored[1][1])]
    assert all(len(row) == 5 and sum(row[2:]) == pytest.approx(1.0) for row in scored)


# --- the CLI -------------------------------------------------------------------------------


def test_the_cli_shows_a_classifiers_metrics_classes_and_confusion_matrix(
    churn: TrainedArtifact,
) -> None:
    from training.cli import describe, format_metrics, format_run

    text = format_metrics(churn.manifest.metrics)
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "brier"):
        assert f"\n{name} " in text
    assert "r2" not in text and "true \\ predicted" in text
    assert "baseline: predicting the training class shares" in text
    counts = churn.manifest.classes.counts if churn.manifest.classes else []
    assert f"classes: no ({counts[0]:,}), yes ({counts[1]:,}); predicts: most probable" in describe(
        churn.manifest
    )
    holdout = churn.manifest.metrics["holdout"]
    run = {
        "run_id": "r1",
        "status": "promoted",
        "reason": "better",
        "champion": {"version": "v1", "holdout": holdout},
        "challenger": {"version": "v2", "metrics": {"holdout": holdout}},
    }
    assert "\nlog_loss " in format_run(run) and "\nr2 " not in format_run(run)


def test_openapi_describes_probabilities_with_an_example() -> None:
    from sklambda.api import PredictResponse

    schema = PredictResponse.model_json_schema()["properties"]
    assert schema["probabilities"]["examples"] == [[{"no": 0.12, "yes": 0.88}]]
    assert "each class label's probability" in schema["probabilities"]["description"]
    assert ["Adelie", "Gentoo"] in schema["predictions"]["examples"]


@pytest.mark.tooling
def test_sam_local_check_judges_the_classifier_events_replies(
    penguins: TrainedArtifact, serve: Any, lambda_context: Any
) -> None:
    from tools.sam_local import check

    model = serve(served(penguins.folder))
    version = model.manifest.version
    for name in ("penguins_predict", "penguins_predict_batch"):
        event = load_event(name)
        reply = predict_handler.lambda_handler(event, lambda_context)
        request = json.loads(event["body"])
        judged = check.check_classifier_reply(request, reply["statusCode"], reply["body"], version)
        assert judged is None, judged
    regression_like = json.dumps({"predictions": [1.0], "model": {"version": version}})
    assert check.check_classifier_reply(PENGUIN, 200, regression_like, version)
