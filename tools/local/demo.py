"""`make demo`: train on the bundled data, publish to a local S3, serve predictions, retrain once.

Everything runs on this machine and talks only to 127.0.0.1: a moto S3 server, the template's API
served by the Docker-free runner (each function in its own process under AWS's Lambda Runtime
Interface Emulator), and the retrain function invoked with the scheduled event in events/.
Step 10 is one pass of the production loop: predictions captured through the template's Firehose
stream (hosted by the moto server), a shadow model, and MonitorFunction's drift reports.

The output is the story: each step, the metrics, each request with its status and a short
answer, the retrain's decision. The functions' own logs (START/END/REPORT lines, JSON log lines,
EMF metrics) and the local API's access lines are printed only with VERBOSE=1
(`make demo VERBOSE=1`, or --verbose); if the demo fails, their last lines are printed anyway.

    python -m tools.local.demo [--verbose] [--workdir .demo]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

import boto3

from sklambda.artifact import train_artifact
from sklambda.config import load_config
from sklambda.data import load_dataset
from sklambda.manifest import read_manifest
from sklambda.store import ModelStore
from tools.local.rie import print_log
from tools.local.runner import LocalApi
from tools.local.s3server import create_bucket, moto_server, use_endpoint
from tools.local.template import DEFAULT_BUCKET
from training.cli import format_run
from training.cli import main as cli
from training.report import REPORT_FILE, download_report

ROOT = Path(__file__).resolve().parents[2]
BUCKET = DEFAULT_BUCKET  # what events/env.json points the functions at
MODEL = "house-prices"
CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
DATA = ROOT / "training" / "data" / "windsor_housing.csv"
FIRST_ROWS = 400  # the champion is trained on the first 400 sales; the data drop has all of them
EVENTS = ROOT / "events"
API_KEY = "demo-key"
STEPS = 10
LOOP_ROWS = 150  # sales per kind of traffic in step 10 (MonitorFunction judges from 100 rows)
# The bundled classifier (step 9): trained on four penguins in five, retrained on all of them.
CLASSIFIER = "penguins"
CLASSIFIER_CONFIG = ROOT / "training" / "configs" / "penguins.toml"
CLASSIFIER_DATA = ROOT / "training" / "data" / "penguins.csv"
REQUEST_TIMEOUT = 60  # seconds per HTTP request (the first one waits for a cold start)
RETRAIN_TIMEOUT = 300  # seconds for the retrain's reply (the template allows 900)


class DemoFailed(Exception):
    """A step did not give what the demo expects; the message says which and what came back."""


class FunctionLogs:
    """Where the functions' logs and the API's access lines go: stderr with --verbose, else a
    short buffer, printed only if the demo fails."""

    def __init__(self, verbose: bool, keep: int = 60):
        self.verbose = verbose
        self.tail: deque[str] = deque(maxlen=keep)

    def __call__(self, line: str) -> None:
        if self.verbose:
            print_log(line)
        else:
            self.tail.append(line)

    def dump(self) -> None:
        if self.verbose or not self.tail:
            return
        print(f"the last {len(self.tail)} function log lines:", file=sys.stderr)
        for line in self.tail:
            print(f"  {line}", file=sys.stderr)
        print("(all of them: make demo VERBOSE=1)", file=sys.stderr, flush=True)


def say(text: str = "") -> None:
    print(text, flush=True)


def step(number: int, title: str) -> None:
    say(f"\n[{number}/{STEPS}] {title}")


def run(argv: list[str]) -> None:
    """`python -m training ...` in this process; its output is part of the story."""
    code = cli(argv)
    if code:
        raise DemoFailed(f"`python -m training {' '.join(argv[:1])}` exited with {code}")


def first_rows(source: Path, rows: int, out: Path) -> tuple[Path, int]:
    """The header and the first `rows` records of `source` (one record per line), as a file in
    `out`; also the number of records in `source`."""
    lines = source.read_text().splitlines(keepends=True)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{source.stem}-first-{rows}.csv"
    path.write_text("".join(lines[: rows + 1]))
    return path, len(lines) - 1


def event_body(name: str) -> bytes:
    return str(json.loads((EVENTS / f"{name}.json").read_text())["body"]).encode()


def call(url: str, body: bytes | None = None, key: str | None = API_KEY) -> tuple[int, Any, float]:
    """One request; (status, parsed JSON reply, milliseconds), 4xx/5xx included."""
    headers = {"content-type": "application/json"} | ({"x-api-key": key} if key else {})
    request = urllib.request.Request(url, data=body, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as reply:
            status, data = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        with error:
            status, data = error.code, error.read()
    elapsed = (time.perf_counter() - started) * 1000
    try:
        parsed = json.loads(data or b"null")
    except ValueError:
        parsed = data.decode(errors="replace")
    return status, parsed, elapsed


def error_answer(reply: dict[str, Any]) -> str:
    error = reply.get("error")
    if not isinstance(error, dict):  # API Gateway's own shape: {"message": ...}
        return str(reply.get("message", reply))
    details = error.get("details") or []
    where = ""
    if details and isinstance(details[0], dict):
        first = details[0]
        where = f" ({first.get('field')}, row {first.get('row')}: {first.get('message')})"
    return f"{error.get('code')}: {error.get('message')}{where}"


def answer(path: str, status: int, reply: Any) -> str:
    """A short answer for one line: predictions, the model, health, or the error."""
    if not isinstance(reply, dict):
        text = str(reply)
    elif status >= 400:
        text = error_answer(reply)
    elif path == "/predict" and "probabilities" in reply:  # a classifier: label (probability)
        shown = ", ".join(
            f"{p} ({probabilities[str(p)]:.2f})"
            for p, probabilities in zip(
                reply["predictions"][:4], reply["probabilities"][:4], strict=True
            )
        )
        more = ", ..." if len(reply["predictions"]) > 4 else ""
        text = f"model {reply['model']['version']}  predictions [{shown}{more}]"
    elif path == "/predict":
        shown = ", ".join(f"{p:,.0f}" for p in reply["predictions"][:4])
        if reply.get("intervals"):  # asked for (events/predict_intervals.json): the first one
            low, high = reply["intervals"][0]
            shown += f" in [{low:,.0f}, {high:,.0f}] ({reply['interval_coverage']:.0%} interval)"
        if reply.get("explanations"):  # asked for (events/predict_explain.json): why
            shown += " " + why(reply["explanations"])
        more = ", ..." if len(reply["predictions"]) > 4 else ""
        text = f"model {reply['model']['version']}  predictions [{shown}{more}]"
    elif path == "/model":
        kind = (reply.get("estimator") or {}).get("kind", "?")
        text = f"{reply.get('name')} {reply.get('version')} ({kind})"
    elif path == "/health":
        text = f"{reply.get('status')}, model {(reply.get('model') or {}).get('version')}"
    else:
        text = json.dumps(reply)
    return text[:160]


def why(explanations: dict[str, Any]) -> str:
    """The first row's explanation, shortly: its base and three largest contributions."""
    row = explanations["contributions"][0]
    top = sorted(row.items(), key=lambda item: -abs(item[1]))[:3]
    parts = ", ".join(f"{name} {value:+.3f}" for name, value in top)
    return f"= {explanations['scale']} base {explanations['base']:.3f}: {parts}, ..."


def show(method: str, path: str, what: str, result: tuple[int, Any, float], note: str = "") -> None:
    """One request: method, path, what was sent, status, time, answer."""
    status, reply, ms = result
    extra = f"  ({note})" if note else ""
    head = f"  {method:<4} {path:<8} {what:<29} {status}  {ms:>6,.0f} ms"
    say(f"{head}  {answer(path, status, reply)}{extra}")


def expect(result: tuple[int, Any, float], status: int, what: str) -> Any:
    if result[0] != status:
        raise DemoFailed(f"{what}: expected HTTP {status}, got {result[0]}: {result[1]!r:.300}")
    return result[1]


def requests(url: str) -> None:
    """Step 5: the events in events/, a request without the key, /health and /model."""
    step(5, "requests (bodies from events/; the first starts PredictFunction: a cold start)")
    for i, name in enumerate(("predict", "predict_batch", "predict_intervals", "predict_explain")):
        result = call(url + "/predict", event_body(name))
        show("POST", "/predict", f"{name}.json", result, "cold start" if i == 0 else "")
        expect(result, 200, f"POST /predict with events/{name}.json")
    result = call(url + "/predict", event_body("predict_missing_feature"))
    show("POST", "/predict", "predict_missing_feature.json", result)
    expect(result, 422, "POST /predict with a missing feature")
    result = call(url + "/predict", event_body("predict"), key=None)
    show("POST", "/predict", "without x-api-key", result, "API Gateway's own answer")
    expect(result, 403, "POST /predict without the API key")
    result = call(url + "/health", key=None)
    show("GET", "/health", "(open: no key)", result)
    expect(result, 200, "GET /health")
    result = call(url + "/model")
    show("GET", "/model", "", result)
    expect(result, 200, "GET /model")


def retrain(api: LocalApi, endpoint: str) -> dict[str, Any]:
    """Step 6: a new data file in the bucket, then RetrainFunction with the scheduled event."""
    step(6, f"a new data drop (all the sales, not only the first {FIRST_ROWS}), then a retrain")
    key = f"datasets/{MODEL}/{DATA.name}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.upload_file(str(DATA), BUCKET, key)
    say(f"  put training/data/{DATA.name} -> s3://{BUCKET}/{key}")
    say("  invoke RetrainFunction with events/retrain_schedule.json (a new process: a cold start)")
    schedule = json.loads((EVENTS / "retrain_schedule.json").read_text())
    started = time.perf_counter()
    record = api.invoke("RetrainFunction", schedule, timeout=RETRAIN_TIMEOUT)
    elapsed = time.perf_counter() - started
    if not isinstance(record, dict) or "status" not in record:
        # The handler raises after writing its run record; the runtime replies with the error.
        raise DemoFailed(f"the retrain failed: {json.dumps(record)[:500]}")
    say(f"  RetrainFunction answered in {elapsed:.1f} s:")
    say(format_run(record))
    if record["status"] == "promoted":
        say(f"decision: promoted; alias live -> {record['challenger']['version']}")
    elif record["status"] == "rejected":
        say(f"decision: rejected; alias live stays on {record['champion']['version']}")
    else:
        raise DemoFailed(f"the retrain ended {record['status']}: {record.get('error')}")
    return record


def wait_for_version(url: str, version: str, seconds: float = 15.0) -> None:
    """Step 7: poll GET /model until the warm container serves `version` (bounded)."""
    step(7, "the warm PredictFunction picks up the live version (no restart)")
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        result = call(url + "/model")
        if result[0] == 200 and result[1].get("version") == version:
            waited = time.monotonic() - started
            show("GET", "/model", f"after {waited:.1f} s", result, "MODEL_REFRESH_SECONDS=1")
            return
        time.sleep(0.5)
    raise DemoFailed(f"the warm container did not serve {version} within {seconds:g} s")


def demo_api(
    endpoint: str, env_vars: dict[str, dict[str, str]], logs: FunctionLogs, **options: Any
) -> LocalApi:
    """The template's API on a free loopback port, keyed with API_KEY, over the demo's S3."""
    return LocalApi(
        ROOT / "template.yaml",
        env_vars=env_vars,
        port=0,
        api_key=API_KEY,
        s3_endpoint=endpoint,
        seed=None,
        log=logs,
        **options,
    )


def serve_and_retrain(endpoint: str, logs: FunctionLogs) -> None:
    env_vars = json.loads((EVENTS / "env.json").read_text())
    # Warm containers re-check the alias every MODEL_REFRESH_SECONDS (300 deployed); 1 s here so
    # the demo can show the promoted model being picked up without a restart.
    env_vars["PredictFunction"]["MODEL_REFRESH_SECONDS"] = "1"
    step(4, "start the template's API on 127.0.0.1 (Docker-free: functions under the Lambda RIE)")
    with demo_api(endpoint, env_vars, logs, concurrency=2) as api:
        say(f"  {api.url}  (API key {API_KEY!r}; routes from template.yaml)")
        requests(api.url)
        record = retrain(api, endpoint)
        live = record["challenger" if record["status"] == "promoted" else "champion"]["version"]
        wait_for_version(api.url, live)


def classifier(workdir: Path, endpoint: str, logs: FunctionLogs) -> None:
    """Step 9: the bundled classifier trained, published, served (labels with each class's
    probability) and retrained by the template's functions, with MODEL_NAME=penguins."""
    step(9, f"a classifier: {CLASSIFIER} (species from measurements; train, serve, retrain)")
    header, *rows = CLASSIFIER_DATA.read_text().splitlines(keepends=True)
    sample = workdir / "penguins-four-in-five.csv"
    sample.write_text("".join([header, *(r for i, r in enumerate(rows) if i % 5 != 4)]))
    out = workdir / CLASSIFIER
    run(["train", "--config", str(CLASSIFIER_CONFIG), "--data", str(sample), "--out", str(out)])
    run(["publish", str(out), "--bucket", BUCKET, "--promote"])
    env_vars = json.loads((EVENTS / "env.json").read_text())
    for function in ("PredictFunction", "RetrainFunction"):
        env_vars[function]["MODEL_NAME"] = CLASSIFIER
    with demo_api(endpoint, env_vars, logs, concurrency=1) as api:
        for i, name in enumerate(("penguins_predict", "penguins_predict_batch")):
            result = call(api.url + "/predict", event_body(name))
            show("POST", "/predict", f"{name}.json", result, "cold start" if i == 0 else "")
            expect(result, 200, f"POST /predict with events/{name}.json")
        key = f"datasets/{CLASSIFIER}/{CLASSIFIER_DATA.name}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.upload_file(str(CLASSIFIER_DATA), BUCKET, key)
        say(f"  put training/data/{CLASSIFIER_DATA.name} -> s3://{BUCKET}/{key}; RetrainFunction:")
        schedule = json.loads((EVENTS / "retrain_schedule.json").read_text())
        record = api.invoke("RetrainFunction", schedule, timeout=RETRAIN_TIMEOUT)
        if not isinstance(record, dict) or record.get("status") not in ("promoted", "rejected"):
            raise DemoFailed(f"the classifier's retrain failed: {json.dumps(record)[:500]}")
        say(format_run(record))


def traffic(rows: int, shift: dict[str, float]) -> list[dict[str, Any]]:
    """`rows` sales from the bundled data (a fixed sample) as request records, each feature in
    `shift` multiplied by its factor."""
    with DATA.open(newline="") as fh:
        table = [{k: v for k, v in r.items() if k not in ("", "price")} for r in csv.DictReader(fh)]
    out = []
    for row in random.Random(16).sample(table, rows):
        record: dict[str, Any] = {}
        for name, text in row.items():
            try:
                record[name] = round(float(text) * shift.get(name, 1.0))
            except ValueError:
                record[name] = text  # yes/no
        out.append(record)
    return out


def captured_rows(s3: Any, prefix: str, at_least: int, seconds: float = 15.0) -> bytes:
    """The JSON Lines under `prefix` once there are `at_least` (Firehose, here moto, writes
    them a moment after the reply); bounded."""
    deadline = time.monotonic() + seconds
    while True:
        keys = [
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        lines = b"".join(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys)
        if lines.count(b"\n") >= at_least or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def warm_shadow(url: str, s3: Any, prefix: str, seconds: float = 20.0) -> int:
    """events/predict.json until a captured row carries the shadow's prediction too (a warm
    container loads the shadow in the background after its first request); rows captured."""
    deadline = time.monotonic() + seconds
    sent = 0
    while True:
        expect(call(url + "/predict", event_body("predict")), 200, "POST /predict (warm-up)")
        sent += 1
        lines = captured_rows(s3, prefix, sent)
        if b'"shadow"' in lines:
            say(f"  POST /predict predict.json x{sent}: the container has loaded the shadow")
            return lines.count(b"\n")
        if time.monotonic() > deadline:
            raise DemoFailed(f"no shadow prediction captured within {seconds:g} s")
        time.sleep(0.2)


def production_loop(workdir: Path, endpoint: str, logs: FunctionLogs, first: str) -> None:
    """Step 10: capture through the template's CaptureStream (in moto), a shadow model on
    alias 'candidate', normal then shifted traffic, MonitorFunction's drift reports."""
    step(10, "one pass of the production loop: capture, a shadow model, drift reports")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    store = ModelStore(s3, BUCKET)
    config = load_config(CONFIG)
    ridge = config.estimator.model_copy(update={"kind": "ridge", "params": {"alpha": 100.0}})
    shadow_config = config.model_copy(update={"estimator": ridge})
    trained = train_artifact(shadow_config, load_dataset(shadow_config), workdir / "candidate")
    candidate = store.publish(trained.folder).version
    store.promote(MODEL, candidate, "candidate")
    say(f"  published {candidate} (ridge, alpha 100) to alias 'candidate': the shadow model")
    env_vars = json.loads((EVENTS / "env.json").read_text())
    env_vars["PredictFunction"]["SHADOW_ALIAS"] = "candidate"
    prefix = f"capture/{MODEL}/"
    with demo_api(endpoint, env_vars, logs, concurrency=1, capture_rate=1.0) as api:
        for line in api.capture:
            say(f"  {line}")
        say("  PredictFunction: SHADOW_ALIAS=candidate (scored after each reply, never in it)")
        sent = warm_shadow(api.url, s3, prefix)
        for phase, what, shift in (
            ("normal", "as they are", {}),
            ("shifted", "with lotsize x3", {"lotsize": 3.0}),
        ):
            records = traffic(LOOP_ROWS, shift)
            for start in range(0, LOOP_ROWS, 50):
                body = json.dumps({"instances": records[start : start + 50]}).encode()
                expect(call(api.url + "/predict", body), 200, "POST /predict (production loop)")
            sent += LOOP_ROWS
            total = captured_rows(s3, prefix, sent).count(b"\n")
            say(f"  POST /predict {LOOP_ROWS} sales {what}: {total} rows captured in all")
            monitor(api, s3, workdir / "reports" / phase)
    path = download_report(store, MODEL, first, workdir / "reports" / f"{MODEL}-{first}.html")
    say(f"  model report of {first} (from the registry): {path}")


def monitor(api: LocalApi, s3: Any, folder: Path) -> None:
    """MonitorFunction with its scheduled event: what drifted, champion vs shadow, and the
    report (drift.json, drift.html) downloaded to `folder`."""
    schedule = json.loads((EVENTS / "monitor_schedule.json").read_text())
    summary = api.invoke("MonitorFunction", schedule, timeout=RETRAIN_TIMEOUT)
    if not isinstance(summary, dict) or not summary.get("report"):
        raise DemoFailed(f"MonitorFunction wrote no report: {json.dumps(summary)[:500]}")
    key = str(summary["report"])
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    psi: dict[str, float] = report.get("max_psi", {})
    drifted = report.get("drifted", [])
    others = sorted((v, n) for n, v in psi.items() if n not in drifted)
    calm = f"{others[-1][1]} {others[-1][0]:.2f}" if others else "-"
    shown = ", ".join(f"{n} (PSI {psi[n]:.2f})" for n in drifted) or "none"
    say(
        f"  MonitorFunction: {summary['records']} new rows; drifted: {shown}; the largest "
        f"other PSI: {calm} (threshold {report.get('threshold')})"
    )
    for section in report["versions"]:
        for c in section.get("shadow", []):
            say(
                f"    champion vs shadow {c['version']} on {c['rows']} rows: agreement "
                f"{c['agreement']:.0%} (within {c['agreement_tolerance']:.0%}), mean difference "
                f"{c['mean_difference']:+,.0f} (shadow - champion)"
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("drift.json", "drift.html"):
        s3.download_file(BUCKET, key.rsplit("/", 1)[0] + "/" + name, str(folder / name))
    say(f"    drift report: {folder / 'drift.json'} and drift.html")


def demo(workdir: Path, logs: FunctionLogs) -> None:
    out = workdir / MODEL
    first, total = first_rows(DATA, FIRST_ROWS, workdir)
    step(1, "start a local S3 (a moto server on 127.0.0.1)")
    with moto_server() as endpoint:
        use_endpoint(endpoint)
        create_bucket(endpoint, BUCKET)
        say(f"  {endpoint}, bucket {BUCKET}")
        step(
            2,
            f"train on the first {FIRST_ROWS} of the {total} sales in training/data/{DATA.name} "
            "(all come in step 6)",
        )
        run(["train", "--config", str(CONFIG), "--data", str(first), "--out", str(out)])
        step(3, "publish (upload, verify sha256) and promote to alias 'live'")
        run(["publish", str(out), "--bucket", BUCKET, "--promote"])
        say(f"  the model report (open it in a browser): {out / REPORT_FILE}")
        serve_and_retrain(endpoint, logs)
        step(8, "the registry after the retrain")
        run(["list", "--model", MODEL, "--bucket", BUCKET])
        classifier(workdir, endpoint, logs)
        production_loop(workdir, endpoint, logs, read_manifest(out).version)
    say("\ndone: the local API and the local S3 are stopped.")
    say(
        "Serve it yourself:  make serve    (http://127.0.0.1:3000, API key 'local-key'; "
        "PORT=... for another port)\n"
        "then, in another terminal:\n"
        "  curl -s -H 'x-api-key: local-key' -H 'content-type: application/json' \\\n"
        f"       -d '{event_body('predict').decode()}' \\\n"
        "       http://127.0.0.1:3000/predict\n"
        "  curl -s http://127.0.0.1:3000/health\n"
        "The functions' own logs: make demo VERBOSE=1"
    )


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: functions and S3 are stopped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.local.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=os.environ.get("VERBOSE", "").strip().lower() not in ("", "0", "false", "no"),
        help="also print the functions' logs (default: $VERBOSE)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=ROOT / ".demo", help="where the model is trained"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logs = FunctionLogs(args.verbose)
    try:
        demo(args.workdir, logs)
    except DemoFailed as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr, flush=True)
        logs.dump()
        return 1
    except Exception:
        traceback.print_exc()
        logs.dump()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
