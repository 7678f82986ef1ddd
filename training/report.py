"""report.html: the model report, one self-contained page for a person to look at.

`python -m training train` writes it beside the artifact (after sklambda.artifact has written
the model and its manifest), `publish` uploads it into the version's folder, write-once, and
`python -m training report VERSION` downloads it. The page holds the metrics table, plots of the
holdout (actual vs predicted and residuals for a regression; confusion matrix, ROC and
calibration curves for a classification), the feature effects, the data summary and a model card.
Its images are PNG data: URIs and its Content-Security-Policy allows nothing else: no script,
nothing fetched.

matplotlib draws the plots: a training-only package (requirements-dev.txt), imported here only
when a plot is drawn, never by sklambda, and absent from the Lambda layer. So the retrain
function cannot render a report: versions it publishes have none, and `report` says so.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import math
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from botocore.exceptions import ClientError

from sklambda.config import ModelConfig
from sklambda.errors import RegistryError
from sklambda.manifest import Manifest
from sklambda.store import ModelStore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sklambda.artifact import TrainedArtifact
    from sklambda.data import Dataset

REPORT_FILE = "report.html"
DPI = 80
# Rows drawn in a scatter plot: more only blur the picture and grow the page.
MAX_POINTS = 2000
PERMUTATION_REPEATS = 5
MAX_EFFECTS = 20  # bars in a feature-effects chart: the largest, by magnitude
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:64em;padding:0 1em;"
    "color:#222;line-height:1.4}h1{font-size:1.5em;margin-bottom:0.2em}h2{font-size:1.2em;"
    "border-bottom:1px solid #ccc;margin-top:1.6em}table{border-collapse:collapse;margin:0.5em 0}"
    "th,td{padding:0.2em 0.7em;text-align:right;border-bottom:1px solid #eee}"
    "th:first-child,td:first-child{text-align:left}tr.primary td{font-weight:bold}"
    "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}"
    "figcaption{font-size:0.85em;color:#555;max-width:32em}img{max-width:100%;height:auto}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:0.3em 1em}dt{font-weight:bold}"
    "dd{margin:0}.note{font-size:0.85em;color:#555}table.text td,table.text th{text-align:left}"
)


@dataclass(frozen=True)
class Plot:
    """One image of the page: a PNG data: URI with its title and caption."""

    title: str
    caption: str
    uri: str

    def html(self) -> str:
        return (
            f'<figure><img src="{self.uri}" alt="{escape(self.title)}">'
            f"<figcaption><b>{escape(self.title)}</b>: {escape(self.caption)}</figcaption>"
            "</figure>"
        )


@dataclass(frozen=True)
class Rows:
    """The rows the plots are drawn from (encoded, schema order), their targets, and whether
    the shipped model was fitted on them (final_fit "all_rows": no unseen row is left)."""

    X: np.ndarray
    y: np.ndarray
    in_sample: bool


# --- figures --------------------------------------------------------------------------------


def _figure(width: float = 5.0, height: float = 3.6, columns: int = 1) -> Figure:
    """A figure drawn by the Agg canvas, without pyplot (no global state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.subplots(1, columns)
    return figure


def png_uri(figure: Figure) -> str:
    """The figure as a PNG data: URI (no software or date metadata: same plot, same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def _log_axes(ax: Any, which: str) -> None:
    """Log axes (`which`: "x", "y" or "xy") labelled in plain numbers (60,000, not 6x10^4)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for name in which:
        getattr(ax, f"set_{name}scale")("log")
        axis = getattr(ax, f"{name}axis")
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.6g}"))
        axis.set_minor_formatter(NullFormatter())


def regression_plots(
    y: np.ndarray, predicted: np.ndarray, target: str, log_scale: bool, rows_note: str
) -> list[Plot]:
    """Actual against predicted (the diagonal is a perfect model), and the residuals against
    the prediction and as a histogram."""
    keep = _sample(len(y), 0)
    y, predicted = np.asarray(y, float), np.asarray(predicted, float)
    figure = _figure()
    ax = figure.axes[0]
    ax.scatter(predicted[keep], y[keep], s=10, alpha=0.6, color="#4c72b0", linewidths=0)
    low = float(min(y.min(), predicted.min()))
    high = float(max(y.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="#c44e52", linewidth=1, label="actual = predicted")
    if log_scale and low > 0:
        _log_axes(ax, "xy")
    ax.set_xlabel(f"predicted {target}")
    ax.set_ylabel(f"actual {target}")
    ax.legend(loc="upper left", fontsize=8)
    actual = Plot(
        "Actual vs predicted",
        f"{rows_note}; points on the red line are predicted exactly"
        + ("; log axes (a log target)" if log_scale and low > 0 else ""),
        png_uri(figure),
    )
    residual = y - predicted
    figure = _figure(width=7.5, columns=2)
    left, right = figure.axes
    left.scatter(predicted[keep], residual[keep], s=10, alpha=0.6, color="#4c72b0", linewidths=0)
    left.axhline(0, color="#c44e52", linewidth=1)
    if log_scale and low > 0:
        _log_axes(left, "x")
    left.set_xlabel(f"predicted {target}")
    left.set_ylabel("actual - predicted")
    right.hist(residual, bins=min(30, max(5, len(residual) // 5)), color="#4c72b0")
    right.axvline(0, color="#c44e52", linewidth=1)
    right.set_xlabel("actual - predicted")
    right.set_ylabel("rows")
    residuals = Plot(
        "Residuals",
        f"{rows_note}; a pattern against the prediction means the model misses a shape "
        "in the data, a wide or skewed histogram large errors",
        png_uri(figure),
    )
    return [actual, residuals]


def classification_plots(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    probabilities: np.ndarray,
    labels: Sequence[Any],
    rows_note: str,
) -> list[Plot]:
    """Confusion matrix, ROC curves and calibration curves. `probabilities` has one column per
    label, in `labels` order (predict_proba's, with labels = the classifier's classes_). Two
    labels: the curves of the second (the positive class); more: one curve per label against
    the rest."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import auc, confusion_matrix, roc_curve

    names = [str(label) for label in labels]
    # Labels as their column numbers: a CSV's labels (int64 or object arrays) and decided
    # labels compare by their text, whatever the arrays' dtypes.
    column = {name: k for k, name in enumerate(names)}
    truth = np.array([column[str(v)] for v in np.asarray(y_true).tolist()])
    decided = np.array([column[str(v)] for v in np.asarray(y_pred).tolist()])
    counts = confusion_matrix(truth, decided, labels=list(range(len(names))))
    size = max(3.6, 0.45 * len(names) + 2.4)
    figure = _figure(width=size + 0.8, height=size)
    ax = figure.axes[0]
    ax.imshow(counts, cmap="Blues")
    ticks = range(len(names))
    ax.set_xticks(ticks, names, rotation=45 if len(names) > 4 else 0, ha="right")
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    middle = counts.max() / 2 if counts.size else 0
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if count > middle else "black"
        ax.text(j, i, f"{count:,}", ha="center", va="center", color=colour, fontsize=9)
    plots = [
        Plot("Confusion matrix", f"{rows_note}; the diagonal counts right answers", png_uri(figure))
    ]
    curves = [(names[1], 1)] if len(names) == 2 else [(name, k) for k, name in enumerate(names)]
    figure = _figure(width=7.5, columns=2)
    roc, calibration = figure.axes
    for name, k in curves:
        positive = (truth == k).astype(int)
        if positive.min() == positive.max():  # no row of this class (or only it): no curve
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, k])
        roc.plot(fpr, tpr, linewidth=1.2, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        observed, expected = calibration_curve(
            positive, probabilities[:, k], n_bins=10, strategy="quantile"
        )
        calibration.plot(expected, observed, marker="o", markersize=3, linewidth=1, label=name)
    for ax in (roc, calibration):
        ax.plot([0, 1], [0, 1], color="#888", linewidth=0.8, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.legend(loc="lower right", fontsize=7)
    roc.set_xlabel("false positive rate")
    roc.set_ylabel("true positive rate")
    calibration.set_xlabel("predicted probability")
    calibration.set_ylabel("observed share")
    which = "the positive class" if len(names) == 2 else "each class against the rest"
    plots.append(
        Plot(
            "ROC and calibration",
            f"{rows_note}; {which}. ROC: how the true positive rate grows with the false "
            "positives as the threshold falls. Calibration: observed share against predicted "
            "probability in deciles; on the dashed line probabilities mean what they say",
            png_uri(figure),
        )
    )
    return plots


def bar_plot(title: str, caption: str, values: dict[str, float], errors: dict[str, float]) -> Plot:
    """Horizontal bars, the largest magnitudes at the top (at most MAX_EFFECTS)."""
    shown = sorted(values, key=lambda name: abs(values[name]), reverse=True)[:MAX_EFFECTS]
    shown.reverse()
    figure = _figure(height=max(2.0, 0.28 * len(shown) + 1.0))
    ax = figure.axes[0]
    colours = ["#4c72b0" if values[n] >= 0 else "#c44e52" for n in shown]
    spread = [errors.get(n, 0.0) for n in shown] if errors else None
    ax.barh(range(len(shown)), [values[n] for n in shown], xerr=spread, color=colours)
    ax.set_yticks(range(len(shown)), [n[:32] for n in shown], fontsize=8)
    ax.axvline(0, color="#444", linewidth=0.8)
    return Plot(title, caption, png_uri(figure))


# --- feature effects ------------------------------------------------------------------------


def _pipeline(model: Any) -> Any:
    """The preprocessing + estimator pipeline, inside a target transform or not."""
    return getattr(model, "regressor_", model)


def encoded_names(model: Any, manifest: Manifest) -> list[str]:
    """The estimator's input columns by name: x3 becomes the feature's name, a one-hot column
    x3_1.0 "kind=house", an indicator "floor missing"."""
    features = manifest.features
    prep = _pipeline(model).named_steps["prep"]

    def named(raw: str) -> str:
        indicator = raw.startswith("missingindicator_")
        raw = raw.removeprefix("missingindicator_")
        match = re.fullmatch(r"x(\d+)(?:_(.+))?", raw)
        if not match or int(match[1]) >= len(features):
            return raw
        feature = features[int(match[1])]
        name = str(feature["name"])
        if indicator:
            return f"{name} missing"
        if match[2] is None:
            return name
        code = float(match[2])
        levels = feature.get("categories") or []
        level = "(missing)" if math.isnan(code) else levels[int(code)]
        return f"{name}={level}"

    return [named(str(raw)) for raw in prep.get_feature_names_out()]


def effect_plots(model: Any, manifest: Manifest, rows: Rows, seed: int) -> list[Plot]:
    """The estimator's own view (coefficients of a linear model, impurity importances of a
    tree ensemble) and, for every model, permutation importance on the report's rows."""
    from sklearn.inspection import permutation_importance

    plots = []
    estimator = _pipeline(model).named_steps["model"]
    scale = f"log({manifest.target.name})" if manifest.target.transform == "log" else "the target"
    names = encoded_names(model, manifest)
    coef = getattr(estimator, "coef_", None)
    if coef is not None and np.ndim(coef) == 2 and len(coef) == 1:  # a binary classifier
        coef, scale = coef[0], f"the log-odds of {manifest.target.name} = {estimator.classes_[1]}"
    if coef is not None and np.ndim(coef) == 1 and len(coef) == len(names):
        plots.append(
            bar_plot(
                "Coefficients",
                f"change of {scale} per unit of each input, after its transform (log inputs: "
                "per unit of the log); a category's levels against its first level; not "
                "comparable across inputs of different units",
                dict(zip(names, map(float, coef), strict=True)),
                {},
            )
        )
    impurity = getattr(estimator, "feature_importances_", None)
    if impurity is not None and len(impurity) == len(names):
        plots.append(
            bar_plot(
                "Impurity importance",
                "the share of the trees' splitting gain on each input, on the training rows "
                "(it favours inputs with many distinct values)",
                dict(zip(names, map(float, impurity), strict=True)),
                {},
            )
        )
    result = permutation_importance(
        model, rows.X, rows.y, n_repeats=PERMUTATION_REPEATS, random_state=seed
    )
    score = "R²" if manifest.task == "regression" else "accuracy"
    feature_names = [str(f["name"]) for f in manifest.features]
    plots.append(
        bar_plot(
            "Permutation importance",
            f"how much the {score} on the plotted rows drops when one feature's values are "
            f"shuffled (mean and sd of {PERMUTATION_REPEATS} shuffles): what the model relies "
            "on, whatever its kind",
            dict(zip(feature_names, map(float, result.importances_mean), strict=True)),
            dict(zip(feature_names, map(float, result.importances_std), strict=True)),
        )
    )
    return plots


# --- tables ---------------------------------------------------------------------------------


def _number(name: str, value: Any) -> str:
    """training.cli's number format for its metrics; 4 decimals for any other metric."""
    from training.cli import LOG_METRICS, METRICS, format_metric

    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    return format_metric(name, value) if name in (*METRICS, *LOG_METRICS) else f"{value:.4f}"


def metrics_table(metrics: dict[str, Any]) -> str:
    """One row per scalar metric: CV mean and sd, holdout, baseline, in-sample (what the
    manifest has); the primary metric in bold."""
    holdout = metrics.get("holdout", {})
    cv = metrics.get("cv", {})
    names = [n for n, v in holdout.items() if isinstance(v, (int, float))]
    columns = [("holdout", holdout)]
    for key, label in (("baseline", "baseline"), ("fit", "in-sample")):
        if isinstance(metrics.get(key), dict):
            columns.append((label, metrics[key]))
    scales = metrics.get("scales", {})
    head = "".join(f"<th>{h}</th>" for h in ("metric", "scale", "cv mean", "cv sd"))
    head += "".join(f"<th>{label}</th>" for label, _ in columns)
    body = []
    for name in names:
        spread = cv.get(name, {})
        cells = [
            escape(name),
            escape(str(scales.get(name, ""))),
            _number(name, spread.get("mean")),
            _number(name, spread.get("sd")),
            *(_number(name, values.get(name)) for _, values in columns),
        ]
        primary = ' class="primary"' if name == metrics.get("primary") else ""
        body.append(f"<tr{primary}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    notes = (
        f"{metrics.get('cv_folds', '?')}-fold CV on {metrics.get('rows', '?')} rows; holdout: "
        f"{metrics.get('holdout_rows', '?')} rows scored by a fit on the other "
        f"{metrics.get('train_rows', '?')}; baseline: a trivial model (the training mean or "
        "the most frequent class) on the same holdout; in-sample: the shipped model on the "
        "rows it was fitted on."
    )
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<p class="note">{escape(notes)}</p>'
    )


def _short(value: float) -> str:
    return f"{value:,.4g}"


def data_table(manifest: Manifest) -> str:
    """Each feature: type, range or levels, how missing values are handled and how many
    training rows had one, and its distribution on the training rows (the reference profile)."""
    profile = manifest.profile
    head = "".join(
        f"<th>{h}</th>"
        for h in ("feature", "type", "range or levels", "missing", "training rows: distribution")
    )
    body = []
    for feature in manifest.features:
        name = str(feature["name"])
        kind = str(feature["type"]) + (" (log)" if feature.get("transform") == "log" else "")
        levels = feature.get("categories") or []
        if levels:
            extent = ", ".join(map(str, levels[:8])) + (" …" if len(levels) > 8 else "")
        elif feature.get("min") is not None:
            extent = f"{_short(feature['min'])} to {_short(feature['max'])}"
        else:
            extent = "-"
        missing = str(feature.get("missing", "-"))
        if feature.get("missing_rows"):
            missing += f" ({feature['missing_rows']:,} rows)"
        shape = _distribution(profile.features.get(name)) if profile else "-"
        cells = [name, kind, extent, missing, shape]
        body.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    if profile is not None:
        cells = ["(prediction)", "", "", "", _distribution(profile.prediction)]
        body.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return (
        f'<table class="text"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _distribution(profile: Any) -> str:
    """A numeric profile as min / median / max, a level profile as its largest shares."""
    if profile is None:
        return "-"
    if profile.kind == "numeric":
        q = profile.quantiles
        if not q:
            return "all missing"
        text = f"min {_short(q[0])}, median {_short(q[len(q) // 2])}, max {_short(q[-1])}"
    else:
        top = sorted(profile.shares.items(), key=lambda item: -item[1])[:4]
        text = ", ".join(f"{level} {share:.0%}" for level, share in top)
    return text + (f"; missing {profile.missing:.0%}" if profile.missing else "")


def model_card(manifest: Manifest, config: ModelConfig) -> str:
    """Intended use and limitations from the config's [card], with what the manifest records:
    provenance, estimator, files, library versions."""
    card = config.card
    data = manifest.data
    rows = manifest.metrics.get("rows", data.rows)
    limits = [
        card.limitations,
        f"Fitted on {manifest.metrics.get('fit', {}).get('rows', '?')} of {rows} rows of "
        f"{data.source}: inputs outside the training ranges in the data summary are "
        "extrapolations (the API warns about each).",
        f"The holdout figures rest on {manifest.metrics.get('holdout_rows', '?')} rows; the "
        "CV spread says how much they may move.",
    ]
    import matplotlib

    versions = {**manifest.runtime, "matplotlib (this report)": matplotlib.__version__}
    params = ", ".join(f"{k}={v}" for k, v in sorted(manifest.estimator.get("params", {}).items()))
    entries = [
        ("Model", f"{manifest.name} {manifest.version}, {manifest.task}"),
        ("Target", f"{manifest.target.name} (transform: {manifest.target.transform})"),
        ("Intended use", card.intended_use or "not stated (the config's [card] intended_use)"),
        ("Limitations", " ".join(limit for limit in limits if limit)),
        ("Owner", card.owner or "not stated (the config's [card] owner)"),
        ("Estimator", f"{manifest.estimator.get('class', '?')} ({params})"),
        (
            "Data",
            f"{data.source}, {data.rows:,} rows, sha256 {data.sha256}; final fit: "
            f"{manifest.final_fit}; parent version: {manifest.parent_version or 'none'}",
        ),
        (
            "Files",
            "; ".join(f"{a.key} sha256 {a.sha256} ({a.bytes:,} bytes)" for a in manifest.artifacts),
        ),
        ("Libraries", ", ".join(f"{k} {v}" for k, v in versions.items())),
        ("Trained", f"{manifest.created_at} in {manifest.metrics.get('train_seconds', '?')} s"),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{escape(v)}</dd>" for k, v in entries) + "</dl>"


# --- the page -------------------------------------------------------------------------------


def render(manifest: Manifest, config: ModelConfig, model: Any, rows: Rows) -> str:
    """The whole page for one version: `model` is the shipped model, `rows` what the plots show
    (the holdout)."""
    seen = "rows it was fitted on (final_fit all_rows)" if rows.in_sample else "unseen rows"
    note = f"{len(rows.y):,} holdout rows: {seen}"
    if manifest.task == "regression":
        plots = regression_plots(
            rows.y,
            model.predict(rows.X),
            manifest.target.name,
            manifest.target.transform == "log",
            note,
        )
    else:
        plots = classification_plots(rows.y, *_decided(manifest, model, rows.X), note)
    effects = effect_plots(model, manifest, rows, config.evaluation.seed)
    title = f"Model report: {manifest.name} {manifest.version}"
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<p class="note">{escape(manifest.estimator.get("kind", "?"))} predicting '
        f"{escape(manifest.target.name)} from {len(manifest.features)} features; trained "
        f"{escape(manifest.created_at)}; model sha256 {manifest.artifact.sha256}; "
        f"page generated {generated}</p>"
        f"<h2>Metrics</h2>{metrics_table(manifest.metrics)}"
        f"<h2>Holdout</h2>{''.join(p.html() for p in plots)}"
        f"<h2>Feature effects</h2>{''.join(p.html() for p in effects)}"
        f"<h2>Data</h2>{data_table(manifest)}"
        f"<h2>Model card</h2>{model_card(manifest, config)}"
        "</body></html>\n"
    )


def _decided(manifest: Manifest, model: Any, X: np.ndarray) -> tuple[np.ndarray, Any, list[Any]]:
    """A classifier's decided labels, probabilities and labels (the probabilities' column
    order), by the manifest's decision rule: what serving answers."""
    from sklambda.classes import decide

    classes = manifest.classes
    assert classes is not None  # a classifier's manifest has them (sklambda.manifest)
    labels = list(classes.labels)
    probabilities = model.predict_proba(X)
    chosen = decide(probabilities, classes.threshold, classes.positive_index)
    return np.asarray(labels, dtype=object)[chosen], probabilities, labels


def write_report(trained: TrainedArtifact, config: ModelConfig, dataset: Dataset) -> Path:
    """Render the report of a model just trained into its folder (report.html); the manifest
    is not touched (it records nothing of the report)."""
    rows = trained.result.holdout_rows
    page = render(
        trained.manifest,
        config,
        trained.result.model,
        Rows(dataset.X[rows], dataset.y[rows], in_sample=config.evaluation.final_fit == "all_rows"),
    )
    path = trained.folder / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path


def report_after_training(trained: TrainedArtifact, config: ModelConfig, dataset: Dataset) -> str:
    """Write the report of a model `train` has just written; what to tell the person: its path,
    size and rendering time, or why there is none (no matplotlib: training still succeeds)."""
    if importlib.util.find_spec("matplotlib") is None:
        return (
            f"no {REPORT_FILE}: matplotlib is not installed (pip install -r requirements-dev.txt)"
        )
    started = time.perf_counter()
    path = write_report(trained, config, dataset)
    seconds = time.perf_counter() - started
    return f"wrote {path} ({path.stat().st_size / 1024:,.0f} KB) in {seconds:.1f} s"


# --- the registry ---------------------------------------------------------------------------


def report_key(store: ModelStore, name: str, version: str) -> str:
    return store.version_prefix(name, version) + REPORT_FILE


def find_model(store: ModelStore, version: str) -> str:
    """The model that has `version` (versions are unique across models)."""
    for name in store.model_names():
        if version in store.versions(name):
            return name
    raise RegistryError(
        f"no model in s3://{store.bucket} has version {version}", "version_not_found", 404
    )


def default_report_path(name: str, version: str) -> Path:
    """Where `report` writes a download unless told: beside `train`'s artifacts."""
    return Path("artifacts") / "reports" / f"{name}-{version}.html"


def open_in_browser(path: Path) -> bool:
    """Open the file in the default web browser; False when there is none."""
    import webbrowser

    return webbrowser.open(path.resolve().as_uri())


def download_report(store: ModelStore, name: str, version: str, out: Path) -> Path:
    """Download a version's report.html to `out` (replaced whole); a clear error when the
    version has none (published by a retrain, which cannot render one, or before reports)."""
    manifest = store.manifest(name, version)  # the version must exist
    key = report_key(store, name, version)
    try:
        body = store.s3.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        why = (
            f"it was published by a retrain from {manifest.parent_version} (the retrain "
            "function has no matplotlib, so it renders no report)"
            if manifest.parent_version
            else "it was published without one (trained before reports, or its folder had none)"
        )
        raise RegistryError(
            f"{name} {version} has no model report: {why}; `python -m training train` with "
            "its config renders one for a new version",
            "report_not_found",
            404,
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".part")
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    os.replace(tmp, out)
    return out
