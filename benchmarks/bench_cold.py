"""Cold start: fresh processes running the shipped build (.aws-sam/build) to the first prediction.

Each run is a new interpreter (Python 3.12 when the machine has one) with the function's code
and the layer as packaged on its path, boto3 standing in for the runtime's, an empty model cache
(a new execution environment has an empty /tmp) and the model resolved, fetched and verified
from a local moto S3. The phases come from the handler's own ModelHolder timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BUILD,
    ENV_VARS,
    TEMPLATE,
    ensure_build,
    median,
    runtime_site,
    seeded_registry,
    target_python,
)

RUNS = 9
FUNCTION = "PredictFunction"

# Runs inside the fresh process: the timestamps are wall-clock so the parent can add the
# interpreter's own start-up; the handler is called exactly as Lambda calls it.
CHILD = r"""
import time
started = time.time()
import json, sys
import predict_handler
imported = time.time()
timings = {}
logged = predict_handler.holder.on_load
def capture(model, phases, reason):
    timings.update(phases)
    if logged:
        logged(model, phases, reason)
predict_handler.holder.on_load = capture
class Context:
    function_name = "PredictFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"
    aws_request_id = "bench"
    log_group_name = log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000
def peak_rss_kb():
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child
    # spawned by a big parent (this benchmark) would report the parent's peak.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
event = json.loads(open(sys.argv[1]).read())
t0 = time.time()
reply = predict_handler.lambda_handler(event, Context())
answered = time.time()
body = json.loads(reply["body"])
assert reply["statusCode"] == 200 and len(body["predictions"]) == 1, reply
rss_cold = peak_rss_kb()
rss_batch = None
if len(sys.argv) > 2:
    batch = json.loads(open(sys.argv[2]).read())
    reply = predict_handler.lambda_handler(batch, Context())
    assert reply["statusCode"] == 200, reply["body"][:500]
    rss_batch = peak_rss_kb()
print("BENCH " + json.dumps({
    "started": started, "imported": imported, "invoked": t0, "answered": answered,
    "timings": timings, "rss_cold_kb": rss_cold, "rss_batch_kb": rss_batch,
    "python": sys.version.split()[0], "layer": predict_handler.__file__,
}), flush=True)
"""


def _environment(endpoint: str, python: str, cache: Path) -> dict[str, str]:
    """What Lambda gives the function (the local runner's rules), plus boto3 and local S3."""
    from tools.local.rie import function_environment
    from tools.local.template import load_env_vars, load_template

    app = load_template(TEMPLATE, env_vars=load_env_vars(ENV_VARS), built=True)
    spec = app.functions[FUNCTION]
    env = function_environment(spec, endpoint)
    extra = runtime_site(python)
    if extra is not None:
        env["PYTHONPATH"] += os.pathsep + str(extra)
    env.update(MODEL_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1")
    return env


def run_once(
    endpoint: str,
    python: str,
    batch_rows: int = 0,
    model_format: str = "auto",
    *,
    model: str = "",
    event_name: str = "predict",
) -> dict[str, Any]:
    """One fresh process; with batch_rows, a batch request follows the first prediction.
    `model`: another MODEL_NAME than events/env.json's (e.g. the classifier, penguins), asked
    with events/<event_name>.json."""
    from tests.helpers import load_event

    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        folder = Path(tmp)
        event = load_event(event_name)
        (folder / "event.json").write_text(json.dumps(event))
        args = [python, "-s", "-c", CHILD, str(folder / "event.json")]
        if batch_rows:
            record = json.loads(event["body"])
            batch = {**event, "body": json.dumps({"instances": [record] * batch_rows})}
            (folder / "batch.json").write_text(json.dumps(batch))
            args.append(str(folder / "batch.json"))
        env = _environment(endpoint, python, folder / "models")
        env["MODEL_FORMAT"] = model_format
        if model:
            env["MODEL_NAME"] = model
        spawned = time.time()
        done = subprocess.run(
            args, env=env, cwd=folder, capture_output=True, text=True, timeout=120, check=False
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"cold start run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][6:])
    result["spawned"] = spawned
    return result


def phases(run: dict[str, Any]) -> dict[str, float]:
    """Milliseconds per phase of one run; they add up to `total`."""
    t = run["timings"]
    handler = (run["answered"] - run["invoked"]) * 1000
    model = t["resolve_ms"] + t["total_ms"]
    return {
        "interpreter start": (run["started"] - run["spawned"]) * 1000,
        "imports (handler module)": (run["imported"] - run["started"]) * 1000,
        "resolve (alias + manifest)": t["resolve_ms"],
        "fetch (S3 download)": t["fetch_ms"],
        "verify (sha256)": t["verify_ms"],
        "load (model.npz; or runtime check + joblib.load + fast path)": t["total_ms"]
        - t["fetch_ms"]
        - t["verify_ms"]
        - t["warmup_ms"],
        "warm-up prediction": t["warmup_ms"],
        "first request (client, routing, predict, reply)": handler - model,
        "other (script, event file)": (run["invoked"] - run["imported"]) * 1000,
        "total: process start to first prediction": (run["answered"] - run["spawned"]) * 1000,
    }


def main(
    endpoint: str | None = None, runs: int = RUNS, model_format: str = "auto"
) -> dict[str, Any]:
    """`model_format` "auto" serves model.npz (the default); "joblib" the pickle, to compare."""
    ensure_build()
    python, note = target_python()
    if endpoint is None:
        with seeded_registry() as local:
            return main(local, runs, model_format)
    # The first run is discarded: it fills the page cache, as a deployed layer would be.
    run_once(endpoint, python, model_format=model_format)
    results = [run_once(endpoint, python, model_format=model_format) for _ in range(runs)]
    for run in results:
        if run["timings"].get("cached"):
            raise RuntimeError("the model came from a cache, not from S3")
    table = [phases(run) for run in results]
    return {
        "python": note,
        "model_format": model_format,
        "build": str(BUILD.relative_to(BUILD.parent.parent)),
        "runs": runs,
        "median_ms": {name: median([row[name] for row in table]) for name in table[0]},
        "min_total_ms": min(row["total: process start to first prediction"] for row in table),
        "max_total_ms": max(row["total: process start to first prediction"] for row in table),
    }


if __name__ == "__main__":
    figures = main()
    print(f"{figures['runs']} runs on {figures['python']}")
    for name, value in figures["median_ms"].items():
        print(f"  {name:<50} {value:8.1f} ms")
