"""Shared fixtures: fake AWS credentials, a moto S3 server over HTTP, the bundled data, events."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from sklambda.artifact import train_artifact
from sklambda.config import ModelConfig, load_config
from sklambda.data import Dataset, prepare, read_csv
from sklambda.manifest import Manifest

# Powertools reads these at import time; set before any handler module is imported.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SklambdaTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")
os.environ.setdefault("POWERTOOLS_DEV", "false")

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
HOUSE_CONFIG = ROOT / "training" / "configs" / "house_prices.toml"


def load_event(name: str) -> dict[str, Any]:
    """One event file from events/, exactly as `sam local invoke -e` takes it."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach real AWS: fake credentials and a fixed region."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server on 127.0.0.1 (a free port), shared by the session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_endpoint(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    return moto_endpoint


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, versioned bucket per test."""
    name = f"models-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture(scope="session")
def house_config() -> ModelConfig:
    return load_config(HOUSE_CONFIG)


@pytest.fixture(scope="session")
def house_dataset(house_config: ModelConfig) -> Dataset:
    return prepare(house_config, read_csv(house_config.data.source))


@pytest.fixture(scope="session")
def trained_dir(
    tmp_path_factory: pytest.TempPathFactory, house_config: ModelConfig, house_dataset: Dataset
) -> Path:
    """The default model trained once, as `python -m training train` writes it."""
    out = tmp_path_factory.mktemp("artifact") / "house-prices"
    return train_artifact(house_config, house_dataset, out).folder


@pytest.fixture
def artifact_dir(trained_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained folder that a test may tamper with."""
    import shutil

    copy = tmp_path / "house-prices"
    shutil.copytree(trained_dir, copy)
    return copy


@pytest.fixture
def manifest(trained_dir: Path) -> Manifest:
    from sklambda.manifest import read_manifest

    return read_manifest(trained_dir)


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


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
