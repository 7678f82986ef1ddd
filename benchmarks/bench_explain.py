"""Explanations: the one-row p50 of the predict handler with and without `"explain": true`,
side by side in one run (the two requests take turns, so both see the same load), and their
ratio; for the house-prices model's numpy form (linear), the same model's specification with
each tree estimator (served from the pickle), and the penguins classifier's numpy form.

The handler runs in process, fed API Gateway events (as bench_warm); the plain request is
events/predict.json, the explained one the same record with "explain": true (the reply's
`explanations` checked to add up to the prediction). Target: explained under 2x plain."""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import Any

from benchmarks.common import CONFIG, ROOT, WORK, percentile, quiet_powertools

quiet_powertools()

import predict_handler  # noqa: E402
from benchmarks.bench_warm import turns  # noqa: E402
from sklambda.manifest import open_verified, read_manifest, served_artifact, verify_file  # noqa: E402
from sklambda.model import LoadedModel  # noqa: E402
from tests.helpers import FakeLambdaContext, load_event  # noqa: E402

RUNS = 2000  # turns per numpy-form model; a pickle's trees take tens of ms a row: a tenth
TARGET_RATIO = 2.0
# (model, config, estimator kind or "" for the config's own, the plain request's event)
MODELS = (
    ("house-prices", CONFIG, "", "predict"),
    ("house-prices", CONFIG, "random_forest", "predict"),
    ("house-prices", CONFIG, "gradient_boosting", "predict"),
    ("house-prices", CONFIG, "hist_gradient_boosting", "predict"),
    ("penguins", ROOT / "training" / "configs" / "penguins.toml", "", "penguins_predict"),
)


def serve(config_path: Any, kind: str) -> tuple[str, str]:
    """Train (the config, or its specification with another estimator kind) and serve it in
    the handler as the function would: model.npz when there is one. (estimator kind, file)"""
    from sklambda.artifact import train_artifact
    from sklambda.config import load_config
    from sklambda.data import load_dataset

    config = load_config(config_path)
    if kind:
        estimator = config.estimator.model_copy(update={"kind": kind, "params": {}})
        config = config.model_copy(update={"estimator": estimator})
    folder = train_artifact(config, load_dataset(config), WORK / "explain" / config.name).folder
    manifest = read_manifest(folder)
    info = served_artifact(manifest)
    predict_handler.holder.use(
        LoadedModel(manifest, open_verified(verify_file(folder / info.key, manifest, info)))
    )
    return config.estimator.kind, info.key


def checked(event: dict[str, Any]) -> None:
    """The explained reply adds up: base + contributions = the prediction on its scale."""
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metric lines
        reply = json.loads(predict_handler.lambda_handler(event, FakeLambdaContext())["body"])
    ex = reply["explanations"]
    base, row = ex["base"], ex["contributions"][0]
    if isinstance(base, dict):  # a multiclass model: compare the softmax with the probabilities
        scores = {c: base[c] + sum(row[c].values()) for c in base}
        top = max(scores.values())
        total = sum(math.exp(s - top) for s in scores.values())
        got = [math.exp(scores[c] - top) / total for c in base]
        want = [reply["probabilities"][0][c] for c in base]
    else:
        got = [base + sum(row.values())]
        want = [
            math.log(reply["predictions"][0]) if ex["scale"] == "log" else reply["predictions"][0]
        ]
    if any(abs(a - b) > 1e-6 for a, b in zip(got, want, strict=True)):
        raise SystemExit(f"explanations do not add up: {got} vs {want}")


def main(runs: int = RUNS) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": runs, "models": []}
    for model, config, kind, event_name in MODELS:
        estimator, served = serve(config, kind)
        plain = load_event(event_name)
        record = json.loads(plain["body"])
        asked = {
            "plain": plain,
            "explain": {**plain, "body": json.dumps({**record, "explain": True})},
        }
        checked(asked["explain"])
        count = runs if served.endswith(".npz") else max(50, runs // 10)
        turns(asked, max(10, count // 10))  # warm-up (the explainer is built on first use)
        times = turns(asked, count)
        p50 = {name: percentile([wall for wall, _ in t], 0.5) * 1e6 for name, t in times.items()}
        cpu = {name: percentile([c for _, c in t], 0.5) * 1e6 for name, t in times.items()}
        results["models"].append(
            {
                "model": model,
                "estimator": estimator,
                "served": served,
                "turns": count,
                "plain_p50_us": p50["plain"],
                "explain_p50_us": p50["explain"],
                "ratio": p50["explain"] / p50["plain"],
                "cpu_ratio": cpu["explain"] / cpu["plain"],
            }
        )
        predict_handler.holder.reset()
    return results


def section(f: dict[str, Any]) -> list[str]:
    lines = [
        (__doc__ or "").split("\n\n")[0].replace("\n", " "),
        "",
        "Turns of each request: "
        + ", ".join(f"{g['estimator']} {g['turns']:,}" for g in f["models"])
        + ".",
        "",
        "| model | estimator (served from) | plain p50 | explained p50 | ratio (CPU) | target |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for g in f["models"]:
        met = "met" if g["ratio"] < TARGET_RATIO else "**missed**"
        lines.append(
            f"| {g['model']} | {g['estimator']} ({g['served']}) | {g['plain_p50_us']:,.0f} us "
            f"| {g['explain_p50_us']:,.0f} us | {g['ratio']:.2f} ({g['cpu_ratio']:.2f}) "
            f"| < {TARGET_RATIO:g}x {met} |"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(section(main())))
