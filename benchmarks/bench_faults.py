"""S3 faults on the serving path, timed: the predict handler in process against an S3 that
answers (a local moto server), one that hangs (accepts, never answers) and one that refuses.

- cold: a fresh holder, one request, until the reply (503 when S3 is down): median of RUNS;
- warm: one-row requests answered by a loaded model while its alias re-check is due on every
  request (refresh interval 1 ms), with each S3 side by side in one run: p50 and p99, and the
  ratio of the faulty S3's p50 to the healthy one's.
- capture: the same one-row requests with every request captured (CAPTURE_SAMPLE_RATE 1) to a
  Firehose stream that answers (moto), hangs or refuses, beside capture off: the first request
  (the stream's state unknown), then p50, p99 and max of the rest, and rows sent.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import boto3

from benchmarks.common import function_env, median, percentile, quiet_powertools, seeded_registry

quiet_powertools()

import predict_handler  # noqa: E402
from sklambda.capture import CAPTURE_CONFIG, Capture  # noqa: E402
from sklambda.serving import ModelHolder  # noqa: E402
from sklambda.settings import ServingSettings  # noqa: E402
from sklambda.store import SERVING_S3_CONFIG, ModelStore  # noqa: E402
from tests.helpers import FakeLambdaContext, load_event  # noqa: E402
from tools.local.loopback import HangingServer, free_port  # noqa: E402

RUNS = 9
WARM_REQUESTS = 400


def _holder(endpoint: Callable[[], str], cache: Path, refresh_seconds: float) -> ModelHolder:
    bucket = function_env("PredictFunction")["MODEL_BUCKET"]
    settings = ServingSettings(
        bucket=bucket, model_name="house-prices", refresh_seconds=refresh_seconds, cache_dir=cache
    )
    return ModelHolder(
        settings,
        lambda: ModelStore(
            boto3.client("s3", endpoint_url=endpoint(), config=SERVING_S3_CONFIG), bucket
        ),
    )


def _request(holder: ModelHolder) -> tuple[int, float]:
    predict_handler.holder = holder
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # EMF and log lines
        reply = predict_handler.lambda_handler(load_event("predict"), FakeLambdaContext())
    return int(reply["statusCode"]), time.perf_counter() - started


def cold(endpoint: str) -> dict[str, Any]:
    times, statuses = [], set()
    for _ in range(RUNS):
        with TemporaryDirectory() as cache:
            status, seconds = _request(_holder(lambda: endpoint, Path(cache), 300))
        times.append(seconds)
        statuses.add(status)
    return {
        "status": sorted(statuses),
        "median_ms": median(times) * 1000,
        "max_ms": max(times) * 1000,
    }


def warm(healthy: str, faulty: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with TemporaryDirectory() as cache:
        current = {"url": healthy}
        holder = _holder(lambda: current["url"], Path(cache), 0.001)
        assert _request(holder)[0] == 200  # loaded from the healthy S3
        for name, url in {"healthy": healthy, **faulty}.items():
            current["url"] = url
            latencies, statuses = [], set()
            for _ in range(WARM_REQUESTS):
                status, seconds = _request(holder)
                latencies.append(seconds)
                statuses.add(status)
            holder.wait_for_refresh(10)
            out[name] = {
                "status": sorted(statuses),
                "p50_us": percentile(latencies, 0.5) * 1e6,
                "p99_us": percentile(latencies, 0.99) * 1e6,
            }
    for name in faulty:
        out[name]["p50_ratio_to_healthy"] = out[name]["p50_us"] / out["healthy"]["p50_us"]
    return out


def _capture(stream: str, endpoint: str, rate: float) -> Capture:
    settings = ServingSettings(capture_stream=stream, capture_sample_rate=rate)
    return Capture(
        settings, lambda: boto3.client("firehose", endpoint_url=endpoint, config=CAPTURE_CONFIG)
    )


def capture(healthy: str, faulty: dict[str, str]) -> dict[str, Any]:
    bucket = function_env("PredictFunction")["MODEL_BUCKET"]
    stream = "bench-capture"
    firehose = boto3.client("firehose", endpoint_url=healthy)
    if stream not in firehose.list_delivery_streams()["DeliveryStreamNames"]:
        firehose.create_delivery_stream(
            DeliveryStreamName=stream,
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": "capture/house-prices/",
            },
        )
    out: dict[str, Any] = {}
    with TemporaryDirectory() as cache:
        holder = _holder(lambda: healthy, Path(cache), 3600)
        assert _request(holder)[0] == 200  # loaded
        cases = {"off": (healthy, 0.0), "healthy": (healthy, 1.0)}
        cases.update({name: (url, 1.0) for name, url in faulty.items()})
        for name, (url, rate) in cases.items():
            predict_handler.capture = _capture(stream, url, rate)
            first_status, first = _request(holder)
            predict_handler.capture.wait_idle(10)  # the first put's outcome is known
            latencies, statuses = [], {first_status}
            for _ in range(WARM_REQUESTS):
                status, seconds = _request(holder)
                latencies.append(seconds)
                statuses.add(status)
            predict_handler.capture.wait_idle(10)
            out[name] = {
                "status": sorted(statuses),
                "first_ms": first * 1000,
                "p50_us": percentile(latencies, 0.5) * 1e6,
                "p99_us": percentile(latencies, 0.99) * 1e6,
                "max_ms": max(latencies) * 1000,
                "rows_sent": predict_handler.capture.sent,
                "requests": WARM_REQUESTS + 1,
            }
    return out


def main(endpoint: str | None = None) -> dict[str, Any]:
    if endpoint is None:
        with seeded_registry() as local:
            return main(local)
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with HangingServer() as hanging:
        return {
            "cold": {
                "healthy": cold(endpoint),
                "hanging": cold(hanging.url),
                "refused": cold(refused),
            },
            "warm": warm(endpoint, {"hanging": hanging.url, "refused": refused}),
            "capture": capture(endpoint, {"hanging": hanging.url, "refused": refused}),
        }


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
