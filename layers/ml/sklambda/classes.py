"""A classifier's class labels: read from a target column, and decided from probabilities.

numpy only: serving imports it on a cold start. Labels are integers when every value of the
target column is one (written as such in a CSV: "0", "1", "-2"), else strings; JSON replies keep
that type. Probability columns are in the order of the sorted labels, scikit-learn's
`classes_` order, which the manifest records (sklambda.manifest.ClassInfo).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from sklambda.errors import Problem, ProblemLog

Label = int | str
_INTEGER = re.compile(r"[+-]?[0-9]+")
MISSING_TEXT = ("", "na", "nan", "null", "none")


def read_labels(name: str, column: Sequence[Any], problems: ProblemLog) -> np.ndarray:
    """The target column as labels: an int64 array when every value is an integer, else an
    object array of stripped strings. A missing label is a problem of its row."""
    values: list[Any] = []
    for row, raw in enumerate(column):
        value = raw.strip() if isinstance(raw, str) else raw
        if value is None or (isinstance(value, float) and not np.isfinite(value)):
            value = ""
        if isinstance(value, str) and value.lower() in MISSING_TEXT:
            problems.add(Problem(name, f"expected a class label, got {raw!r}", row))
            value = ""
        values.append(value)
    if all(_is_integer(v) for v in values if v != ""):
        return np.array([int(v) if v != "" else 0 for v in values], dtype=np.int64)
    return np.array([str(v) for v in values], dtype=object)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and _INTEGER.fullmatch(value) is not None


def json_label(value: Any) -> Label:
    """A label as JSON carries it: a Python int or str (not numpy's)."""
    return int(value) if isinstance(value, (int, np.integer)) else str(value)


def positive_index(classes: Sequence[Label], positive: Label | None) -> int:
    """The column of the class a binary threshold is for: `positive`, matched by its text (a
    config may write 1 or "1"), else the last of the two."""
    if positive is None:
        return len(classes) - 1
    for i, label in enumerate(classes):
        if str(label) == str(positive):
            return i
    raise ValueError(f"positive class {positive!r} is not one of the labels {list(classes)}")


def decide(proba: np.ndarray, threshold: float | None = None, positive: int = 1) -> np.ndarray:
    """Each row's class index: the most probable class (scikit-learn's rule: the first on a
    tie), or for a binary task with a threshold, `positive` when its probability is at least
    the threshold and the other class otherwise."""
    if threshold is None:
        most: np.ndarray = np.argmax(proba, axis=1)
        return most
    chosen: np.ndarray = np.where(proba[:, positive] >= threshold, positive, 1 - positive)
    return chosen
