"""The bundled classifier (penguins, a multinomial logistic regression served from model.npz):
cold start from process start to the first label with its probabilities, and the warm handler on
one row and on a 10,000-row batch answered with each class's probability.

The cold start runs as bench_cold's (the shipped build, a fresh process per run, the model
fetched from a local moto S3, PredictFunction with MODEL_NAME=penguins); the warm figures as
bench_warm's (the handler in process, API Gateway events)."""

from __future__ import annotations

import json
from typing import Any

from benchmarks.common import (
    ROOT,
    WORK,
    ensure_build,
    function_env,
    median,
    percentile,
    quiet_powertools,
    target_python,
)

quiet_powertools()

import predict_handler  # noqa: E402
from benchmarks import bench_cold  # noqa: E402
from benchmarks.bench_warm import timed  # noqa: E402
from sklambda.manifest import open_verified, read_manifest, served_artifact, verify_file  # noqa: E402
from sklambda.model import LoadedModel  # noqa: E402
from tests.helpers import FakeLambdaContext, load_event  # noqa: E402

MODEL = "penguins"
CONFIG = ROOT / "training" / "configs" / "penguins.toml"
COLD_RUNS = 7
BATCH_ROWS = 10_000


def cold(endpoint: str, runs: int = COLD_RUNS) -> dict[str, Any]:
    """Median phases of `runs` fresh processes answering events/penguins_predict.json."""
    from tools.local.s3server import seed_registry

    ensure_build()
    python, note = target_python()
    bucket = function_env("PredictFunction")["MODEL_BUCKET"]
    seed_registry(endpoint, bucket, CONFIG, WORK / "registry")

    def once() -> dict[str, Any]:
        return bench_cold.run_once(endpoint, python, model=MODEL, event_name="penguins_predict")

    once()  # fills the page cache; discarded
    table = [bench_cold.phases(once()) for _ in range(runs)]
    return {
        "python": note,
        "runs": runs,
        "median_ms": {name: median([row[name] for row in table]) for name in table[0]},
    }


def warm() -> dict[str, Any]:
    """One-row p50 and a 10,000-row batch (records, probabilities in the reply)."""
    from sklambda.artifact import train_artifact
    from sklambda.config import load_config
    from sklambda.data import load_dataset

    config = load_config(CONFIG)
    folder = train_artifact(config, load_dataset(config), WORK / MODEL).folder
    manifest = read_manifest(folder)
    info = served_artifact(manifest)
    predict_handler.holder.use(
        LoadedModel(manifest, open_verified(verify_file(folder / info.key, manifest, info)))
    )
    one = load_event("penguins_predict")
    records = json.loads(load_event("penguins_predict_batch")["body"])["instances"]
    batch = {**one, "body": json.dumps({"instances": records * (BATCH_ROWS // len(records))})}
    reply = json.loads(predict_handler.lambda_handler(batch, FakeLambdaContext())["body"])
    if len(reply.get("probabilities", [])) != BATCH_ROWS:
        raise SystemExit(f"expected {BATCH_ROWS:,} rows of probabilities: {str(reply)[:300]}")
    timed(one, 200)  # warm-up
    one_row = timed(one, 2000)
    timed(batch, 3)
    rows = timed(batch, 30)
    predict_handler.holder.reset()
    return {
        "served": info.key,
        "one_row_p50_us": percentile(one_row, 0.5) * 1e6,
        "one_row_p99_us": percentile(one_row, 0.99) * 1e6,
        "batch_p50_ms": percentile(rows, 0.5) * 1e3,
        "batch_rows_per_s": BATCH_ROWS / percentile(rows, 0.5),
    }


def main(endpoint: str | None = None) -> dict[str, Any]:
    if endpoint is None:
        from tools.local.s3server import moto_server, use_endpoint

        with moto_server() as local:
            use_endpoint(local)
            return main(local)
    return {"cold": cold(endpoint), "warm": warm()}


def section(f: dict[str, Any]) -> list[str]:
    c, w = f["cold"], f["warm"]
    lines = [
        (__doc__ or "").split("\n\n")[0].replace("\n", " "),
        "",
        f"Cold start: {c['runs']} fresh processes on {c['python']}.",
        "",
        "| phase (median of runs) | ms |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in c["median_ms"].items()]
    lines += [
        "",
        f"Warm handler, serving {w['served']}:",
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| one row p50 | {w['one_row_p50_us']:.0f} us |",
        f"| one row p99 | {w['one_row_p99_us']:.0f} us |",
        f"| {BATCH_ROWS:,} rows with probabilities p50 | {w['batch_p50_ms']:.1f} ms, "
        f"{w['batch_rows_per_s']:,.0f} rows/s |",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(section(main())))
