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
    for number in range(1, 11):
        assert f"\n[{number}/10] " in out
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
    assert_production_loop(out)
    both = result.stdout + result.stderr
    for marker in FUNCTION_LOGS:
        assert marker not in both


def assert_production_loop(out: str) -> None:
    """Step 10: traffic captured through the local Firehose stream, a drift report per kind of
    traffic in which only the shifted feature drifts, champion vs shadow, the model report."""
    captured = re.search(r"^  POST /predict 150 sales as they are: (\d+) rows captured", out, re.M)
    assert captured and int(captured[1]) >= 150, out
    normal, shifted = re.findall(r"^  MonitorFunction: \d+ new rows; drifted: (.*)$", out, re.M)
    assert normal.startswith("none;"), out
    assert re.match(r"lotsize \(PSI \d+\.\d\d\); the largest other PSI: \w+ 0\.", shifted), out
    shadows = re.findall(
        r"^    champion vs shadow \S+ on (\d+) rows: agreement \d+% \(within 5%\), "
        r"mean difference [+-][\d,]+ \(shadow - champion\)$",
        out,
        re.M,
    )
    assert len(shadows) == 2 and all(int(rows) > 0 for rows in shadows), out
    reports = re.findall(r"^    drift report: (\S+) and drift\.html$", out, re.M)
    assert len(reports) == 2, out
    for report in map(Path, reports):
        assert report.name == "drift.json" and report.is_file()
        assert report.with_name("drift.html").read_text().startswith("<!DOCTYPE html>")
    model_report = re.search(r"^  model report of \S+ \(from the registry\): (\S+)$", out, re.M)
    assert model_report and Path(model_report[1]).is_file(), out


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
