"""Shared helpers: the trained model, the shipped build, the target Python, a seeded local S3,
percentiles and machine facts."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import build_layer  # layers/ml is on sys.path (the venv's sklambda-dev.pth)

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
WORK = ROOT / ".cache" / "bench"
BUILD = ROOT / ".aws-sam" / "build"
TEMPLATE = ROOT / "template.yaml"
ENV_VARS = ROOT / "events" / "env.json"
# Lambda's python3.12 runtime brings boto3; these stand in for it, pinned as the tests run them.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer")


def quiet_powertools() -> None:
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Bench")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")


def trained_model() -> Path:
    """Train the default model into .cache/bench/house-prices (about a second), every run, so
    the artifact always comes from the current code."""
    from sklambda.artifact import train_artifact
    from sklambda.config import load_config
    from sklambda.data import load_dataset

    config = load_config(CONFIG)
    return train_artifact(config, load_dataset(config), WORK / "house-prices").folder


def ensure_build() -> None:
    """`make build` when .aws-sam/build has no layer yet (about a minute)."""
    if not (BUILD / "MLLayer" / "python").is_dir():
        print("bench: no .aws-sam/build; running `make build`", flush=True)
        subprocess.run(["make", "build"], cwd=ROOT, check=True)


def target_python() -> tuple[str, str]:
    """(interpreter, note): Lambda's Python 3.12 when this machine has one, else this Python."""
    found = build_layer.find_python312()
    if found:
        return found, f"Python 3.12 ({found}), the template's runtime"
    version = ".".join(map(str, sys.version_info[:3]))
    return sys.executable, f"no Python 3.12 found: local Python {version}, NOT the runtime's"


def runtime_site(python: str) -> Path | None:
    """A folder holding boto3 for `python` (what the Lambda runtime provides), made once."""
    if python == sys.executable:
        return None  # the venv has them
    pins = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() in RUNTIME_PACKAGES:
            pins[name.strip().lower()] = version.strip()
    tag = "-".join(f"{n}{pins.get(n, '')}" for n in RUNTIME_PACKAGES)
    site = WORK / f"runtime-{Path(python).name}-{tag}"
    if not (site / "boto3").is_dir():
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            + ["--target", str(site)]
            + [f"{n}=={v}" if v else n for n, v in ((n, pins.get(n)) for n in RUNTIME_PACKAGES)],
            check=True,
        )
    return site


def function_env(name: str) -> dict[str, str]:
    """The function's variables from events/env.json (what `sam local` and `make serve` use)."""
    env: dict[str, dict[str, str]] = json.loads(ENV_VARS.read_text())
    return {k: str(v) for k, v in env[name].items()}


@contextmanager
def seeded_registry() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 holding a promoted house-prices model; yields its URL."""
    from tools.local.s3server import moto_server, seed_registry, use_endpoint

    with moto_server() as endpoint:
        use_endpoint(endpoint)
        seed_registry(
            endpoint, function_env("PredictFunction")["MODEL_BUCKET"], CONFIG, WORK / "registry"
        )
        yield endpoint


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> str:
    cpus = os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} CPUs, {platform.system()} {platform.release()}, "
        f"Python {sys.version.split()[0]} (benchmark driver)"
    )
