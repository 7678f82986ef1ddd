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


def turns(events: dict[str, dict[str, Any]], runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, this thread's CPU) seconds of each of `runs` calls per event, the events taking
    turns: each sees the same load on a shared machine, so their ratio holds when the machine is
    busy. CPU time leaves out the waits for a core that other processes cause."""
    context = FakeLambdaContext()
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in events}
    with contextlib.redirect_stdout(io.StringIO()):  # EMF metric lines
        for _ in range(runs):
            for name, event in events.items():
                wall, cpu = time.perf_counter(), time.thread_time()
                reply = predict_handler.lambda_handler(event, context)
                out[name].append((time.perf_counter() - wall, time.thread_time() - cpu))
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
    # The same record asking for its 90% interval, taking turns with the plain one.
    asked = {"plain": one, "intervals": {**one, "body": json.dumps({**record, "intervals": 0.9})}}
    turns(asked, 200)  # warm-up
    for name, times in turns(asked, 3000).items():
        results[f"one_row_{name}_p50_us"] = percentile([wall for wall, _ in times], 0.5) * 1e6
    results["one_row_intervals_to_plain_ratio"] = (
        results["one_row_intervals_p50_us"] / results["one_row_plain_p50_us"]
    )
    for rows, runs in ((100, 500), (10_000, 40)):
        bodies = {"records": [record] * rows, "lists": [list(record.values())] * rows}
        events = {
            shape: {**one, "body": json.dumps({"instances": instances})}
            for shape, instances in bodies.items()
        }
        turns(events, max(3, runs // 10))  # warm-up
        for shape, times in turns(events, runs).items():
            p50 = percentile([wall for wall, _ in times], 0.5)
            results[f"rows_{rows}_{shape}_p50_ms"] = p50 * 1e3
            results[f"rows_{rows}_{shape}_rows_per_s"] = rows / p50
            cpu = percentile([cpu for _, cpu in times], 0.5)
            results[f"rows_{rows}_{shape}_cpu_rows_per_s"] = rows / cpu
        for clock in ("", "cpu_"):  # the figure to watch: what decoding records costs
            results[f"rows_{rows}_records_to_lists_{clock}ratio"] = (
                results[f"rows_{rows}_records_{clock}rows_per_s"]
                / results[f"rows_{rows}_lists_{clock}rows_per_s"]
            )
    return results


if __name__ == "__main__":
    for key, value in main().items():
        shown = value
        if isinstance(value, float):
            shown = f"{value:,.2f}" if key.endswith("ratio") else f"{value:,.1f}"
        print(f"{key:<40} {shown}")
