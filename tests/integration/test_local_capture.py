"""Local prediction capture (tools/local): the template's CaptureStream hosted by a moto server,
the functions pointed at it, and what moto writes read by the drift monitor."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from sklambda.monitor import new_capture_keys
from tests.helpers import ROOT
from tools.local.runner import start_capture
from tools.local.s3server import create_bucket, local_capture_prefix, moto_server
from tools.local.template import load_template

pytestmark = [pytest.mark.integration, pytest.mark.tooling]


@pytest.mark.parametrize(
    ("prefix", "local"),
    [
        (
            "capture/house-prices/year=!{timestamp:yyyy}/month=!{timestamp:MM}/hour=!{timestamp:HH}/",
            "capture/house-prices/",
        ),
        ("capture/m/", "capture/m/"),
        ("capture/m/part-!{timestamp:yyyy}/", "capture/m/"),
        ("", ""),
    ],
)
def test_the_local_prefix_stops_before_firehoses_first_expression(prefix: str, local: str) -> None:
    assert local_capture_prefix(prefix) == local


def test_the_template_stream_captures_through_moto_where_the_monitor_reads() -> None:
    # GIVEN the template (CAPTURE_STREAM off in events/env.json) and a fresh moto server
    app = load_template(
        ROOT / "template.yaml", env_vars=json.loads((ROOT / "events" / "env.json").read_text())
    )
    assert app.delivery_streams["CaptureStream"].startswith("capture/house-prices/year=!{")
    assert app.functions["PredictFunction"].environment["CAPTURE_STREAM"] == ""
    with moto_server() as endpoint:
        create_bucket(endpoint, "local-models")
        # WHEN capture is started at a quarter of the requests
        lines = start_capture(app, endpoint, "local-models", 0.25)
        # THEN the predict function puts to the stream, which exists in moto
        env = app.functions["PredictFunction"].environment
        assert (env["CAPTURE_STREAM"], env["CAPTURE_SAMPLE_RATE"]) == ("CaptureStream", "0.25")
        assert lines == [
            "PredictFunction captures 25% of its requests -> Firehose CaptureStream (moto) -> "
            "s3://local-models/capture/house-prices/YYYY/MM/DD/HH/"
        ]
        assert "CAPTURE_STREAM" not in app.functions["MonitorFunction"].environment
        firehose = boto3.client("firehose", endpoint_url=endpoint)
        firehose.put_record_batch(
            DeliveryStreamName="CaptureStream", Records=[{"Data": b'{"row": 0}\n'}]
        )
        # ...and what it writes is where the monitor looks (moto's own hour folders)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        keys, _ = new_capture_keys(
            s3,
            "local-models",
            "house-prices",
            datetime.now(UTC).date(),
            cursor=None,
            lookback_days=1,
        )
        assert len(keys) == 1 and keys[0].startswith("capture/house-prices/20")
        # ...and starting it again (a second local API on the same server) keeps the stream
        assert start_capture(app, endpoint, "local-models", 1.0)[0].startswith("PredictFunction")
