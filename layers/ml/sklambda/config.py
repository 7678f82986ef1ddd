"""Model config: one TOML file per model, parsed into typed, immutable pydantic models."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sklambda.errors import ConfigError, Problem
from sklambda.names import ModelName

FeatureType = Literal["number", "integer", "boolean", "category"]
EstimatorKind = Literal[
    "linear_regression",
    "ridge",
    "logistic_regression",
    "gradient_boosting",
    "random_forest",
    "hist_gradient_boosting",
]
Task = Literal["regression", "classification"]
# The estimator kinds of each task (sklambda.training maps each to its scikit-learn class; the
# tree kinds have a regressor and a classifier of the same name).
KINDS: dict[str, tuple[str, ...]] = {
    "regression": (
        "linear_regression",
        "ridge",
        "gradient_boosting",
        "random_forest",
        "hist_gradient_boosting",
    ),
    "classification": (
        "logistic_regression",
        "gradient_boosting",
        "random_forest",
        "hist_gradient_boosting",
    ),
}
# Each metric a model can be gated on, and whether a higher value is better. Regression metrics
# are on the target's own scale; classification metrics on the holdout's labels and
# probabilities (sklambda.training.classification_metrics).
METRIC_HIGHER_IS_BETTER: dict[str, bool] = {
    "r2": True,
    "rmse": False,
    "mae": False,
    "mape": False,
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "brier": False,
}
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("r2", "rmse", "mae", "mape"),
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "brier",
    ),
}
DEFAULT_PRIMARY = {"regression": "r2", "classification": "log_loss"}
Label = int | str  # a class label: integers stay integers, anything else is a string


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# The top-level keys of a JSON request body that are not features: request formats
# (request_formats.decode) and request options (options.OPTIONS). A single-record body is a mapping
# of feature names, so a feature with one of these names could not be told apart from them.
RESERVED_FEATURE_NAMES = frozenset(
    {"instances", "dataframe_split", "dataframe_records", "explain", "intervals"}
)


class FeatureConfig(_Frozen):
    """One input column: its type, whether it may be missing, and an optional log transform."""

    name: str = Field(min_length=1)
    type: FeatureType = "number"
    transform: Literal["none", "log"] = "none"
    # A feature that is not required may be missing or empty, and the model learns from that:
    # a number, integer or boolean is imputed with its training median and flagged by an
    # indicator column (the indicator rule: every optional feature gets one, whatever its share
    # of missing cells); a category gets a level of its own (never the reference level). The
    # manifest records this per feature ("missing"). A required feature refuses missing values.
    required: bool = True
    # For categories: the allowed values. Left empty, they are learned from the training data.
    categories: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        if self.name in RESERVED_FEATURE_NAMES:
            raise ValueError(
                f"feature {self.name!r}: the name is a request key "
                f"({', '.join(sorted(RESERVED_FEATURE_NAMES))}); rename the column"
            )
        if self.transform == "log" and self.type not in ("number", "integer"):
            raise ValueError(f"feature {self.name!r}: a log transform needs a number or integer")
        if self.categories and self.type != "category":
            raise ValueError(f"feature {self.name!r}: categories are only for type 'category'")
        return self


class TargetConfig(_Frozen):
    name: str = Field(min_length=1)
    transform: Literal["none", "log"] = "none"
    # Classification, binary tasks only: predict `positive` (default: the second of the two
    # labels in sorted order, the column scikit-learn's predict_proba puts last) when its
    # probability is at least `threshold`; without a threshold, the most probable label.
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    positive: Label | None = None


class DataConfig(_Frozen):
    # A local path, relative to the config file, or an s3://bucket/key URL (used by retraining).
    source: str = ""


class EstimatorConfig(_Frozen):
    kind: EstimatorKind = "linear_regression"
    params: dict[str, Any] = Field(default_factory=dict)


class EvaluationConfig(_Frozen):
    cv_folds: int = Field(default=5, ge=2, le=20)
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)
    seed: int = 42
    min_rows: int = Field(default=30, ge=5)
    # The metric the retrain gate compares (and its direction, which is the metric's own:
    # METRIC_HIGHER_IS_BETTER). Default: r2 for regression, log_loss for classification.
    primary_metric: str = ""
    direction: Literal["higher", "lower", ""] = ""
    # Retraining promotes only a challenger whose holdout primary metric reaches this bar
    # (r2: at least; error metrics: at most). None: the baseline below is the only fixed bar.
    promotion_floor: float | None = None
    # A challenger must beat a trivial baseline (predicting the training mean), scored on the same
    # holdout, by this much (r2: absolute; error metrics: relative). Comparing with the champion
    # alone cannot catch broken labels, where the champion scores badly too.
    baseline_margin: float = Field(default=0.05, ge=0.0)
    # A champion whose holdout score on the new data is worse than the score recorded when it was
    # trained by more than this (r2: absolute; error metrics: relative) holds the run for a
    # person: broken labels or a changed world, which no automatic promotion should paper over.
    collapse_tolerance: float = Field(default=0.25, gt=0.0)
    # What the published model is fitted on, once CV and the holdout have evaluated the
    # specification. "train_split": the training split only, so its holdout metrics are its own
    # and scheduled retraining can score it on rows it has not seen (the default). "all_rows":
    # refitted on every row (e.g. to reproduce a published regression); the holdout metrics are
    # then those of the fit on the training split, and retraining compares such a champion by
    # its recorded holdout (sklambda.retrain).
    final_fit: Literal["train_split", "all_rows"] = "train_split"
    # Regression: the coverage of the prediction intervals a request gets with
    # "intervals": true (sklambda.conformal; other levels of its grid may be asked by number).
    interval_coverage: float = Field(default=0.9, gt=0.0, lt=1.0)


class CardConfig(_Frozen):
    """The model card's words, written by a person (the `[card]` table, all optional): shown in
    the model report (training/report.py) beside what the manifest records."""

    intended_use: str = ""
    limitations: str = ""
    owner: str = ""


class ModelConfig(_Frozen):
    """Everything needed to train one model, reproducibly."""

    name: ModelName  # it names the registry folder models/<name>/ (sklambda.names)
    task: Task = "regression"
    data: DataConfig = DataConfig()
    target: TargetConfig
    features: tuple[FeatureConfig, ...] = Field(min_length=1)
    estimator: EstimatorConfig = EstimatorConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    card: CardConfig = CardConfig()
    # A category value the model has not seen, in a prediction request: "reject" answers 422
    # naming it (the default, as before); "warn" predicts it as a missing value (the feature's
    # missing level) and says so in the reply's warnings. Training data are always checked
    # strictly: a value outside a category's listed values is a data error.
    unknown_categories: Literal["reject", "warn"] = "reject"

    @model_validator(mode="after")
    def _unique_names(self) -> ModelConfig:
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed twice: {', '.join(dupes)}")
        if self.target.name in names:
            raise ValueError(f"the target {self.target.name!r} is also listed as a feature")
        return self

    @model_validator(mode="before")
    @classmethod
    def _primary_default(cls, raw: Any) -> Any:
        """The task's default primary metric when none is named; its direction filled in."""
        if not isinstance(raw, dict):
            return raw
        evaluation = raw.get("evaluation", {})
        if isinstance(evaluation, EvaluationConfig):
            evaluation = evaluation.model_dump()
        if not isinstance(evaluation, dict):
            return raw
        task = raw.get("task", "regression")
        metric = evaluation.get("primary_metric") or DEFAULT_PRIMARY.get(task, "r2")
        higher = METRIC_HIGHER_IS_BETTER.get(metric)
        direction = evaluation.get("direction") or (
            "" if higher is None else ("higher" if higher else "lower")
        )
        evaluation = {**evaluation, "primary_metric": metric, "direction": direction}
        return {**raw, "evaluation": evaluation}

    @model_validator(mode="after")
    def _fits_the_task(self) -> ModelConfig:
        task, kind, ev = self.task, self.estimator.kind, self.evaluation
        if kind not in KINDS[task]:
            other = next(t for t in KINDS if kind in KINDS[t])
            raise ValueError(
                f"estimator {kind!r} is for {other}, not {task}; for {task}: "
                + ", ".join(KINDS[task])
            )
        if ev.primary_metric not in TASK_METRICS[task]:
            raise ValueError(
                f"primary_metric {ev.primary_metric!r} is not a {task} metric; one of "
                + ", ".join(TASK_METRICS[task])
            )
        own = "higher" if METRIC_HIGHER_IS_BETTER[ev.primary_metric] else "lower"
        if ev.direction != own:
            raise ValueError(f"direction {ev.direction!r}: for {ev.primary_metric} {own} is better")
        if task == "classification" and self.target.transform != "none":
            raise ValueError("a classification target takes no transform")
        if task == "regression" and (
            self.target.threshold is not None or self.target.positive is not None
        ):
            raise ValueError("threshold and positive are for binary classification only")
        if self.target.positive is not None and self.target.threshold is None:
            raise ValueError("positive names the class a threshold is for: set threshold too")
        return self

    @property
    def higher_is_better(self) -> bool:
        return self.evaluation.direction == "higher"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def parse_config(raw: dict[str, Any], origin: str = "") -> ModelConfig:
    """Validate a config mapping; errors name each offending key."""
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [
            Problem(".".join(str(p) for p in err["loc"]) or None, err["msg"])
            for err in exc.errors()
        ]
        raise ConfigError(f"invalid config {origin}".strip(), problems) from None


def load_config(path: str | Path) -> ModelConfig:
    """Read a TOML config; a relative data source is resolved against the config's folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    config = parse_config(raw, str(path))
    source = config.data.source
    if source and "://" not in source and not Path(source).is_absolute():
        resolved = (path.parent / source).resolve()
        config = config.model_copy(update={"data": DataConfig(source=str(resolved))})
    return config
