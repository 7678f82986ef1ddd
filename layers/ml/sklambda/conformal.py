"""Prediction intervals of a regressor by cross-conformal prediction: numpy only, no scikit-learn.

Training (sklambda.training) gives this module out-of-fold residuals on the model's scale (the
log scale for a log target). A level's half-width is the conformal quantile of their absolute
values: the ceil((n+1)c)-th smallest of n, so that a new row's residual falls within it with
probability at least c when rows are exchangeable (the finite-sample correction; a level whose
index passes n cannot be promised by n residuals, and is left out). An interval is the
prediction on the model's scale plus or minus the half-width, then back on the target's scale:
for a log target [p·e^-q, p·e^q], asymmetric around p.

The manifest records, per level of a grid, the half-width served and the coverage MEASURED on
the holdout: the share of holdout rows inside the interval that the same recipe, calibrated on
the training split alone, gives the model fitted on it (IntervalInfo.measured_on says what that
means when the served model was refitted on every row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sklambda.errors import RequestError
from sklambda.options import query_value

# The levels a request may ask for; the configured default is added when it is not one of them.
GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
DEFAULT_COVERAGE = 0.9
Scale = Literal["identity", "log"]
_MATCH = 1e-9  # a requested level is a recorded one when it is this close


class IntervalLevel(BaseModel):
    """One level: the half-width served, on the model's scale, and the holdout's coverage."""

    model_config = ConfigDict(frozen=True)
    coverage: float = Field(gt=0.0, lt=1.0, description="nominal: the share promised")
    half_width: float = Field(ge=0.0, description="on the model's scale (see scale)")
    holdout_coverage: float | None = Field(
        default=None, ge=0.0, le=1.0, description="the share of holdout rows inside (measured)"
    )


class IntervalInfo(BaseModel):
    """A regressor's conformal intervals, as the manifest records them."""

    model_config = ConfigDict(frozen=True)
    method: Literal["cross_conformal"] = "cross_conformal"
    scale: Scale = Field(description="where half-widths apply: identity, or log (log target)")
    default: float = Field(gt=0.0, lt=1.0, description="the configured coverage (true asks it)")
    residual_rows: int = Field(ge=1, description="out-of-fold residuals the half-widths are from")
    holdout_rows: int = Field(ge=0)
    measured_on: str = Field(description="what holdout_coverage measures")
    levels: list[IntervalLevel] = Field(min_length=1)

    @property
    def coverages(self) -> list[float]:
        return [level.coverage for level in self.levels]

    def level(self, coverage: float) -> IntervalLevel:
        """The recorded level `coverage`; 400 listing the levels when there is none."""
        for level in self.levels:
            if abs(level.coverage - coverage) < _MATCH:
                return level
        raise RequestError(
            f"intervals: no {coverage:g} level; this model has "
            + ", ".join(f"{c:g}" for c in self.coverages)
            + f" (true: the default, {self.default:g})",
            code="invalid_intervals",
        )

    def measured(self, coverage: float) -> float | None:
        """The holdout coverage measured at a level; None when it has none (or no such level)."""
        found = [lv for lv in self.levels if abs(lv.coverage - coverage) < _MATCH]
        return found[0].holdout_coverage if found else None

    def summary(self) -> str:
        """One line for people: the default level's measured coverage, and 0.8's and 0.95's."""
        measured = self.measured(self.default)
        head = f"{self.default:.0%} nominal: " + (
            f"{measured:.1%} of {self.holdout_rows:,} holdout rows inside"
            if measured is not None
            else "not measured"
        )
        others = [
            f"{c:.0%}: {m:.1%}"
            for c in (0.8, 0.95)
            if c != self.default and (m := self.measured(c)) is not None
        ]
        return head + (f" ({', '.join(others)})" if others else "") + f"; {self.scale} scale"

    def bounds(self, predictions: Iterable[float], coverage: float) -> list[list[float]]:
        """[low, high] per prediction (target scale), at a recorded level. Plain Python: the
        predictions are a list already, and one row is the case to keep fast (~1 us a row)."""
        q = self.level(coverage).half_width
        if self.scale == "log":
            low, high = math.exp(-q), math.exp(q)
            return [[p * low, p * high] for p in predictions]
        return [[p - q, p + q] for p in predictions]


def conformal_quantile(scores: np.ndarray, coverage: float) -> float | None:
    """The ceil((n+1)·coverage)-th smallest of n nonconformity scores; None when that index
    passes n (too few scores to promise the level)."""
    n = len(scores)
    k = math.ceil((n + 1) * coverage - _MATCH)  # 100 * 0.55 is 55.00000000000001 in floats
    if n == 0 or k > n:
        return None
    return float(np.partition(np.asarray(scores, dtype=np.float64), k - 1)[k - 1])


def to_model_scale(values: np.ndarray, scale: Scale) -> np.ndarray:
    """Targets or predictions on the scale the model is fitted on."""
    with np.errstate(all="ignore"):
        return np.log(values) if scale == "log" else np.asarray(values, dtype=np.float64)


def residuals(y: np.ndarray, predicted: np.ndarray, scale: Scale) -> np.ndarray:
    """Absolute residuals on the model's scale (nonconformity scores); a prediction that is not
    finite there (an overflow) is as far off as can be: infinity."""
    scores = np.abs(to_model_scale(y, scale) - to_model_scale(predicted, scale))
    return np.where(np.isnan(scores), np.inf, scores)


def interval_info(
    *,
    served: np.ndarray,
    calibration: np.ndarray,
    holdout: np.ndarray,
    default: float,
    scale: Scale,
    measured_on: str,
    grid: Iterable[float] = GRID,
) -> IntervalInfo | None:
    """The manifest's record from absolute residuals: `served`, out-of-fold on the rows the
    served model is fitted on (its half-widths); `calibration`, out-of-fold on the training
    split, and `holdout`, of the model fitted on the training split on the holdout (the
    measured coverage). Levels `served` cannot promise are left out; None when that is all."""
    levels = []
    for coverage in sorted({*grid, default}):
        half = conformal_quantile(served, coverage)
        if half is None or not math.isfinite(half):
            continue
        check = conformal_quantile(calibration, coverage)
        measured = float(np.mean(holdout <= check)) if check is not None and len(holdout) else None
        levels.append(IntervalLevel(coverage=coverage, half_width=half, holdout_coverage=measured))
    if not levels:
        return None
    return IntervalInfo(
        scale=scale,
        default=default,
        residual_rows=len(served),
        holdout_rows=len(holdout),
        measured_on=measured_on,
        levels=levels,
    )


def requested_coverage(value: Any, default: float, where: str = "body") -> float | None:
    """The coverage a request asks for: `intervals` as JSON gives it in the body or V2
    parameters (true, false, a number), or as text in the query string (sklambda.options:
    "true", "false", a decimal such as 0.9); None when it asks none. 400 for anything else
    (null, an integer however large, NaN, text outside the query grammar)."""
    if where == "query" and isinstance(value, str):
        value = query_value(value)
    if value is False:
        return None
    if value is True:
        return default
    # A float only: an integer is never strictly between 0 and 1, and math.isfinite() of a huge
    # one (10**400, valid JSON) raises OverflowError. NaN fails the comparison.
    if isinstance(value, float) and 0.0 < value < 1.0:
        return value
    shown = repr(value) if isinstance(value, (str, int, float)) else type(value).__name__
    raise RequestError(
        f"'intervals' ({where}) must be true, false, or a coverage between 0 and 1 such as "
        f"0.9, got {shown[:40]}",
        code="invalid_intervals",
    )


@dataclass(frozen=True)
class Asked:
    """Intervals a request asked for, at a level the model has."""

    info: IntervalInfo
    coverage: float

    def bounds(self, predictions: list[Any]) -> list[list[float]]:
        """[low, high] per prediction, on the target's scale."""
        return self.info.bounds(predictions, self.coverage)


def asked(
    info: IntervalInfo | None, value: Any, where: str, *, classifier: bool, model: str
) -> Asked | None:
    """What a request's `intervals` option (given in `where`: requested_coverage) asks of
    `model` (name and version): None when it asks none; 400 when it asks a classifier, a model
    trained before intervals were recorded, or a level the model has not (IntervalInfo.level)."""
    default = info.default if info is not None else DEFAULT_COVERAGE
    coverage = requested_coverage(value, default, where)
    if coverage is None:
        return None
    if classifier:
        raise RequestError(
            f"intervals are for regression models; {model} is a classifier (its probabilities "
            "say how sure it is)",
            code="intervals_unavailable",
        )
    if info is None:
        raise RequestError(
            f"model {model} has no interval data (it was trained before intervals were "
            "recorded); retrain it to serve intervals",
            code="intervals_unavailable",
        )
    info.level(coverage)
    return Asked(info, coverage)
