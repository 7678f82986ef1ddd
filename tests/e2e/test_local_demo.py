"""`make demo`: the story by default (steps, requests, the retrain's decision), the functions' own
logs only with VERBOSE=1."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tools.local.demo import FunctionLogs

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.tooling]

FUNCTION_LOGS = ("RequestId", '"_aws"', '"level"', "[api]", "[PredictFunction", "[RetrainFunction")


def run_demo(workdir: Path, verbose: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | {"VERBOSE": verbose}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.local.demo", "--workdir", str(workdir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo stops its functions and S3 on SIGTERM
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"the demo did not finish within 180 s:\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_demo_tells_the_story_without_function_logs(tmp_path: Path) -> None:
    result = run_demo(tmp_path, verbose="")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for number in range(1, 10):
        assert f"\n[{number}/9] " in out
    for method, path, status in [
        ("POST", "/predict", 200),
        ("POST", "/predict", 422),
        ("POST", "/predict", 403),
        ("GET", "/health", 200),
        ("GET", "/model", 200),
    ]:
        assert re.search(rf"^  {method} +{path} .* {status} +[\d,]+ ms  \S", out, re.M), out
    assert re.search(r"^decision: (promoted|rejected)", out, re.M), out
    assert "the warm PredictFunction picks up" in out
    # step 9, the classifier: labels with their probability, then its own retrain
    gentoo = r"penguins_predict.json +200 .* predictions \[Gentoo \([01]\.\d\d\)\]"
    assert re.search(gentoo, out), out
    assert re.search(r"^run \S+: (PROMOTED|REJECTED) - challenger log_loss", out, re.M), out
    both = result.stdout + result.stderr
    for marker in FUNCTION_LOGS:
        assert marker not in both


def test_function_logs_go_to_stderr_only_when_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    quiet, verbose = FunctionLogs(verbose=False, keep=2), FunctionLogs(verbose=True)
    for line in ("[F#1] START RequestId: 1", "[F#1] END RequestId: 1", "[F#1] REPORT RequestId: 1"):
        quiet(line)
        verbose(line)
    assert capsys.readouterr().err.count("RequestId") == 3  # the verbose sink printed each
    quiet.dump()  # a failed demo shows the last lines anyway
    err = capsys.readouterr().err
    assert "END RequestId" in err and "REPORT RequestId" in err
    assert "START RequestId" not in err  # only the last `keep`
    assert "VERBOSE=1" in err
