"""drift.html: the drift report as one self-contained page, bar charts drawn as inline SVG by
hand (no matplotlib in the Lambda layer, no script, nothing fetched): for each feature and for
the prediction, the training share of each bin or level beside the live share."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT, PAD = 520, 150, 24
TRAIN_COLOUR, LIVE_COLOUR = "#8da0cb", "#fc8d62"


def _bars(labels: list[str], reference: list[float], live: list[float]) -> str:
    """Paired bars (training, live) per label, scaled to the largest share."""
    top = max([*reference, *live, 1e-9])
    slot = (WIDTH - 2 * PAD) / max(len(labels), 1)
    bar = slot * 0.4
    plot = HEIGHT - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img">',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#444"/>',
    ]
    for i, (label, ref, now) in enumerate(zip(labels, reference, live, strict=True)):
        x = PAD + i * slot + slot * 0.1
        for offset, share, colour, who in (
            (0.0, ref, TRAIN_COLOUR, "training"),
            (bar, now, LIVE_COLOUR, "live"),
        ):
            h = plot * share / top
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(label)} {who}: '
                f"{share:.1%}</title></rect>"
            )
        parts.append(
            f'<text x="{x + bar:.1f}" y="{HEIGHT - PAD + 12}" font-size="9" '
            f'text-anchor="middle">{escape(label[:12])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _numeric_labels(edges: list[float]) -> list[str]:
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"{lo}..{hi}" for lo, hi in zip(bounds, bounds[1:], strict=False)] + ["missing"]


def _chart(name: str, stats: dict[str, Any]) -> str:
    if "bins" in stats:
        bins = stats["bins"]
        chart = _bars(_numeric_labels(bins["edges"]), bins["reference"], bins["live"])
        ks = "" if stats.get("ks") is None else f", KS {stats['ks']:.3f}"
    else:
        labels = list(stats["shares"])
        reference = [stats["reference"].get(n, 0.0) for n in labels]
        chart = _bars(labels, reference, [stats["shares"][n] for n in labels])
        ks = ""
    mark = ' class="drifted"' if stats.get("drifted") else ""
    return (
        f"<section{mark}><h3>{escape(name)}: PSI {stats['psi']:.3f}{ks}, "
        f"{stats['rows']:,} rows</h3>{chart}</section>"
    )


def _version(section: dict[str, Any]) -> str:
    head = f"<h2>version {escape(section['version'])}: {section['records']:,} records</h2>"
    if "error" in section:
        return f"{head}<p>{escape(section['error'])}</p>"
    metric = section.get("live_metric")
    live = (
        f"<p>live metric on {metric['rows']:,} labelled rows: {_metric(metric)}</p>"
        if metric
        else "<p>no labels for these requests</p>"
    )
    charts = [_chart(n, s) for n, s in section["features"].items()]
    withheld = section.get("not_compared") or {}
    skipped = (
        "<p>not compared (capture withholds their values): "
        + ", ".join(f"{escape(n)} ({escape(how)})" for n, how in withheld.items())
        + "</p>"
        if withheld
        else ""
    )
    shadow = _shadow(section.get("shadow") or [])
    return (
        head
        + live
        + shadow
        + skipped
        + "".join(charts)
        + _chart("prediction", section["prediction"])
    )


def _metric(metric: dict[str, Any]) -> str:
    """A live metric: a regressor's rmse and mae, a classifier's accuracy and macro F1."""
    if "accuracy" in metric:
        return f"accuracy {metric['accuracy']:.1%}, macro F1 {metric['f1_macro']:.3f}"
    return f"rmse {metric['rmse']:,.4g}, mae {metric['mae']:,.4g}"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _shadow(comparisons: list[dict[str, Any]]) -> str:
    """Champion vs shadow on the same live rows (sklambda.monitor.shadow_comparison)."""
    if not comparisons:
        return ""

    def live(metric: dict[str, Any] | None) -> str:
        return f"{_metric(metric)} ({metric['rows']:,} labelled)" if metric else "no labels"

    def agreement(c: dict[str, Any]) -> str:
        within = c["agreement_tolerance"]
        how = f"within {within:.0%}" if within else "same label"
        return f"{_number(c['agreement'], '.1%')} ({how})"

    rows = "".join(
        f"<tr><td>{escape(c['version'])}</td><td>{c['rows']:,}</td>"
        f"<td>{agreement(c)}</td>"
        f"<td>{_number(c['mean_difference'], '+,.4g')}</td>"
        f"<td>{_number(c['mean_absolute_difference'], ',.4g')}</td>"
        f"<td>{live(c['live_metric'])}</td><td>{live(c['champion_live_metric'])}</td></tr>"
        for c in comparisons
    )
    return (
        '<table class="shadow"><caption>champion vs shadow on live traffic</caption>'
        "<tr><th>shadow version</th><th>rows</th><th>agreement</th>"
        "<th>mean difference (shadow - champion)</th><th>mean absolute difference</th>"
        "<th>shadow live metric</th><th>champion live metric</th></tr>"
        f"{rows}</table>"
    )


def render(report: dict[str, Any]) -> str:
    """The page for one drift.json."""
    drifted = ", ".join(report["drifted"]) or "none"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>drift: {escape(report['model'])}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:60em}"
        "section{display:inline-block;margin:0 1em 1em 0}"
        "section.drifted h3{color:#b30000}h3{font-size:0.95em;margin:0.3em 0}"
        "</style></head><body>"
        f"<h1>Drift report: {escape(report['model'])}</h1>"
        f"<p>{escape(report['generated_at'])}: {report['records']:,} captured rows; "
        f"PSI threshold {report['threshold']}; drifted: {escape(drifted)}</p>"
        f'<p><span style="color:{TRAIN_COLOUR}">&#9632;</span> training '
        f'<span style="color:{LIVE_COLOUR}">&#9632;</span> live</p>'
        + "".join(_version(s) for s in report["versions"])
        + "</body></html>\n"
    )
