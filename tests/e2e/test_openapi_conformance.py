"""The API against its own OpenAPI document: schemathesis (`--checks all`: status codes, content
types, response schemas, valid data accepted, invalid data rejected, the API key enforced,
undeclared methods refused) sends a few hundred generated requests to the template's API on
127.0.0.1 (the local runner, functions under the Lambda RIE, the model from a moto S3), reading
the document from GET /openapi.json as a client would. Bounded: a fixed seed, a fixed number of
examples per operation and a timeout; 20-40 s here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.e2e.conformance_hooks import OVERFLOW
from tests.helpers import Served, load_event

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")  # hooks and the checks' status lists
API_KEY = "conformance-key"
EXAMPLES_PER_OPERATION = 100  # with the coverage phase's own cases: ~750 requests
SEED = 1  # reproducible in CI; pass --seed to the printed command to explore further
TIMEOUT = 300

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api_url(serve_template: Callable[..., AbstractContextManager[Served]]) -> Iterator[str]:
    # The docs function describes the served model, so it is pointed at the bucket too.
    with serve_template(
        API_KEY, concurrency=2, functions=("PredictFunction", "ApiDocsFunction")
    ) as (api, _):
        yield api.url


def test_the_one_422_allowed_to_valid_data_is_the_overflow(api_url: str) -> None:
    """conformance_hooks.py lets valid data get a 422 only with this message: it must be the
    API's (a renamed message would make every overflow a conformance failure, or worse, hide
    nothing while the allowance matched no real reply)."""
    record = {**json.loads(load_event("predict")["body"]), "bedrooms": 10**300}
    request = urllib.request.Request(
        f"{api_url}/predict",
        data=json.dumps(record).encode(),
        headers={"Content-Type": "application/json", "x-api-key": API_KEY},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    with refused.value as reply:
        assert reply.code == 422
        details = json.loads(reply.read())["error"]["details"]
    assert [d["message"] for d in details] == [OVERFLOW]


def test_the_api_conforms_to_its_openapi_document(api_url: str, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"x-api-key: {API_KEY}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--output-truncate",
        "true",
        "--generation-database",
        "none",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,  # anything schemathesis writes stays out of the work tree
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # the hooks module: tests.e2e...
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = result.stdout + result.stderr
    shown = "\n".join(line[:300] for line in output.splitlines()[-80:])
    assert result.returncode == 0, f"{' '.join(command)}\n{shown}"
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, shown
    generated, passed = map(int, counts.groups())
    assert generated == passed and generated >= 300, shown
    print(f"\nschemathesis: {generated} generated, {passed} passed")
