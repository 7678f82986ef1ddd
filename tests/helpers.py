"""Helpers the tests import (conftest.py files hold fixtures only): paths, events, a Lambda
context, small CSV tables."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
