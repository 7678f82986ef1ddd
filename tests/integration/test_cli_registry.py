"""The registry commands against a moto S3 server: --json output, errors a person can act on
(a typo in the model name, a missing bucket, S3 unreachable), dummy credentials for a local S3."""

import json
import shutil
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sklambda.artifact import new_version
from sklambda.manifest import Manifest, read_manifest
from training.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def versions(store, trained_dir, artifact_dir):
    """Two versions of house-prices; the alias points at the first."""
    first = store.publish(trained_dir)
    raw = json.loads((artifact_dir / "manifest.json").read_text())
    # Same bytes under another, later version name (no second training).
    trained_at = datetime.strptime(first.version[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    raw["version"] = new_version(trained_at + timedelta(seconds=1))
    (artifact_dir / "manifest.json").write_text(json.dumps(raw))
    second = store.publish(artifact_dir)
    store.promote(first.name, first.version)
    return first, second


@pytest.fixture(autouse=True)
def _not_forced_to_colour(monkeypatch):
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_list_json_marks_the_live_version(s3_endpoint, bucket, versions, capsys):
    first, second = versions
    assert main(["list", "--bucket", bucket, "--json"]) == 0
    captured = capsys.readouterr()
    listing = json.loads(captured.out)  # nothing but JSON on stdout
    assert listing["bucket"] == bucket
    [model] = listing["models"]
    assert model["name"] == "house-prices"
    assert model["aliases"] == {"live": first.version}
    by_version = {v["version"]: v for v in model["versions"]}
    assert list(by_version) == [first.version, second.version]
    assert by_version[first.version]["aliases"] == ["live"]
    assert by_version[second.version]["aliases"] == []
    metrics = by_version[first.version]["metrics"]
    assert metrics["holdout"]["r2"] == first.metrics["holdout"]["r2"]
    assert metrics["cv_mean"]["r2"] == first.metrics["cv"]["r2"]["mean"]


def test_list_table_marks_the_live_version(s3_endpoint, bucket, versions, capsys):
    first, second = versions
    assert main(["list", "--bucket", bucket]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[0]: line.split() for line in captured.out.splitlines() if line.strip()}
    assert "live" in lines[first.version]
    assert "live" not in lines[second.version]
    assert "\x1b" not in captured.out + captured.err


def test_show_json_round_trips_to_a_manifest(s3_endpoint, bucket, versions, capsys):
    first, _ = versions
    assert main(["show", "--model", first.name, "--bucket", bucket, "--json"]) == 0
    assert Manifest.model_validate(json.loads(capsys.readouterr().out)) == first


def test_plain_output_has_no_escape_codes(s3_endpoint, bucket, trained_dir, capsys):
    folder = shutil.copytree(trained_dir, trained_dir.parent / "plain-copy", dirs_exist_ok=True)
    assert main(["publish", str(folder), "--bucket", bucket, "--promote"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"version {read_manifest(folder).version}"
    assert main(["show", "--model", "house-prices", "--bucket", bucket]) == 0
    assert main(["list", "--bucket", bucket]) == 0
    captured = capsys.readouterr()
    assert "house-prices" in captured.out
    assert "\x1b" not in out + captured.out + captured.err


@pytest.mark.parametrize(
    "command",
    [
        ["show"],
        ["promote", "--version", "20260101T000000Z-00000000"],
        ["rollback"],
        ["retrain"],
        ["list"],
    ],
)
def test_a_typo_in_the_model_name_lists_the_models_there(
    s3_endpoint, bucket, s3, versions, capsys, command
):
    assert main([*command, "--model", "hous-prices", "--bucket", bucket]) == 1
    err = capsys.readouterr().err
    assert err == f"error: no model 'hous-prices' in s3://{bucket}; models there: house-prices\n"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="models/hous-prices/")
    assert listed["KeyCount"] == 0  # retrain wrote no run record for a model that is not there


def test_a_failed_retrain_exits_1_with_its_summary(s3_endpoint, bucket, versions, capsys):
    """No CSV under datasets/house-prices/: the run fails, is summed up, and exits 1."""
    assert main(["retrain", "--model", "house-prices", "--bucket", bucket]) == 1
    out = capsys.readouterr().out
    assert any(line.startswith("run ") and ": FAILED - " in line for line in out.splitlines())


def test_an_empty_bucket_says_so(s3_endpoint, bucket, capsys):
    assert main(["show", "--model", "house-prices", "--bucket", bucket]) == 1
    err = capsys.readouterr().err
    assert err == f"error: no model 'house-prices' in s3://{bucket}; the bucket holds no models\n"


@pytest.mark.parametrize("command", [["list"], ["show", "--model", "house-prices"], ["publish"]])
def test_a_missing_bucket_is_named(s3_endpoint, trained_dir, capsys, command):
    name = f"nope-{uuid.uuid4().hex[:8]}"
    if command == ["publish"]:
        command = ["publish", str(trained_dir)]
    assert main([*command, "--bucket", name]) == 1
    err = capsys.readouterr().err
    assert err == f"error: bucket '{name}' does not exist (check --bucket or $MODEL_BUCKET)\n"


def test_unreachable_s3_is_one_line(monkeypatch, capsys):
    with socket.socket() as sock:  # a port on 127.0.0.1 that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore retries refused connections
    assert main(["list", "--bucket", "models"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach S3 at http://127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_local_s3_needs_no_credentials(
    s3_endpoint, bucket, versions, monkeypatch, tmp_path, capsys
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    # Nothing else may supply credentials: no files, no instance metadata.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    assert main(["list", "--bucket", bucket, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["name"] == "house-prices"
