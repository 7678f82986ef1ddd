"""Batch transform: one batch of rows of an input file scored by a model pinned to one version.

Step Functions' Distributed Map reads the input (CSV with a header row, or JSON Lines), gives
each item its index in the file (ItemSelector: `$$.Map.Item.Index`) and sends batches of items
to the batch function. Each batch is validated column-wise with the model's own schema encoder,
row by row in its reporting: a bad row is rejected with its reason and never sinks its batch.
A batch writes, once (`If-None-Match: *`), under `batch/<job-id>/`:

  out/part-<n>.csv        line,prediction        (every scored row; a classifier's label,
                                                 then probability_<label> per class)
  rejected/part-<n>.csv   line,reason            (every rejected row; written only when any)

`<n>` is the index of the batch's first row, zero-padded: unique and the same on a retry, so a
retried batch finds its parts already written with the same bytes and succeeds. `line` is the
row's line in the input file: for CSV, index + 2 (the header is line 1; a quoted line break or a
blank line would shift it, as Step Functions counts items, not lines); for JSON Lines, index + 1.

The job as a whole: `resolve_job` pins the version and checks the input's header once before
any row is scored; `finish_job` sums the map's results into `_SUCCESS.json` or `_FAILED.json`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from botocore.exceptions import ClientError

from sklambda.errors import DataValidationError, IntegrityError, Problem, ProblemLog
from sklambda.model import Answer, LoadedModel
from sklambda.names import validate_name
from sklambda.schema import MISSING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BATCH_PREFIX = "batch"
INPUT_PREFIX = f"{BATCH_PREFIX}/in/"
InputFormat = Literal["csv", "jsonl"]
# Bytes of the input read to check its header before a job starts (a CSV header row).
HEADER_BYTES = 64 * 1024


def job_prefix(job_id: str) -> str:
    return f"{BATCH_PREFIX}/{validate_name('job id', job_id)}/"


def part_keys(job_id: str, part: int) -> tuple[str, str]:
    """The out/ and rejected/ keys of one part of a job."""
    validate_name("part number", str(part) if isinstance(part, int) else part)
    base = job_prefix(job_id)
    return f"{base}out/part-{part:010d}.csv", f"{base}rejected/part-{part:010d}.csv"


def input_format(key: str) -> InputFormat:
    """The input's format from its key: .csv, or .jsonl / .ndjson (JSON Lines)."""
    lower = key.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise DataValidationError(f"{key}: expected a .csv, .jsonl or .ndjson input file")


@dataclass(frozen=True)
class Item:
    """One input row as the map sends it: its 0-based index in the file and its values."""

    index: int
    row: Any

    @classmethod
    def from_event(cls, raw: Any) -> Item:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("index"), int):
            raise DataValidationError('each item must be {"index": <int>, "row": {...}}')
        return cls(raw["index"], raw.get("row"))


@dataclass(frozen=True)
class PartResult:
    """What one batch wrote: small, as it goes back through the map's state payload."""

    part: int
    rows: int
    out: int
    rejected: int
    out_key: str
    rejected_key: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "rows": self.rows,
            "out": self.out,
            "rejected": self.rejected,
            "out_key": self.out_key,
            "rejected_key": self.rejected_key,
        }


class _RowProblems(ProblemLog):
    """Every problem of every row, by row (a ProblemLog keeps only the first few of each)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_row: dict[int, list[str]] = {}
        self.whole: list[Problem] = []  # problems of the input as a whole (a missing column)
        self.closed: set[int] = set()  # rows rejected whole: their values are not reported

    def add(self, problem: Problem) -> None:
        if problem.row in self.closed:
            return
        super().add(problem)
        if problem.row is None:
            self.whole.append(problem)
        else:
            where = f"{problem.field}: " if problem.field else ""
            self.by_row.setdefault(problem.row, []).append(where + problem.message)


def line_of(index: int, fmt: InputFormat) -> int:
    return index + 2 if fmt == "csv" else index + 1


def out_header(model: LoadedModel) -> tuple[str, ...]:
    """The columns of an out/ part: line, prediction, and a classifier's probability of each
    class (probability_<label>, in the order of the manifest's classes)."""
    return ("line", "prediction", *(f"probability_{label}" for label in model.classes))


def score_rows(
    model: LoadedModel, items: Sequence[Item], fmt: InputFormat
) -> tuple[list[tuple[Any, ...]], list[tuple[int, str]]]:
    """The out/ rows, (line, prediction) for each row scored (a classifier's adding each
    class's probability: out_header), and (line, reason) for each row rejected; every item is
    in exactly one. Raises DataValidationError only for the batch as a whole (a column of the
    schema absent from the input)."""
    schema = model.schema
    problems = _RowProblems()
    n = len(items)
    not_objects = {i for i, item in enumerate(items) if not isinstance(item.row, Mapping)}
    for i in not_objects:
        problems.add(Problem(None, "expected a JSON object", i))
    problems.closed = not_objects
    rows = [{} if i in not_objects else item.row for i, item in enumerate(items)]
    text = fmt == "csv"
    if text and rows and any(name not in rows[0] for name in schema.names):
        absent = [name for name in schema.names if name not in rows[0]]
        raise DataValidationError(
            f"the input has no column {', '.join(absent)} (the model's features: "
            f"{', '.join(schema.names)})",
            [Problem(name, "missing column") for name in absent],
        )
    columns = {name: [r.get(name, MISSING) for r in rows] for name in schema.names}
    matrix = schema.encode_columns(columns, n, text=text, warnings=[], problems=problems)
    if problems.whole:
        raise problems.error("the batch does not fit the schema: ")
    good = [i for i in range(n) if i not in problems.by_row]
    scored: list[tuple[Any, ...]] = []
    for i, cells in zip(good, _predict(model, matrix[good], problems, good), strict=True):
        if cells is not None:
            scored.append((line_of(items[i].index, fmt), *cells))
    rejected = [
        (line_of(items[i].index, fmt), "; ".join(reasons))
        for i, reasons in sorted(problems.by_row.items())
    ]
    return scored, rejected


def _cells(answer: Answer) -> list[tuple[Any, ...]]:
    """Each row's prediction, then a classifier's probabilities."""
    if answer.probabilities is None:
        return [(p,) for p in answer.predictions]
    return [
        (p, *row) for p, row in zip(answer.predictions, answer.probabilities.tolist(), strict=True)
    ]


def _predict(
    model: LoadedModel, X: np.ndarray, problems: _RowProblems, rows: list[int]
) -> list[tuple[Any, ...] | None]:
    """Each encoded row's cells (_cells); a row whose prediction is not finite (inputs far
    outside the training range) is rejected on its own, the rest of the batch kept."""
    if not rows:
        return []
    try:
        return list(_cells(model.answer(X)))
    except DataValidationError:
        out: list[tuple[Any, ...] | None] = []
        for k, row in enumerate(rows):
            try:
                cells: tuple[Any, ...] | None = _cells(model.answer(X[k : k + 1]))[0]
            except DataValidationError:
                reason = "prediction is not finite (inputs far outside the training range)"
                problems.add(Problem(None, reason, row))
                cells = None
            if cells is not None and isinstance(cells[0], float) and not math.isfinite(cells[0]):
                cells = None
            out.append(cells)
        return out


def _out_row(row: tuple[Any, ...]) -> list[Any]:
    """An out/ row as text: the line, the label as it is, every number by repr (exact)."""
    return [row[0], *(repr(v) if isinstance(v, float) else v for v in row[1:])]


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def put_once(s3: S3Client, bucket: str, key: str, body: bytes, content_type: str) -> None:
    """Write `key` only if absent. A retry that finds the same bytes there succeeds; other
    bytes there are an error (a part is never overwritten)."""
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ContentType=content_type)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in (
            "PreconditionFailed",
            "ConditionalRequestConflict",
        ):
            raise
        existing = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if existing != body:
            raise IntegrityError(
                f"s3://{bucket}/{key} already exists with other contents; refusing to overwrite it"
            ) from None


def score_batch(
    s3: S3Client,
    bucket: str,
    job_id: str,
    model: LoadedModel,
    items: Sequence[Item],
    *,
    fmt: InputFormat,
) -> PartResult:
    """Score one batch and write its parts (see the module docstring)."""
    if not items:
        raise DataValidationError("a batch needs at least one item")
    part = min(item.index for item in items)
    out_key, rejected_key = part_keys(job_id, part)
    scored, rejected = score_rows(model, items, fmt)
    put_once(
        s3,
        bucket,
        out_key,
        _csv_bytes(out_header(model), [_out_row(row) for row in scored]),
        "text/csv",
    )
    if rejected:
        put_once(s3, bucket, rejected_key, _csv_bytes(("line", "reason"), rejected), "text/csv")
    return PartResult(
        part, len(items), len(scored), len(rejected), out_key, rejected_key if rejected else None
    )


# --- the job: resolve once, finish once ------------------------------------------------------


def check_header(s3: S3Client, bucket: str, key: str, names: Sequence[str]) -> None:
    """A CSV input's header must name every feature of the model: refused before any row is
    scored. (JSON Lines has no header: a record without a feature is rejected on its own.)"""
    if input_format(key) != "csv":
        return
    head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}")
    first = head["Body"].read().decode("utf-8-sig", errors="replace").splitlines()[:1]
    header = [h.strip() for h in next(csv.reader(first), [])]
    absent = [name for name in names if name not in header]
    if absent:
        raise DataValidationError(
            f"s3://{bucket}/{key}: the header has no column {', '.join(absent)} "
            f"(the model's features: {', '.join(names)})",
            [Problem(name, "missing column", line=1) for name in absent],
        )


def resolve_job(
    s3: S3Client,
    bucket: str,
    key: str,
    job_id: str,
    load: Callable[[str | None], LoadedModel],
) -> dict[str, Any]:
    """The job's pinned model version (`load(None)`: the alias's, verified and loaded as the
    batch function will load it) and the input checked: the header before any row is scored."""
    job_prefix(job_id)  # a job id that cannot name a folder is refused before anything is read
    if not key.startswith(INPUT_PREFIX):
        raise DataValidationError(f"the input must be under s3://{bucket}/{INPUT_PREFIX}")
    fmt = input_format(key)
    model = load(None)
    check_header(s3, bucket, key, model.schema.names)
    return {
        "job_id": job_id,
        "bucket": bucket,
        "key": key,
        "format": fmt,
        "model": model.manifest.name,
        "version": model.manifest.version,
    }


def _result_records(s3: S3Client, bucket: str, manifest_key: str) -> dict[str, list[Any]]:
    """The child executions' records of a map run, by status, from its ResultWriter files."""
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    out: dict[str, list[Any]] = {}
    for status, files in (manifest.get("ResultFiles") or {}).items():
        for entry in files:
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            out.setdefault(status, []).extend(json.loads(body))
    return out


def _find_results(s3: S3Client, bucket: str, base: str) -> str | None:
    """The map run's ResultWriter manifest under the job's results/, if one was written (a map
    that failed past its tolerated share still writes one)."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=base + "results/")
    keys = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("/manifest.json")]
    return keys[0] if keys else None


def finish_job(
    s3: S3Client,
    bucket: str,
    job: Mapping[str, Any],
    started_at: str,
    *,
    results_manifest_key: str | None = None,
    error: Mapping[str, Any] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Write `_SUCCESS.json` (model version, rows in / out / rejected, duration) from the map's
    results, or `_FAILED.json` with the error and whatever was counted. Returns the record."""
    job_id = str(job["job_id"])
    base = job_prefix(job_id)
    counts = {"rows_in": 0, "rows_out": 0, "rows_rejected": 0, "rows_failed": 0}
    failed_batches = 0
    results_manifest_key = results_manifest_key or _find_results(s3, bucket, base)
    if results_manifest_key:
        records = _result_records(s3, bucket, results_manifest_key)
        for child in records.get("SUCCEEDED", []):
            part = json.loads(child["Output"])
            counts["rows_in"] += part["rows"]
            counts["rows_out"] += part["out"]
            counts["rows_rejected"] += part["rejected"]
        for status, failed in records.items():
            if status == "SUCCEEDED":
                continue
            for child in failed:
                failed_batches += 1
                rows = len(json.loads(child.get("Input") or "{}").get("Items", []))
                counts["rows_in"] += rows
                counts["rows_failed"] += rows
    finished = now()
    start = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    record: dict[str, Any] = {
        "job_id": job_id,
        "status": "failed" if error else "succeeded",
        "input": f"s3://{job.get('bucket', bucket)}/{job.get('key', '')}",
        "model": {"name": job.get("model"), "version": job.get("version")},
        **counts,
        "failed_batches": failed_batches,
        "started_at": start.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_seconds": round((finished - start).total_seconds(), 3),
    }
    if error:
        record["error"] = {"error": error.get("Error"), "cause": error.get("Cause")}
    name = "_FAILED.json" if error else "_SUCCESS.json"
    put_once(s3, bucket, base + name, json.dumps(record, indent=2).encode(), "application/json")
    return record
