"""Helpers the tests import (conftest.py files hold fixtures only): paths, events, a Lambda
context, small CSV tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from sklambda.config import ModelConfig, parse_config

if TYPE_CHECKING:
    from tools.local.runner import LocalApi

Served: TypeAlias = "tuple[LocalApi, str]"  # a local API and the live model's version (e2e)

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
HOUSE_CONFIG = ROOT / "training" / "configs" / "house_prices.toml"
HOUSE_CSV = ROOT / "training" / "data" / "windsor_housing.csv"

# A small table no shipped config describes: numbers, a category, missing values.
UNSEEN_CSV = "size,kind,floor,rent\n" + "".join(
    f"{30 + i * 3},{['flat', 'house', 'loft'][i % 3]},{'' if i % 7 == 0 else i % 5},"
    f"{500 + i * 31 + (i % 3) * 120}\n"
    for i in range(60)
)


# A rents table with missing cells, and its config: see tests/unit/test_missing_values.py.
RENT_KINDS = ("flat", "house", "loft")
RENT_HEATINGS = ("electric", "gas", "oil")


def rents_csv(rows: int = 240, heating_missing: bool = True, seed: int = 3) -> str:
    """Rents with a required category (kind), an optional category (heating: missing cells cost
    300 a month), an optional integer (floor: missing cells add 200) and an optional boolean."""
    rng = np.random.default_rng(seed)
    lines = ["size,kind,heating,floor,garden,rent"]
    for i in range(rows):
        size = 30 + (i * 7) % 90
        kind = RENT_KINDS[i % 3]
        heating = "" if heating_missing and i % 5 == 0 else RENT_HEATINGS[(i // 3) % 3]
        floor = "" if i % 6 == 1 else str(i % 4)
        garden = "" if i % 11 == 2 else ("yes" if i % 2 else "no")
        rent = 8.0 * size + {"flat": 0, "house": 150, "loft": 90}[kind]
        rent += {"": -300, "electric": 0, "gas": 60, "oil": 20}[heating]
        rent += 200 if floor == "" else 25 * int(floor)
        rent += 40 if garden == "yes" else 0
        rent += rng.normal(0, 5)
        lines.append(f"{size},{kind},{heating},{floor},{garden},{rent:.2f}")
    return "\n".join(lines) + "\n"


def rents_config(**changes: Any) -> ModelConfig:
    raw: dict[str, Any] = {
        "name": "rents",
        "target": {"name": "rent"},
        "features": [
            {"name": "size", "type": "number"},
            {"name": "kind", "type": "category"},
            {"name": "heating", "type": "category", "required": False},
            {"name": "floor", "type": "integer", "required": False},
            {"name": "garden", "type": "boolean", "required": False},
        ],
        "evaluation": {"cv_folds": 3},
    }
    raw.update(changes)
    return parse_config(raw)


# A binary churn table and its config: see tests/unit/test_classification.py.
PENGUINS_CONFIG = ROOT / "training" / "configs" / "penguins.toml"
PENGUINS_CSV = ROOT / "training" / "data" / "penguins.csv"
CHURN_PLANS = ("basic", "plus", "pro")


def churn_csv(rows: int = 300, seed: int = 5, labels: tuple[Any, Any] = ("no", "yes")) -> str:
    """Customers who churn (labels[1]) or stay: fewer with a longer tenure and a better plan,
    more with support calls (an optional integer: a missing count is a churn signal of its own),
    less with paperless billing (an optional boolean). Seeded, with label noise."""
    rng = np.random.default_rng(seed)
    lines = ["tenure,plan,calls,paperless,churn"]
    for i in range(rows):
        tenure = float(rng.uniform(1, 72))
        plan = CHURN_PLANS[int(rng.integers(3))]
        calls = "" if i % 9 == 4 else str(int(rng.poisson(2)))
        paperless = "" if i % 13 == 6 else ("yes" if rng.random() < 0.5 else "no")
        logit = 1.2 - 0.06 * tenure + {"basic": 0.8, "plus": 0.0, "pro": -0.7}[plan]
        logit += 0.9 if calls == "" else 0.45 * int(calls)
        logit -= 0.4 if paperless == "yes" else 0.0
        churned = rng.random() < 1.0 / (1.0 + np.exp(-logit))
        lines.append(f"{tenure:.1f},{plan},{calls},{paperless},{labels[int(churned)]}")
    return "\n".join(lines) + "\n"


def churn_config(**changes: Any) -> ModelConfig:
    raw: dict[str, Any] = {
        "name": "churn",
        "task": "classification",
        "target": {"name": "churn"},
        "features": [
            {"name": "tenure", "type": "number"},
            {"name": "plan", "type": "category"},
            {"name": "calls", "type": "integer", "required": False},
            {"name": "paperless", "type": "boolean", "required": False},
        ],
        "estimator": {"kind": "logistic_regression"},
        "evaluation": {"cv_folds": 3},
    }
    raw.update(changes)
    return parse_config(raw)


def load_event(name: str) -> dict[str, Any]:
    """One event file from events/, exactly as `sam local invoke -e` takes it."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from the Lambda context."""

    function_name: str = "PredictFunction"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:PredictFunction"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"
    log_group_name: str = "/aws/lambda/PredictFunction"
    log_stream_name: str = "2026/11/24/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


HEAVY_MODULES = ("sklearn", "scipy", "joblib")
_COLD_PREDICT = (
    "import json, sys, types, predict_handler\n"
    "event = json.load(open(sys.argv[1]))\n"
    "context = types.SimpleNamespace(function_name='f', memory_limit_in_mb=512,\n"
    "    invoked_function_arn='arn:aws:lambda:us-east-1:1:function:f', aws_request_id='r',\n"
    "    get_remaining_time_in_millis=lambda: 30_000)\n"
    "reply = predict_handler.lambda_handler(event, context)\n"
    "assert reply['statusCode'] == 200, reply\n"
    "heavy = tuple(sys.argv[2].split(','))\n"
    "print(json.dumps({'reply': json.loads(reply['body']),\n"
    "    'heavy': sorted(m for m in sys.modules if m.split('.')[0] in heavy)}))\n"
)


def cold_predict(bucket: str, model: str, event: str, cache_dir: Path) -> dict[str, Any]:
    """A fresh interpreter imports the predict handler and answers events/<event>.json from the
    bucket's `model` (S3 endpoint and credentials from the environment): {"reply": its JSON
    body, "heavy": the HEAVY_MODULES packages that got imported}."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "predict"), str(ROOT)]),
        "MODEL_BUCKET": bucket,
        "MODEL_NAME": model,
        "MODEL_CACHE_DIR": str(cache_dir),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _COLD_PREDICT,
            str(EVENTS / f"{event}.json"),
            ",".join(HEAVY_MODULES),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result
