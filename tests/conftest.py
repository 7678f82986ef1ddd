"""Fixtures every tier uses: fake AWS credentials, a moto S3 server over HTTP, the bundled data
and the default model trained once. Tier fixtures live in each tier's conftest.py; helpers that
tests import live in tests/helpers.py."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

from sklambda import clients
from sklambda.artifact import train_artifact
from sklambda.config import ModelConfig, load_config
from sklambda.data import Dataset, prepare, read_csv
from sklambda.manifest import Manifest
from tests.helpers import HOUSE_CONFIG, FakeLambdaContext

# Powertools reads these at import time; set before any handler module is imported.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "SklambdaTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "predict")
os.environ.setdefault("POWERTOOLS_DEV", "false")


@pytest.fixture(autouse=True)
def _fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach real AWS: fake credentials and a fixed region; the functions' shared
    clients (sklambda.clients) are made anew under each test's environment."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients.clear()


@pytest.fixture(autouse=True)
def _thaw_gc() -> Iterator[None]:
    """The predict function's holder freezes the heap (ModelHolder.freeze_gc, process-wide):
    whatever a test served, the next one starts with nothing frozen."""
    yield
    gc.unfreeze()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real moto server on 127.0.0.1 (a free port), shared by the session."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


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


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()
