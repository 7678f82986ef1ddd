"""Tabular data without pandas: CSV (standard library) or a DataFrame into named columns."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sklambda.classes import read_labels
from sklambda.config import ModelConfig, TargetConfig
from sklambda.errors import ConfigError, DataValidationError, Problem, ProblemLog
from sklambda.schema import FeatureSchema, fit_schema


@dataclass(frozen=True)
class Table:
    """Raw columns as read (strings for CSV), plus where they came from and their sha256.
    `lines`: each row's first line in its CSV file (the header is line 1; blank lines and quoted
    line breaks counted), when the table is one file; problems then name lines, not rows."""

    columns: dict[str, list[Any]]
    rows: int
    source: str
    sha256: str
    text: bool = True
    lines: tuple[int, ...] | None = None

    def with_lines(self, problems: list[Problem]) -> list[Problem]:
        """The problems, each with its row's CSV line when the table knows it."""
        if self.lines is None:
            return problems
        lines = self.lines
        return [replace(p, line=lines[p.row]) if p.row is not None else p for p in problems]


@dataclass(frozen=True)
class Dataset:
    """Validated, encoded training data: X in schema order, y as floats (regression) or class
    labels (classification: int64, or strings in an object array; sklambda.classes)."""

    X: np.ndarray
    y: np.ndarray
    schema: FeatureSchema
    table: Table


def parse_csv(content: bytes, source: str) -> Table:
    """Parse CSV bytes (UTF-8, header row) into columns; ragged rows are an error."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataValidationError(f"{source} is not UTF-8 text ({exc.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DataValidationError(f"{source} is empty or has no header row")
    names = [h.strip() for h in header]
    body: list[list[str]] = []
    lines: list[int] = []
    ragged = ProblemLog()
    start = reader.line_num + 1  # the line the next row starts on
    for row in reader:
        if row:  # blank lines are skipped, and counted
            if len(row) != len(names):
                ragged.add(
                    Problem(None, f"expected {len(names)} fields, found {len(row)}", len(body))
                )
            body.append(row)
            lines.append(start)
        start = reader.line_num + 1
    if ragged:
        total = ragged.total
        raise DataValidationError(
            f"{source}: {total:,} {'row' if total == 1 else 'rows'} with the wrong number of "
            f"fields (expected {len(names)})",
            [replace(p, line=lines[p.row or 0]) for p in ragged.details],
            ragged.counts,
        )
    columns = {name: [row[j] for row in body] for j, name in enumerate(names)}
    digest = hashlib.sha256(content).hexdigest()
    return Table(columns, len(body), source, digest, lines=tuple(lines))


def read_csv(path: str | Path) -> Table:
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise DataValidationError(f"cannot read {path}: {exc.strerror}") from None
    return parse_csv(content, str(path))


def table_from_frame(frame: Any, source: str = "dataframe") -> Table:
    """Accept a pandas DataFrame (or any object with `to_dict("list")`) without importing pandas."""
    raw: Mapping[str, Sequence[Any]] = frame.to_dict("list")
    columns = {
        str(k): [None if isinstance(v, float) and np.isnan(v) else v for v in vals]
        for k, vals in raw.items()
    }
    rows = len(next(iter(columns.values()), []))
    digest = hashlib.sha256(repr(sorted(columns.items())).encode()).hexdigest()
    return Table(columns, rows, source, digest, text=False)


def prepare(config: ModelConfig, table: Table) -> Dataset:
    """Validate a table against the config before any fit. Every problem of every column is
    reported at once: its true count, the first few of each column, with CSV lines."""
    problems: list[Problem] = []
    if table.rows < config.evaluation.min_rows:
        raise DataValidationError(
            f"{table.source}: {table.rows} rows, at least {config.evaluation.min_rows} needed"
        )
    if config.target.name not in table.columns:
        problems.append(Problem(config.target.name, "missing target column"))
    missing = [f.name for f in config.features if f.name not in table.columns]
    problems += [Problem(name, "missing column") for name in missing]
    if problems:
        raise DataValidationError(f"{table.source}: missing columns", problems)
    log = ProblemLog()
    schema, X = fit_schema(
        config.features,
        table.columns,
        table.rows,
        text=table.text,
        unknown=config.unknown_categories,
        problems=log,
    )
    column = table.columns[config.target.name]
    if config.task == "classification":
        y = read_labels(config.target.name, column, log)
    else:
        y = _target(config.target, column, table.text, log)
    if log:
        error = log.error(f"{table.source}: ")
        raise DataValidationError(error.message, table.with_lines(error.details), error.counts)
    return Dataset(X, y, schema, table)


def load_dataset(config: ModelConfig, source: str | Path | None = None) -> Dataset:
    """Read a CSV (default: the config's [data] source) and validate it for `config`."""
    path = source or config.data.source
    if not path:
        raise ConfigError("no data: give a CSV file or set [data] source in the config")
    return prepare(config, read_csv(path))


def _target(
    target: TargetConfig, column: Sequence[Any], text: bool, problems: ProblemLog
) -> np.ndarray:
    y = np.empty(len(column), dtype=np.float64)
    for row, value in enumerate(column):
        try:
            number = float(value.strip() if text and isinstance(value, str) else value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or (target.transform == "log" and number <= 0):
            need = "a positive number (log target)" if target.transform == "log" else "a number"
            problems.add(Problem(target.name, f"expected {need}, got {value!r}", row))
        y[row] = number
    return y
