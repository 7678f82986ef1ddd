"""Warm latency and throughput: the predict handler in process, fed API Gateway events."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any

from benchmarks.common import percentile, quiet_powertools, trained_model

quiet_powertools()

import predict_handler  # noqa: E402
from sklambda.manifest import open_verified, read_manifest, served_artifact, verify_file  # noqa: E402
from sklambda.model import LoadedModel  # noqa: E402
from tests.helpers import FakeLambdaContext, load_event  # noqa: E402


def timed(event: dict[str, Any], runs: int) -> list[float]:
    context = FakeLambdaContext()
    out = []
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metric lines
        for _ in range(runs):
            started = time.perf_counter()
            reply = predict_handler.lambda_handler(event, context)
            out.append(time.perf_counter() - started)
    if reply["statusCode"] != 200:
        raise SystemExit(f"unexpected reply {reply}")
    return out


def main() -> dict[str, Any]:
    folder = trained_model()
    manifest = read_manifest(folder)
    info = served_artifact(manifest)  # what the function serves: model.npz for this model
    predict_handler.holder.use(
        LoadedModel(manifest, open_verified(verify_file(folder / info.key, manifest, info)))
    )
    one = load_event("predict")
    record = json.loads(one["body"])
    results: dict[str, Any] = {"served": info.key}
    timed(one, 200)  # warm-up
    t = timed(one, 3000)
    results["one_row_p50_us"] = percentile(t, 0.5) * 1e6
    results["one_row_p99_us"] = percentile(t, 0.99) * 1e6
    for rows, runs in ((100, 500), (10_000, 30)):
        for shape in ("records", "lists"):
            instances = [record] * rows if shape == "records" else [list(record.values())] * rows
            event = {**one, "body": json.dumps({"instances": instances})}
            t = timed(event, runs)
            p50 = percentile(t, 0.5)
            results[f"rows_{rows}_{shape}_p50_ms"] = p50 * 1e3
            results[f"rows_{rows}_{shape}_rows_per_s"] = rows / p50
    return results


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key:<32} {value:,.1f}" if isinstance(value, float) else f"{key:<32} {value}")
