"""The drift monitor: captured requests since the last run, compared with the reference profile
of the model version that answered them (sklambda.profile), written to
reports/<model>/<date>/drift.json and drift.html (sklambda.drift_page). A second run on the same
day replaces that day's report (it covers only what arrived since the first).

Capture (issue 16 item 1) writes JSON Lines through Firehose under capture/<model>/, one line
per predicted row:

    {"request_id": "...", "row": 0, "time": "2026-11-29T19:30:00Z",
     "model_version": "20261129T...", "features": {"lotsize": 5850, ...}, "prediction": 51000.0}

Objects are read in both layouts: AWS's with the stream's prefix
capture/<model>/year=YYYY/month=MM/day=DD/hour=HH/... and moto's default
capture/<model>/YYYY/MM/DD/HH/... Which objects were read is kept in a cursor
(reports/<model>/monitor-cursor.json): the days still open (yesterday, as Firehose files an
object by its records' arrival hour and may deliver it minutes later) and the keys already read in
them, so a run reads each object once and lists only the days since the last run.

Ground truth is optional: labels/<model>/<request_id>.json, {"label": y} or {"labels": [y, ...]}
(one per row), joined to the capture by request id and row; the live metric is computed on the
rows that have one.

A classifier's captured predictions are its labels ("Adelie", or 0/1): its prediction drift is
PSI over the share of each predicted label against the training rows' (a manifest written before
labels were profiled holds the predicted class index as a number: live labels are compared as
that index), its live metric is accuracy, balanced accuracy and macro F1 against the labels, and
champion and shadow agree on a row when they predict the same label.

A record scored by the shadow model too (SHADOW_ALIAS) carries
"shadow": {"model_version": "...", "prediction": ...}; each version's section then compares the
two on the same live rows (champion vs shadow: agreement, mean difference, and the shadow's live
metric where labels exist), so a promotion can be judged on real requests before it happens.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from sklambda.classes import Label
from sklambda.drift_page import render
from sklambda.errors import SklambdaError
from sklambda.profile import (
    MISSING_LEVEL,
    LevelProfile,
    NumericProfile,
    ReferenceProfile,
    label_text,
    level_name,
)
from sklambda.schema import MISSING, Feature, FeatureSchema, UnknownCategoryError
from sklambda.store import ModelStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PSI_THRESHOLD = 0.2  # the usual reading: < 0.1 stable, 0.1-0.2 moving, > 0.2 shifted
MIN_ROWS = 100  # fewer live values than this: PSI and KS are mostly noise, reported, not judged
PSI_FLOOR = 1e-4  # an empty bin's share in PSI's log (a level never seen would be infinite)
UNKNOWN_LEVEL = "(unknown)"
MAX_LABEL_FILES = 10_000  # labels read in one run (one GET each)
# Champion and shadow "agree" on a row when they are this close, relative to the champion's
# prediction (for class labels: equal).
AGREEMENT_TOLERANCE = 0.05

# A captured prediction (or label): a number, or a classifier's label as JSON carries it.
Value = float | str


class Cursor(BaseModel):
    """The oldest day still listed and the capture keys already read in it and after."""

    model_config = ConfigDict(frozen=True)
    day: date
    read: list[str]


def cursor_key(model: str) -> str:
    return f"reports/{model}/monitor-cursor.json"


def report_key(model: str, day: date) -> str:
    return f"reports/{model}/{day.isoformat()}/drift.json"


def capture_day_prefixes(model: str, day: date) -> list[str]:
    """Where Firehose puts a day's objects: AWS with the template's partitioned prefix, moto
    with its own YYYY/MM/DD/HH/ folders under the stream's prefix."""
    y, m, d = f"{day.year:04d}", f"{day.month:02d}", f"{day.day:02d}"
    return [f"capture/{model}/year={y}/month={m}/day={d}/", f"capture/{model}/{y}/{m}/{d}/"]


# --- drift statistics ------------------------------------------------------------------------


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _reference_cdf(quantiles: np.ndarray, x: np.ndarray, left: bool) -> np.ndarray:
    """The training distribution function rebuilt from its quantile grid (linear between
    distinct quantiles, a jump at repeated ones); `left`: the limit from below."""
    probs = np.linspace(0.0, 1.0, quantiles.size)
    idx = np.searchsorted(quantiles, x, side="left" if left else "right")
    out = np.where(idx >= quantiles.size, 1.0, 0.0)
    inside = (idx > 0) & (idx < quantiles.size)
    lo, hi = idx[inside] - 1, idx[inside]
    q_lo, q_hi = quantiles[lo], quantiles[hi]
    p_lo, p_hi = probs[lo], probs[hi]
    # right limit: lo is the last of a run of equal quantiles (the jump is below x);
    # left limit: hi is the first of it (the jump is at x)
    out[inside] = p_lo + (x[inside] - q_lo) / (q_hi - q_lo) * (p_hi - p_lo)
    return out


def ks_statistic(quantiles: list[float], values: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between the live values and the training distribution (its
    stored quantiles: within 0.02 of the distance to the training rows themselves)."""
    q = np.asarray(quantiles, dtype=np.float64)
    live = np.sort(values[~np.isnan(values)])
    if live.size == 0 or q.size < 2:
        return math.nan
    points = np.union1d(live, q)
    at = np.searchsorted(live, points, side="right") / live.size
    below = np.searchsorted(live, points, side="left") / live.size
    return float(
        max(
            np.max(np.abs(at - _reference_cdf(q, points, left=False))),
            np.max(np.abs(below - _reference_cdf(q, points, left=True))),
        )
    )


def ks_pvalue(statistic: float, n_live: int, n_reference: int) -> float:
    """The two-sample KS test's asymptotic p-value (scipy, imported here only: never on the
    predict path)."""
    if math.isnan(statistic) or n_live == 0:
        return math.nan
    from scipy.stats import kstwobign

    n_eff = n_live * n_reference / (n_live + n_reference)
    return float(kstwobign.sf(math.sqrt(n_eff) * statistic))


# --- live values -----------------------------------------------------------------------------


def _number(feature: Feature, value: Any) -> float | None:
    """A captured value as the model's encoding (NaN: missing); None when it is not valid."""
    try:
        return feature.convert(MISSING if value is None else value, isinstance(value, str))
    except ValueError:
        return math.nan if value is None else None


def _level(feature: Feature, value: Any) -> str | None:
    try:
        code = feature.convert(MISSING if value is None else value, isinstance(value, str))
    except UnknownCategoryError:
        return UNKNOWN_LEVEL
    except ValueError:
        return MISSING_LEVEL if value is None else None
    return level_name(feature, code)


def numeric_drift(
    reference: NumericProfile, values: np.ndarray, reference_rows: int
) -> dict[str, Any]:
    present = int(np.count_nonzero(~np.isnan(values)))
    ks = ks_statistic(reference.quantiles, values)
    expected = [*reference.shares, reference.missing]
    actual = reference.bin_shares(values)
    return {
        "rows": int(values.size),
        "missing": round(float(values.size - present) / max(values.size, 1), 4),
        "psi": round(psi(expected, actual), 4),
        "ks": None if math.isnan(ks) else round(ks, 4),
        "ks_pvalue": None if math.isnan(ks) else ks_pvalue(ks, present, reference_rows),
        # Per bin (the last: missing), for a reader and for drift.html.
        "bins": {
            "edges": reference.edges,
            "reference": expected,
            "live": [round(a, 4) for a in actual],
        },
    }


def level_drift(reference: LevelProfile, levels: list[str]) -> dict[str, Any]:
    names = [*reference.shares, MISSING_LEVEL]
    expected = [*reference.shares.values(), reference.missing]
    counts = dict.fromkeys(names, 0)
    for level in levels:
        counts[level] = counts.get(level, 0) + 1
    total = max(len(levels), 1)
    extra = [n for n in counts if n not in names]  # unknown categories: never seen in training
    actual = [counts[n] / total for n in names] + [counts[n] / total for n in extra]
    return {
        "rows": len(levels),
        "missing": round(counts[MISSING_LEVEL] / total, 4),
        "psi": round(psi(expected + [0.0] * len(extra), actual), 4),
        "shares": {n: round(counts[n] / total, 4) for n in names + extra},
        "reference": dict(zip(names, expected, strict=True)),
    }


@dataclass
class _Rows:
    """Captured rows of one model version."""

    features: list[Mapping[str, Any]] = field(default_factory=list)
    predictions: list[Value] = field(default_factory=list)
    ids: list[tuple[str, int]] = field(default_factory=list)
    # By shadow version: (row index in the lists above, the shadow's prediction).
    shadow: dict[str, list[tuple[int, Value]]] = field(default_factory=dict)
    # Features capture left out or hashed (a record's "withheld"): "excluded" or "hashed".
    withheld: dict[str, str] = field(default_factory=dict)


def version_drift(
    profile: ReferenceProfile,
    schema: FeatureSchema,
    features: list[Mapping[str, Any]],
    predictions: Sequence[Value],
    *,
    classes: Sequence[Label] | None = None,
    threshold: float = PSI_THRESHOLD,
    min_rows: int = MIN_ROWS,
    withheld: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Per-feature PSI (and KS for numbers), the prediction's drift, and which features crossed
    the threshold (only with at least min_rows live rows). `classes`: a classifier's labels
    (its predictions are labels). `withheld`: features capture excluded or hashed, by name:
    their captured values say nothing of the live ones (missing, unknown levels), so they are
    not compared, only listed under "not_compared"."""
    withheld = withheld or {}
    out: dict[str, Any] = {}
    for feature in schema.features:
        if feature.name in withheld:
            continue
        reference = profile.features.get(feature.name)
        raw = [r.get(feature.name) for r in features]
        if isinstance(reference, NumericProfile):
            numbers = [_number(feature, v) for v in raw]
            kept = [v for v in numbers if v is not None]
            out[feature.name] = numeric_drift(
                reference, np.asarray(kept, dtype=np.float64), profile.rows
            )
        elif isinstance(reference, LevelProfile):
            levels = [_level(feature, v) for v in raw]
            out[feature.name] = level_drift(reference, [v for v in levels if v is not None])
        else:
            continue
        out[feature.name]["invalid"] = len(raw) - out[feature.name]["rows"]
        out[feature.name]["drifted"] = bool(
            out[feature.name]["rows"] >= min_rows and out[feature.name]["psi"] > threshold
        )
    prediction = prediction_drift(profile, predictions, classes)
    prediction["drifted"] = bool(prediction["rows"] >= min_rows and prediction["psi"] > threshold)
    return {
        "features": out,
        "not_compared": {name: withheld[name] for name in schema.names if name in withheld},
        "prediction": prediction,
        "drifted": [name for name, d in out.items() if d["drifted"]],
    }


def prediction_drift(
    profile: ReferenceProfile, predictions: Sequence[Value], classes: Sequence[Label] | None
) -> dict[str, Any]:
    """The predictions against the profile's: a regressor's as a number (PSI over its bins,
    KS), a classifier's labels as levels (PSI over the share of each label; one the model does
    not have is "(unknown)"). "invalid": predictions of the wrong kind, left out."""
    reference = profile.prediction
    if isinstance(reference, LevelProfile):
        names = set(reference.shares)
        levels = [t if t in names else UNKNOWN_LEVEL for t in map(label_text, predictions)]
        out = level_drift(reference, levels)
    else:
        if classes is None:
            numbers = [float(p) for p in predictions if not isinstance(p, str)]
        else:  # a profile of class indices (written before labels were profiled)
            index = {label_text(label): float(i) for i, label in enumerate(classes)}
            numbers = [index[t] for t in map(label_text, predictions) if t in index]
        out = numeric_drift(reference, np.asarray(numbers, dtype=np.float64), profile.rows)
    out["invalid"] = len(predictions) - out["rows"]
    return out


def classification_metric(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, Any] | None:
    """accuracy, balanced accuracy (the mean recall of the labels present) and macro F1 of the
    captured labels against the true ones (both as label_text)."""
    if not y_true:
        return None
    truth, predicted = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    correct = truth == predicted
    recall = [float(np.mean(correct[truth == c])) for c in sorted(set(y_true))]
    f1 = []
    for c in sorted(set(y_true) | set(y_pred)):
        hits = float(np.sum(correct & (truth == c)))
        wrong = float(np.sum(truth == c)) + float(np.sum(predicted == c))
        f1.append(2 * hits / wrong if wrong else 0.0)
    return {
        "rows": len(y_true),
        "accuracy": float(np.mean(correct)),
        "balanced_accuracy": float(np.mean(recall)),
        "f1_macro": float(np.mean(f1)),
    }


def task_metric(
    y_true: Sequence[Value], y_pred: Sequence[Value], classifier: bool
) -> dict[str, Any] | None:
    """The live metric of predictions against labels: a classifier's by label, a regressor's
    on the pairs where both are numbers."""
    if classifier:
        return classification_metric(
            [label_text(y) for y in y_true], [label_text(p) for p in y_pred]
        )
    pairs = [
        (y, p)
        for y, p in zip(y_true, y_pred, strict=True)
        if not isinstance(y, str) and not isinstance(p, str)
    ]
    return live_metric(
        np.asarray([y for y, _ in pairs], dtype=np.float64),
        np.asarray([p for _, p in pairs], dtype=np.float64),
    )


def live_metric(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float] | None:
    """rmse, mae and (two rows or more) r2 of the captured predictions against their labels."""
    if y_true.size == 0:
        return None
    err = y_pred - y_true
    metric = {
        "rows": int(y_true.size),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
    }
    spread = float(np.sum((y_true - y_true.mean()) ** 2))
    if y_true.size > 1 and spread > 0:
        metric["r2"] = 1.0 - float(np.sum(err**2)) / spread
    return metric


# --- S3 --------------------------------------------------------------------------------------


def _list(s3: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def read_cursor(s3: S3Client, bucket: str, model: str) -> Cursor | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=cursor_key(model))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    try:
        return Cursor.model_validate_json(body)
    except ValidationError:
        return None  # a broken cursor: start again from the lookback window


def new_capture_keys(
    s3: S3Client, bucket: str, model: str, today: date, *, cursor: Cursor | None, lookback_days: int
) -> tuple[list[str], Cursor]:
    """Capture objects not read yet, and the cursor to write once they are."""
    first = cursor.day if cursor else today - timedelta(days=lookback_days)
    first = min(first, today - timedelta(days=1))
    read = set(cursor.read) if cursor else set()
    keep_from = today - timedelta(days=1)
    listed: list[tuple[date, str]] = []
    day = first
    while day <= today:
        for prefix in capture_day_prefixes(model, day):
            listed.extend((day, key) for key in _list(s3, bucket, prefix))
        day += timedelta(days=1)
    new = sorted(key for _, key in listed if key not in read)
    kept = sorted({key for d, key in listed if d >= keep_from})
    return new, Cursor(day=keep_from, read=kept)


def _lines(s3: S3Client, bucket: str, keys: Iterable[str]) -> Iterator[dict[str, Any] | None]:
    for key in keys:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                yield None
                continue
            yield record if isinstance(record, dict) else None


def _value(raw: Any) -> Value | None:
    """A captured prediction or a label: a finite number or a non-empty string; else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw) if math.isfinite(raw) else None
    return raw if isinstance(raw, str) and raw.strip() else None


def _labels(
    s3: S3Client, bucket: str, model: str, request_ids: set[str]
) -> dict[tuple[str, int], Value]:
    """Labels of the captured requests that have a file under labels/<model>/."""
    found: dict[tuple[str, int], Value] = {}
    prefix = f"labels/{model}/"
    wanted = [
        key
        for key in _list(s3, bucket, prefix)
        if key[len(prefix) :].removesuffix(".json") in request_ids
    ][:MAX_LABEL_FILES]
    for key in wanted:
        request_id = key[len(prefix) :].removesuffix(".json")
        try:
            raw = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            values = raw["labels"] if "labels" in raw else [raw["label"]]
            for row, raw_value in enumerate(values):
                value = _value(raw_value)
                if value is not None:
                    found[(request_id, row)] = value
        except (ValueError, KeyError, TypeError):
            continue  # a garbled label file joins nothing
    return found


def shadow_comparison(
    version: str,
    scored: list[tuple[int, Value]],
    rows: _Rows,
    labels: Mapping[tuple[str, int], Value],
    *,
    classifier: bool = False,
) -> dict[str, Any]:
    """The shadow model against the champion on the rows both scored: how often they agree
    (a classifier's: the same label; a regressor's: within AGREEMENT_TOLERANCE), a regressor's
    mean (and mean absolute) difference, and both live metrics on the labelled ones."""
    index = [i for i, _ in scored]
    shadow = [p for _, p in scored]
    champion = [rows.predictions[i] for i in index]
    out: dict[str, Any] = {"version": version, "rows": len(index)}
    if classifier:
        same = [label_text(a) == label_text(b) for a, b in zip(shadow, champion, strict=True)]
        out |= {
            "agreement": round(float(np.mean(same)), 4) if same else None,
            "agreement_tolerance": 0.0,
            "mean_difference": None,
            "mean_absolute_difference": None,
        }
    else:
        pairs = [
            (float(a), float(b))
            for a, b in zip(shadow, champion, strict=True)
            if not isinstance(a, str) and not isinstance(b, str)
        ]
        diff = np.asarray([a - b for a, b in pairs], dtype=np.float64)
        base = np.abs(np.asarray([b for _, b in pairs], dtype=np.float64))
        empty = diff.size == 0
        out |= {
            "agreement": None
            if empty
            else round(float(np.mean(np.abs(diff) <= AGREEMENT_TOLERANCE * base)), 4),
            "agreement_tolerance": AGREEMENT_TOLERANCE,
            "mean_difference": None if empty else float(np.mean(diff)),
            "mean_absolute_difference": None if empty else float(np.mean(np.abs(diff))),
        }
    at = [k for k, i in enumerate(index) if rows.ids[i] in labels]
    y = [labels[rows.ids[index[k]]] for k in at]
    out["live_metric"] = task_metric(y, [shadow[k] for k in at], classifier)
    out["champion_live_metric"] = task_metric(y, [champion[k] for k in at], classifier)
    return out


@dataclass(frozen=True)
class MonitorRun:
    """What a run read and the report it wrote (None: nothing new to read)."""

    files: int
    report: dict[str, Any] | None
    report_key: str | None


def run_monitor(
    s3: S3Client,
    bucket: str,
    model: str,
    *,
    now: datetime | None = None,
    threshold: float = PSI_THRESHOLD,
    min_rows: int = MIN_ROWS,
    lookback_days: int = 1,
) -> MonitorRun:
    """Read the capture since the last run, compare each model version's rows with its
    manifest's profile, write the drift report, then move the cursor (a run that fails before
    the report is written reads the same objects again next time)."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    keys, cursor = new_capture_keys(
        s3, bucket, model, today, cursor=read_cursor(s3, bucket, model), lookback_days=lookback_days
    )
    by_version: dict[str, _Rows] = defaultdict(_Rows)
    bad = 0
    for record in _lines(s3, bucket, keys):
        features = record.get("features") if record else None
        prediction = _value(record.get("prediction")) if record else None
        if (
            record is None
            or not isinstance(features, dict)
            or prediction is None
            or not isinstance(record.get("model_version"), str)
        ):
            bad += 1
            continue
        rows = by_version[record["model_version"]]
        rows.features.append(features)
        rows.predictions.append(prediction)
        rows.ids.append((str(record.get("request_id", "")), int(record.get("row", 0) or 0)))
        withheld = record.get("withheld")
        if isinstance(withheld, dict):
            rows.withheld.update(
                (name, how)
                for name, how in withheld.items()
                if isinstance(name, str) and how in ("excluded", "hashed")
            )
        shadow = record.get("shadow")
        if isinstance(shadow, dict) and isinstance(shadow.get("model_version"), str):
            value = _value(shadow.get("prediction"))
            if value is not None:
                scored = rows.shadow.setdefault(shadow["model_version"], [])
                scored.append((len(rows.predictions) - 1, value))
    report = None
    written = None
    if keys:
        report = _report(
            s3,
            bucket,
            model,
            now=now,
            by_version=by_version,
            threshold=threshold,
            min_rows=min_rows,
        )
        report.update(files=len(keys), bad_lines=bad)
        written = report_key(model, today)
        s3.put_object(
            Bucket=bucket,
            Key=written,
            Body=json.dumps(report, indent=2).encode(),
            ContentType="application/json",
        )
        s3.put_object(
            Bucket=bucket,
            Key=written.removesuffix(".json") + ".html",
            Body=render(report).encode(),
            ContentType="text/html; charset=utf-8",
        )
    s3.put_object(
        Bucket=bucket,
        Key=cursor_key(model),
        Body=cursor.model_dump_json().encode(),
        ContentType="application/json",
    )
    return MonitorRun(len(keys), report, written)


def _report(
    s3: S3Client,
    bucket: str,
    model: str,
    *,
    now: datetime,
    by_version: Mapping[str, _Rows],
    threshold: float,
    min_rows: int,
) -> dict[str, Any]:
    store = ModelStore(s3, bucket)
    request_ids = {rid for rows in by_version.values() for rid, _ in rows.ids if rid}
    labels = _labels(s3, bucket, model, request_ids) if request_ids else {}
    versions: list[dict[str, Any]] = []
    for version, rows in sorted(by_version.items()):
        section: dict[str, Any] = {"version": version, "records": len(rows.predictions)}
        try:
            manifest = store.manifest(model, version)
        except SklambdaError as exc:  # no such version, a broken manifest: say so, go on
            section["error"] = str(exc)
            versions.append(section)
            continue
        if manifest.profile is None:
            section["error"] = "its manifest has no reference profile (trained before profiles)"
            versions.append(section)
            continue
        classes = manifest.classes.labels if manifest.classes else None
        section.update(
            version_drift(
                manifest.profile,
                manifest.feature_schema,
                rows.features,
                rows.predictions,
                classes=classes,
                threshold=threshold,
                min_rows=min_rows,
                withheld=rows.withheld,
            )
        )
        joined = [
            (labels[i], p) for i, p in zip(rows.ids, rows.predictions, strict=True) if i in labels
        ]
        metric = task_metric([y for y, _ in joined], [p for _, p in joined], bool(classes))
        section["live_metric"] = metric and {
            **metric,
            "holdout": manifest.metrics.get("holdout"),
        }
        if rows.shadow:
            section["shadow"] = [
                shadow_comparison(version, scored, rows, labels, classifier=bool(classes))
                for version, scored in sorted(rows.shadow.items())
            ]
        versions.append(section)
    max_psi: dict[str, float] = {}
    for section in versions:
        for name, stats in section.get("features", {}).items():
            if stats["rows"] >= min_rows:
                max_psi[name] = max(max_psi.get(name, 0.0), stats["psi"])
    return {
        "model": model,
        "generated_at": now.isoformat(timespec="seconds"),
        "threshold": threshold,
        "min_rows": min_rows,
        "records": sum(len(r.predictions) for r in by_version.values()),
        "versions": versions,
        "max_psi": max_psi,
        "drifted": sorted({n for s in versions for n in s.get("drifted", [])}),
    }
