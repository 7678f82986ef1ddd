"""The reference profile: what the training rows and the model's predictions on them looked like,
stored in the manifest so a monitor can tell when live traffic moves away from them.

numpy and pydantic only (it is read wherever a manifest is read, including a predict cold start).
Numbers and integers keep quantile bin edges with each bin's share (for PSI) and a fine grid of
quantiles (the training distribution function, for a KS statistic); categories and booleans keep
each level's share. Every share is of all training rows, the missing share beside them, so a
feature's shares sum to 1. A regressor's predictions are profiled as a number; a classifier's as
the share of each predicted label (keyed by the label's text: "Adelie", "1"). Manifests written
before that hold a classifier's predicted class index as a number; sklambda.monitor reads both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sklambda.classes import Label
from sklambda.schema import Feature, FeatureSchema

PSI_BINS = 10
# 51 quantiles (every 2%): the training CDF rebuilt from them by linear interpolation is exact
# at each of them and off by less than 0.02 between, so a KS statistic against it is within
# 0.02 of the one against the training rows themselves; ~0.5 KB a feature.
KS_QUANTILES = 51
MISSING_LEVEL = "(missing)"


def _round(value: float) -> float:
    """Six significant digits: a profile stays a few KB and bins are decided on the stored
    edges, so rounding never disagrees with itself."""
    return float(f"{value:.6g}")


class NumericProfile(BaseModel):
    """A number's (or the prediction's) distribution on the training rows."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["numeric"] = "numeric"
    # Interior edges: bin i holds edges[i-1] <= x < edges[i]; the end bins are open, so a live
    # value beyond the training range still falls in a bin.
    edges: list[float]
    shares: list[float]
    missing: float = 0.0
    quantiles: list[float]

    def bin_shares(self, values: np.ndarray) -> list[float]:
        """Shares of `values` (NaN: missing) in this profile's bins, then the missing share."""
        return _bin_shares(np.asarray(values, dtype=np.float64), self.edges)


class LevelProfile(BaseModel):
    """A category's or a boolean's level shares on the training rows."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["levels"] = "levels"
    shares: dict[str, float]
    missing: float = 0.0


FeatureProfile = Annotated[NumericProfile | LevelProfile, Field(discriminator="kind")]


class ReferenceProfile(BaseModel):
    """Each feature's profile by name, and the predictions', on `rows` training rows."""

    model_config = ConfigDict(frozen=True)
    rows: int = Field(gt=0)
    features: dict[str, FeatureProfile]
    # A regressor's: numeric; a classifier's: levels (each predicted label's share).
    prediction: FeatureProfile


def _bin_shares(values: np.ndarray, edges: list[float]) -> list[float]:
    if values.size == 0:
        return [0.0] * (len(edges) + 2)
    present = values[~np.isnan(values)]
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), present, side="right"), minlength=len(edges) + 1
    )
    return [*(counts / values.size).tolist(), float((values.size - present.size) / values.size)]


def numeric_profile(values: np.ndarray, bins: int = PSI_BINS) -> NumericProfile:
    """Quantile bins (fewer when values repeat: edges are distinct) and the KS quantile grid."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size == 0:
        return NumericProfile(edges=[], shares=[0.0], missing=1.0, quantiles=[])
    inner = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    edges = sorted({_round(e) for e in inner.tolist()})
    *shares, missing = _bin_shares(values, edges)
    grid = np.quantile(present, np.linspace(0, 1, KS_QUANTILES))
    return NumericProfile(
        edges=edges,
        shares=[_round(s) for s in shares],
        missing=_round(missing),
        quantiles=[_round(q) for q in grid.tolist()],
    )


def level_profile(feature: Feature, codes: np.ndarray) -> LevelProfile:
    """Shares of each level (categories by name, booleans as "false"/"true") and of missing."""
    names = list(feature.categories) if feature.type == "category" else ["false", "true"]
    return _level_shares(names, codes)


def label_text(label: object) -> str:
    """A class label's name in a profile and a drift report: its text, a whole number without
    a decimal point (a label file may write 1.0 for the label 1)."""
    if isinstance(label, float) and label.is_integer():
        return str(int(label))
    return str(label)


def label_profile(labels: Sequence[Label], indices: np.ndarray) -> LevelProfile:
    """A classifier's predictions (the index of each decided label) as each label's share."""
    return _level_shares([label_text(label) for label in labels], indices)


def _level_shares(names: list[str], codes: np.ndarray) -> LevelProfile:
    codes = np.asarray(codes, dtype=np.float64)
    present = codes[~np.isnan(codes)].astype(np.int64)
    counts = np.bincount(present, minlength=len(names)) if present.size else np.zeros(len(names))
    total = max(codes.size, 1)
    return LevelProfile(
        shares={name: _round(float(c) / total) for name, c in zip(names, counts, strict=True)},
        missing=_round(float(codes.size - present.size) / total),
    )


def reference_profile(
    schema: FeatureSchema,
    X: np.ndarray,
    predictions: np.ndarray,
    classes: Sequence[Label] | None = None,
) -> ReferenceProfile:
    """The profile of the encoded training rows X (schema order) and the model's predictions:
    numbers, or for a classifier (`classes`: its labels) the index of each decided label."""
    features: dict[str, NumericProfile | LevelProfile] = {}
    for j, feature in enumerate(schema.features):
        column = X[:, j]
        features[feature.name] = (
            numeric_profile(column)
            if feature.type in ("number", "integer")
            else level_profile(feature, column)
        )
    prediction = (
        numeric_profile(predictions) if classes is None else label_profile(classes, predictions)
    )
    return ReferenceProfile(rows=int(X.shape[0]), features=features, prediction=prediction)


def level_name(feature: Feature, value: float) -> str:
    """The profile's name for an encoded category code or boolean (NaN: missing)."""
    if math.isnan(value):
        return MISSING_LEVEL
    if feature.type == "category":
        return feature.categories[int(value)]
    return "true" if value else "false"
