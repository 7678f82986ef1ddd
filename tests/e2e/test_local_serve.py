"""`make serve PORT=...`: the port is checked before anything slow starts, and the banner's lines
(export ..., curl ...) work as printed from another shell."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

import tools.local.__main__ as local_cli
from tools.local.loopback import free_port, port_is_free

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.tooling]


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_in_use_is_one_line_before_anything_starts(
    taken_port: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_start(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing may be trained or started when the port is taken")

    monkeypatch.setattr(local_cli, "LocalApi", must_not_start)
    assert not port_is_free(taken_port)
    assert local_cli.main(["serve", "--port", str(taken_port)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert f"127.0.0.1:{taken_port} is already in use" in lines[0]
    assert "PORT=" in lines[0]  # says how to pick another


def _read_banner(proc: subprocess.Popen[str], seconds: float) -> list[str]:
    """stdout lines up to "Ctrl-C to stop." (bounded: a thread reads, this one waits)."""
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C to stop."):
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(seconds):
        raise AssertionError(f"no banner within {seconds:g} s: {lines}")
    return lines


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)  # `serve` stops its functions and its moto server
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise


def _captured(env: dict[str, str], prefix: str, seconds: float) -> list[str]:
    """Keys under `prefix` in the served S3, once there is one (bounded)."""
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    deadline = time.monotonic() + seconds
    while True:
        listed = s3.list_objects_v2(Bucket=env["MODEL_BUCKET"], Prefix=prefix)
        keys = [obj["Key"] for obj in listed.get("Contents", [])]
        if keys or time.monotonic() > deadline:
            return keys
        time.sleep(0.2)


def test_banner_lines_work_from_another_shell(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.pop("MODEL_BUCKET", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.local", "serve", "--port", str(port)]
        + ["--workdir", str(tmp_path)],
        cwd=ROOT,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own group: killed as one if it does not stop
    )
    try:
        banner = _read_banner(proc, 90)
        exports = [line.strip() for line in banner if line.strip().startswith("export ")]
        assert len(exports) == 1, banner
        words = shlex.split(exports[0])[1:]
        env = dict(clean, **dict(word.split("=", 1) for word in words))
        assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
        assert env["MODEL_BUCKET"] == "local-models"
        # `python -m training list`, exactly as the README shows it, in "another shell"
        listed = subprocess.run(
            [sys.executable, "-m", "training", "list"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert listed.returncode == 0, listed.stderr
        assert "house-prices" in listed.stdout
        assert re.search(r"\d{8}T\d{6}Z-[0-9a-f]{8}\b.*\blive\b", listed.stdout)  # the seeded one
        curls = [line.strip() for line in banner if line.strip().startswith("curl ")]
        predict = next(c for c in curls if f"http://127.0.0.1:{port}/predict" in c)
        assert "x-api-key: local-key" in predict
        if shutil.which("curl"):
            argv = shlex.split(predict)
            argv[1:1] = ["--max-time", "60"]
            reply = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)
            assert reply.returncode == 0, reply.stderr
            assert len(json.loads(reply.stdout)["predictions"]) == 1
            # ...and captured, through the template's Firehose stream in the moto server
            assert any("capture: PredictFunction captures 100%" in line for line in banner)
            assert _captured(env, "capture/house-prices/", seconds=10)
    finally:
        started = time.monotonic()
        code = _stop(proc)
    assert code == 0
    assert time.monotonic() - started < 30
    assert port_is_free(port)  # the API's socket is closed
