"""End-to-end fixtures: every test here runs functions under AWS's Lambda Runtime Interface
Emulator, which exists for Linux only; `serve_template` serves the project's own template.yaml
with the default model published and live in a fresh bucket of the moto server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from sklambda.store import ModelStore
from tests.browser import chromium_unavailable, start_chromium
from tests.helpers import EVENTS, ROOT, Served
from tools.local.loopback import FAKE_CREDENTIALS
from tools.local.rie import rie_binary
from tools.local.runner import LocalApi

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver


@pytest.fixture(autouse=True, scope="session")
def _lambda_rie() -> None:
    try:
        rie_binary()
    except RuntimeError as exc:
        pytest.skip(f"the Lambda RIE is not available here: {exc}")


@pytest.fixture(scope="session")
def serve_template(
    moto_endpoint: str, trained_dir: Path
) -> Callable[..., AbstractContextManager[Served]]:
    """serve_template(api_key, concurrency=4, functions=("PredictFunction",)): the template's
    API on 127.0.0.1; `functions` are pointed at the fresh bucket."""

    @contextmanager
    def serve(
        api_key: str, concurrency: int = 4, functions: tuple[str, ...] = ("PredictFunction",)
    ) -> Iterator[Served]:
        s3 = boto3.client(
            "s3",
            endpoint_url=moto_endpoint,
            region_name="us-east-1",
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        bucket = f"e2e-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        store = ModelStore(s3, bucket)
        version = store.publish(trained_dir).version
        store.promote("house-prices", version)
        env = json.loads((EVENTS / "env.json").read_text())
        for function in functions:
            env[function]["MODEL_BUCKET"] = bucket
        with LocalApi(
            ROOT / "template.yaml",
            env_vars=env,
            port=0,
            api_key=api_key,
            s3_endpoint=moto_endpoint,
            seed=None,
            concurrency=concurrency,
            log=lambda line: None,
        ) as api:
            yield api, version

    return serve


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium (Debian's, installed when missing; see tests/browser.py), shared by
    the session; skipped, saying why, where it cannot run."""
    reason = chromium_unavailable()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    driver = start_chromium()
    yield driver
    driver.quit()
