"""A moto server in its own process on 127.0.0.1 (S3, and Firehose for prediction capture), for
the demo and the local runner.

Prediction capture, locally: in production PredictFunction puts sampled rows to the template's
CaptureStream (Kinesis Data Firehose, DirectPut), which buffers them (up to 5 minutes or 5 MB)
and writes JSON Lines objects under capture/<model>/year=YYYY/month=MM/day=DD/hour=HH/ in the
model bucket. Here the same delivery stream, by the same name, lives in the moto server: the
functions' boto3 clients reach it through AWS_ENDPOINT_URL, and moto writes each PutRecordBatch
to the local bucket at once. moto does not evaluate Firehose's `!{timestamp:...}` expressions,
so the local stream's prefix is the template's up to the first of them (capture/<model>/), under
which moto adds its own YYYY/MM/DD/HH/ folders: the layout of a stream without a custom prefix,
which sklambda.monitor reads as well as the template's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

from tools.local.loopback import FAKE_CREDENTIALS, free_port, wait_for_http


@contextmanager
def moto_server(port: int | None = None) -> Iterator[str]:
    """Start `moto_server` on 127.0.0.1; yield its endpoint URL; stop it on exit."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **FAKE_CREDENTIALS},
    )
    try:
        wait_for_http(endpoint + "/moto-api/", proc=proc)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def use_endpoint(endpoint: str) -> None:
    """Point this process (and children) at the local S3 with fake credentials."""
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint


def create_bucket(endpoint: str, bucket: str) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def local_capture_prefix(prefix: str) -> str:
    """The part of a delivery stream's S3 prefix moto writes as given: up to the folder before
    Firehose's first `!{...}` expression (moto would write the expression literally)."""
    static = prefix.split("!{", 1)[0]
    return static[: static.rfind("/") + 1]


def create_delivery_stream(endpoint: str, bucket: str, name: str, prefix: str) -> str:
    """A DirectPut delivery stream `name` writing to `bucket` under `prefix` (made local by
    local_capture_prefix) in the moto server at `endpoint`; kept if it exists. Its prefix."""
    firehose = boto3.client("firehose", endpoint_url=endpoint, region_name="us-east-1")
    local = local_capture_prefix(prefix)
    # An earlier local API on the same server may have made it.
    with contextlib.suppress(firehose.exceptions.ResourceInUseException):
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/local-capture",  # moto checks none
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": local,
                "CompressionFormat": "UNCOMPRESSED",
            },
        )
    return local


def seed_registry(endpoint: str, bucket: str, config: Path, workdir: Path) -> str:
    """Create the bucket, train the model in `config`, publish and promote it, and put its data
    under datasets/<model>/ so a retrain has something to read; return the live version.

    Used by `make serve`, `make invoke`, `make sam-local-test` and the benchmarks, so a fresh
    local S3 has a live model to serve and to retrain.
    """
    from sklambda.artifact import train_artifact
    from sklambda.config import load_config
    from sklambda.data import load_dataset
    from sklambda.store import ModelStore

    create_bucket(endpoint, bucket)
    model_config = load_config(config)
    dataset = load_dataset(model_config)
    trained = train_artifact(model_config, dataset, workdir / model_config.name)
    store = ModelStore(boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"), bucket)
    manifest = store.publish(trained.folder)
    store.promote(manifest.name, manifest.version)
    source = Path(str(model_config.data.source))
    store.s3.put_object(
        Bucket=bucket,
        Key=store.dataset_key(model_config.name, source.name),
        Body=source.read_bytes(),
    )
    return manifest.version
