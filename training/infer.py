"""Config inference for `python -m training init`: a commented TOML config from one CSV.

Each column's type, whether it may be empty, which columns to leave out and why, the target's
transform and an estimator, written as a file that sklambda.config.load_config accepts.

Training only: nothing here is needed to serve a model, so it stays out of the Lambda layer.
Values are read with the feature schema's own rules (sklambda.schema.Feature.convert), so a type
inferred here is one that `train` accepts for every cell of the same file.
"""

from __future__ import annotations

import json
import math
import os
import re
import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from sklambda.data import Table, read_csv
from sklambda.errors import ConfigError, Problem
from sklambda.names import validate_name
from sklambda.schema import Feature

Task = Literal["regression", "classification"]

# --- the rules' thresholds (each is explained where it is used) ------------------------------
MAX_LEVELS = 50  # a category with more levels is left out (one-hot columns with few rows each)
ROWS_PER_LEVEL = 5  # ... and so is one with fewer than this many rows per level on average
RARE_LEVEL = 0.01  # levels on fewer than 1% of rows are named as rare in the config
ALMOST_EMPTY = 0.01  # a column with values in fewer than 1% of its cells is left out
NEARLY_UNIQUE = 0.95  # a text column with this share of distinct values is an identifier
MIN_ROWS_FOR_IDENTIFIER = 10
FREE_TEXT_WORDS = 3.0  # mean words per distinct value, among many distinct values: free text
LEAKAGE_RANK_CORRELATION = 0.99  # |Spearman| with the target at or above this: a leakage
MIN_ROWS_PER_SPLIT = 5  # levels needed to call disjoint target ranges a function of the target
SKEWED_TARGET = 0.75  # skewness above which a positive target is modelled on the log scale
SKEWED_FEATURE = 1.0  # ... and a positive feature gets a log (linear estimators only)
MIN_DISTINCT_FOR_LOG = 20  # small counts (rooms, floors) keep their scale
SMALL_TABLE_ROWS = 1_000  # fewer rows: a regularised linear model
WIDE_TABLE_FEATURES = 20  # at least this many features, or
MANY_EMPTY_CELLS = 0.05  # ... this share of empty feature cells, with many rows: boosting
MANY_CLASSES = 50
LARGE_TABLE_ROWS = 50_000  # from here on, 3-fold cross-validation instead of 5
_ID_WORDS = frozenset(
    {"id", "pid", "uid", "uuid", "guid", "key", "code", "index", "idx", "no", "num", "number"}
    | {"order", "row", "rownames", "rowid", "serial"}
)
_INTEGER_TEXT = re.compile(r"[+-]?\d+")
_MISSING = Feature("probe", "boolean", required=False)  # the schema's own idea of an empty cell
_NUMBER = Feature("probe", "number")
_BOOLEAN = Feature("probe", "boolean")


@dataclass(frozen=True)
class ColumnReport:
    """One CSV column as init reads it, and what the config does with it."""

    name: str
    kind: str  # number | integer | boolean | category (as the values read) | empty
    rows: int
    missing: int
    distinct: int
    described: str  # levels or range, for the summary table and the config's comments
    left_out: str | None = None  # the short reason: identifier, constant, free text, leakage, ...
    why: str = ""  # the reason in a sentence, or a note on a feature
    transform: str = "none"
    is_target: bool = False
    levels: tuple[tuple[str, int], ...] = ()  # a category's levels and rows, most common first
    notes: tuple[str, ...] = ()

    @property
    def rare_levels(self) -> tuple[str, ...]:
        """Levels on fewer than RARE_LEVEL of the rows: learned like the others, but from few."""
        return tuple(level for level, count in self.levels if count < RARE_LEVEL * self.rows)

    @property
    def required(self) -> bool:
        return self.missing == 0

    @property
    def empty_share(self) -> str:
        """The share of empty cells as shown: "-" for none, "<0.1%" for a few, "16.7%"."""
        return _share(self.missing, self.rows, 1) if self.missing else "-"

    @property
    def decision(self) -> str:
        """The decision: target, feature, or why the column is left out (identifier, ...)."""
        if self.is_target:
            return "target"
        return self.left_out or "feature"


@dataclass(frozen=True)
class EstimatorChoice:
    kind: str
    params: dict[str, Any]
    why: str


@dataclass(frozen=True)
class Inference:
    """Everything init decided about a table, in the CSV's column order."""

    name: str
    task: Task
    source: str
    rows: int
    target: ColumnReport
    columns: tuple[ColumnReport, ...]
    estimator: EstimatorChoice
    classes: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnReport:
        return next(c for c in self.columns if c.name == name)

    @property
    def features(self) -> list[ColumnReport]:
        return [c for c in self.columns if c.decision == "feature"]


# --- reading one column ----------------------------------------------------------------------


@dataclass
class _Column:
    """A column's distinct values (stripped, empty cells apart) and per-row encodings."""

    name: str
    raw: Sequence[str]
    counts: Counter[str]
    missing: int
    kind: str
    numbers: np.ndarray | None = None  # per row, NaN where empty (number, integer, boolean)
    codes: np.ndarray | None = None  # per row, the level's index, -1 where empty

    @property
    def present(self) -> int:
        return len(self.raw) - self.missing

    def level_codes(self) -> np.ndarray:
        if self.codes is None:
            index = {value: i for i, value in enumerate(self.counts)}
            table = {raw: index.get(raw.strip(), -1) for raw in set(self.raw)}
            self.codes = np.fromiter(map(table.__getitem__, self.raw), np.intp, len(self.raw))
        return self.codes


def _is_missing(value: str) -> bool:
    try:
        return math.isnan(_MISSING.convert(value, text=True))
    except ValueError:
        return False


def _convert(feature: Feature, value: str) -> float | None:
    try:
        return feature.convert(value, text=True)
    except ValueError:
        return None


def _as_number(value: str) -> float | None:
    """The number a stripped cell holds (as the schema reads it), or None: text or empty."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # "nan" is empty, "inf" is text


def _read_column(name: str, raw: Sequence[str]) -> _Column:
    """One pass over the cells (a Counter), then the rules run on distinct values only: a
    number is parsed once per distinct value, and only non-numbers are asked whether they are
    the schema's empty cells (NA, null, ...)."""
    by_raw = Counter(raw)
    counts: Counter[str] = Counter()
    for value, count in by_raw.items():
        counts[value.strip()] += count
    numbers = {v: _as_number(v) for v in counts}
    empty = [v for v, number in numbers.items() if number is None and _is_missing(v)]
    missing = sum(counts.pop(v) for v in empty)
    column = _Column(name, raw, counts, missing, "empty" if not counts else "category")
    if not counts or (len(counts) == 1 and missing):
        return column  # one value, else empty: the empty cells are the other level
    booleans = {v: _convert(_BOOLEAN, v) for v in counts} if len(counts) == 2 else {}
    if booleans and None not in booleans.values() and set(booleans.values()) == {0.0, 1.0}:
        column.kind, lookup = "boolean", booleans
    elif all(numbers[v] is not None for v in counts):
        integers = all(_INTEGER_TEXT.fullmatch(v) for v in counts)
        column.kind, lookup = ("integer" if integers else "number"), numbers
    else:
        return column
    floats: dict[str, float] = {}
    for value in by_raw:
        number = lookup.get(value.strip())
        floats[value] = math.nan if number is None else number
    column.numbers = np.fromiter(map(floats.__getitem__, raw), np.float64, len(raw))
    return column


# --- statistics ------------------------------------------------------------------------------


def _skewness(values: np.ndarray) -> float:
    """Fisher's moment skewness of the finite values (0 for a constant)."""
    v = values[np.isfinite(values)]
    if v.size < 3:
        return 0.0
    d = v - v.mean()
    m2 = float(np.mean(d**2))
    return float(np.mean(d**3)) / m2**1.5 if m2 > 0 else 0.0


def _rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    both = np.isfinite(x) & np.isfinite(y)
    if both.sum() < 10:
        return 0.0
    rx, ry = rankdata(x[both]), rankdata(y[both])
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _splits(codes: np.ndarray, values: np.ndarray) -> bool:
    """True when the levels (codes >= 0) cover disjoint ranges of `values`: each level is a band
    of the values, so the column is a function of them (a binning, a threshold, a relabelling).
    At least two levels need MIN_ROWS_PER_SPLIT rows each, so chance cannot pass it."""
    keep = (codes >= 0) & np.isfinite(values)
    codes, values = codes[keep], values[keep]
    if codes.size < 10:
        return False
    levels, counts = np.unique(codes, return_counts=True)
    if levels.size < 2 or (counts >= MIN_ROWS_PER_SPLIT).sum() < 2:
        return False
    order = np.lexsort((values, codes))
    starts = np.searchsorted(codes[order], levels)
    ends = np.r_[starts[1:], codes.size] - 1
    lows, highs = values[order][starts], values[order][ends]
    by_low = np.argsort(lows, kind="stable")
    return bool(np.all(highs[by_low][:-1] < lows[by_low][1:]))


# --- describing values -----------------------------------------------------------------------


def _number(value: float) -> str:
    """Thousands separators from 10,000 up (so years read as years), 4 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def _share(part: int, whole: int, digits: int = 0) -> str:
    """A percentage; a share that would round to 0 reads "<1%" (or "<0.1%"), never "0%"."""
    share = part / whole if whole else 0.0
    floor = 10.0**-digits / 100
    return f"<{floor:.{digits}%}" if 0 < share < floor / 2 else f"{share:.{digits}%}"


def _range(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if not v.size:
        return ""
    low, high = _number(float(v.min())), _number(float(v.max()))
    return low if low == high else f"{low} to {high}"


def _levels_text(counts: Counter[str], present: int, limit: int = 4) -> str:
    common = counts.most_common(limit)
    shown = ", ".join(f"{level} {_share(count, present)}" for level, count in common)
    more = f", +{len(counts) - limit}" if len(counts) > limit else ""
    return f"{len(counts)} level{'s' if len(counts) > 1 else ''}: {shown}{more}"


def _id_words(name: str) -> list[str]:
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)]


# --- the rules -------------------------------------------------------------------------------


Reason = tuple[str, str]  # (short reason, sentence)


def _left_out(column: _Column, rows: int) -> Reason | None:
    """Why a column should not be a feature, judged on the column alone (None: keep it)."""
    present, distinct = column.present, len(column.counts)
    if not column.name:
        return "no name", "the header gives this column no name"
    if column.kind == "empty":
        return "empty", "every cell is empty"
    if present < max(1, ALMOST_EMPTY * rows):
        return "almost empty", f"values in only {present:,} of {rows:,} cells"
    if distinct == 1 and column.missing < ALMOST_EMPTY * rows:
        (only,) = column.counts
        return "constant", f"every row holds {only!r}"
    unique = distinct == present and present >= MIN_ROWS_FOR_IDENTIFIER
    if column.kind == "integer":
        return _integer_key(column) if unique else None
    return _text_reason(column, unique) if column.kind == "category" else None


def _integer_key(column: _Column) -> Reason | None:
    """A unique integer is a key when it counts rows, runs down the file, or is named a key;
    otherwise it is a measurement that happens to be unique (areas in a small table)."""
    assert column.numbers is not None
    values = column.numbers[np.isfinite(column.numbers)]
    if float(values.max() - values.min()) + 1 == values.size:
        return "identifier", f"unique per row: {_range(values)}, every value once"
    if bool(np.all(np.diff(values) > 0)):
        return "identifier", "unique per row and increasing down the file"
    words = _id_words(column.name)
    if words and words[-1] in _ID_WORDS:
        return "identifier", "unique per row, and its name says it is a key"
    return None


def _text_reason(column: _Column, unique: bool) -> Reason | None:
    """Text with more levels than a category can learn from: free text, a key, numbers with a
    few stray cells, or simply too many levels (None: a category)."""
    present, distinct = column.present, len(column.counts)
    cap = min(MAX_LEVELS, max(2, present // ROWS_PER_LEVEL))
    if distinct <= cap and not unique:
        return None
    words = sum(len(v.split()) for v in column.counts) / distinct
    if words >= FREE_TEXT_WORDS:
        return "free text", f"{distinct:,} distinct values of {words:.0f} words on average"
    if unique or distinct >= NEARLY_UNIQUE * present:
        return "identifier", f"{distinct:,} distinct values in {present:,} rows"
    numeric = sum(c for v, c in column.counts.items() if _convert(_NUMBER, v) is not None)
    if numeric >= 0.9 * present:
        bad = [v for v in column.counts if _convert(_NUMBER, v) is None][:3]
        return "mixed", f"numbers except {present - numeric:,} cells such as {bad}: fix those"
    return "too many levels", (
        f"{distinct:,} levels, more than the cap of {cap} for {present:,} rows: "
        "group them in the CSV to use it"
    )


def _leaks(column: _Column, target: _Column, task: Task) -> str | None:
    """A sentence when the column looks like a function of the target (known only after it)."""
    measured = column.numbers is not None and column.kind != "boolean"
    if task == "regression":
        y = target.numbers
        assert y is not None
        rho = _rank_correlation(column.numbers, y) if column.numbers is not None else 0.0
        if measured and abs(rho) >= LEAKAGE_RANK_CORRELATION:
            return f"rank correlation {rho:.3f} with the target: computed from it"
        if len(column.counts) <= MAX_LEVELS and _splits(column.level_codes(), y):
            return "each of its values covers its own band of the target: a binning of it"
        return None
    classes = target.level_codes()
    if measured:
        assert column.numbers is not None
        banded = _splits(classes, column.numbers)
        return "each class has its own band of values: the class is read off it" if banded else None
    codes = column.level_codes()
    both = (codes >= 0) & (classes >= 0)
    pairs = set(zip(codes[both].tolist(), classes[both].tolist(), strict=True))
    if len(pairs) > 1 and len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}):
        return "its values and the classes match one to one: a relabelling of the target"
    return None


def _feature_report(column: _Column, rows: int) -> ColumnReport:
    present, distinct = column.present, len(column.counts)
    levels: tuple[tuple[str, int], ...] = ()
    notes: list[str] = []
    if column.kind == "category":
        many = distinct > MAX_LEVELS
        described = f"{distinct:,} distinct" if many else _levels_text(column.counts, present)
        levels = tuple(column.counts.most_common()) if not many else ()
        if distinct == 1:
            notes.append("one value, else empty: the empty cells carry the information")
    elif column.kind == "boolean":
        described = ", ".join(f"{v} {_share(c, present)}" for v, c in column.counts.most_common())
    else:
        assert column.numbers is not None
        described = _range(column.numbers)
    return ColumnReport(
        column.name,
        column.kind,
        rows,
        column.missing,
        distinct,
        described,
        levels=levels,
        notes=tuple(notes),
    )


def _log_helps(column: _Column) -> float | None:
    """The skewness, when a log transform would make a positive, skewed measure more even."""
    values = column.numbers
    if column.kind not in ("number", "integer") or values is None:
        return None
    v = values[np.isfinite(values)]
    if v.size == 0 or v.min() <= 0 or len(column.counts) < MIN_DISTINCT_FOR_LOG:
        return None
    skew = _skewness(v)
    if skew >= SKEWED_FEATURE and abs(_skewness(np.log(v))) < skew:
        return skew
    return None


def _choose_estimator(task: Task, rows: int, features: list[ColumnReport]) -> EstimatorChoice:
    """Ridge (logistic regression for classes) for small or narrow tables, boosting for wide
    tables with many rows or many empty cells."""
    cells = rows * max(1, len(features))
    empty = sum(f.missing for f in features) / cells
    shape = f"{rows:,} rows, {len(features)} features, {empty:.1%} of their cells empty"
    if rows >= SMALL_TABLE_ROWS and (
        len(features) >= WIDE_TABLE_FEATURES or empty >= MANY_EMPTY_CELLS
    ):
        return EstimatorChoice(
            "hist_gradient_boosting",
            {},
            f"{shape}: boosted trees learn non-linear effects and interactions without "
            "hand-made terms, and skewed or outlying values do not throw them",
        )
    if rows < SMALL_TABLE_ROWS:
        why = f"with fewer than {SMALL_TABLE_ROWS:,} rows a regularised linear model is steadier"
        why += " than trees"
    else:
        why = "a narrow table with few empty cells, where a linear model is hard to beat"
    if task == "classification":
        return EstimatorChoice("logistic_regression", {}, f"{shape}: {why}")
    return EstimatorChoice(
        "ridge",
        {"alpha": 1.0},
        f"{shape}: {why}; it explains itself and is served as plain numpy arrays (model.npz: a "
        "fast cold start, no scikit-learn)",
    )


def _target(table: Table, name: str, task: Task) -> tuple[_Column, list[str]]:
    if name not in table.columns:
        raise ConfigError(
            f"no column {name!r} in {table.source}; columns: {', '.join(table.columns)}"
        )
    column = _read_column(name, table.columns[name])
    warnings = []
    if column.missing:
        warnings.append(
            f"{column.missing:,} row(s) have no target value ({name}): train refuses them; "
            "drop those rows from the CSV"
        )
    if task == "regression":
        if any(_convert(_NUMBER, v) is None for v in column.counts):
            shown = ", ".join(repr(v) for v, _ in column.counts.most_common(3))
            raise ConfigError(
                f"the target {name!r} is not numeric (values such as {shown}): a regression "
                "needs numbers; for classes use --task classification"
            )
        if len(column.counts) <= 10:
            warnings.append(
                f"the target has only {len(column.counts)} distinct values: if they are "
                "classes, use --task classification"
            )
    elif len(column.counts) < 2:
        raise ConfigError(f"the target {name!r} has fewer than two classes")
    elif len(column.counts) > MANY_CLASSES:
        warnings.append(f"the target has {len(column.counts)} classes: is it a number?")
    return column, warnings


def _target_report(column: _Column, rows: int, task: Task) -> ColumnReport:
    present = column.present
    if task == "classification":
        described = _levels_text(column.counts, present).replace("levels", "classes")
        return ColumnReport(
            column.name, column.kind, rows, column.missing, len(column.counts), described,
            is_target=True, why="the column to predict",
        )  # fmt: skip
    y = column.numbers
    assert y is not None
    v = y[np.isfinite(y)]
    transform, why = "none", "the column to predict"
    skew = _skewness(v)
    if v.size and v.min() > 0 and skew >= SKEWED_TARGET:
        after = _skewness(np.log(v))
        if abs(after) < abs(skew):
            transform = "log"
            why = (
                f"positive and right-skewed (skewness {skew:.2f}; {after:.2f} after log): the "
                "model fits its log, so errors are relative, as for prices"
            )
    return ColumnReport(
        column.name, column.kind, rows, column.missing, len(column.counts), _range(y),
        transform=transform, is_target=True, why=why,
    )  # fmt: skip


def model_name(stem: str) -> str:
    """A valid model name (sklambda.names) from a file name: lower case, dashes."""
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")[:63].strip("-")
    return name or "model"


def infer(
    table: Table, target: str, task: Task = "regression", name: str | None = None
) -> Inference:
    """Decide every column of `table` for a model predicting `target`."""
    model = validate_name("model name", name) if name else model_name(Path(table.source).stem)
    target_column, warnings = _target(table, target, task)
    reports: list[ColumnReport] = []
    skews: dict[str, float] = {}
    for column_name, raw in table.columns.items():
        if column_name == target:
            reports.append(_target_report(target_column, table.rows, task))
            continue
        column = _read_column(column_name, raw)
        report = _feature_report(column, table.rows)
        reason = _left_out(column, table.rows)
        if reason is None:
            leak = _leaks(column, target_column, task)
            reason = (
                ("leakage", f"{leak} (add it back if it is known before the target is)")
                if leak
                else None
            )
        if reason:
            report = replace(report, left_out=reason[0], why=reason[1])
        elif (skew := _log_helps(column)) is not None:
            skews[column_name] = skew
        reports.append(report)
    features = [r for r in reports if r.decision == "feature"]
    if not features:
        problems = [Problem(r.name, f"{r.left_out}: {r.why}") for r in reports if r.left_out]
        raise ConfigError(f"no column of {table.source} can be a feature", problems)
    estimator = _choose_estimator(task, table.rows, features)
    linear = estimator.kind in ("ridge", "logistic_regression")
    for i, report in enumerate(reports):
        if report.name in skews:
            skew = skews[report.name]
            if linear:
                note = f"skewed ({skew:.2f}) and positive: the model takes its log"
                reports[i] = replace(report, transform="log", notes=(*report.notes, note))
            else:
                note = f'skewed ({skew:.2f}): transform = "log" would help a linear estimator'
                reports[i] = replace(report, notes=(*report.notes, note))
    if table.rows < 30:
        warnings.append(f"only {table.rows} rows: too few to train and evaluate a model well")
    target_report = next(r for r in reports if r.is_target)
    return Inference(
        name=model,
        task=task,
        source=table.source,
        rows=table.rows,
        target=target_report,
        columns=tuple(reports),
        estimator=estimator,
        classes=dict(target_column.counts.most_common()) if task == "classification" else {},
        warnings=tuple(warnings),
    )


# --- the config file -------------------------------------------------------------------------


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str, width: int = 98) -> list[str]:
    return textwrap.wrap(text, width, initial_indent="# ", subsequent_indent="# ")


def _feature_block(report: ColumnReport) -> list[str]:
    lines = ["[[features]]", f"name = {_toml(report.name)}", f"type = {_toml(report.kind)}"]
    if report.transform == "log":
        lines.append('transform = "log"')
    if not report.required:
        lines.append(
            f"required = false   # {report.missing:,} of {report.rows:,} cells empty "
            f"({_share(report.missing, report.rows, 1)})"
        )
    if report.kind == "category":
        n = len(report.levels)
        about = f"{n} level{'s' if n > 1 else ''} (rows): " + ", ".join(
            f"{level} {rows:,}" for level, rows in report.levels
        )
        if report.rare_levels:
            about += f"; rare (under {RARE_LEVEL:.0%} of rows): {', '.join(report.rare_levels)}"
    elif report.kind in ("number", "integer"):
        about = f"range {report.described}"
    else:
        about = report.described
    return lines + _comment("; ".join([about, *report.notes]))


def render_config(inference: Inference, source: str) -> str:
    """The config as commented TOML; `source` is written as given (relative to the file)."""
    i = inference
    lines = _comment(
        f"Written by `python -m training init` from {Path(i.source).name}: {i.rows:,} rows, "
        f"{len(i.columns)} columns. Each choice was read from the data and says why; change "
        "what you know better."
    )
    lines += [f"name = {_toml(i.name)}", f"task = {_toml(i.task)}"]
    lines += _comment(
        'A category value a prediction request holds that training never saw: "reject" answers '
        '422 naming it; "warn" predicts it as a missing value and says so in the reply.'
    )
    lines += ['unknown_categories = "reject"', "", "[data]"]
    lines += [f"source = {_toml(source)}   # relative to this file", "", "[target]"]
    lines.append(f"name = {_toml(i.target.name)}")
    if i.task == "regression":
        lines.append(f"transform = {_toml(i.target.transform)}")
        lines += _comment(i.target.why)
    else:
        classes = ", ".join(f"{_toml(k)} ({v:,})" for k, v in i.classes.items())
        lines += _comment(f"classes: {classes}")
    lines += ["", "[estimator]", *_comment(i.estimator.why), f"kind = {_toml(i.estimator.kind)}"]
    params = ", ".join(f"{k} = {json.dumps(v)}" for k, v in i.estimator.params.items())
    lines += [f"params = {{ {params} }}" if params else "params = {}", "", "[evaluation]"]
    if i.rows >= LARGE_TABLE_ROWS:
        lines += _comment(
            f"{i.rows:,} rows: each of 3 folds still trains on {2 * i.rows // 3:,} rows and "
            f"scores {i.rows // 3:,}; at this size 3 folds estimate about as well as 5, for 3 "
            "fits instead of 5"
        )
    lines += [
        f"cv_folds = {3 if i.rows >= LARGE_TABLE_ROWS else 5}",
        "holdout_fraction = 0.2",
        "seed = 42",
        f"min_rows = {min(30, max(5, i.rows))}",
    ]
    if i.task == "regression":
        lines.append('primary_metric = "r2"')
    else:
        lines += _comment(
            "what retraining compares: log loss (lower is better) rewards honest probabilities; "
            "or accuracy, balanced_accuracy, f1_macro, roc_auc, brier"
        )
        lines.append('primary_metric = "log_loss"')
    lines += _comment(
        '"train_split": the published model never saw its holdout, as scheduled retraining '
        'needs; "all_rows" refits it on every row'
    )
    lines.append('final_fit = "train_split"')
    features = i.features
    lines += ["", f"# {len(features)} features, in the CSV's order."]
    lines += _comment(
        "A category's levels are learned from the data at each training (`categories = [...]` "
        "would fix them); rare levels are learned like the others, from few rows."
    )
    for report in features:
        lines += ["", *_feature_block(report)]
    left_out = [c for c in i.columns if c.left_out]
    if left_out:
        lines += [
            "",
            f"# {len(left_out)} column(s) left out (add one as a [[features]] block if you know "
            "better):",
        ]
        for report in left_out:
            lines += _comment(f"{report.name}: {report.left_out}: {report.why}")
    return "\n".join(lines) + "\n"


def relative_source(data: Path, out: Path) -> str:
    """The CSV's path as the config should hold it: relative to the config's folder."""
    data, folder = data.resolve(), out.resolve().parent
    try:
        return Path(os.path.relpath(data, folder)).as_posix()
    except ValueError:  # another drive (Windows): no relative path
        return data.as_posix()


def default_out(data: Path) -> Path:
    return Path("configs") / f"{model_name(data.stem)}.toml"


def write_config(
    data: Path,
    target: str,
    *,
    out: Path,
    task: Task = "regression",
    force: bool = False,
    name: str | None = None,
) -> Inference:
    """Read `data` once, infer a config for `target` and write it to `out` (never over an
    existing file unless `force`). The model is named after `out` unless `name` is given."""
    if out.exists() and not force:
        raise ConfigError(f"{out} exists: pass --force to overwrite it, or choose another --out")
    inference = infer(read_csv(data), target, task, name or model_name(out.stem))
    text = render_config(inference, relative_source(data, out))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("w" if force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise ConfigError(f"{out} exists: pass --force to overwrite it") from None
    return inference
