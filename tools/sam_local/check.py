"""Prove that SAM CLI's own `sam local invoke` and `sam local start-api` serve our template,
events and env file, on a machine without a Docker engine (podman + runc + a stand-in image).

    .venv/bin/python -m tools.sam_local.check      # as root; what `make sam-local-test` runs

Steps: setup.sh (packages, podman settings, stand-in image), podman's API service and the
Docker-API proxy (proxy.py) on Unix sockets, a moto server on 127.0.0.1 with a published and
promoted model and a dataset, `sam build`, `sam local invoke` with every API event in events/,
BatchPredictFunction with a batch job's resolve and item-batch events (its input seeded in the
moto S3), the scheduled retrain event and MonitorFunction's scheduled event (capture records
seeded in moto's layout), then `sam local start-api` on 127.0.0.1 with real requests.
Containers use the host network and every server listens on 127.0.0.1 only; SAM's STS call,
version check and telemetry stay on the machine. Everything started is stopped, and every
container the run created is removed, also on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from types import FrameType
from typing import Any

import boto3

from sklambda import smoke
from tools.local.loopback import FAKE_CREDENTIALS, free_port
from tools.sam_local.proxy import SAM_CLI_VERSION, DockerApiProxy

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".aws-sam-local"  # our own build dir: others use .aws-sam/ at the same time
BUILD_DIR = STATE / "build"
TEMPLATE = BUILD_DIR / "template.yaml"
EVENTS = ROOT / "events"
ENV_VARS = EVENTS / "env.json"
SEED_CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
# The bundled classifier: seeded beside the regressor, its events (penguins_*.json) invoked on
# PredictFunction with MODEL_NAME=penguins (an env file of our own), the others' never on it.
CLASSIFIER_CONFIG = ROOT / "training" / "configs" / "penguins.toml"
CLASSIFIER = "penguins"
SAM_LOCAL_HOME = Path(os.environ.get("SAM_LOCAL_HOME", "/var/lib/sklambda-sam-local"))
LABEL = "sklambda.sam-local"
SAM = str(Path(sys.executable).parent / "sam")  # the venv's, whatever PATH says
REGION = "us-east-1"
JSON_HEADERS = {"Content-Type": "application/json"}


class CheckFailed(Exception):
    """A step of the chain failed; the message says which and why."""


class Skipped(Exception):
    """A prerequisite this repo cannot provide is missing (root, a CPython 3.12)."""


def say(message: str) -> None:
    print(f"[sam-local] {message}", flush=True)


# ---------------------------------------------------------------- time


class Deadline:
    """The whole run's time budget; each step's timeout is cut to what is left."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise CheckFailed("the run's time budget is used up")
        return left if cap is None else min(left, cap)


@contextlib.contextmanager
def step(name: str, timings: dict[str, float]) -> Iterator[None]:
    say(f"==> {name}")
    started = time.perf_counter()
    try:
        yield
    except CheckFailed as exc:
        raise CheckFailed(f"{name}: {exc}") from exc
    finally:
        timings[name] = time.perf_counter() - started
    say(f"    ok ({timings[name]:.1f} s)")


def tied(cmd: list[str], signal_name: str = "TERM") -> list[str]:
    """`cmd`, sent `signal_name` should this driver die without cleaning up (util-linux setpriv;
    not preexec_fn, which is unsafe with the proxy's threads)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", signal_name, "--", *cmd] if setpriv else cmd


def run(
    cmd: list[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    what: str,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run to completion with a timeout; on failure, say what failed with the output's tail."""
    try:
        done = subprocess.run(
            tied(cmd),
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"{what} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise CheckFailed(f"{what} could not start: {exc}") from exc
    if log is not None:
        log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise CheckFailed(f"{what} exited with {done.returncode}:\n{tail}")
    return done


# ---------------------------------------------------------------- podman and the proxy


def podman_env() -> dict[str, str]:
    return {
        **os.environ,
        "CONTAINERS_CONF": str(SAM_LOCAL_HOME / "containers.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(SAM_LOCAL_HOME / "registries.conf"),
        "CONTAINERS_STORAGE_CONF": str(SAM_LOCAL_HOME / "storage.conf"),
    }


class _UnixConnection(HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.path))


def docker_ping(sock: Path) -> bool:
    connection = _UnixConnection(sock, timeout=2)
    try:
        connection.request("GET", "/_ping")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_until(
    ready: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise CheckFailed(f"{what} exited with {proc.returncode} before it was ready")
        if ready():
            return
        time.sleep(0.1)
    raise CheckFailed(f"{what} was not ready within {timeout:.0f} s")


def stop(proc: subprocess.Popen[Any], grace: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def remove_containers(run_label: str | None = None) -> None:
    """Remove the containers this run created (the proxy labelled them), running or not; with no
    run label, those of earlier runs whose driver is gone (killed before it could clean up)."""
    env = podman_env()
    label = f"{LABEL}={run_label}" if run_label else LABEL
    fields = ["{{.ID}}", f'{{{{index .Labels "{LABEL}.pid"}}}}']
    fields += ['{{index .Labels "sam.cli.function.name"}}', "{{.State}}"]
    listed = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={label}", "--format", " ".join(fields)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    left = [line.split() for line in listed.stdout.splitlines() if line.strip()]
    if run_label is None:
        left = [c for c in left if len(c) > 1 and c[1].isdigit() and not alive(int(c[1]))]
    if left:
        # After a clean run this means SAM did not remove one itself.
        say(f"removing container(s) left by {'this run' if run_label else 'killed runs'}: "
            + ", ".join(" ".join(c[:1] + c[2:]) for c in left))  # fmt: skip
        subprocess.run(
            ["podman", "rm", "-f", *(c[0] for c in left)],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    # SAM rebuilds its image on every invoke of a function with a template layer; drop the old.
    subprocess.run(
        ["podman", "image", "prune", "-f"], env=env, capture_output=True, timeout=120, check=False
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------- expectations


def records_in(request: Any) -> int:
    if isinstance(request, str):  # CSV rows, after a header row when the first cell is a name
        lines = [line for line in request.splitlines() if line.strip()]
        first = lines[0].split(",")[0].strip() if lines else ""
        return len(lines) - (first.isidentifier() and first not in ("yes", "no", "true", "false"))
    if isinstance(request, dict):
        if "instances" in request:
            return len(request["instances"])
        if "dataframe_split" in request:
            return len(request["dataframe_split"]["data"])
        if "dataframe_records" in request:
            return len(request["dataframe_records"])
    return 1


def check_predictions(request: Any, reply: Any, version: str) -> str | None:
    predictions = reply.get("predictions") if isinstance(reply, dict) else None
    if not isinstance(predictions, list) or len(predictions) != records_in(request):
        return f"expected {records_in(request)} prediction(s), got {predictions!r}"
    if not all(isinstance(p, int | float) and math.isfinite(p) and p > 0 for p in predictions):
        return f"predictions are not positive prices: {predictions!r}"
    if reply.get("model", {}).get("version") != version:
        return f"served model {reply.get('model')!r}, expected version {version}"
    return None


def check_intervals(request: Any, reply: Any, version: str) -> str | None:
    """check_predictions, and one [low, high] around each prediction."""
    problem = check_predictions(request, reply, version)
    if problem:
        return problem
    intervals, predictions = reply.get("intervals"), reply["predictions"]
    if not isinstance(intervals, list) or len(intervals) != len(predictions):
        return f"expected one interval per prediction, got {intervals!r}"
    for pair, p in zip(intervals, predictions, strict=True):
        if not (isinstance(pair, list) and len(pair) == 2 and pair[0] < p < pair[1]):
            return f"interval {pair!r} is not [low, high] around the prediction {p!r}"
    return None


def explained(reply: Any) -> list[list[float]] | str:
    """Each row's prediction on the explanations' scale (base + its contributions), or what is
    wrong with them: [score] for a regressor, a score per class for a multiclass model."""
    ex = reply.get("explanations") if isinstance(reply, dict) else None
    if not isinstance(ex, dict) or not isinstance(ex.get("contributions"), list):
        return f"expected explanations, got {str(ex)[:300]}"
    rows, base = ex["contributions"], ex.get("base")
    if len(rows) != len(reply.get("predictions") or []):
        return f"expected an explanation per prediction, got {len(rows)}"
    if isinstance(base, dict):  # per class
        return [[base[c] + sum(row[c].values()) for c in base] for row in rows]
    return [[base + sum(row.values())] for row in rows]


def check_explanations(request: Any, reply: Any, version: str) -> str | None:
    """check_predictions, and explanations adding up to each log(price) (a log target)."""
    problem = check_predictions(request, reply, version)
    scores = explained(reply)
    if problem or isinstance(scores, str):
        return problem or str(scores)
    for (score,), p in zip(scores, reply["predictions"], strict=True):
        if reply["explanations"]["scale"] != "log" or abs(score - math.log(p)) > 1e-6:
            return f"explanations add up to {score!r}, not log({p!r}) on the log scale"
    return None


def check_csv_predictions(request: Any, body: str) -> str | None:
    try:
        predictions = [float(line) for line in body.splitlines()]
    except ValueError:
        return f"expected one prediction per line, got {body[:300]!r}"
    if len(predictions) != records_in(request):
        return f"expected {records_in(request)} prediction line(s), got {body[:300]!r}"
    if not all(math.isfinite(p) and p > 0 for p in predictions):
        return f"predictions are not positive prices: {predictions!r}"
    return None


def check_v2_infer(request: Any, reply: Any, version: str) -> str | None:
    outputs = reply.get("outputs") if isinstance(reply, dict) else None
    if not isinstance(outputs, list) or len(outputs) != 1:
        return f"expected one output tensor, got {str(reply)[:300]}"
    rows = request["inputs"][0]["shape"][0] if isinstance(request, dict) else 0
    data = outputs[0].get("data")
    if outputs[0].get("shape") != [rows] or not isinstance(data, list) or len(data) != rows:
        return f"expected {rows} prediction(s), got {outputs[0]!r}"
    if not all(isinstance(p, int | float) and math.isfinite(p) and p > 0 for p in data):
        return f"predictions are not positive prices: {data!r}"
    if reply.get("model_version") != version:
        return f"served version {reply.get('model_version')!r}, expected {version}"
    return None


def check_v2_metadata(reply: Any, version: str) -> str | None:
    if not isinstance(reply, dict) or version not in reply.get("versions", []):
        return f"expected metadata naming version {version}, got {str(reply)[:300]}"
    if not reply.get("inputs") or not reply.get("outputs"):
        return f"metadata without inputs or outputs: {str(reply)[:300]}"
    return None


def check_as_smoke(kind: smoke.Kind, status: int, body: str, version: str) -> str | None:
    """An error, health or manifest reply judged as a new version's PreTraffic hook judges it
    (sklambda.smoke: the one error shape, a 422 naming each field; ready, or the manifest, with
    the model's name and version), and naming the version this stack serves."""
    case = smoke.Case("", status, kind)
    _, problem, model = smoke.judge(case, {}, {"statusCode": status, "body": body})
    if problem is None and model is not None and model["version"] != version:
        problem = f"{kind} reply names model {model}, expected version {version}"
    return problem


@dataclass(frozen=True)
class Expect:
    status: int
    kind: str  # predict | intervals | explain | csv | error | model | health | ready | v2_*


# The API events in events/ and what the function must answer; an API event missing here is still
# invoked and must give a well-formed reply below 500.
EXPECTED = {
    "predict": Expect(200, "predict"),
    "predict_batch": Expect(200, "predict"),
    "predict_batch_lists": Expect(200, "predict"),
    "predict_mlflow": Expect(200, "predict"),
    "predict_mlflow_records": Expect(200, "predict"),
    "predict_missing_feature": Expect(422, "error"),
    "predict_wrong_type": Expect(422, "error"),
    "predict_malformed_json": Expect(400, "error"),
    "predict_wrong_content_type": Expect(415, "error"),
    "predict_csv": Expect(200, "predict"),
    "predict_csv_no_header": Expect(200, "csv"),
    "predict_csv_wrong_type": Expect(422, "error"),
    "predict_intervals": Expect(200, "intervals"),
    "predict_explain": Expect(200, "explain"),
    "invocations": Expect(200, "predict"),
    "invocations_csv": Expect(200, "csv"),
    "model_info": Expect(200, "model"),
    "health": Expect(200, "health"),
    "ping": Expect(200, "health"),
    "v2_ready": Expect(200, "ready"),
    "v2_model_metadata": Expect(200, "v2_metadata"),
    "v2_infer": Expect(200, "v2_infer"),
    "v2_infer_matrix": Expect(200, "v2_infer"),
    "v2_infer_unknown_model": Expect(404, "error"),
    # HTTP API (payload 2.0) events: the same function, the other resolver.
    "http_predict": Expect(200, "predict"),
    "http_health": Expect(200, "health"),
    "http_predict_malformed_json": Expect(400, "error"),
}


def judge(name: str, request_body: str | None, status: int, body: str, version: str) -> str | None:
    """None if the reply is what `name` should get, else what is wrong with it."""
    try:
        request: Any = json.loads(request_body or "null")
    except ValueError:
        request = request_body  # CSV
    expect = EXPECTED.get(name)
    if expect is not None and expect.kind == "csv":
        if status != expect.status:
            return f"status {status}, expected {expect.status}: {body[:300]}"
        return check_csv_predictions(request, body)
    try:
        reply = json.loads(body)
    except ValueError:
        return f"status {status}, body is not JSON: {body[:300]!r}"
    if expect is None:
        return None if status < 500 else f"status {status}: {body[:300]}"
    if status != expect.status:
        return f"status {status}, expected {expect.status}: {body[:300]}"
    checks: dict[str, Callable[[], str | None]] = {
        "predict": lambda: check_predictions(request, reply, version),
        "intervals": lambda: check_intervals(request, reply, version),
        "explain": lambda: check_explanations(request, reply, version),
        "v2_infer": lambda: check_v2_infer(request, reply, version),
        "v2_metadata": lambda: check_v2_metadata(reply, version),
        "ready": lambda: None,
        "error": lambda: check_as_smoke("error", status, body, version),
        "model": lambda: check_as_smoke("model", status, body, version),
        "health": lambda: check_as_smoke("health", status, body, version),
    }
    return checks[expect.kind]()


def api_events() -> dict[str, dict[str, Any]]:
    events = {}
    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        if path.stem.startswith(f"{CLASSIFIER}_"):
            continue  # the classifier's: invoke_classifier_events
        if isinstance(event, dict) and ("httpMethod" in event or event.get("version") == "2.0"):
            events[path.stem] = event
    missing = sorted(set(EXPECTED) - set(events))
    if missing:
        raise CheckFailed(f"events/ lacks {', '.join(missing)}")
    return events


# ---------------------------------------------------------------- the run


@dataclass
class Env:
    sam: dict[str, str]
    endpoint: str
    bucket: str
    version: str


def prepare_app_dir() -> Path:
    """SAM's own settings folder, private to this checkout."""
    app_dir = STATE / "samcli"
    app_dir.mkdir(parents=True, exist_ok=True)
    # A fresh version-check time: SAM asks PyPI only when the last check is a week old.
    (app_dir / "metadata.json").write_text(
        json.dumps({"lastVersionCheck": time.time(), "telemetryEnabled": False})
    )
    return app_dir


def sam_environment(endpoint: str, docker_sock: Path) -> dict[str, str]:
    app_dir = prepare_app_dir()
    docker_config = STATE / "docker-config"  # no proxies from a user's ~/.docker/config.json
    docker_config.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DOCKER_"))}
    env.update(FAKE_CREDENTIALS)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "SAM_CLI_TELEMETRY": "0",
            "__SAM_CLI_APP_DIR": str(app_dir),
            "DOCKER_HOST": f"unix://{docker_sock}",
            "DOCKER_CONFIG": str(docker_config),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            # SAM calls STS GetCallerIdentity on every invoke; any other AWS call goes there too.
            "AWS_ENDPOINT_URL_STS": endpoint,
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    return env


def model_bucket() -> str:
    env_vars = json.loads(ENV_VARS.read_text())
    return str(env_vars.get("PredictFunction", {}).get("MODEL_BUCKET") or "local-models")


def seed(endpoint: str, bucket: str) -> str:
    """A published, promoted model and a dataset for the retrain; returns the live version."""
    from tools.local.s3server import seed_registry

    os.environ.update(FAKE_CREDENTIALS)
    seed_registry(endpoint, bucket, CLASSIFIER_CONFIG, STATE / "seed")  # and the classifier
    return seed_registry(endpoint, bucket, SEED_CONFIG, STATE / "seed")


def live_version(env: Env, model: str = "house-prices") -> str:
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name=REGION)
    alias = s3.get_object(Bucket=env.bucket, Key=f"models/{model}/aliases/live.json")
    return str(json.loads(alias["Body"].read())["version"])


def sam_build(env: Env, deadline: Deadline) -> None:
    cmd = [SAM, "build", "--build-dir", str(BUILD_DIR), "--cache-dir", str(STATE / "cache")]
    for attempt in (1, 2):
        try:
            run(
                cmd,
                env=env.sam,
                timeout=deadline.left(600),
                what="sam build",
                log=STATE / "logs" / "build.log",
            )
            return
        except CheckFailed as exc:
            # The layer build is being edited by others at times: one retry before giving up.
            if attempt == 2:
                raise
            say(f"    sam build failed, retrying once: {str(exc).splitlines()[0]}")


def invoke_command(function: str, event: Path, env_vars: Path = ENV_VARS) -> list[str]:
    """`sam local invoke` of `function` with `event`, the built template and events/env.json."""
    return [
        SAM, "local", "invoke", function, "-t", str(TEMPLATE), "-e", str(event),
        "--env-vars", str(env_vars), "--skip-pull-image",
        "--container-host", "127.0.0.1", "--container-host-interface", "127.0.0.1",
    ]  # fmt: skip


def sam_invoke(
    env: Env, function: str, event: Path, deadline: Deadline, env_vars: Path = ENV_VARS
) -> dict[str, Any]:
    """The function's reply, as SAM prints it on stdout (its own log goes to stderr)."""
    cmd = invoke_command(function, event, env_vars)
    log = STATE / "logs" / f"invoke-{function}-{event.stem}.log"
    done = run(cmd, env=env.sam, timeout=deadline.left(300), what="sam local invoke", log=log)
    try:
        reply = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        tail = "\n".join(done.stderr.strip().splitlines()[-25:])
        raise CheckFailed(f"no JSON reply on stdout (log: {log}):\n{tail}") from exc
    if not isinstance(reply, dict):
        raise CheckFailed(f"reply is not an object: {reply!r}")
    return reply


def invoke_api_events(env: Env, deadline: Deadline, timings: dict[str, float]) -> None:
    for name, event in api_events().items():
        with step(f"sam local invoke PredictFunction -e events/{name}.json", timings):
            reply = sam_invoke(env, "PredictFunction", EVENTS / f"{name}.json", deadline)
            status = reply.get("statusCode")
            body = reply.get("body")
            if not isinstance(status, int) or not isinstance(body, str):
                raise CheckFailed(f"not an API Gateway proxy reply: {str(reply)[:300]}")
            problem = judge(name, event.get("body"), status, body, env.version)
            if problem:
                raise CheckFailed(problem)
            say(f"    {status} {body[:160]}")
    invoke_classifier_events(env, deadline, timings)


def check_classifier_reply(request: Any, status: int, body: str, version: str) -> str | None:
    """A classifier's 200: one label per record, and per record each class's probability."""
    if status != 200:
        return f"status {status}, expected 200: {body[:300]}"
    reply = json.loads(body)
    predictions, probabilities = reply.get("predictions"), reply.get("probabilities")
    rows = records_in(request)
    if not isinstance(predictions, list) or len(predictions) != rows:
        return f"expected {rows} label(s), got {predictions!r}"
    if not isinstance(probabilities, list) or len(probabilities) != rows:
        return f"expected {rows} probability object(s), got {probabilities!r}"
    for label, row in zip(predictions, probabilities, strict=True):
        if not isinstance(row, dict) or str(label) not in row or abs(sum(row.values()) - 1) > 1e-6:
            return f"label {label!r} with probabilities {row!r}"
    if reply.get("model", {}).get("version") != version:
        return f"served model {reply.get('model')!r}, expected version {version}"
    return None


def check_classifier_explanations(request: Any, body: str) -> str | None:
    """A request with "explain": per row and class, softmax scores whose softmax is the
    row's probabilities (the penguins' multinomial logistic regression)."""
    if not (isinstance(request, dict) and request.get("explain")):
        return None
    reply = json.loads(body)
    scores = explained(reply)
    if isinstance(scores, str):
        return scores
    for score, row in zip(scores, reply["probabilities"], strict=True):
        weights = [math.exp(s - max(score)) for s in score]
        softmax = [w / sum(weights) for w in weights]
        if any(abs(a - b) > 1e-6 for a, b in zip(softmax, row.values(), strict=True)):
            return f"explanations {score!r} are not the scores of {row!r}"
    return None


def invoke_classifier_events(env: Env, deadline: Deadline, t: dict[str, float]) -> None:
    """events/penguins_*.json on PredictFunction serving the classifier (MODEL_NAME=penguins)."""
    version = live_version(env, CLASSIFIER)
    env_vars = json.loads(ENV_VARS.read_text())
    env_vars["PredictFunction"]["MODEL_NAME"] = CLASSIFIER
    env_file = STATE / f"env-{CLASSIFIER}.json"
    env_file.write_text(json.dumps(env_vars, indent=2))
    for path in sorted(EVENTS.glob(f"{CLASSIFIER}_*.json")):
        with step(f"sam local invoke PredictFunction -e events/{path.name} ({CLASSIFIER})", t):
            event = json.loads(path.read_text())
            reply = sam_invoke(env, "PredictFunction", path, deadline, env_file)
            status, body = reply.get("statusCode"), reply.get("body")
            if not isinstance(status, int) or not isinstance(body, str):
                raise CheckFailed(f"not an API Gateway proxy reply: {str(reply)[:300]}")
            request = json.loads(event["body"])
            problem = check_classifier_reply(request, status, body, version)
            problem = problem or check_classifier_explanations(request, body)
            if problem:
                raise CheckFailed(problem)
            say(f"    {status} {body[:160]}")


# Batch transform: BatchPredictFunction with two steps of a job, as the state machine calls it.
# events/batch_resolve.json pins the live version and reads the header of the input its "key"
# names (seeded first: the bundled data, whose header names every feature); then one Distributed
# Map batch, events/batch_items_csv.json with the version resolve pinned, whose rows must all
# come back scored or rejected (out, rejected) and be written to S3.
BATCH_RESOLVE = "batch_resolve"
BATCH_ITEMS = "batch_items_csv"
BATCH_ITEMS_EXPECTED = (2, 1)  # rows scored, rows rejected (row 3's lotsize is "n/a?")
BATCH_INPUT = ROOT / "training" / "data" / "windsor_housing.csv"
InvokeFunction = Callable[[str, Path], dict[str, Any]]  # (function, event file) -> reply


def seed_batch_input(s3: Any, bucket: str, resolve_event: Mapping[str, Any]) -> str:
    """Put the input object the resolve event points at into the bucket; returns its key."""
    key = str(resolve_event["key"])
    s3.put_object(Bucket=bucket, Key=key, Body=BATCH_INPUT.read_bytes())
    return key


def batch_items_event(version: str, job_id: str) -> dict[str, Any]:
    """events/batch_items_csv.json for the job resolve started, on the version it pinned."""
    event: dict[str, Any] = json.loads((EVENTS / f"{BATCH_ITEMS}.json").read_text())
    event["BatchInput"].update(version=version, job_id=job_id)
    return event


def check_batch_resolve(reply: Any, event: Mapping[str, Any], version: str) -> str | None:
    expected = {"job_id": event["job_id"], "key": event["key"], "format": "csv"}
    expected["version"] = version
    got = {k: reply.get(k) for k in expected} if isinstance(reply, dict) else reply
    return None if got == expected else f"expected {expected}, got {str(reply)[:600]}"


def check_batch_part(reply: Any, event: Mapping[str, Any], s3: Any, bucket: str) -> str | None:
    """Every row of the batch scored or rejected, as expected, and the parts written to S3."""
    rows = len(event["Items"])
    out, rejected = BATCH_ITEMS_EXPECTED
    if not isinstance(reply, dict) or (reply.get("rows"), reply.get("out")) != (rows, out):
        return f"expected {rows} rows, {out} scored, {rejected} rejected; got {str(reply)[:600]}"
    if reply.get("rejected") != rejected:
        return f"expected {rejected} rejected row(s), got {str(reply)[:600]}"
    for key, count in ((reply.get("out_key"), out), (reply.get("rejected_key"), rejected)):
        try:
            body = s3.get_object(Bucket=bucket, Key=str(key))["Body"].read().decode()
        except Exception as exc:  # noqa: BLE001 - any failure to read it is the finding
            return f"part {key!r} not readable in s3://{bucket}: {exc}"
        if len(body.splitlines()) != count + 1:  # a header row, then one line per row
            return f"part {key} has {len(body.splitlines()) - 1} row(s), expected {count}"
    return None


def invoke_batch(env: Env, invoke: InvokeFunction, timings: dict[str, float]) -> None:
    """The two batch steps through `invoke` (`sam local invoke`; tests pass the handler)."""
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name=REGION)
    resolve = json.loads((EVENTS / f"{BATCH_RESOLVE}.json").read_text())
    with step(f"sam local invoke BatchPredictFunction -e events/{BATCH_RESOLVE}.json", timings):
        key = seed_batch_input(s3, env.bucket, resolve)
        job = invoke("BatchPredictFunction", EVENTS / f"{BATCH_RESOLVE}.json")
        problem = check_batch_resolve(job, resolve, env.version)
        if problem:
            raise CheckFailed(problem)
        say(f"    job {job['job_id']}: s3://{env.bucket}/{key} pinned to {job['version']}")
    items = batch_items_event(str(job["version"]), str(job["job_id"]))
    path = STATE / "events" / f"{BATCH_ITEMS}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items, indent=2))
    with step(f"sam local invoke BatchPredictFunction -e events/{BATCH_ITEMS}.json", timings):
        part = invoke("BatchPredictFunction", path)
        problem = check_batch_part(part, items, s3, env.bucket)
        if problem:
            raise CheckFailed(problem)
        say(f"    {part['rows']} rows: {part['out']} in {part['out_key']}, "
            f"{part['rejected']} in {part['rejected_key']}")  # fmt: skip


def invoke_retrain(env: Env, deadline: Deadline) -> None:
    # The seeded dataset is the champion's own (a run would be "unchanged"): a second file makes
    # new data, so the function trains, scores and gates inside the container.
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name=REGION)
    header, *rows = (ROOT / "training" / "data" / "windsor_housing.csv").read_text().splitlines()
    s3.put_object(
        Bucket=env.bucket,
        Key="datasets/house-prices/later.csv",
        Body=("\n".join([header, *reversed(rows)]) + "\n").encode(),
    )
    reply = sam_invoke(env, "RetrainFunction", EVENTS / "retrain_schedule.json", deadline)
    if reply.get("status") not in ("promoted", "rejected") or not reply.get("reason"):
        raise CheckFailed(f"expected a promoted or rejected run with a reason: {str(reply)[:600]}")
    if reply.get("trigger") != "schedule":
        raise CheckFailed(f"the scheduled event was read as trigger {reply.get('trigger')!r}")
    key = f"models/house-prices/runs/{reply['run_id']}.json"
    record = json.loads(s3.get_object(Bucket=env.bucket, Key=key)["Body"].read())
    if record.get("status") != reply["status"]:
        raise CheckFailed(f"run record {key} says {record.get('status')!r}")
    say(
        f"    run {reply['run_id']}: {reply['status']} ({reply['reason']}); "
        f"challenger {reply.get('challenger', {}).get('version')}, record at s3://{env.bucket}/{key}"
    )
    if reply["status"] == "promoted":
        env.version = live_version(env)


# Drift monitor: MonitorFunction with its scheduled event, over capture records seeded where
# moto's Firehose puts them (capture/<model>/YYYY/MM/DD/HH/, this hour): every sale in the bundled
# data as the live version's traffic, lotsize tripled, so the report the function writes to the
# moto S3 must find that feature, and only it, drifted.
MONITOR_EVENT = "monitor_schedule"
MONITOR_SHIFT = {"lotsize": 3.0}


def capture_records(version: str, now: datetime) -> list[dict[str, Any]]:
    """The bundled data's rows as captured requests answered by `version` (the sale price as the
    prediction; values as CSV text, which the monitor reads as a request's would be)."""
    with BATCH_INPUT.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = []
    for i, row in enumerate(rows):
        price = float(row.pop("price"))
        row.pop("", None)  # the CSV's row number
        features = {
            name: str(float(value) * MONITOR_SHIFT[name]) if name in MONITOR_SHIFT else value
            for name, value in row.items()
        }
        records.append(
            {
                "request_id": f"sam-local-{i}",
                "row": 0,
                "time": now.isoformat(timespec="seconds"),
                "model_version": version,
                "features": features,
                "prediction": price,
            }
        )
    return records


def seed_capture(s3: Any, bucket: str, version: str, now: datetime) -> tuple[str, int]:
    """One capture object in moto's Firehose layout; returns its key and how many records."""
    records = capture_records(version, now)
    key = f"capture/house-prices/{now:%Y/%m/%d/%H}/sam-local-{uuid.uuid4().hex}"
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key, len(records)


def check_monitor(reply: Any, records: int, s3: Any, bucket: str) -> str | None:
    """The summary the function returned and the drift.json (and .html) it wrote."""
    expected = {"records": records, "drifted": sorted(MONITOR_SHIFT)}
    got = {k: reply.get(k) for k in expected} if isinstance(reply, dict) else reply
    if got != expected or not reply.get("files"):
        return f"expected {expected} from at least one file, got {str(reply)[:600]}"
    key = str(reply.get("report"))
    if not (key.startswith("reports/house-prices/") and key.endswith("/drift.json")):
        return f"report written to {key!r}, expected reports/house-prices/<date>/drift.json"
    try:
        report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        s3.head_object(Bucket=bucket, Key=key.removesuffix(".json") + ".html")
    except Exception as exc:  # noqa: BLE001 - any failure to read them is the finding
        return f"report {key!r} or its page not readable in s3://{bucket}: {exc}"
    if (report.get("records"), report.get("drifted")) != (records, expected["drifted"]):
        return f"{key} says {report.get('records')} records, drifted {report.get('drifted')}"
    return None


def invoke_monitor(env: Env, invoke: InvokeFunction, timings: dict[str, float]) -> None:
    """MonitorFunction on seeded capture through `invoke` (`sam local invoke`; tests pass the
    handler)."""
    s3 = boto3.client("s3", endpoint_url=env.endpoint, region_name=REGION)
    with step(f"sam local invoke MonitorFunction -e events/{MONITOR_EVENT}.json", timings):
        key, records = seed_capture(s3, env.bucket, env.version, datetime.now(UTC))
        reply = invoke("MonitorFunction", EVENTS / f"{MONITOR_EVENT}.json")
        problem = check_monitor(reply, records, s3, env.bucket)
        if problem:
            raise CheckFailed(problem)
        say(f"    {records} records from s3://{env.bucket}/{key}: drifted {reply['drifted']}, "
            f"report at s3://{env.bucket}/{reply['report']}")  # fmt: skip


def invoke_jobs(env: Env, deadline: Deadline, timings: dict[str, float]) -> None:
    """The functions no API route reaches: a batch job's two steps, the scheduled retrain, then
    the scheduled drift monitor."""
    invoke_batch(env, lambda f, event: sam_invoke(env, f, event, deadline), timings)
    with step("sam local invoke RetrainFunction -e events/retrain_schedule.json", timings):
        invoke_retrain(env, deadline)
    invoke_monitor(env, lambda f, event: sam_invoke(env, f, event, deadline), timings)


def fetch(
    method: str, url: str, body: str | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=body.encode() if body is not None else None, method=method,
        headers=dict(headers or {}),
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def start_api(env: Env, deadline: Deadline, timings: dict[str, float], warm: int) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = STATE / "logs" / "start-api.log"
    cmd = [
        SAM, "local", "start-api", "-t", str(TEMPLATE), "--env-vars", str(ENV_VARS),
        "--host", "127.0.0.1", "--port", str(port), "--skip-pull-image",
        "--container-host", "127.0.0.1", "--container-host-interface", "127.0.0.1",
        "--warm-containers", "EAGER",
    ]  # fmt: skip
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            tied(cmd, "INT"),  # on SIGINT SAM stops its warm containers; on SIGTERM it does not
            cwd=ROOT,
            env=env.sam,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        try:
            _exercise_api(
                env,
                base,
                proc=proc,
                deadline=deadline,
                timings=timings,
                warm=warm,
                log_path=log_path,
            )
        finally:
            # SIGINT is how SAM expects to be stopped: it then stops its warm containers.
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(proc)


def _exercise_api(
    env: Env,
    base: str,
    *,
    proc: subprocess.Popen[Any],
    deadline: Deadline,
    timings: dict[str, float],
    warm: int,
    log_path: Path,
) -> None:
    events = api_events()

    def answers() -> bool:
        try:
            return fetch("GET", base + "/health")[0] == 200
        except OSError:
            return False

    with step(f"sam local start-api on {base} (ready: GET /health answers 200)", timings):
        try:
            wait_until(answers, "sam local start-api", deadline.left(240), proc)
        except CheckFailed as exc:
            tail = "\n".join(log_path.read_text().strip().splitlines()[-25:])
            raise CheckFailed(f"{exc}; its log ({log_path}):\n{tail}") from exc

    # Each request is the event's method, path, content type and body over real HTTP. No
    # x-api-key is sent: sam local start-api does not enforce API keys.
    for name in (
        "predict",
        "predict_batch",
        "model_info",
        "health",
        "predict_wrong_type",
        "predict_malformed_json",
        "predict_wrong_content_type",
    ):
        event = events[name]
        method, path = event["httpMethod"], event["path"]
        with step(f"HTTP {method} {path} as in events/{name}.json", timings):
            headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            body = event.get("body") if method == "POST" else None
            content_type = {"Content-Type": headers.get("content-type", "application/json")}
            status, text = fetch(method, base + path, body, content_type)
            problem = judge(name, body, status, text, env.version)
            if problem:
                raise CheckFailed(problem)
            say(f"    {status} {text[:160]}")

    with step("HTTP GET /openapi.json and /swagger", timings):
        status, text = fetch("GET", base + "/openapi.json")
        if status != 200 or "/predict" not in json.loads(text).get("paths", {}):
            raise CheckFailed(f"/openapi.json: status {status}, {text[:300]}")
        status, text = fetch("GET", base + "/swagger")
        if status != 200 or "swagger" not in text.lower():
            raise CheckFailed(f"/swagger: status {status}, {text[:300]}")
        say("    200 /openapi.json lists /predict; 200 /swagger")

    with step(f"{warm} warm POST /predict requests", timings):
        body = events["predict"]["body"]
        durations = []
        for _ in range(warm):
            started = time.perf_counter()
            status, text = fetch("POST", base + "/predict", body, JSON_HEADERS)
            durations.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise CheckFailed(f"status {status}: {text[:300]}")
        durations.sort()
        say(
            f"    warm POST /predict: median {durations[len(durations) // 2]:.1f} ms, "
            f"min {durations[0]:.1f} ms, max {durations[-1]:.1f} ms"
        )


def check(deadline: Deadline, timings: dict[str, float], warm: int) -> None:
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    quiet = {**os.environ, "SAM_CLI_TELEMETRY": "0", "__SAM_CLI_APP_DIR": str(prepare_app_dir())}
    installed = run([SAM, "--version"], env=quiet, timeout=60, what="sam --version")
    if SAM_CLI_VERSION not in installed.stdout:
        raise CheckFailed(
            f"{installed.stdout.strip()}: tools/sam_local/proxy.py is written for SAM CLI "
            f"{SAM_CLI_VERSION}; check its container-create rewrite against the new version first"
        )
    with step("setup: podman, runc, settings, stand-in image", timings):
        try:
            run(
                ["bash", str(ROOT / "tools" / "sam_local" / "setup.sh")],
                env={**os.environ, "PYTHON": sys.executable, "SAM_LOCAL_HOME": str(SAM_LOCAL_HOME)},
                timeout=deadline.left(900),
                what="setup.sh",
                log=STATE / "logs" / "setup.log",
            )
        except CheckFailed:
            marker = "missing prerequisite: "
            for line in (STATE / "logs" / "setup.log").read_text().splitlines():
                if marker in line:
                    raise Skipped(line.split(marker, 1)[1]) from None
            raise
        said = [line for line in (STATE / "logs" / "setup.log").read_text().splitlines()
                if line.startswith("[sam-local setup]")]  # fmt: skip
        for line in said:
            say("    " + line.removeprefix("[sam-local setup] "))

    run_label = uuid.uuid4().hex[:12]
    with contextlib.ExitStack() as stack:
        # Unix sockets only: short paths (108-byte limit), private to this run.
        sockets = Path(tempfile.mkdtemp(prefix="sam-local-"))
        stack.callback(shutil.rmtree, sockets, ignore_errors=True)
        podman_sock, docker_sock = sockets / "podman.sock", sockets / "docker.sock"

        with step("podman system service (Docker-compatible API on a Unix socket)", timings):
            service_log = (STATE / "logs" / "podman-service.log").open("w")
            stack.callback(service_log.close)
            # --time: should it ever be orphaned, it ends after 10 minutes without a client.
            service = subprocess.Popen(
                tied(["podman", "system", "service", "--time", "600", f"unix://{podman_sock}"]),
                env=podman_env(),
                stdin=subprocess.DEVNULL,
                stdout=service_log,
                stderr=service_log,
            )
            stack.callback(stop, service)
            wait_until(lambda: docker_ping(podman_sock), "podman system service", 60, service)
            stack.callback(remove_containers, run_label)  # runs before the service stops
            remove_containers()

        from tools.local.s3server import moto_server

        with step("moto server on 127.0.0.1, model published and promoted, dataset", timings):
            endpoint = stack.enter_context(moto_server())
            bucket = model_bucket()
            version = seed(endpoint, bucket)
            say(f"    {endpoint}: s3://{bucket} live = {version}")

        (STATE / "logs" / "proxy.log").write_text("")

        def proxy_log(message: str) -> None:
            with (STATE / "logs" / "proxy.log").open("a") as log:
                log.write(message + "\n")

        proxy = DockerApiProxy(
            docker_sock,
            podman_sock,
            env={"AWS_ENDPOINT_URL": endpoint},
            labels={LABEL: run_label, f"{LABEL}.pid": str(os.getpid())},
            log=proxy_log,
        )
        stack.callback(proxy.server_close)
        proxy.serve_in_thread()
        stack.callback(proxy.shutdown)
        wait_until(lambda: docker_ping(docker_sock), "the Docker-API proxy", 10)

        env = Env(sam_environment(endpoint, docker_sock), endpoint, bucket, version)
        with step("sam build --build-dir .aws-sam-local/build", timings):
            sam_build(env, deadline)
        invoke_api_events(env, deadline, timings)
        invoke_jobs(env, deadline, timings)
        start_api(env, deadline, timings, warm)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the clean-up callbacks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=1500, help="budget for the whole run (s)")
    parser.add_argument("--warm", type=int, default=20, help="warm requests to time")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        say("SKIPPED: needs root (rootful podman with runc); nothing was checked")
        return 0
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    try:
        check(Deadline(args.timeout), timings, args.warm)
    except Skipped as exc:
        say(f"SKIPPED: {exc}; nothing was checked")
        return 0
    except CheckFailed as exc:
        print(f"[sam-local] FAILED: {exc}", file=sys.stderr, flush=True)
        print(f"[sam-local] logs: {STATE / 'logs'}", file=sys.stderr)
        return 1
    except Exception:  # a bug here or an answer of a shape nobody expected: show where
        traceback.print_exc()
        print(f"[sam-local] FAILED unexpectedly; logs: {STATE / 'logs'}", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    say(f"all {len(timings)} steps passed in {total:.0f} s; logs in {STATE / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
