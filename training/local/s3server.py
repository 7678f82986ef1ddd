"""A moto S3 server in its own process on 127.0.0.1, for the demo and the local runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(
    url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll until url answers (any HTTP status) or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


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


def seed_registry(endpoint: str, bucket: str, config: Path, workdir: Path) -> str:
    """Create the bucket, train the model in `config`, publish and promote it; return the version.

    Used by `make serve` / `make invoke` so a fresh local S3 has a live model to serve.
    """
    from sklambda.artifact import write_artifact
    from sklambda.config import load_config
    from sklambda.data import prepare, read_csv
    from sklambda.store import ModelStore
    from sklambda.training import train

    create_bucket(endpoint, bucket)
    model_config = load_config(config)
    dataset = prepare(model_config, read_csv(model_config.data.source))
    out = workdir / model_config.name
    write_artifact(out, model_config, dataset, train(model_config, dataset))
    store = ModelStore(boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"), bucket)
    manifest = store.publish(out)
    store.promote(manifest.name, manifest.version)
    return manifest.version
