"""`make invoke FUNCTION=RetrainFunction EVENT=events/retrain_schedule.json` on a fresh state: the
registry the runner seeds (a live model, and its data under datasets/<model>/) is enough for the
real retrain function, cold, to run to a decision; with new data it trains and decides."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.helpers import HOUSE_CSV, load_event
from tools.local.runner import SEED_CONFIG, invoke_once
from tools.local.s3server import moto_server, seed_registry
from tools.local.template import DEFAULT_BUCKET

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.tooling]


def test_scheduled_retrain_on_the_seeded_registry(tmp_path: Path) -> None:
    with moto_server() as endpoint:
        live = seed_registry(endpoint, DEFAULT_BUCKET, SEED_CONFIG, tmp_path)  # as make invoke
        retrain = partial(
            invoke_once,
            ROOT / "template.yaml",  # no env-vars file: the template's bucket, as make invoke
            "RetrainFunction",
            load_event("retrain_schedule"),
            s3_endpoint=endpoint,
            seed=None,
            timeout=120,  # seconds for each invocation (the template allows 900)
            log=lambda line: None,
        )
        first: Any = retrain()[0]
        # The seeded data is the champion's own: a run that trains nothing is a success too.
        assert first["status"] in ("unchanged", "promoted", "rejected"), first
        assert (first["trigger"], first["data"]["rows"]) == ("schedule", 546)
        assert first["champion"]["version"] == live

        # A new data drop (here: the first 100 sales again, in a file of their own)
        lines = HOUSE_CSV.read_text().splitlines(keepends=True)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        key = "datasets/house-prices/drop-2.csv"
        s3.put_object(Bucket=DEFAULT_BUCKET, Key=key, Body="".join(lines[:101]).encode())
        second: Any = retrain()[0]
    assert second["status"] in ("promoted", "rejected"), second
    assert second["data"]["rows"] == 646
    assert second["challenger"]["version"] not in (None, second["champion"]["version"])
