"""`make demo`: train on the bundled data, publish to a local S3, serve predictions, retrain once.

Everything runs on this machine and talks only to 127.0.0.1: a moto S3 server, the template's API
served by the Docker-free runner (each function in its own process under AWS's Lambda Runtime
Interface Emulator), and the retrain function invoked with the scheduled event in events/.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3

from tools.local.runner import LocalApi
from tools.local.s3server import create_bucket, moto_server, use_endpoint
from tools.local.template import DEFAULT_BUCKET
from training.cli import format_run
from training.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
BUCKET = DEFAULT_BUCKET  # what events/env.json points the functions at
CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
DATA = ROOT / "training" / "data" / "windsor_housing.csv"
EVENTS = ROOT / "events"
API_KEY = "demo-key"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(argv: list[str]) -> None:
    code = cli(argv)
    if code:
        sys.exit(code)


def event_body(name: str) -> bytes:
    return str(json.loads((EVENTS / f"{name}.json").read_text())["body"]).encode()


def call(url: str, body: bytes | None = None) -> tuple[int, Any]:
    """One request with the API key; (status, parsed JSON reply), 4xx/5xx included."""
    headers = {"x-api-key": API_KEY, "content-type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def show_predictions(title: str, status: int, reply: Any) -> None:
    if status != 200:
        print(f"{title}: HTTP {status}  {json.dumps(reply)}")
        return
    prices = ", ".join(f"{p:,.0f}" for p in reply["predictions"])
    print(f"{title}: HTTP {status}  model {reply['model']['version']}  predictions [{prices}]")


def serve_and_retrain(endpoint: str) -> None:
    env_vars = json.loads((EVENTS / "env.json").read_text())
    # Warm containers re-check the alias every MODEL_REFRESH_SECONDS (300 deployed); 1 s here so
    # the demo can show the promoted model being picked up without a restart.
    env_vars["PredictFunction"]["MODEL_REFRESH_SECONDS"] = "1"
    with LocalApi(
        ROOT / "template.yaml",
        env_vars=env_vars,
        port=0,
        api_key=API_KEY,
        s3_endpoint=endpoint,
        seed=None,
        concurrency=2,
    ) as api:
        step(f"the local API is up on {api.url} (the first request is a cold start)")
        show_predictions(
            "POST /predict  events/predict.json", *call(api.url + "/predict", event_body("predict"))
        )
        show_predictions(
            "POST /predict  events/predict_batch.json",
            *call(api.url + "/predict", event_body("predict_batch")),
        )
        status, reply = call(api.url + "/predict", event_body("predict_missing_feature"))
        print(f"POST /predict  events/predict_missing_feature.json: HTTP {status}")
        print(f"  {json.dumps(reply)}")
        status, reply = call(api.url + "/model")
        print(f"GET  /model: HTTP {status}  version {reply.get('version')}")

        step(f"a new data drop: {DATA.name} -> s3://{BUCKET}/datasets/house-prices/")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.upload_file(str(DATA), BUCKET, f"datasets/house-prices/{DATA.name}")
        step("retraining: RetrainFunction invoked with events/retrain_schedule.json")
        schedule = json.loads((EVENTS / "retrain_schedule.json").read_text())
        record = api.invoke("RetrainFunction", schedule)
        if not isinstance(record, dict) or "status" not in record:
            # The handler raises after writing its run record; the runtime replies with the error.
            print(f"the retrain failed: {json.dumps(record)}")
            sys.exit(1)
        print(format_run(record))
        if record["status"] == "promoted":
            wait_for_version(api.url, record["challenger"]["version"])


def wait_for_version(url: str, version: str, seconds: float = 15.0) -> None:
    """Poll GET /model until the warm container serves `version` (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, reply = call(url + "/model")
        if status == 200 and reply.get("version") == version:
            print(f"GET  /model: HTTP 200  the warm container now serves {version}")
            return
        time.sleep(0.5)
    print(f"the warm container did not pick up {version} within {seconds:g} s")
    sys.exit(1)


def demo() -> int:
    out = ROOT / ".demo" / "house-prices"
    step("starting a local S3 (moto server on 127.0.0.1)")
    with moto_server() as endpoint:
        use_endpoint(endpoint)
        create_bucket(endpoint, BUCKET)
        print(f"S3 endpoint {endpoint}, bucket {BUCKET}")
        step(f"training the house-price model on training/data/{DATA.name}")
        run(["train", "--config", str(CONFIG), "--out", str(out)])
        step("publishing (upload, verify sha256) and promoting to alias 'live'")
        run(["publish", str(out), "--bucket", BUCKET, "--promote"])
        serve_and_retrain(endpoint)
        step("the registry after the retrain")
        run(["list", "--model", "house-prices", "--bucket", BUCKET])
    step("done: the local API and the local S3 are stopped")
    print(
        "Serve it yourself:  make serve    (http://127.0.0.1:3000, API key 'local-key')\n"
        "then, in another terminal:\n"
        "  curl -s -H 'x-api-key: local-key' -H 'content-type: application/json' \\\n"
        f"       -d '{event_body('predict').decode()}' \\\n"
        "       http://127.0.0.1:3000/predict\n"
        "  curl -s http://127.0.0.1:3000/health"
    )
    return 0


if __name__ == "__main__":
    sys.exit(demo())
